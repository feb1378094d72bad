"""Serving the app: the client started before the sessions, stopped when that fails."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

import governor_app.app as app_module
from governor_app.app import GovernorApp, serve, start_client
from governor_app.profile import AppProfile
from sync.errors import SyncError
from sync.facade import GovernorClient
from sync.fakes import FakeGovernorClient


class Client(FakeGovernorClient):
    """The fake client, counting its starts and stops."""

    started = 0
    stopped = 0

    async def start(self) -> None:
        self.started += 1

    async def stop(self) -> None:
        self.stopped += 1


def test_the_client_is_started_then_prepared() -> None:
    client = Client()
    prepared: list[GovernorClient] = []

    async def before_serve(c: GovernorClient) -> None:
        prepared.append(c)

    assert asyncio.run(start_client(lambda: client, before_serve)) is client
    assert client.started == 1 and prepared == [client] and client.stopped == 0


def test_a_client_whose_preparation_fails_is_stopped_and_the_error_goes_on() -> None:
    """The demo's sign-in refused (the server not there): the engine, started already,
    with its scheduler and the probe the failed request began, is stopped."""
    client = Client()

    async def before_serve(c: GovernorClient) -> None:
        raise SyncError("Cannot reach the server; start the stub first.")

    with pytest.raises(SyncError, match="start the stub"):
        asyncio.run(start_client(lambda: client, before_serve))
    assert client.started == 1 and client.stopped == 1


def test_a_client_whose_start_fails_is_stopped() -> None:
    class Refusing(Client):
        async def start(self) -> None:
            raise RuntimeError("the store is read-only")

    client = Refusing()
    with pytest.raises(RuntimeError, match="read-only"):
        asyncio.run(start_client(lambda: client))
    assert client.stopped == 1


def _serve(monkeypatch: pytest.MonkeyPatch, run: Callable[..., Awaitable[None]],
           events: list[str], client: Client) -> None:
    """``serve`` in web mode over ``run`` (Flet's server), recording what happens when."""
    monkeypatch.setenv("FLET_FORCE_WEB_SERVER", "1")  # serve sets them; restored after
    monkeypatch.setenv("FLET_SERVER_IP", "127.0.0.1")
    monkeypatch.setattr(app_module.ft, "run_async", run)

    async def start_push(self: GovernorApp) -> None:
        events.append("push")

    monkeypatch.setattr(GovernorApp, "start_push", start_push)
    asyncio.run(serve(lambda: client, AppProfile(server_url="http://127.0.0.1:9"),
                      web=True, on_listening=lambda url: events.append("listening")))


def test_push_starts_once_the_web_server_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing push (httpx) used to run before the server listened, delaying the page."""
    events: list[str] = []

    async def run(main: object, *, host: str, port: int, **options: object) -> None:
        server = await asyncio.start_server(lambda r, w: w.close(), host, port)
        async with server:
            for _ in range(1000):  # until push has started
                if "push" in events:
                    return
                await asyncio.sleep(0.01)

    client = Client()
    _serve(monkeypatch, run, events, client)
    assert events == ["listening", "push"] and client.stopped == 1


def test_a_server_that_never_listens_starts_no_push(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[str] = []

    async def run(main: object, **options: object) -> None:
        raise OSError("address already in use: give another --port")

    client = Client()
    with pytest.raises(OSError, match="another --port"):
        _serve(monkeypatch, run, events, client)
    assert events == [] and client.stopped == 1  # and serve did not wait for push
