"""Push to governors: ``GET /v1/mobile/events`` (SSE), ``/notifications`` and the event key.

- ``GET /v1/mobile/events`` streams every stored event after ``Last-Event-ID`` (or
  ``?after=``; with neither, only events from now on), each as ``id: N`` plus ``data:`` the
  signed platform message, then new ones as they are committed. A comment line
  (``: heartbeat``) goes out every ``heartbeat_interval`` seconds so that clients and
  proxies can tell a quiet stream from a dead one.
- ``GET /v1/mobile/notifications?after=N&limit=`` answers the same signed messages as a
  page (``meta.next_cursor`` is the last id when more may follow): the gap after being
  offline.
- ``GET /v1/mobile/events/key`` gives the caller its event key.

Signatures (specified in ``docs/push.md``): each subject gets its own key, derived from
the stub's secret: ``key = HMAC-SHA256(secret, "waooaw-governor/events/v1:" + sub)``,
``key_id = "ev1-" + sha256(key)[:16 hex]``. A message is signed by adding ``key_id`` and
then ``signature = base64url(HMAC-SHA256(key, canonical JSON of the message without
signature))``, canonical JSON being sorted keys, no spaces, UTF-8. A subject's key cannot
forge events for another subject, and the secret never leaves the server.

New events are found by reading the ``events`` table, so several stub processes sharing a
database all stream everything. In one process, every database commit wakes the streams
at once (``EventHub``); a slower poll covers commits made by other processes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import event as sa_event
from sqlmodel import col, select

from backend_stub.db import Database
from backend_stub.envelope import ok
from backend_stub.errors import ValidationFailed

KEY_DERIVATION_LABEL = b"waooaw-governor/events/v1:"
SIGNATURE_ALG = "HMAC-SHA256"
MAX_PAGE = 1000


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def canonical_bytes(message: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in message.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class SubjectKey:
    key_id: str
    key: bytes


class EventSigner:
    """Derives each subject's event key from one secret and signs messages with it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the event signing secret must be at least 16 bytes; set "
                             "GOVSTUB_SECRET_KEY to a longer value")
        self._secret = secret
        self._cache: dict[str, SubjectKey] = {}
        self._lock = threading.Lock()

    def key_for(self, sub: str) -> SubjectKey:
        with self._lock:
            found = self._cache.get(sub)
            if found is None:
                key = hmac.new(self._secret, KEY_DERIVATION_LABEL + sub.encode("utf-8"),
                               hashlib.sha256).digest()
                found = SubjectKey(key_id="ev1-" + hashlib.sha256(key).hexdigest()[:16],
                                   key=key)
                self._cache[sub] = found
            return found

    def sign(self, message: dict[str, Any], sub: str) -> dict[str, Any]:
        subject_key = self.key_for(sub)
        signed = {**message, "key_id": subject_key.key_id}
        signed.pop("signature", None)
        mac = hmac.new(subject_key.key, canonical_bytes(signed), hashlib.sha256).digest()
        signed["signature"] = _b64url(mac)
        return signed


class EventLog(Protocol):
    """The stored events in id order, as platform messages (unsigned)."""

    def after(self, cursor: int, limit: int) -> list[tuple[int, dict[str, Any]]]: ...

    def latest_id(self) -> int: ...


class SqlEventLog:
    """``EventLog`` over the domain's ``events`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def after(self, cursor: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        from backend_stub.domain.events import message
        from backend_stub.domain.models import Event

        with self.db.session() as session:
            rows = session.exec(
                select(Event).where(col(Event.id) > cursor).order_by(col(Event.id)).limit(limit)
            ).all()
            return [(int(r.id or 0), message(int(r.id or 0), r.type, r.timestamp, r.source,
                                             r.data or {}, r.correlation_id, r.causation_id,
                                             r.user_id))
                    for r in rows]

    def latest_id(self) -> int:
        from sqlalchemy import func

        from backend_stub.domain.models import Event

        with self.db.session() as session:
            value = session.exec(select(func.max(col(Event.id)))).one()
            return int(value or 0)


class MemoryEventLog:
    """``EventLog`` in memory: tests and benchmarks append messages and call the hub."""

    def __init__(self) -> None:
        self._rows: list[tuple[int, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def append(self, message: dict[str, Any]) -> int:
        with self._lock:
            event_id = len(self._rows) + 1
            self._rows.append((event_id, {**message, "id": str(event_id)}))
            return event_id

    def after(self, cursor: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        with self._lock:
            return self._rows[max(cursor, 0):max(cursor, 0) + limit]

    def latest_id(self) -> int:
        with self._lock:
            return len(self._rows)


class EventHub:
    """Wakes every open stream when something may have been stored (thread-safe)."""

    def __init__(self) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()

    def notify(self) -> None:
        with self._lock:
            waiters = list(self._waiters)
        for loop, flag in waiters:
            # Commits happen in worker threads; the flag belongs to the event loop.
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)

    async def wait(self, timeout: float) -> None:
        flag = asyncio.Event()
        entry = (asyncio.get_running_loop(), flag)
        with self._lock:
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(flag.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def watch_commits(self, db: Database) -> None:
        """Wake the streams on every commit of ``db`` (this process's writes)."""
        sa_event.listen(db.engine, "commit", lambda _conn: self.notify())


@dataclass
class StreamSettings:
    heartbeat_interval: float = 15.0
    # How often a stream looks at the table when nothing woke it (other processes' writes).
    poll_interval: float = 0.25
    retry_ms: int = 1000
    batch: int = 200


def _parse_cursor(raw: str | None, name: str) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ValidationFailed(
            f"{name} {raw!r} is not an event id; send the id of the last event received.",
            details={"fields": {name: "must be an integer event id"}}) from None
    if value < 0:
        raise ValidationFailed(f"{name} {raw!r} is negative; send an event id.",
                               details={"fields": {name: "must be >= 0"}})
    return value


def _frame(event_id: int, message: dict[str, Any]) -> bytes:
    data = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event_id}\ndata: {data}\n\n".encode()


