"""Serving the app: the client started before the sessions, stopped when that fails."""

from __future__ import annotations

import asyncio

import pytest

from governor_app.app import start_client
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
