"""Push: keep the governance event stream open and hand every genuine event over once.

When to use what:

- ``PushListener`` is the long-running task: it fetches the event key, fills the gap
  since the last event it stored (``GET /v1/mobile/notifications?after=``), then holds
  ``GET /v1/mobile/events`` open with ``Last-Event-ID``, and reconnects with exponential
  backoff and full jitter when the stream drops or falls silent past the heartbeat timeout.
- ``EventIntake`` is the pure core the listener feeds: it verifies each event's HMAC,
  drops duplicates and replays, and passes the rest to an ``EventSink`` (the sync engine:
  store the notification, update the cached approval, remember the cursor) and then to
  the ``on_event`` callbacks (the notification dispatcher of ``sync.notify``).
- ``SseParser`` turns stream lines into frames (WHATWG "server-sent events" rules).
- ``EventVerifier`` checks signatures; ``sign_event`` / ``canonical_event_bytes`` are the
  one definition of what is signed, shared with tests (the stub has its own copy: the
  packages share no code, and ``docs/push.md`` is the specification both follow).

The listener does its I/O through an ``httpx.AsyncClient`` passed in (tests give it a
``MockTransport`` or point it at a server on 127.0.0.1); waiting goes through an injected
``sleep`` so backoff is tested without waiting.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

import httpx

from sync.errors import ApiRejected, ServerUnreachable, SignInRequired, SyncError
from sync.models import (
    AGENT_VIOLATED,
    APPROVAL_DECIDED,
    APPROVAL_PENDING,
    BUDGET_THRESHOLD,
    SEED_AUTO_APPROVED,
    VETO_WINDOW_CLOSING,
    Notification,
)
from sync.observable import Listeners

log = logging.getLogger("sync.push")

EVENTS_PATH = "/v1/mobile/events"
NOTIFICATIONS_PATH = "/v1/mobile/notifications"
EVENT_KEY_PATH = "/v1/mobile/events/key"
SIGNATURE_ALG = "HMAC-SHA256"
KEY_REFETCH_INTERVAL = 60.0  # seconds

EVENT_TYPES: tuple[str, ...] = (
    APPROVAL_PENDING, APPROVAL_DECIDED, SEED_AUTO_APPROVED, BUDGET_THRESHOLD, AGENT_VIOLATED,
    VETO_WINDOW_CLOSING,
)


class PushError(SyncError):
    """The push channel cannot go on as configured (for example: no event key)."""


class TokenRefused(SignInRequired):
    """The server answered 401 to a push request."""


# --- signatures -------------------------------------------------------------------------

def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def canonical_event_bytes(event: dict[str, Any]) -> bytes:
    """What is signed: the event without ``signature``, as sorted compact UTF-8 JSON.

    The signature is the lowercase hex HMAC-SHA256 of these bytes (the stub's security
    component, ``HmacSigner.sign_event``, computes the same)."""
    unsigned = {k: v for k, v in event.items() if k != "signature"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def sign_event(event: dict[str, Any], key_id: str, key: bytes) -> dict[str, Any]:
    """A copy of ``event`` carrying ``key_id`` and its ``signature`` (tests, fakes)."""
    signed = {**event, "key_id": key_id}
    signed.pop("signature", None)
    signed["signature"] = hmac.new(key, canonical_event_bytes(signed), hashlib.sha256).hexdigest()
    return signed


@dataclass(frozen=True)
class EventKey:
    key_id: str
    key: bytes
    alg: str = SIGNATURE_ALG

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> EventKey:
        try:
            alg = str(data.get("alg", SIGNATURE_ALG))
            if alg != SIGNATURE_ALG:
                raise PushError(f"Event key {data.get('key_id')!r} uses {alg!r}; this client "
                                f"only verifies {SIGNATURE_ALG}: update the app.")
            return cls(key_id=str(data["key_id"]), key=b64url_decode(str(data["key"])), alg=alg)
        except (KeyError, ValueError, TypeError) as exc:
            raise PushError("The server's event key answer is malformed (needs key_id, key); "
                            "check the stub version.") from exc


class Verdict(StrEnum):
    VALID = "valid"
    UNSIGNED = "unsigned"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"


class EventVerifier:
    """Checks an event's HMAC against the keys this client holds (several during rotation)."""

    def __init__(self, keys: Iterable[EventKey] = ()) -> None:
        self._keys: dict[str, EventKey] = {k.key_id: k for k in keys}

    def add(self, key: EventKey) -> None:
        self._keys[key.key_id] = key

    def knows(self, key_id: str) -> bool:
        return key_id in self._keys

    @property
    def empty(self) -> bool:
        return not self._keys

    def verify(self, event: dict[str, Any]) -> Verdict:
        signature = event.get("signature")
        key_id = event.get("key_id")
        if not isinstance(signature, str) or not isinstance(key_id, str):
            return Verdict.UNSIGNED
        key = self._keys.get(key_id)
        if key is None:
            return Verdict.UNKNOWN_KEY
        try:
            given = bytes.fromhex(signature)
        except ValueError:
            return Verdict.BAD_SIGNATURE
        try:
            signed_bytes = canonical_event_bytes(event)
        except (UnicodeEncodeError, TypeError, ValueError):
            # Not UTF-8 (a lone surrogate) or not JSON: nothing genuine looks like that.
            return Verdict.BAD_SIGNATURE
        expected = hmac.new(key.key, signed_bytes, hashlib.sha256).digest()
        # compare_digest: a timing side channel must not leak the expected MAC.
        return Verdict.VALID if hmac.compare_digest(given, expected) else Verdict.BAD_SIGNATURE


