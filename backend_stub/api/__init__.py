"""The governance API: ``install_api(app)`` and, with ``--demo``, ``install_demo(app)``.

``install_api`` puts ``app.state.governance`` (the ``GovernanceService``) in place, runs
the domain migrations, mounts ``/v1/mobile`` and starts the deadline sweeper, which deploys
requests whose veto window ended even when nobody is calling the API.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI

from backend_stub.api.limits import BodyLimit
from backend_stub.domain.migrations import MIGRATIONS
from backend_stub.domain.service import GovernanceService

log = logging.getLogger("backend_stub.api")

__all__ = ["add_lifespan", "install_api", "install_demo"]


def add_lifespan(app: FastAPI,
                 hook: Callable[[FastAPI], AbstractAsyncContextManager[None]]) -> None:
    """Run ``hook`` inside the app's existing lifespan (features stack their own)."""
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def chained(a: Any) -> AsyncIterator[Any]:
        async with previous(a) as state, hook(a):
            yield state

    app.router.lifespan_context = chained


def _publisher(app: FastAPI) -> Callable[[dict[str, Any]], None]:
    def publish(message: dict[str, Any]) -> None:
        # Looked up per event: the messaging component may install its bus after us.
        bus = getattr(app.state, "bus", None)
        if bus is not None:
            bus.publish(message)

    return publish


def _batch_publisher(app: FastAPI) -> Callable[[list[dict[str, Any]]], None]:
    one = _publisher(app)

    def publish_many(messages: list[dict[str, Any]]) -> None:
        bus = getattr(app.state, "bus", None)
        if bus is not None and hasattr(bus, "publish_many"):
            bus.publish_many(messages)
            return
        for message in messages:
            one(message)

    return publish_many


class DeadlineSweeper:
    """Calls ``GovernanceService.sweep`` every second on a daemon thread."""

    def __init__(self, svc: GovernanceService, interval: float = 1.0) -> None:
        self.svc = svc
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="deadline-sweeper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.svc.sweep()
            except Exception:  # a database hiccup: try again next second
                log.exception("deadline sweep failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def install_api(app: FastAPI) -> GovernanceService:
    from backend_stub.api.mobile import router

    app.state.db.migrate(MIGRATIONS)
    svc = GovernanceService(app.state.db, app.state.clock, publish=_publisher(app),
                            publish_many=_batch_publisher(app))
    vault = getattr(app.state, "vault", None)
    if vault is not None:  # the security component: attachments encrypted at rest
        svc.seal_attachment = vault.encrypt
    app.state.governance = svc
    app.include_router(router)
    app.add_middleware(BodyLimit)
    svc.purge_idempotency_keys()

    @asynccontextmanager
    async def sweeper(_: FastAPI) -> AsyncIterator[None]:
        worker = DeadlineSweeper(svc)
        worker.start()
        try:
            yield
        finally:
            worker.stop()

    add_lifespan(app, sweeper)
    return svc


def install_demo(app: FastAPI) -> None:
    """Load the demo world (once per database) and mount ``/v1/demo``."""
    from backend_stub.api.demo import router
    from backend_stub.demo.activity import DemoActivity, DemoPlatform
    from backend_stub.demo.world import load_demo_world

    svc: GovernanceService = app.state.governance
    load_demo_world(svc)
    platform = DemoPlatform(svc)
    app.state.demo_platform = platform
    app.include_router(router)
    seconds = app.state.settings.demo_activity
    if seconds:
        @asynccontextmanager
        async def activity(_: FastAPI) -> AsyncIterator[None]:
            worker = DemoActivity(platform, seconds)
            worker.start()
            try:
                yield
            finally:
                worker.stop()

        add_lifespan(app, activity)
