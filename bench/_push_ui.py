"""A minimal Flet page that renders push banners, for ``bench/push.py`` and the push
browser test.

``python bench/_push_ui.py STUB_URL PORT [ENGINE_DATA_DIR]`` signs in to the stub as the
demo governor, runs the real push path (``PushListener`` -> ``PushNotifications`` ->
``NotificationDispatcher`` -> ``InAppNotifier``) and serves, on 127.0.0.1:PORT, a page that
shows the newest banners, each as ``ft.Semantics(identifier="push-banner-N")`` (0 the
newest) whose label carries the alert's title, body and event data, with one button per
action. It prints ``push ui: http://127.0.0.1:PORT`` once it listens.

With ``ENGINE_DATA_DIR`` the page runs a real ``SyncEngine`` there (periodic sync every
second) through ``center_for_engine``: Approve and Veto queue in its outbox, and Veto first
asks for the password inline (the step-up, ``SyncEngine.confirm_identity``). The result of
the last action is the label of ``push-status``.

It stands in for the app's own banner until ``governor_app`` renders ``InAppNotifier``
banners; it renders them the way the app should (docs/push.md, "Wiring the app").
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flet as ft
import httpx

from sync.auth import Authenticator
from sync.models import VetoCategory
from sync.notify import (
    Alert,
    InAppNotifier,
    NotificationDispatcher,
    PushNotifications,
    VetoConfirmation,
    center_for_engine,
)
from sync.push import Backoff, InMemoryEventSink, PushListener
from sync.tokens import MemoryVault


async def latest_event_id(client: httpx.AsyncClient, token: str) -> str:
    """The newest event id: the page starts from now, not from the demo world's history."""
    cursor = "0"
    while True:
        meta = (await client.get("/v1/mobile/notifications", params={
            "after": cursor, "limit": 500}, headers={"Authorization": f"Bearer {token}"}
        )).json()["meta"]
        if str(meta.get("last_event_id")) == cursor:
            return cursor
        cursor = str(meta["last_event_id"])


class Page:
    """The page's state: banners from ``inapp``, inline step-up prompts, the last result."""

    def __init__(self, inapp: InAppNotifier, connected: Any) -> None:
        self.inapp = inapp
        self.connected = connected
        self.prompts: dict[str, asyncio.Future[str | None]] = {}
        self.status = ""
        self.pages: list[tuple[ft.Page, ft.Column, ft.Semantics, ft.Semantics]] = []

    async def step_up_password(self, alert: Alert) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.prompts[alert.id] = future
        self.render_all()
        try:
            return await future
        finally:
            self.prompts.pop(alert.id, None)
            self.render_all()

    def render_all(self) -> None:
        for page, column, ready, status in list(self.pages):
            self.render(page, column, ready, status)

    def render(self, page: ft.Page, column: ft.Column, ready: ft.Semantics,
               status: ft.Semantics) -> None:
        def act(alert_id: str, action_id: str) -> Any:
            async def run() -> None:
                try:
                    result = await self.inapp.act(alert_id, action_id)
                    self.status = str(getattr(result, "message", "") or "done")
                except Exception as exc:
                    self.status = f"failed: {exc}"
                self.render_all()
            # Detached: a veto waits for the password, typed and confirmed by later clicks.
            return lambda e: page.run_task(run)

        def confirm(alert_id: str, field: ft.TextField) -> Any:
            def on_click(e: Any) -> None:
                future = self.prompts.get(alert_id)
                if future is not None and not future.done():
                    future.set_result(field.value or "")
            return on_click

        controls: list[ft.Control] = []
        for i, b in enumerate(self.inapp.banners()):
            rows: list[ft.Control] = [
                ft.Text(b.title, weight=ft.FontWeight.BOLD), ft.Text(b.body),
                ft.Row([ft.Button(a.label, on_click=act(b.id, a.id.value)) for a in b.actions])]
            if b.id in self.prompts:
                field = ft.TextField(label="Password to confirm the veto", password=True)
                rows.append(ft.Row([field, ft.Button("Confirm veto",
                                                     on_click=confirm(b.id, field))]))
            controls.append(ft.Semantics(
                identifier=f"push-banner-{i}", container=True,
                label=f"{b.title}: {b.body} {b.data}",
                content=ft.Container(ft.Column(rows), padding=8, bgcolor=ft.Colors.AMBER_100)))
        column.controls = controls
        ready.label = "connected" if self.connected() else "connecting"
        status.label = self.status or "no action yet"
        page.update()

    async def main(self, page: ft.Page) -> None:
        column = ft.Column()
        ready = ft.Semantics(identifier="push-ready", label="connecting",
                             content=ft.Text("push"))
        status = ft.Semantics(identifier="push-status", label="no action yet",
                              content=ft.Text("status"))
        page.add(ready, status, column)
        self.pages.append((page, column, ready, status))
        self.inapp.subscribe(lambda: self.render(page, column, ready, status))
        self.render(page, column, ready, status)