# --- SSE framing ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SseFrame:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry_ms: int | None = None


class SseParser:
    """Feeds on decoded lines (without their terminators) and yields complete frames.

    Comments (lines starting with ``:``) are the stub's heartbeats: they produce no frame
    but count as life, which ``heartbeats`` records.
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self.heartbeats = 0
        # The spec keeps the last id across frames; a frame without ``id:`` inherits it.
        self.last_event_id: str | None = None

    def feed(self, line: str) -> SseFrame | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.heartbeats += 1
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():  # "²".isdigit()
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseFrame | None:
        if self._id is not None:
            self.last_event_id = self._id
        retry = self._retry
        if not self._data:
            self._event, self._id, self._retry = "", None, None
            return SseFrame(event="retry", retry_ms=retry) if retry is not None else None
        frame = SseFrame(event=self._event or "message", data="\n".join(self._data),
                         id=self.last_event_id, retry_ms=retry)
        self._event, self._data, self._id, self._retry = "", [], None, None
        return frame


# --- the event and where it goes -------------------------------------------------------------

@dataclass(frozen=True)
class PushEvent:
    """A verified governance event (the platform's message format)."""

    id: str
    type: str
    timestamp: datetime
    source: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    cursor: str  # what to send as Last-Event-ID / after= to resume after this event
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def approval_id(self) -> str | None:
        """The approval request this event concerns, if any."""
        for key in ("approval_id", "request_id"):
            value = self.data.get(key)
            if isinstance(value, str) and value:
                return value
        approval = self.data.get("approval")
        if isinstance(approval, dict) and isinstance(approval.get("id"), str):
            return str(approval["id"])
        corr = self.metadata.get("correlation_id")
        if self.type in (APPROVAL_PENDING, APPROVAL_DECIDED, VETO_WINDOW_CLOSING,
                         SEED_AUTO_APPROVED) and isinstance(corr, str) and corr:
            return corr
        return None

    def to_notification(self) -> Notification:
        return Notification(id=self.id, type=self.type, timestamp=self.timestamp,
                            source=self.source, data=self.data)

    @classmethod
    def parse(cls, event: dict[str, Any], cursor: str | None = None) -> PushEvent:
        """Raises ``ValueError`` naming the missing or malformed field."""
        event_id = event.get("id")
        if event_id is None or isinstance(event_id, bool | dict | list) or str(event_id) == "":
            raise ValueError("event has no id")
        event_type = event.get("type")
        if not isinstance(event_type, str) or not event_type:
            raise ValueError(f"event {event_id!r} has no type")
        raw_ts = event.get("timestamp")
        if not isinstance(raw_ts, str):
            raise ValueError(f"event {event_id!r} has no timestamp")
        timestamp = datetime.fromisoformat(raw_ts.replace("Z", "+00:00"))
        if timestamp.tzinfo is None:
            timestamp = timestamp.replace(tzinfo=UTC)
        data = event.get("data") or {}
        metadata = event.get("metadata") or {}
        if not isinstance(data, dict) or not isinstance(metadata, dict):
            raise ValueError(f"event {event_id!r} has a data or metadata that is not an object")
        return cls(id=str(event_id), type=event_type, timestamp=timestamp,
                   source=str(event.get("source") or ""), data=data, metadata=metadata,
                   cursor=cursor or str(event_id), raw=event)


class EventSink(Protocol):
    """Where accepted events go: the sync engine implements it over its local store."""

    def push_cursor(self) -> str | None:
        """The cursor after the last event stored, kept across restarts."""
        ...

    def has_event(self, event_id: str) -> bool:
        """Whether this event is already stored (a duplicate or a replay)."""
        ...

    def apply_event(self, event: PushEvent) -> None:
        """Store the notification, update the cached data it concerns, and advance the
        cursor to ``event.cursor`` in one transaction."""
        ...


class InMemoryEventSink:
    """An ``EventSink`` in memory: for tests and for a client without a store."""

    def __init__(self) -> None:
        self.events: list[PushEvent] = []
        self._ids: set[str] = set()
        self.cursor: str | None = None

    def push_cursor(self) -> str | None:
        return self.cursor

    def has_event(self, event_id: str) -> bool:
        return event_id in self._ids

    def apply_event(self, event: PushEvent) -> None:
        self.events.append(event)
        self._ids.add(event.id)
        self.cursor = event.cursor

    def notifications(self) -> list[Notification]:
        return [e.to_notification() for e in self.events]


class EventStore(Protocol):
    """The part of ``sync.store.LocalStore`` that ``LocalStoreSink`` uses."""

    def get_meta(self, key: str) -> str | None: ...

    def has_notification(self, notification_id: str) -> bool: ...

    def approval(self, approval_id: str) -> tuple[dict[str, Any], bool] | None: ...

    def apply_event(self, notification: dict[str, Any], approval: dict[str, Any] | None,
                    push_cursor: str | None) -> None: ...


PUSH_CURSOR_META = "push_cursor"


def approval_update(event: PushEvent, cached: dict[str, Any] | None) -> dict[str, Any] | None:
    """The cached approval as this event changes it, or None when it changes nothing.

    A decision made on another device updates the status, version and veto deadline at
    once, so this device shows it before its next sync and queues nothing stale against
    it (a version conflict is then found locally). A new pending request is cached from
    the event when this device does not hold it yet, so Approve from the notification works
    offline; the next sync replaces it with the full record.
    """
    data = event.data
    approval_id = event.approval_id
    if approval_id is None:
        return None
    if event.type == APPROVAL_DECIDED and cached is not None:
        version = data.get("version")
        if not isinstance(version, int) or version < int(cached.get("version", 0)):
            return None  # an older decision than what is held: nothing to learn
        updated = {**cached, "version": version}
        for key in ("status", "veto_deadline", "decided_by"):
            if key in data:
                updated[key] = data[key]
        updated["decided_at"] = event.timestamp.isoformat()
        return updated
    if event.type == APPROVAL_PENDING and cached is None:
        agent_name = data.get("agent_name") or data.get("agent_id") or "agent"
        return {"id": approval_id, "agent": {"name": agent_name, "id": data.get("agent_id")},
                "requester": data.get("requester") or "", "industry": data.get("industry") or "",
                "status": "pending_approval", "version": int(data.get("version") or 1),
                "veto_deadline": None, "created_at": event.timestamp.isoformat()}
    return None


class LocalStoreSink:
    """``EventSink`` over the client's local store: one transaction per event stores the
    notification, the approval it changes and the stream cursor."""

    def __init__(self, store: EventStore) -> None:
        self.store = store

    def push_cursor(self) -> str | None:
        return self.store.get_meta(PUSH_CURSOR_META)

    def has_event(self, event_id: str) -> bool:
        return self.store.has_notification(event_id)

    def apply_event(self, event: PushEvent) -> None:
        cached = None
        if event.approval_id is not None and event.type in (APPROVAL_DECIDED, APPROVAL_PENDING):
            found = self.store.approval(event.approval_id)
            cached = found[0] if found is not None else None
        notification = {**event.to_notification().model_dump(mode="json"),
                        "metadata": event.metadata}
        self.store.apply_event(notification, approval_update(event, cached), event.cursor)


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    FORGED = "forged"  # bad signature, unsigned, or signed by a key we were never given
    MALFORMED = "malformed"


@dataclass
class IntakeCounts:
    accepted: int = 0
    duplicate: int = 0
    forged: int = 0
    malformed: int = 0

    def add(self, outcome: Outcome) -> None:
        setattr(self, outcome.value, getattr(self, outcome.value) + 1)


EventCallback = Callable[[PushEvent], None]


class EventIntake:
    """Verify, de-duplicate, store, then announce. No I/O of its own.

    A replayed event (a genuine, signed event sent again, even under another SSE id) is
    caught by its event id: the sink remembers every id it stored, and a bounded in-memory
    set of recent ids saves a store look-up for the common reconnect overlap.
    """

    def __init__(self, sink: EventSink, verifier: EventVerifier, *,
                 recent_ids: int = 4096) -> None:
        self.sink = sink
        self.verifier = verifier
        self.counts = IntakeCounts()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._recent_max = recent_ids
        # One failing observer must not lose the event for the rest: ``Listeners`` logs it.
        self._callbacks: Listeners[[PushEvent]] = Listeners(log, "push: an on_event callback")

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        return self._callbacks.subscribe(callback)

    def needs_key(self, event: dict[str, Any]) -> str | None:
        """The key id to fetch before this event can be judged, if we lack it."""
        key_id = event.get("key_id")
        if isinstance(key_id, str) and not self.verifier.knows(key_id):
            return key_id
        return None

    def take(self, event: dict[str, Any], cursor: str | None = None, *,
             announce: bool = True) -> Outcome:
        """Judge ``event``; a genuine new one is stored and, with ``announce``, handed to
        the ``on_event`` callbacks (alerts). Not announced: the history a device takes
        in before it has any cursor (see ``PushListener.fill_gap``)."""
        outcome = self._judge(event, cursor, announce)
        self.counts.add(outcome)
        return outcome

    def _judge(self, event: dict[str, Any], cursor: str | None, announce: bool) -> Outcome:
        verdict = self.verifier.verify(event)
        if verdict is not Verdict.VALID:
            log.warning("push: rejected event %r (%s)", event.get("id"), verdict.value)
            return Outcome.FORGED
        try:
            parsed = PushEvent.parse(event, cursor)
        except ValueError as exc:
            log.warning("push: rejected a malformed event: %s", exc)
            return Outcome.MALFORMED
        if parsed.id in self._recent or self.sink.has_event(parsed.id):
            return Outcome.DUPLICATE
        self.sink.apply_event(parsed)
        self._remember(parsed.id)
        if announce:
            self._callbacks.emit(parsed)
        return Outcome.ACCEPTED

    def _remember(self, event_id: str) -> None:
        self._recent[event_id] = None
        if len(self._recent) > self._recent_max:
            self._recent.popitem(last=False)


# --- backoff --------------------------------------------------------------------------------

@dataclass
class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog's "full jitter")."""

    base: float = 0.5
    cap: float = 30.0
    rng: Callable[[], float] = random.random
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return ceiling * self.rng()

    def reset(self) -> None:
        self.attempt = 0


# --- the listener ---------------------------------------------------------------------------

@dataclass
class PushStatus:
    connected: bool = False
    last_event_id: str | None = None
    last_heard_at: datetime | None = None
    connects: int = 0
    failures: int = 0
    last_error: str | None = None
    key_id: str | None = None


# A heartbeat comment, optionally followed by the server's time (the stub's extension).
HEARTBEAT_PREFIX = ": heartbeat "

# Frames that carry no governance event (the stub's named keep-alives).
_CONTROL_FRAMES = frozenset({"heartbeat", "ping", "retry"})

TokenProvider = Callable[[], Awaitable[str]]
Sleep = Callable[[float], Awaitable[None]]


class PushListener:
    """Holds the event stream open; see the module docstring for the sequence.

    ``client`` is an ``httpx.AsyncClient`` whose ``base_url`` is the API; ``token`` gives
    a current bearer token (``Authenticator.access_token``). ``heartbeat_timeout`` is how
    long the stream may stay silent (the stub sends a comment every 15 s) before it is
    taken as dead and reopened.
    """

    def __init__(self, client: httpx.AsyncClient, token: TokenProvider, sink: EventSink, *,
                 verifier: EventVerifier | None = None, heartbeat_timeout: float = 45.0,
                 backoff: Backoff | None = None, sleep: Sleep = asyncio.sleep,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 page_limit: int = 500,
                 refresh: Callable[[str], Awaitable[str]] | None = None,
                 server_time: Callable[[datetime], None] | None = None) -> None:
        self._client = client
        self._token_provider = token
        # ``Authenticator.refresh_after_401``: a token the server refused is refreshed
        # before the one retry (the cached one may look fresh yet be revoked).
        self._refresh = refresh
        self._last_token: str | None = None
        self._key_refetched_at: datetime | None = None
        self.verifier = verifier or EventVerifier()
        self.intake = EventIntake(sink, self.verifier)
        self.sink = sink
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff = backoff or Backoff()
        self._sleep = sleep
        self._now = now
        self.page_limit = page_limit
        self.status = PushStatus(last_event_id=sink.push_cursor())
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()
        # Told the server's time from each heartbeat that carries it (": heartbeat <RFC
        # 3339>", the stub's extension), so the client's clock follows the server's even
        # when nothing else is asked of it.
        self._server_time = server_time
        self._status_callbacks: Listeners[[PushStatus]] = Listeners(
            log, "push: a status callback")

    # -- observers ---------------------------------------------------------------------------
    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        return self.intake.on_event(callback)

    def on_status(self, callback: Callable[[PushStatus], None]) -> Callable[[], None]:
        return self._status_callbacks.subscribe(callback)

    def _status_changed(self) -> None:
        self._status_callbacks.emit(self.status)

    # -- lifecycle ---------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask ``run`` to end; it returns after closing the stream."""
        self._stopping.set()

    def wake(self) -> None:
        """The server is known to be back: reconnect now, not after the backoff."""
        self.backoff.reset()
        if not self.status.connected:
            self._woken.set()

    async def run(self) -> None:
        """Connect, listen, reconnect with backoff, until ``stop``.

        ``SignInRequired`` propagates when no retry can cure it: the token provider has no
        session, or the server refused a token twice in a row (once is retried, since a
        token may expire between being handed out and being checked).
        """
        refused_before = False
        while not self._stopping.is_set():
            attempt = asyncio.ensure_future(self.connect_once())
            stop = asyncio.ensure_future(self._stopping.wait())
            try:
                await asyncio.wait({attempt, stop}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                # Our task was cancelled (the app is closing): take the connection along.
                attempt.cancel()
                stop.cancel()
                raise
            stop.cancel()
            if not attempt.done():
                attempt.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await attempt
                break
            exc = attempt.exception()
            if isinstance(exc, TokenRefused) and not refused_before:
                refused_before = True
                self._set_disconnected(_describe(exc))
                if self._refresh is not None and self._last_token is not None:
                    try:
                        await self._refresh(self._last_token)
                    except SignInRequired:
                        self._set_disconnected("sign in again to receive notifications")
                        raise
            elif isinstance(exc, SignInRequired):
                self._set_disconnected("sign in again to receive notifications")
                raise exc
            elif isinstance(exc, ServerUnreachable | ApiRejected | PushError | httpx.HTTPError):
                refused_before = False
                self._set_disconnected(_describe(exc))
            elif exc is not None:
                raise exc
            else:
                refused_before = False
                self._set_disconnected("the server closed the event stream")
            if self._stopping.is_set():
                break
            delay = self.backoff.next_delay()
            log.info("push: reconnecting in %.2f s", delay)
            await self._wait(delay)
        self.status.connected = False
        self._status_changed()

    async def _wait(self, delay: float) -> None:
        stop = asyncio.ensure_future(self._stopping.wait())
        nap = asyncio.ensure_future(self._sleep(delay))
        woken = asyncio.ensure_future(self._woken.wait())
        try:
            await asyncio.wait({stop, nap, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._woken.clear()
            for task in (stop, nap, woken):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _set_disconnected(self, reason: str) -> None:
        self.status.connected = False
        self.status.failures += 1
        self.status.last_error = reason
        self._status_changed()

    async def connect_once(self) -> None:
        """One connection: key, gap, stream until it ends. Raises on failure to connect."""
        await self.ensure_key()
        await self.fill_gap()
        await self._stream()

    # -- key ---------------------------------------------------------------------------------
    async def ensure_key(self, key_id: str | None = None) -> None:
        """Fetch the event key when none is held or ``key_id`` is unknown (rotation)."""
        if not self.verifier.empty and (key_id is None or self.verifier.knows(key_id)):
            return
        body = await self._get_json(EVENT_KEY_PATH)
        key = EventKey.from_api(body.get("data") or {})
        self.verifier.add(key)
        self.status.key_id = key.key_id

    # -- gap -------------------------------------------------------------------------------
    async def fill_gap(self) -> int:
        """Fetch what was missed since the stored cursor, page by page; returns how many
        events were accepted.

        With no cursor stored (a device's first connection, racing its first sync) the
        gap is the account's whole history: it is stored but not announced, or every
        violation of the last weeks would come up as a new urgent banner (seen in a
        browser test: ten banners of old events over the one that had just arrived).
        Missed while the device had a cursor, an event is news and is announced."""
        accepted = 0
        cursor = self.sink.push_cursor()
        announce = cursor is not None
        for _ in range(10_000):  # a bound, so a server that never ends cannot trap us
            params: dict[str, Any] = {"limit": self.page_limit}
            if cursor is not None:
                params["after"] = cursor
            body = await self._get_json(NOTIFICATIONS_PATH, params)
            items = body.get("data") or []
            if not isinstance(items, list):
                raise PushError("GET /v1/mobile/notifications answered a non-list data; "
                                "check the stub version.")
            for item in items:
                if isinstance(item, dict):
                    accepted += await self._take(item, None, announce=announce)
            next_cursor = (body.get("meta") or {}).get("next_cursor")
            if not items:
                break
            last = items[-1]
            new_cursor = str(next_cursor) if next_cursor else (
                str(last.get("id")) if isinstance(last, dict) else None)
            if new_cursor is None or new_cursor == cursor:
                break
            cursor = new_cursor
            if not next_cursor and len(items) < self.page_limit:
                break
        return accepted

    async def _take(self, event: dict[str, Any], cursor: str | None, *,
                    announce: bool = True) -> int:
        missing = self.intake.needs_key(event)
        if missing is not None and self._may_refetch_key():
            with contextlib.suppress(PushError):
                await self.ensure_key(missing)
        outcome = self.intake.take(event, cursor, announce=announce)
        if outcome is Outcome.ACCEPTED:
            self.status.last_event_id = self.sink.push_cursor()
            return 1
        return 0

    def _may_refetch_key(self) -> bool:
        """At most one key fetch a minute for unknown key ids: a flood of forged events
        naming made-up keys must not turn into a flood of key requests."""
        now = self._now()
        if self._key_refetched_at is not None and \
                (now - self._key_refetched_at).total_seconds() < KEY_REFETCH_INTERVAL:
            return False
        self._key_refetched_at = now
        return True

    # -- stream ----------------------------------------------------------------------------
    async def _stream(self) -> None:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache",
                   "Authorization": f"Bearer {await self._token()}"}
        cursor = self.sink.push_cursor()
        if cursor is not None:
            headers["Last-Event-ID"] = cursor
        # The read timeout is the heartbeat watchdog: silence longer than it is a dead
        # stream (a half-open TCP connection after a network change sends nothing).
        timeout = httpx.Timeout(10.0, read=self.heartbeat_timeout)
        parser = SseParser()
        try:
            async with self._client.stream("GET", EVENTS_PATH, headers=headers,
                                           timeout=timeout) as response:
                await _raise_for_status(response)
                self.status.connected = True
                self.status.connects += 1
                self.status.last_error = None
                self.status.last_heard_at = self._now()
                self._status_changed()
                async for line in response.aiter_lines():
                    self.status.last_heard_at = self._now()
                    if line.startswith(HEARTBEAT_PREFIX):
                        self._heartbeat(line[len(HEARTBEAT_PREFIX):])
                    frame = parser.feed(line)
                    if frame is None:
                        continue
                    if frame.retry_ms is not None:
                        self.backoff.base = max(0.05, frame.retry_ms / 1000)
                    if frame.event in _CONTROL_FRAMES or not frame.data:
                        continue
                    try:
                        event = json.loads(frame.data)
                    except json.JSONDecodeError:
                        self.intake.counts.add(Outcome.MALFORMED)
                        continue
                    if isinstance(event, dict):
                        await self._take(event, frame.id)
                    # A stream that delivers is healthy: later drops start backoff afresh.
                    self.backoff.reset()
                    if self._stopping.is_set():
                        return
        except httpx.TimeoutException as exc:
            raise ServerUnreachable(
                f"The event stream was silent for more than {self.heartbeat_timeout:g} s; "
                "reconnecting.") from exc
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"The event stream dropped ({exc!r}); reconnecting.") from exc

    # -- helpers ---------------------------------------------------------------------------
    def _heartbeat(self, stamp: str) -> None:
        if self._server_time is None:
            return
        try:
            when = datetime.fromisoformat(stamp.strip())
        except ValueError:
            return  # a heartbeat without a time (older stubs): nothing to learn
        if when.tzinfo is not None:
            self._server_time(when)

    async def _token(self) -> str:
        self._last_token = await self._token_provider()
        return self._last_token

    async def _get_json(self, path: str, params: dict[str, Any] | None = None
                        ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {await self._token()}"}
        try:
            response = await self._client.get(path, params=params, headers=headers)
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"GET {path} failed ({exc!r}); will retry.") from exc
        await _raise_for_status(response)
        try:
            body = response.json()
        except ValueError as exc:
            raise PushError(f"GET {path} answered something that is not JSON; "
                            "check the server address.") from exc
        if not isinstance(body, dict):
            raise PushError(f"GET {path} answered JSON that is not an envelope.")
        return body


async def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    with contextlib.suppress(Exception):
        await response.aread()
    path = response.request.url.path
    if response.status_code == 401:
        raise TokenRefused(f"The server refused the token for GET {path}; sign in again.")
    code, message = "HTTP_ERROR", f"GET {path} answered {response.status_code}"
    details: dict[str, Any] = {}
    with contextlib.suppress(Exception):
        err = response.json()["error"]
        code, message, details = err["code"], err["message"], err.get("details") or {}
    if response.status_code >= 500 or response.status_code == 429:
        raise ServerUnreachable(f"GET {path} answered {response.status_code} ({code}); "
                                "will retry.")
    raise ApiRejected(response.status_code, code, message, details)


def _describe(exc: BaseException) -> str:
    return str(exc) or exc.__class__.__name__