async def event_frames(log: EventLog, hub: EventHub, signer: EventSigner, sub: str,
                       cursor: int, settings: StreamSettings,
                       is_closing: Callable[[], bool] = lambda: False) -> AsyncIterator[bytes]:
    """The stream body: everything after ``cursor``, then new events, with heartbeats."""
    loop = asyncio.get_running_loop()
    yield f"retry: {settings.retry_ms}\n: connected\n\n".encode()
    last_beat = loop.time()
    while not is_closing():
        rows = await asyncio.to_thread(log.after, cursor, settings.batch)
        if rows:
            chunk = b"".join(_frame(event_id, signer.sign(message, sub))
                             for event_id, message in rows)
            cursor = rows[-1][0]
            yield chunk
            if len(rows) == settings.batch:
                continue  # more are waiting; do not sleep between pages
        now = loop.time()
        if now - last_beat >= settings.heartbeat_interval:
            last_beat = now
            yield b": heartbeat\n\n"
        wait = min(settings.poll_interval, settings.heartbeat_interval - (now - last_beat))
        await hub.wait(max(wait, 0.0))


def build_router(auth: Callable[..., Any], log: EventLog, hub: EventHub,
                 signer: EventSigner, settings: StreamSettings | None = None,
                 is_closing: Callable[[], bool] = lambda: False) -> APIRouter:
    """``auth`` is a dependency returning an object with ``sub`` (the guard's Principal)."""
    stream_settings = settings or StreamSettings()
    router = APIRouter(prefix="/v1/mobile", tags=["events"])

    @router.get("/events/key")
    def event_key(request: Request, principal: Any = Depends(auth)) -> JSONResponse:
        subject_key = signer.key_for(principal.sub)
        return ok(request, {"key_id": subject_key.key_id, "alg": SIGNATURE_ALG,
                            "key": _b64url(subject_key.key)})

    @router.get("/notifications")
    def notifications(request: Request, after: str | None = Query(default=None),
                      limit: int = Query(default=200, ge=1, le=MAX_PAGE),
                      principal: Any = Depends(auth)) -> JSONResponse:
        cursor = _parse_cursor(after, "after") or 0
        rows = log.after(cursor, limit)
        data = [signer.sign(message, principal.sub) for _, message in rows]
        next_cursor = str(rows[-1][0]) if len(rows) == limit else None
        return ok(request, data, next_cursor=next_cursor)

    @router.get("/events")
    async def events(request: Request, after: str | None = Query(default=None),
                     principal: Any = Depends(auth)) -> StreamingResponse:
        cursor = _parse_cursor(request.headers.get("last-event-id"), "Last-Event-ID")
        if cursor is None:
            cursor = _parse_cursor(after, "after")
        if cursor is None:
            cursor = await asyncio.to_thread(log.latest_id)
        body = event_frames(log, hub, signer, principal.sub, cursor, stream_settings,
                            is_closing)
        return StreamingResponse(body, media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


def install(app: FastAPI, auth: Callable[..., Any], *, secret: bytes,
            log: EventLog | None = None, settings: StreamSettings | None = None) -> EventHub:
    """Add the push routes to ``app``; ``app.state.event_hub`` and ``event_signer`` are set.

    Install before any other router that defines ``/v1/mobile/notifications``: the first
    route registered for a path answers.
    """
    db: Database = app.state.db
    hub = EventHub()
    if log is None:
        log = SqlEventLog(db)
        hub.watch_commits(db)
    signer = EventSigner(secret)
    app.state.event_hub = hub
    app.state.event_signer = signer
    app.include_router(build_router(auth, log, hub, signer, settings))
    return hub