async def serve(stub_url: str, port: int, engine_dir: str | None) -> None:
    auth = Authenticator(stub_url, vault=MemoryVault())
    client = httpx.AsyncClient(base_url=stub_url)
    engine: Any = None
    if engine_dir is None:
        await auth.sign_in_with_password("governor", "governor")
        inapp = InAppNotifier(limit=5)
        dispatcher = NotificationDispatcher(inapp, now=lambda: datetime.now(UTC))
        sink = InMemoryEventSink()
        sink.cursor = await latest_event_id(client, await auth.access_token())
        listener = PushListener(client, auth.access_token, sink,
                                backoff=Backoff(base=0.05, cap=1.0))
        listener.on_event(PushNotifications(dispatcher))
        ui = Page(inapp, lambda: listener.status.connected)
        runner: Any = listener
    else:
        from sync.engine import SyncEngine
        from sync.settings import GovernorSettings

        settings = GovernorSettings(server_url=stub_url, data_dir=Path(engine_dir),
                                    sync_interval=1)
        engine = SyncEngine(settings, authenticator=auth)
        await engine.start()
        await engine.sign_in_with_password("governor", "governor")
        engine.store.set_meta("push_cursor",
                              await latest_event_id(client, await auth.access_token()))
        holder: dict[str, Page] = {}

        async def step_up(alert: Alert) -> VetoConfirmation | None:
            password = await holder["ui"].step_up_password(alert)
            if not password or not await engine.confirm_identity(password):
                return None
            return VetoConfirmation(VetoCategory.SAFETY, "Vetoed from the notification.")

        center = center_for_engine(engine, step_up, desktop=False)
        center.listener.backoff = Backoff(base=0.05, cap=1.0)
        ui = Page(center.inapp, lambda: center.listener.status.connected)
        holder["ui"] = ui
        runner = center
    if engine is None:
        runner.on_status(lambda _s: ui.render_all())
        task = asyncio.create_task(runner.run())
    else:
        runner.listener.on_status(lambda _s: ui.render_all())
        await runner.start()
    os.environ["FLET_FORCE_WEB_SERVER"] = "1"
    os.environ.setdefault("FLET_SERVER_IP", "127.0.0.1")

    async def announce() -> None:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    print(f"push ui: http://127.0.0.1:{port}", flush=True)
                    return
            except OSError:
                await asyncio.sleep(0.05)

    watcher = asyncio.create_task(announce())
    try:
        await ft.run_async(ui.main, host="127.0.0.1", port=port, view=ft.AppView.WEB_BROWSER,
                           no_cdn=True)
    finally:
        watcher.cancel()
        if engine is None:
            runner.stop()
            await asyncio.gather(task, return_exceptions=True)
        else:
            await runner.stop()
            await engine.stop()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3
                      else None))
