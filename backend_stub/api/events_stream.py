"""Push to governors: ``GET /v1/mobile/events`` (SSE), ``/notifications`` and the event key.

- ``GET /v1/mobile/events`` streams every stored event after ``Last-Event-ID`` (or
  ``?after=``; with neither, only events from now on), each as ``id: N``, ``event:`` the
  type and ``data:`` the signed platform message, then new ones as they are committed. A
  comment line (``: heartbeat <the stub's time>``) goes out every ``heartbeat_interval``
  seconds (15 by default; ``GOVSTUB_SSE_HEARTBEAT_SECONDS``) so that clients and proxies can tell a
  quiet stream from a dead one.
- ``GET /v1/mobile/notifications?after=N&limit=`` answers the same signed messages as a
  page (``meta.next_cursor`` is the last id when more follow): the gap after being offline.
- ``GET /v1/mobile/events/key`` gives the caller its event key (``Cache-Control: no-store``).
- ``POST /v1/mobile/events/ticket`` gives a short-lived, single-use stream ticket for
  ``GET /v1/mobile/events?ticket=...``: how a browser's ``EventSource``, which cannot send
  an ``Authorization`` header, opens the stream (``stream_tickets.py``). Cross-origin
  browsers need their origin in ``GOVSTUB_CORS_ORIGINS``.

Signatures (specified in ``docs/push.md``) come from the security component: each subject
gets its own key, ``derive_key(secret, "event-hmac/subject:" + sub)`` (HKDF-SHA256 over the
stub's root secret), named ``key_id = "ev1-" + sha256(key)[:16 hex]``. A message is signed
by adding ``key_id`` and then ``HmacSigner(key).sign_event``: ``signature`` = lowercase hex
HMAC-SHA256 over the canonical JSON (sorted keys, no spaces, UTF-8) of everything else. A
subject's key cannot forge events for another subject, and the secret never leaves the
server.

New events are found by reading the ``events`` table, so several stub processes sharing a
database all stream everything. The service's events wake the streams of their process at
once (``EventHub``, after the commit), the message bus those of the other processes (with
``--redis``), and a poll (0.25 s on a shared PostgreSQL without Redis, else 1 s) covers the
rest. A stream reads the table on the hub's own threads (``EventHub.read``), never on the
event loop's default executor: whatever else saturates that pool (or AnyIO's, which the
sync routes use) cannot hold events back from open streams.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Security
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel
from pydantic import Field as PydField

from backend_stub.api import add_lifespan
from backend_stub.api.deps import bearer_scheme, errors, known_query
from backend_stub.api.schemas import Meta, NotificationMeta
from backend_stub.api.schemas import Notification as _Notification
from backend_stub.api.stream_tickets import MIGRATIONS as TICKET_MIGRATIONS
from backend_stub.api.stream_tickets import StreamTickets
from backend_stub.components.security import HmacSigner, derive_key, load_or_create_secret
from backend_stub.db import Database
from backend_stub.envelope import ok
from backend_stub.errors import InsufficientScope, InvalidToken, ValidationFailed
from backend_stub.oauth.guard import Principal, require_scope

logger = logging.getLogger("backend_stub.events")

_T = TypeVar("_T")

SIGNATURE_ALG = "HMAC-SHA256"
MAX_PAGE = 500
PUSH_PATHS = ("/v1/mobile/events", "/v1/mobile/notifications", "/v1/mobile/events/key",
              "/v1/mobile/events/ticket")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class SubjectKey:
    key_id: str
    key: bytes


class EventSigner:
    """Derives each subject's event key from the root secret and signs messages with it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the event signing secret must be at least 16 bytes; set "
                             "GOVSTUB_SECRET_KEY to a longer value")
        self._secret = secret
        self._cache: dict[str, tuple[SubjectKey, HmacSigner]] = {}
        self._lock = threading.Lock()

    def _entry(self, sub: str) -> tuple[SubjectKey, HmacSigner]:
        with self._lock:
            found = self._cache.get(sub)
            if found is None:
                key = derive_key(self._secret, "event-hmac/subject:" + sub)
                subject_key = SubjectKey("ev1-" + hashlib.sha256(key).hexdigest()[:16], key)
                found = (subject_key, HmacSigner(key))
                self._cache[sub] = found
            return found

    def key_for(self, sub: str) -> SubjectKey:
        return self._entry(sub)[0]

    def sign(self, message: dict[str, Any], sub: str) -> dict[str, Any]:
        subject_key, signer = self._entry(sub)
        return signer.sign_event({**message, "key_id": subject_key.key_id})


