"""Messaging: a publish / subscribe bus in the platform's message format.

- ``publish(type, data, ...)`` builds ``{id, type, timestamp, source, data, metadata:
  {correlation_id, causation_id, user_id}}`` (the correlation id defaults to the request
  being served), signs it when the bus has a signer, and delivers it to every subscriber
  whose pattern (``fnmatch``: ``governance.approval.*``) matches, higher priority first.
- Delivery is at least once: a subscriber that raises is retried with backoff; one that
  keeps failing gets the message dead-lettered, and the others are not held up.
- In-process by default; ``RedisStreamTransport`` shares the stream between stub
  processes (each delivers what the others publish). When Redis is down, publishing still
  reaches this process's subscribers.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import json
import logging
import queue
import re
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any, Protocol

from backend_stub.clock import Clock, rfc3339
from backend_stub.components.errors import InvalidMessage
from backend_stub.components.observability import request_id_var
from backend_stub.components.resilience import (
    CircuitBreaker,
    CircuitState,
    DLQHandler,
    ErrorHandler,
    RetryPolicy,
)
from backend_stub.components.security import HmacSigner
from backend_stub.components.validation import SchemaValidator

log = logging.getLogger("backend_stub.components.messaging")


class Priority(IntEnum):
    """Lower value, delivered first."""

    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


MESSAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "type", "timestamp", "source", "data", "metadata"],
    "properties": {
        "id": {"type": "string", "minLength": 1},
        "type": {"type": "string", "pattern": r"^[a-z0-9_]+(\.[a-z0-9_]+)+$"},
        "timestamp": {"type": "string", "minLength": 1},
        "source": {"type": "string", "minLength": 1},
        "data": {"type": "object"},
        "metadata": {"type": "object", "properties": {
            "correlation_id": {"type": ["string", "null"]},
            "causation_id": {"type": ["string", "null"]},
            "user_id": {"type": ["string", "null"]}}},
        "signature": {"type": "string"},
    },
}
_MESSAGE_VALIDATOR = SchemaValidator(MESSAGE_SCHEMA)
_TYPE_PATTERN = re.compile(MESSAGE_SCHEMA["properties"]["type"]["pattern"])
_NON_EMPTY = ("id", "timestamp", "source")
_NULLABLE = ("correlation_id", "causation_id", "user_id")


def _conforms(body: Mapping[str, Any]) -> bool:
    """``MESSAGE_SCHEMA`` checked by hand: the same verdict for a hundredth of jsonschema's
    time (a 500-decision batch publishes 500 messages). Only a message this refuses goes
    through jsonschema, for the issues to report."""
    # Plain loops, not all() over generators: this runs once per published message.
    for key in _NON_EMPTY:
        value = body.get(key)
        if not (isinstance(value, str) and value):
            return False
    kind, data, meta = body.get("type"), body.get("data"), body.get("metadata")
    if not (isinstance(kind, str) and _TYPE_PATTERN.search(kind)):
        return False
    if not (isinstance(data, dict) and isinstance(meta, dict)):
        return False
    for key in _NULLABLE:
        value = meta.get(key)
        if value is not None and not isinstance(value, str):
            return False
    return "signature" not in body or isinstance(body["signature"], str)


@dataclass(frozen=True)
class Message:
    type: str
    data: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    timestamp: str = field(default_factory=lambda: rfc3339(datetime.now(UTC)))
    source: str = "governance-stub"
    correlation_id: str | None = None
    causation_id: str | None = None
    user_id: str | None = None
    priority: Priority = Priority.NORMAL
    signature: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The platform's wire format (priority is a delivery hint, not part of it)."""
        body: dict[str, Any] = {
            "id": self.id, "type": self.type, "timestamp": self.timestamp,
            "source": self.source, "data": self.data,
            "metadata": {"correlation_id": self.correlation_id,
                         "causation_id": self.causation_id, "user_id": self.user_id}}
        if self.signature is not None:
            body["signature"] = self.signature
        return body

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], priority: Priority = Priority.NORMAL, *,
                  signer: HmacSigner | None = None) -> Message:
        """The message ``body`` holds, checked; with ``signer``, signed by it (over the
        platform form, any signature in ``body`` replaced) as it is built."""
        issues = [] if _conforms(body) else _MESSAGE_VALIDATOR.validate(dict(body))
        if issues:
            raise InvalidMessage("the message does not follow the platform format: "
                                 + "; ".join(str(i) for i in issues))
        meta = body["metadata"]
        metadata = {"correlation_id": meta.get("correlation_id"),
                    "causation_id": meta.get("causation_id"), "user_id": meta.get("user_id")}
        data = dict(body["data"])
        signature = body.get("signature")
        if signer is not None:  # what to_dict() gives without a signature, signed
            signature = signer.sign({
                "id": body["id"], "type": body["type"], "timestamp": body["timestamp"],
                "source": body["source"], "data": data, "metadata": metadata})
        return cls(type=body["type"], data=data, id=body["id"], timestamp=body["timestamp"],
                   source=body["source"], priority=priority, signature=signature, **metadata)

    def caused(self, type: str, data: dict[str, Any], **kwargs: Any) -> Message:
        """A follow-up message: same correlation id, this message as its cause."""
        return Message(type=type, data=data, source=self.source,
                       correlation_id=self.correlation_id or self.id, causation_id=self.id,
                       user_id=self.user_id, **kwargs)


