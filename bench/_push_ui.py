"""A minimal Flet page that renders push banners, for ``bench/push.py``'s UI figure.

``python bench/_push_ui.py STUB_URL PORT`` signs in to the stub as the demo governor,
runs the real push path (``PushListener`` -> ``PushNotifications`` ->
``NotificationDispatcher`` -> ``InAppNotifier``) and serves, on 127.0.0.1:PORT, a page
that shows the newest banners, each as ``ft.Semantics(identifier="push-banner-N")``
whose label carries the alert's title, body and event data. It prints
``push ui: http://127.0.0.1:PORT`` once it listens.

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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flet as ft
import httpx

from sync.auth import Authenticator
from sync.notify import (
    InAppNotifier,
    NotificationDispatcher,
    PushNotifications,
)
from sync.push import Backoff, InMemoryEventSink, PushListener
from sync.tokens import MemoryVault


async def serve(stub_url: str, port: int) -> None:
    auth = Authenticator(stub_url, vault=MemoryVault())
    await auth.sign_in_with_password("governor", "governor")
    inapp = InAppNotifier(limit=5)
    dispatcher = NotificationDispatcher(inapp, now=lambda: datetime.now(UTC))
    client = httpx.AsyncClient(base_url=stub_url)
    sink = InMemoryEventSink()
    # Start from now: the demo world's history is not what this page measures.
    latest = (await client.get("/v1/mobile/notifications", params={"limit": 1}, headers={
        "Authorization": f"Bearer {await auth.access_token()}"})).json()["meta"]
    sink.cursor = str(latest.get("last_event_id") or 0)
    while True:
        page_meta = (await client.get("/v1/mobile/notifications", params={
            "after": sink.cursor, "limit": 500}, headers={
            "Authorization": f"Bearer {await auth.access_token()}"})).json()["meta"]
        if str(page_meta.get("last_event_id")) == sink.cursor:
            break
        sink.cursor = str(page_meta["last_event_id"])
    listener = PushListener(client, auth.access_token, sink,
                            backoff=Backoff(base=0.05, cap=1.0))
    listener.on_event(PushNotifications(dispatcher))
    pages: list[ft.Page] = []

    def render(page: ft.Page, column: ft.Column, ready: ft.Semantics) -> None:
        column.controls = [
            ft.Semantics(identifier=f"push-banner-{i}", container=True,
                         label=f"{b.title}: {b.body} {b.data}",
                         content=ft.Container(
                             ft.Column([ft.Text(b.title, weight=ft.FontWeight.BOLD),
                                        ft.Text(b.body),
                                        ft.Row([ft.Button(a.label) for a in b.actions])]),
                             padding=8, bgcolor=ft.Colors.AMBER_100))
            for i, b in enumerate(inapp.banners())]
        ready.label = "connected" if listener.status.connected else "connecting"
        page.update()

    async def main(page: ft.Page) -> None:
        column = ft.Column()
        ready = ft.Semantics(identifier="push-ready", label="connecting",
                             content=ft.Text("push"))
        page.add(ready, column)
        pages.append(page)
        inapp.subscribe(lambda: render(page, column, ready))
        listener.on_status(lambda _s: render(page, column, ready))
        render(page, column, ready)

    task = asyncio.create_task(listener.run())
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
        await ft.run_async(main, host="127.0.0.1", port=port, view=ft.AppView.WEB_BROWSER,
                           no_cdn=True)
    finally:
        watcher.cancel()
        listener.stop()
        await asyncio.gather(task, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2])))
