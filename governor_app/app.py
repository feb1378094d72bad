"""Builds the Flet page from a ``GovernorClient`` and serves it.

One client per process (one device, one local store, one outbox); every Flet session
(a desktop window or a browser tab) renders from it through its own ``Shell``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import flet as ft

from governor_app.preferences import PreferenceStore
from governor_app.profile import AppProfile
from sync import rules
from sync.facade import GovernorClient

if TYPE_CHECKING:
    # Imported when first used: push pulls in httpx (and, through it, rich), the shell
    # every screen; neither is needed before the web server listens (cold start).
    from governor_app.push import PushService

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class GovernorApp:
    """The Flet entry point: ``main(page)`` mounts a ``Shell`` on each new session.

    ``client`` may be a ready client or an awaitable of one: the launcher builds the engine
    while the web server is already starting, so the browser loads Flutter meanwhile.
    """

    def __init__(self, client: GovernorClient | Awaitable[GovernorClient], *,
                 clock: Clock = utc_now,
                 step_up_for_veto: bool | Callable[[], bool] = rules.STEP_UP_FOR_VETO,
                 undo_seconds: float = rules.UNDO_SECONDS,
                 preferences: PreferenceStore | None = None,
                 server_url: str = "") -> None:
        self._client = client
        self.preferences = preferences or PreferenceStore()
        self.server_url = server_url
        self.clock = clock
        self.step_up_for_veto = step_up_for_veto
        self.undo_seconds = undo_seconds
        # Push notifications: one center per process (one client), rendered by every
        # session; started once the client is ready, whether or not a session is open.
        self.push: PushService | None = None
        self._push_lock = asyncio.Lock()

    async def client(self) -> GovernorClient:
        if inspect.isawaitable(self._client):
            self._client = await self._client
        return self._client

    async def start_push(self) -> PushService:
        """Start following sign-in with push notifications (idempotent)."""
        async with self._push_lock:
            if self.push is None:
                from governor_app.push import PushService

                push = PushService(await self.client(), preferences=self.preferences,
                                   step_up_for_veto=self.step_up_for_veto,
                                   undo_seconds=self.undo_seconds)
                await push.start()
                self.push = push
            return self.push

    async def stop_push(self) -> None:
        async with self._push_lock:
            push, self.push = self.push, None
            if push is not None:
                await push.stop()

    async def main(self, page: ft.Page) -> None:
        client = await self.client()
        from governor_app.views.routes import resolve
        from governor_app.views.shell import Shell

        shell = Shell(page, client, routes=resolve, clock=self.clock,
                      step_up_for_veto=self.step_up_for_veto,
                      undo_seconds=self.undo_seconds, preferences=self.preferences,
                      server_url=self.server_url, push=await self.start_push())
        await shell.mount()


async def serve(make_client: Callable[[], GovernorClient], profile: AppProfile, *, web: bool,
                before_serve: Callable[[GovernorClient], Awaitable[None]] | None = None,
                on_listening: Callable[[str], None] | None = None,
                step_up_for_veto: bool | Callable[[], bool] = rules.STEP_UP_FOR_VETO,
                preferences: PreferenceStore | None = None) -> None:
    """Serve the app until SIGINT/SIGTERM (or the desktop window closes).

    The client is built in a worker thread and started (then ``before_serve``, the demo's
    sign-in) while the server comes up; sessions wait for it. It is stopped at the end."""
    ready = asyncio.ensure_future(start_client(make_client, before_serve))
    app = GovernorApp(ready, step_up_for_veto=step_up_for_veto, preferences=preferences,
                      server_url=profile.server_url)
    # Push starts with the client (after the demo's sign-in), before any window opens,
    # once the web server listens: importing it (httpx) delayed the first page.
    listening = asyncio.Event()
    push_started = asyncio.ensure_future(_when_set(listening, app.start_push))
    port = profile.port
    if web:
        # Serve, never open a browser: the launcher prints the URL instead.
        os.environ["FLET_FORCE_WEB_SERVER"] = "1"
        os.environ.setdefault("FLET_SERVER_IP", profile.host)
        if port == 0:
            port = _free_port(profile.host)
    watcher = None
    if web:
        url = f"http://{profile.host}:{port}"

        def listened(url: str) -> None:
            listening.set()
            if on_listening is not None:
                on_listening(url)

        watcher = asyncio.create_task(_announce_when_listening(profile.host, port, url,
                                                               listened))
    else:
        listening.set()
    try:
        await ft.run_async(
            app.main,
            host=profile.host,
            port=port,
            view=ft.AppView.WEB_BROWSER if web else ft.AppView.FLET_APP,
            assets_dir=str(profile.assets_dir),
            web_renderer=ft.WebRenderer(profile.web_renderer),
            route_url_strategy=ft.RouteUrlStrategy(profile.route_url_strategy),
            no_cdn=True,
        )
    finally:
        if watcher is not None:
            watcher.cancel()
        if not listening.is_set():
            push_started.cancel()  # the server never listened: push never started
        # A failed start is reported by ``ready``.
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await push_started
        await app.stop_push()
        client = await ready
        await client.stop()


async def _when_set(event: asyncio.Event, start: Callable[[], Awaitable[object]]) -> None:
    await event.wait()
    await start()


async def start_client(make_client: Callable[[], GovernorClient],
                       before_serve: Callable[[GovernorClient], Awaitable[None]] | None = None
                       ) -> GovernorClient:
    """Build the client in a worker thread, start it, then ``before_serve`` (the demo's
    sign-in). If the start or ``before_serve`` fails the client is stopped before the
    error goes on: ``serve`` never gets a client to stop, and the engine's scheduler and
    the probe a failed sign-in starts would otherwise run on, unstopped."""
    client = await asyncio.to_thread(make_client)
    try:
        await client.start()
        if before_serve is not None:
            await before_serve(client)
    except BaseException:
        with contextlib.suppress(Exception):  # the first error is the one to report
            await client.stop()
        raise
    return client


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def _announce_when_listening(host: str, port: int, url: str,
                                   on_listening: Callable[[str], None]) -> None:
    while True:
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
            on_listening(url)
            return
        await asyncio.sleep(0.05)