Handler = Callable[[Message], object]


@dataclass
class Subscription:
    name: str
    pattern: str
    handler: Handler
    _bus: MessageBus | None = None

    def matches(self, message_type: str) -> bool:
        return self.pattern == message_type or fnmatch.fnmatchcase(message_type, self.pattern)

    def unsubscribe(self) -> None:
        if self._bus is not None:
            self._bus.unsubscribe(self)
            self._bus = None


class Transport(Protocol):
    """How messages reach other processes. ``start`` hands it the bus's entry point for
    messages that arrive from elsewhere."""

    def start(self, deliver: Callable[[Message], None]) -> None: ...
    def publish_many(self, messages: Sequence[Message]) -> None:
        """Send each, in order, in as few round trips as the transport allows."""
        ...
    def close(self) -> None: ...


class InProcessTransport:
    """No other processes: publishing is local delivery alone."""

    def start(self, deliver: Callable[[Message], None]) -> None:
        return None

    def publish_many(self, messages: Sequence[Message]) -> None:
        return None

    def close(self) -> None:
        return None


class RedisStreamTransport:
    """A Redis stream every stub process appends to and reads from.

    Messages from other processes are verified with the signer (forged ones are dropped)
    before delivery. After a Redis outage reading resumes where it stopped, so messages
    published meanwhile by others that reached Redis are still delivered.
    """

    def __init__(self, client: Any, *, stream: str = "govstub:events",
                 signer: HmacSigner | None = None, max_length: int = 10_000,
                 block_ms: int = 1000) -> None:
        self.client = client
        self.stream = stream
        self.signer = signer
        self.max_length = max_length
        self.block_ms = block_ms
        self.instance_id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_id = "0-0"

    def start(self, deliver: Callable[[Message], None]) -> None:
        try:
            newest = self.client.xrevrange(self.stream, count=1)
            self._last_id = _text(newest[0][0]) if newest else "0-0"
        except Exception as exc:  # Redis down at start: read from the beginning later
            log.warning("cannot read the tail of Redis stream %r yet: %s", self.stream, exc)
            self._last_id = "$"
        self._thread = threading.Thread(target=self._read_loop, args=(deliver,),
                                        name="govstub-bus-redis", daemon=True)
        self._thread.start()

    def publish_many(self, messages: Sequence[Message]) -> None:
        # One round trip for the events of one commit (up to 500 for a decision batch).
        pipe = self.client.pipeline(transaction=False)
        for message in messages:
            pipe.xadd(self.stream, {"origin": self.instance_id,
                                    "priority": int(message.priority),
                                    "body": json.dumps(message.to_dict())},
                      maxlen=self.max_length, approximate=True)
        pipe.execute()

    def check(self) -> None:
        """Raise when the stream cannot carry messages now (readiness: ``/v1/ready``)."""
        self.client.xlen(self.stream)
        if self._thread is not None and not self._thread.is_alive():
            raise RuntimeError(f"the reader of Redis stream {self.stream!r} stopped")

    def _read_loop(self, deliver: Callable[[Message], None]) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                batches = self.client.xread({self.stream: self._last_id}, count=100,
                                            block=self.block_ms)
                if failures:
                    log.info("Redis stream %r readable again", self.stream)
                failures = 0
            except Exception as exc:
                failures += 1
                if failures == 1:
                    log.warning("Redis stream %r unreadable (%s); retrying", self.stream, exc)
                self._stop.wait(min(5.0, 0.1 * 2 ** min(failures, 6)))
                continue
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    self._last_id = _text(entry_id)
                    self._receive(fields, deliver)

    def _receive(self, fields: Mapping[Any, Any], deliver: Callable[[Message], None]) -> None:
        values = {_text(k): _text(v) for k, v in fields.items()}
        if values.get("origin") == self.instance_id:
            return
        try:
            body = json.loads(values["body"])
            if self.signer is not None and not self.signer.verify_event(body):
                log.error("dropped a message on %r with a bad signature (id %r)",
                          self.stream, body.get("id"))
                return
            message = Message.from_dict(body, Priority(int(values.get("priority", 2))))
        except (KeyError, ValueError, InvalidMessage) as exc:
            log.error("dropped a malformed message on %r: %s", self.stream, exc)
            return
        deliver(message)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.block_ms / 1000 + 2)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class MessageStream:
    """Messages for one async consumer (an SSE response): ``async for m in stream``.

    Create it inside the event loop that will read it; ``close()`` unsubscribes.
    """

    def __init__(self, bus: MessageBus, pattern: str, maxsize: int = 1000) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Message] = asyncio.Queue(maxsize)
        self._subscription = bus.subscribe(pattern, self._offer,
                                           name=f"stream-{uuid.uuid4().hex[:8]}")

    def _offer(self, message: Message) -> None:
        def put() -> None:
            try:
                self._queue.put_nowait(message)
            except asyncio.QueueFull:  # a reader that stopped reading must not stall the bus
                log.warning("stream queue full; dropped message %s", message.id)

        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(put)

    async def get(self, timeout: float | None = None) -> Message | None:
        try:
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> Message:
        return await self._queue.get()

    def close(self) -> None:
        self._subscription.unsubscribe()


