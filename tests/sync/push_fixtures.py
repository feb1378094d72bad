"""A small push server for the listener's tests: the stub's own SSE router over an
in-memory event log, served by uvicorn on a free 127.0.0.1 port in a thread.

It can be stopped and started again on the same port with the same log, which is how the
tests drop the connection and "restart the server".
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import uvicorn
from fastapi import FastAPI, Header

from backend_stub.api.events_stream import (
    EventHub,
    EventSigner,
    MemoryEventLog,
    StreamSettings,
    build_router,
)
from backend_stub.errors import InvalidToken
from sync.alerts import Alert, VetoConfirmation
from sync.models import VetoCategory
from tests.support.services import free_port

SECRET = b"push-test-secret-0123456789"


@dataclass
class FakePrincipal:
    sub: str


def bearer_auth(authorization: str | None = Header(default=None)) -> FakePrincipal:
    """Any bearer token is accepted and names the subject; none is refused (401)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise InvalidToken("A bearer token is required; sign in.")
    return FakePrincipal(sub=authorization.removeprefix("Bearer ").strip())


def event_message(n: int, type_: str = "governance.approval.pending",
                  causation_id: str | None = None, **data: Any) -> dict[str, Any]:
    return {"id": "0", "type": type_, "timestamp": datetime.now(UTC).isoformat(),
            "source": "test", "data": {"approval_id": f"APR-{n}", "n": n, **data},
            "metadata": {"correlation_id": f"APR-{n}", "causation_id": causation_id,
                         "user_id": None}}


class IdleListener:
    """Stands in for ``sync.push.PushListener``: no network, runs until stopped."""

    def __init__(self) -> None:
        from sync.push import PushStatus

        self.sink = object()
        self.status = PushStatus()
        self.stopped = asyncio.Event()

    def on_event(self, callback: Any) -> Callable[[], None]:
        return lambda: None

    def on_status(self, callback: Any) -> Callable[[], None]:
        return lambda: None

    async def run(self) -> None:
        await self.stopped.wait()

    def stop(self) -> None:
        self.stopped.set()


class AnsweringHooks:
    """``sync.alerts.AlertHooks`` answered as a person would: a veto with a reason, an
    approval at once; what Open was asked for is recorded."""

    def __init__(self, reason: str = "Not from a notification.") -> None:
        self.reason = reason
        self.opened: list[str] = []

    async def confirm_veto(self, alert: Alert) -> VetoConfirmation | None:
        return VetoConfirmation(VetoCategory.OTHER, self.reason)

    async def before_approve(self, alert: Alert) -> None:
        return None

    def open(self, alert: Alert) -> None:
        self.opened.append(alert.id)


class PushServer:
    def __init__(self, *, heartbeat: float = 15.0, poll: float = 0.05,
                 secret: bytes = SECRET) -> None:
        self.log = MemoryEventLog()
        self.hub = EventHub()
        self.signer = EventSigner(secret)
        self.settings = StreamSettings(heartbeat_interval=heartbeat, poll_interval=poll,
                                       retry_ms=50)
        self.port = free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.connections = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def emit(self, n: int, type_: str = "governance.approval.pending",
             causation_id: str | None = None, **data: Any) -> int:
        event_id = self.log.append(event_message(n, type_, causation_id, **data))
        self.hub.notify()
        return event_id

    def _app(self, server_holder: Callable[[], uvicorn.Server | None]) -> FastAPI:
        from backend_stub.app import install_error_handlers

        app = FastAPI()
        install_error_handlers(app)

        @app.middleware("http")
        async def _count(request: Any, call_next: Any) -> Any:
            if request.url.path.endswith("/events"):
                self.connections += 1
            return await call_next(request)

        def closing() -> bool:
            server = server_holder()
            return server is None or server.should_exit

        app.state.clock = _Clock()
        app.include_router(build_router(bearer_auth, self.log, self.hub, self.signer,
                                        self.settings, is_closing=closing))
        return app

    def start(self) -> PushServer:
        holder: dict[str, uvicorn.Server] = {}
        config = uvicorn.Config(self._app(lambda: holder.get("s")), host="127.0.0.1",
                                port=self.port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        server = uvicorn.Server(config)
        holder["s"] = server
        self._server = server
        self._thread = threading.Thread(target=server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"push test server did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self.hub.notify()
        if self._thread is not None:
            self._thread.join(10)
        self._server, self._thread = None, None


class _Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


async def wait_until(predicate: Callable[[], bool], timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Poll until true; fails the test (not a timing assertion) if it never becomes so."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
