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
from backend_stub.db import DEMO_WORLD_LOCK_ID
from backend_stub.domain.attestations import Attestor
from backend_stub.domain.migrations import MIGRATIONS
from backend_stub.domain.modules import DirectoryModuleStore
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
    from backend_stub.api.audit import router as audit_router
    from backend_stub.api.mobile import router
    from backend_stub.api.submit import router as submit_router

    app.state.db.migrate(MIGRATIONS)
    svc = GovernanceService(app.state.db, app.state.clock, publish=_publisher(app),
                            publish_many=_batch_publisher(app),
                            modules=DirectoryModuleStore(app.state.settings.data_dir / "modules"))
    vault = getattr(app.state, "vault", None)
    if vault is not None:  # the security component: attachments encrypted at rest
        svc.seal_attachment = vault.encrypt
    keys = getattr(app.state, "keys", None)
    if keys is not None:  # Genesis certificates signed with the keys the JWKS publishes
        svc.attestor = Attestor(issuer=app.state.settings.issuer, sign=keys.sign_payload)
    resources = getattr(app.state, "resources", None)
    if resources is not None:  # budget alerts remembered where every process sees them
        svc.budgets = resources
    app.state.governance = svc
    _install_receipts(app)
    app.include_router(router)
    app.include_router(submit_router)
    app.include_router(audit_router)
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


def _install_receipts(app: FastAPI) -> None:
    """``app.state.receipts``: a signed receipt per applied decision (needs the OAuth
    server's key ring; the audit log, when installed, gives each its chain position)."""
    from backend_stub.domain.receipts import MIGRATIONS as RECEIPT_MIGRATIONS
    from backend_stub.domain.receipts import ReceiptBook, ReceiptSigner

    keys = getattr(app.state, "keys", None)
    if keys is None:
        app.state.receipts = None
        return
    app.state.db.migrate(RECEIPT_MIGRATIONS)
    signer = ReceiptSigner(keys, app.state.clock, issuer=app.state.settings.issuer)
    app.state.receipts = ReceiptBook(app.state.db, signer,
                                     getattr(app.state, "audit_log", None))


def install_demo(app: FastAPI) -> None:
    """Load the demo world (once per database) and mount ``/v1/demo``."""
    from backend_stub.api.demo import router
    from backend_stub.demo.activity import DemoActivity, DemoPlatform
    from backend_stub.demo.world import load_demo_world

    svc: GovernanceService = app.state.governance
    with app.state.db.exclusive(DEMO_WORLD_LOCK_ID):  # replicas starting together load it once
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