class MessageBus:
    """Publish / subscribe with priorities, at-least-once delivery and a DLQ.

    ``transport``: ``InProcessTransport()`` (default) or ``RedisStreamTransport(...)``.
    ``signer``: every published message gets a ``signature`` (HMAC over the rest).
    ``dlq``: where a message goes for a subscriber that failed
    ``dlq.max_retries_before_dlq`` times (``retry_policy`` sets the waits).
    """

    def __init__(self, transport: Transport | None = None, *, source: str = "governance-stub",
                 signer: HmacSigner | None = None, dlq: DLQHandler | None = None,
                 retry_policy: RetryPolicy | None = None, clock: Clock | None = None,
                 on_publish: Callable[[Message], None] | None = None) -> None:
        self.transport: Transport = transport or InProcessTransport()
        self.source = source
        self.signer = signer
        self.dlq = dlq or DLQHandler("messaging")
        attempts = self.dlq.max_retries_before_dlq
        self.retry_policy = retry_policy or RetryPolicy(
            max_attempts=attempts, base_delay=0.05, max_delay=2.0)
        if self.retry_policy.max_attempts != attempts:
            self.retry_policy = replace(self.retry_policy, max_attempts=attempts)
        self._clock = clock
        self.on_publish = on_publish
        self._subscriptions: list[Subscription] = []
        self._lock = threading.Lock()
        self._queue: queue.PriorityQueue[tuple[int, int, tuple[Message, ...]]] = (
            queue.PriorityQueue())
        self._seq = itertools.count()
        self._pending = 0
        self._idle = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False
        self._publish_guard = ErrorHandler(
            RetryPolicy(max_attempts=1),
            CircuitBreaker(failure_threshold=3, timeout=10.0, half_open_requests=1,
                           name="bus-transport", clock=clock), name="bus-transport")
        self._started_transport = False

    @property
    def external(self) -> bool:
        """Whether messages leave this process (a Redis stream), so readiness checks it."""
        return isinstance(self.transport, RedisStreamTransport)

    def check(self) -> None:
        """Raise naming why the bus cannot carry messages now (readiness: ``/v1/ready``)."""
        if self._closed:
            raise RuntimeError("the message bus is closed")
        breaker = self._publish_guard.circuit_breaker
        if breaker is not None and breaker.state is CircuitState.OPEN:
            raise RuntimeError("publishing failed repeatedly; the bus's circuit is open")
        if isinstance(self.transport, RedisStreamTransport):
            self.transport.check()

    # -- subscribing ---------------------------------------------------------------------
    def subscribe(self, pattern: str, handler: Handler, *, name: str | None = None
                  ) -> Subscription:
        subscription = Subscription(name or str(getattr(handler, "__qualname__", "subscriber")),
                                    pattern, handler, self)
        with self._lock:
            self._subscriptions.append(subscription)
        self._ensure_started()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def stream(self, pattern: str = "*", maxsize: int = 1000) -> MessageStream:
        return MessageStream(self, pattern, maxsize)

    # -- publishing ----------------------------------------------------------------------
    def publish(self, type: str | Mapping[str, Any], data: Mapping[str, Any] | None = None, *,
                priority: Priority = Priority.NORMAL, correlation_id: str | None = None,
                causation_id: str | None = None, user_id: str | None = None,
                message_id: str | None = None) -> Message:
        """Publish ``type`` with ``data``; or, given one platform-format message (a dict
        with ``id``, ``type``, ... as stored by the domain), publish that message as is."""
        if isinstance(type, Mapping):
            return self.publish_message(Message.from_dict(type, priority))
        now = self._clock.now() if self._clock else datetime.now(UTC)
        message = Message(type=type, data=dict(data or {}), id=message_id or uuid.uuid4().hex,
                          timestamp=rfc3339(now), source=self.source,
                          correlation_id=correlation_id or request_id_var.get(),
                          causation_id=causation_id, user_id=user_id, priority=priority)
        return self.publish_message(message)

    def publish_message(self, message: Message) -> Message:
        self._check_open()
        (signed,) = self._send([self._signed(message)])
        return signed

    def publish_many(self, messages: Sequence[Mapping[str, Any]], *,
                     priority: Priority = Priority.NORMAL) -> list[Message]:
        """Publish platform-format messages (the events of one commit) as ``publish`` does
        each, in order, handing them to the delivery thread and the transport at once.
        Nothing is published when one of them is malformed (``InvalidMessage``)."""
        self._check_open()
        # Checked and signed as each message is built: one Message per event, not two.
        return self._send([Message.from_dict(m, priority, signer=self.signer)
                           for m in messages])

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this MessageBus is closed; create a new one")

    def _signed(self, message: Message) -> Message:
        """``message`` signed (when the bus has a signer) and checked against the platform
        format."""
        if self.signer is not None:
            unsigned = message.to_dict()
            unsigned.pop("signature", None)
            message = replace(message, signature=self.signer.sign(unsigned))
        body = message.to_dict()
        if not _conforms(body):  # refuses what others could not read
            Message.from_dict(body)
        return message

    def _send(self, messages: list[Message]) -> list[Message]:
        if not messages:
            return messages
        self._ensure_started()
        self._enqueue_all(messages)
        self._publish_guard.execute(
            lambda: self.transport.publish_many(messages), fallback=lambda: None,
            on_error=lambda exc: log.warning(
                "%d message(s) from %s on reached only this process (%s)", len(messages),
                messages[0].id, exc))
        if self.on_publish is not None:
            for message in messages:
                self.on_publish(message)
        return messages

    # -- delivery ------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        with self._lock:
            if self._worker is None and not self._closed:
                self._worker = threading.Thread(target=self._run, name="govstub-bus",
                                                daemon=True)
                self._worker.start()
            start_transport = not self._started_transport
            self._started_transport = True
        if start_transport:
            self.transport.start(self._enqueue)

    def _enqueue(self, message: Message) -> None:
        self._enqueue_all([message])

    def _enqueue_all(self, messages: Sequence[Message]) -> None:
        """Queue messages of one priority as one item, delivered in order."""
        with self._idle:
            self._pending += len(messages)
        self._queue.put((int(messages[0].priority), next(self._seq), tuple(messages)))

    def _run(self) -> None:
        while True:
            _, _, batch = self._queue.get()
            if batch is _STOP:
                return
            for message in batch:
                try:
                    self._deliver(message)
                finally:
                    with self._idle:
                        self._pending -= 1
                        if self._pending == 0:
                            self._idle.notify_all()

    def _deliver(self, message: Message) -> None:
        with self._lock:
            targets = [s for s in self._subscriptions if s.matches(message.type)]
        for subscription in targets:
            self.deliver_to(subscription, message)

    def deliver_to(self, subscription: Subscription, message: Message) -> bool:
        """Hand ``message`` to one subscriber with retries; dead-letter it if it keeps
        failing. ``True`` when the subscriber took it."""
        handler = ErrorHandler(self.retry_policy, name=f"subscriber {subscription.name!r}")
        delivered = True

        def dead_letter(exc: BaseException) -> None:
            nonlocal delivered
            delivered = False
            self.dlq.send({"subscriber": subscription.name, "pattern": subscription.pattern,
                           "priority": int(message.priority), "message": message.to_dict()},
                          exc, self.retry_policy.max_attempts)

        handler.execute(lambda: subscription.handler(message), fallback=lambda: None,
                        on_error=dead_letter)
        return delivered

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything published so far was delivered (or dead-lettered)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def replay_dead_letters(self, limit: int = 100) -> int:
        """Deliver dead letters again to their subscriber (if still subscribed); returns
        how many were taken this time."""
        def redeliver(payload: dict[str, Any]) -> None:
            with self._lock:
                subscribers = [s for s in self._subscriptions
                               if s.name == payload["subscriber"]]
            if not subscribers:
                raise LookupError(f"subscriber {payload['subscriber']!r} is gone")
            message = Message.from_dict(payload["message"], Priority(payload["priority"]))
            subscribers[0].handler(message)

        return self.dlq.replay(redeliver, limit).replayed

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
        self.transport.close()
        if worker is not None:
            self._queue.put((-1, -1, _STOP))
            worker.join(timeout=5)


_STOP: tuple[Message, ...] = (Message(type="bus.stop", data={}),)