class EventLog(Protocol):
    """The stored events in id order, as platform messages (unsigned)."""

    def after(self, cursor: int, limit: int) -> list[tuple[int, dict[str, Any]]]: ...

    def latest_id(self) -> int: ...


class ServiceEventLog:
    """``EventLog`` over the domain service (the ``events`` table)."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc

    def after(self, cursor: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        items, _ = self.svc.notifications(after=cursor, limit=limit)
        return [(int(item["id"]), item) for item in items]

    def latest_id(self) -> int:
        return int(self.svc.last_event_id())


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
    """Wakes every open stream when something may have been stored (thread-safe).

    ``version`` counts notifications, so a stream that reads the table and then waits
    cannot miss one that came in between: it waits only while the version is unchanged.
    """

    def __init__(self, recent: int = 1000, readers: int = 4) -> None:
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._lock = threading.Lock()
        self._version = 0
        self._bus_followed = False
        # The last events this process published, by id: a woken stream sends them without
        # reading the table (one thread hop and one query less on the hot path).
        self._recent: deque[tuple[int, dict[str, Any]]] = deque(maxlen=recent)
        self._readers = readers
        self._executor: ThreadPoolExecutor | None = None

    async def read(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(*args)`` (a read of the event log) on the hub's own threads.

        Not ``asyncio.to_thread``: the loop's default executor is shared with anything else
        in the process, and a stream whose read queues behind saturated workers delivers
        nothing until they free up. Reads are short, so a few threads serve every stream.
        """
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._readers,
                                                    thread_name_prefix="event-stream")
            executor = self._executor
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    def close(self) -> None:
        """Stop the reading threads (a later ``read`` starts new ones)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)

    @property
    def version(self) -> int:
        return self._version

    def recent_after(self, cursor: int, limit: int) -> list[tuple[int, dict[str, Any]]]:
        """Published events right after ``cursor``, when they follow it without a gap;
        otherwise (a gap: another process's event, a rolled-back id, an old cursor) none,
        and the caller reads the table."""
        with self._lock:
            found = [(i, m) for i, m in self._recent if i > cursor]
        rows: list[tuple[int, dict[str, Any]]] = []
        expected = cursor + 1
        for event_id, message in sorted(found, key=lambda r: r[0]):
            if event_id != expected or len(rows) == limit:
                break
            rows.append((event_id, message))
            expected += 1
        return rows

    def notify(self, message: dict[str, Any] | None = None) -> None:
        self.notify_many([] if message is None else [message])

    def notify_many(self, messages: list[dict[str, Any]]) -> None:
        """Wake the streams once for the events of one commit."""
        with self._lock:
            for message in messages:
                if str(message.get("id", "")).isdigit():
                    self._recent.append((int(message["id"]), message))
            self._version += 1
            # Each waiter is woken once: the notifications that follow before it runs
            # (500 for a batch of decisions, through the bus) need not wake it again.
            waiters = list(self._waiters)
            self._waiters.clear()
        for loop, flag in waiters:
            # Commits happen in worker threads; the flag belongs to the event loop.
            if not loop.is_closed():
                loop.call_soon_threadsafe(flag.set)

    async def wait(self, timeout: float, seen: int | None = None) -> bool:
        """Return on the next notification, at once if one came after ``seen``, or after
        ``timeout`` seconds; True when woken by a notification."""
        flag = asyncio.Event()
        entry = (asyncio.get_running_loop(), flag)
        with self._lock:
            if seen is not None and seen != self._version:
                return True
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(flag.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def follow_publisher(self, svc: Any) -> None:
        """Wake the streams whenever ``svc`` publishes an event: it does so after the commit,
        so the stream's read finds the new row (a commit hook fires before it is visible)."""
        previous: Callable[[dict[str, Any]], None] | None = svc.publish

        def publish(message: dict[str, Any]) -> None:
            try:
                if previous is not None:
                    previous(message)
            finally:
                self.notify(message)

        svc.publish = publish
        previous_many: Callable[[list[dict[str, Any]]], None] | None = getattr(
            svc, "publish_many", None)
        if previous_many is None:
            return

        def publish_many(messages: list[dict[str, Any]]) -> None:
            try:
                previous_many(messages)
            finally:
                self.notify_many(messages)

        svc.publish_many = publish_many

    def follow_bus(self, app: FastAPI) -> None:
        """Wake the streams on every governance message of the app's bus, once it has one:
        with ``--redis`` that includes events committed by the other stub processes, which
        would otherwise wait for the poll."""
        if self._bus_followed:
            return
        bus = getattr(app.state, "bus", None)
        if bus is None or not hasattr(bus, "subscribe"):
            return
        self._bus_followed = True
        try:
            bus.subscribe("governance.*", lambda _message: self.notify(), name="event-streams")
        except Exception:  # the poll still covers it
            logger.exception("event streams could not follow the message bus")


@dataclass
class StreamSettings:
    heartbeat_interval: float = 15.0
    # How often a stream looks at the table when nothing woke it (other processes' writes).
    poll_interval: float = 0.25
    retry_ms: int = 1000
    batch: int = 200
    # The stub's clock: each heartbeat carries its time (": heartbeat <RFC 3339>", an
    # extension), so a client keeps its offset to the server's clock while only listening.
    now: Callable[[], datetime] | None = None


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
    kind = str(message.get("type") or "message").replace("\n", " ")
    return f"id: {event_id}\nevent: {kind}\ndata: {data}\n\n".encode()


async def event_frames(log: EventLog, hub: EventHub, signer: EventSigner, sub: str,
                       cursor: int, settings: StreamSettings,
                       is_closing: Callable[[], bool] = lambda: False) -> AsyncIterator[bytes]:
    """The stream body: everything after ``cursor``, then new events, with heartbeats."""
    loop = asyncio.get_running_loop()
    yield f"retry: {settings.retry_ms}\n: connected\n\n".encode()
    last_beat = loop.time()
    woken = False
    while not is_closing():
        seen = hub.version
        # Woken by a publication: its events are in the hub. Else (a poll, or a gap) the
        # table is the truth.
        rows = hub.recent_after(cursor, settings.batch) if woken else []
        if not rows:
            rows = await hub.read(log.after, cursor, settings.batch)
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
            stamp = (f" {settings.now().isoformat(timespec='milliseconds')}"
                     if settings.now is not None else "")
            yield f": heartbeat{stamp}\n\n".encode()
        wait = min(settings.poll_interval, settings.heartbeat_interval - (now - last_beat))
        woken = await hub.wait(max(wait, 0.0), seen)


class SignedNotification(_Notification):
    key_id: str = PydField(description="Names the caller's event key (GET /events/key).")
    signature: str = PydField(description="Lowercase hex HMAC-SHA256 over the canonical JSON "
                              "of this object without signature (docs/push.md).")


class SignedNotificationEnvelope(BaseModel):
    data: list[SignedNotification]
    meta: NotificationMeta


class EventKeyOut(BaseModel):
    key_id: str
    alg: str = PydField(description="Always HMAC-SHA256.")
    key: str = PydField(description="The key, base64url without padding (32 bytes).")


class EventKeyEnvelope(BaseModel):
    data: EventKeyOut
    meta: Meta


class StreamTicketOut(BaseModel):
    ticket: str = PydField(description="Single use: GET /v1/mobile/events?ticket=...")
    expires_in: int = PydField(description="Seconds the ticket stays redeemable.")


class StreamTicketEnvelope(BaseModel):
    data: StreamTicketOut
    meta: Meta


_NO_STORE = {"Cache-Control": "no-store"}


def ticket_or_bearer(tickets: StreamTickets, scope: str = "governance:read"
                     ) -> Callable[..., Awaitable[Principal]]:
    """The stream's guard in the real app: the bearer token as on every route, or a
    ``ticket`` query parameter (never both)."""
    check = require_scope(scope)

    async def dependency(request: Request,
                         ticket: str | None = Query(default=None, description=(
                             "A stream ticket (POST /v1/mobile/events/ticket), for clients "
                             "that cannot send an Authorization header (EventSource).")),
                         _: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
                         ) -> Principal:
        if ticket is None:
            return await check(request)
        if request.headers.get("authorization"):
            raise InvalidToken("Send a stream ticket or a bearer token, not both.")
        principal = await asyncio.to_thread(tickets.redeem, ticket)
        if scope not in principal.scopes:
            raise InsufficientScope(scope)
        request.state.principal = principal
        return principal

    return dependency


def build_router(auth: Callable[..., Any], log: EventLog, hub: EventHub,
                 signer: EventSigner, settings: StreamSettings | None = None,
                 is_closing: Callable[[], bool] = lambda: False,
                 tickets: StreamTickets | None = None) -> APIRouter:
    """``auth`` is a dependency returning an object with ``sub`` (the guard's Principal).
    With ``tickets``, ``POST /events/ticket`` is served and the stream also takes
    ``?ticket=`` (then ``auth`` must give ``backend_stub.oauth.guard.Principal``)."""
    stream_settings = settings or StreamSettings()
    stream_auth = ticket_or_bearer(tickets) if tickets is not None else auth
    # Unknown or repeated query parameters are refused here too, as on every other route.
    router = APIRouter(prefix="/v1/mobile", tags=["events"],
                       dependencies=[Depends(known_query)])

    @router.get("/events/key", operation_id="push_event_key",
                response_model=EventKeyEnvelope, responses=errors())
    def event_key(request: Request, principal: Any = Depends(auth)) -> JSONResponse:
        subject_key = signer.key_for(principal.sub)
        # A secret: no cache (browser, proxy) may keep it.
        return ok(request, {"key_id": subject_key.key_id, "alg": SIGNATURE_ALG,
                            "key": _b64url(subject_key.key)}, headers=_NO_STORE)

    if tickets is not None:
        issuer = tickets

        @router.post("/events/ticket", operation_id="push_stream_ticket",
                     response_model=StreamTicketEnvelope, responses=errors())
        def stream_ticket(request: Request, principal: Any = Depends(auth)) -> JSONResponse:
            """A single-use ticket to open the event stream without an Authorization
            header (a browser's EventSource)."""
            ticket = issuer.issue(principal)
            return ok(request, {"ticket": ticket, "expires_in": issuer.ttl_s},
                      headers=_NO_STORE)

    @router.get("/notifications", operation_id="push_notifications",
                response_model=SignedNotificationEnvelope, responses=errors())
    def notifications(request: Request, after: str | None = Query(default=None),
                      limit: int = Query(default=100, ge=1, le=MAX_PAGE),
                      principal: Any = Depends(auth)) -> JSONResponse:
        """Signed events after ``after``, oldest first: what a device missed offline."""
        cursor = _parse_cursor(after, "after") or 0
        rows = log.after(cursor, limit)
        data = [signer.sign(message, principal.sub) for _, message in rows]
        next_cursor = str(rows[-1][0]) if len(rows) == limit else None
        return ok(request, data, next_cursor=next_cursor,
                  last_event_id=rows[-1][0] if rows else cursor)

    @router.get("/events", operation_id="push_events", responses={**errors(), 200: {
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
        "description": "Server-Sent Events: id (the event id), event (its type) and data "
                       "(the signed message); a ': heartbeat' comment every 15 s."}})
    async def events(request: Request, after: str | None = Query(default=None),
                     principal: Any = Depends(stream_auth)) -> StreamingResponse:
        cursor = _parse_cursor(request.headers.get("last-event-id"), "Last-Event-ID")
        if cursor is None:
            cursor = _parse_cursor(after, "after")
        if cursor is None:
            cursor = await hub.read(log.latest_id)
        # The bus is installed after this router (components come later): look now.
        hub.follow_bus(request.app)
        # The server may say it is stopping (``app.state.sse_closing``, set by the CLI), so
        # open streams end at once instead of holding a graceful shutdown for its timeout.
        app_closing = getattr(request.app.state, "sse_closing", None)

        def closing() -> bool:
            return is_closing() or (app_closing is not None and bool(app_closing()))

        body = event_frames(log, hub, signer, principal.sub, cursor, stream_settings,
                            closing)
        return StreamingResponse(body, media_type="text/event-stream", headers={
            "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return router


def install(app: FastAPI, auth: Callable[..., Any] | None = None, *,
            secret: bytes | None = None, log: EventLog | None = None,
            settings: StreamSettings | None = None) -> EventHub:
    """Serve the push routes on ``app`` (after ``install_api``).

    Routes already mounted at the push paths (the API's first, unsigned versions) are
    replaced. ``app.state.event_hub`` and ``app.state.event_signer`` are set. Defaults:
    the API's ``governance:read`` guard, the root secret of the security component, the
    domain service's event log, and ``StreamSettings`` with the heartbeat from
    ``app.state.sse_heartbeat_seconds`` when set.
    """
    tickets = None
    if auth is None:
        from backend_stub.api.deps import read_scope

        auth = read_scope
        # Tickets carry the real guard's Principal; a custom ``auth`` (tests) has none.
        app.state.db.migrate(TICKET_MIGRATIONS)
        tickets = StreamTickets(app.state.db, app.state.clock,
                                is_revoked=app.state.token_validator.is_revoked)
    if secret is None:
        stub_settings = app.state.settings
        configured = stub_settings.secret_key.get_secret_value() \
            if stub_settings.secret_key else None
        secret = load_or_create_secret(stub_settings.data_dir, configured)
    db: Database = app.state.db
    hub = EventHub()
    if log is None:
        svc = app.state.governance
        log = ServiceEventLog(svc)
        # Woken by the service's events only (not every commit: token and idempotency
        # writes would wake every open stream for nothing).
        hub.follow_publisher(svc)
    if settings is None:
        override = getattr(app.state, "sse_heartbeat_seconds", None)
        heartbeat = float(override if override is not None else getattr(
            app.state.settings, "sse_heartbeat_seconds", 15.0))
        # The poll only finds what no wake-up announced: events other processes commit to
        # a shared PostgreSQL database with no Redis bus between them. Elsewhere it is a
        # safety net and can be slow.
        shared_without_bus = not db.is_sqlite and not app.state.settings.redis_url
        settings = StreamSettings(heartbeat_interval=heartbeat,
                                  poll_interval=0.25 if shared_without_bus else 1.0,
                                  now=app.state.clock.now)
    signer = EventSigner(secret)
    app.state.event_hub = hub
    app.state.event_signer = signer

    @asynccontextmanager
    async def close_hub(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            hub.close()

    add_lifespan(app, close_hub)
    app.state.stream_tickets = tickets
    app.include_router(build_router(auth, log, hub, signer, settings, tickets=tickets))
    # The first matching route answers: put these ahead of the API's unsigned versions.
    app.router.routes.insert(0, app.router.routes.pop())
    return hub
