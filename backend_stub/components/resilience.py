"""Errors: retries with backoff, a circuit breaker, a dead-letter queue, composed.

Use ``ErrorHandler().execute(op)`` around any call to something that can fail for a while
(Redis, the database, a subscriber). ``set_testing(True)`` makes every wait instant, so
tests of code that retries never sleep.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from sqlalchemy import text

from backend_stub.clock import Clock, rfc3339
from backend_stub.components._support import timer_from
from backend_stub.components.errors import CircuitOpen
from backend_stub.db import Database

T = TypeVar("T")
log = logging.getLogger("backend_stub.components.resilience")

_testing = threading.Event()


def set_testing(instant: bool = True) -> None:
    """Make every retry wait instant (``True``) or real again (``False``)."""
    if instant:
        _testing.set()
    else:
        _testing.clear()


def is_testing() -> bool:
    return _testing.is_set()


@contextmanager
def instant_waits() -> Iterator[None]:
    """``with instant_waits(): ...`` — retries inside do not sleep."""
    was = is_testing()
    set_testing(True)
    try:
        yield
    finally:
        set_testing(was)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. ``jitter`` is the ± fraction of randomness
    added to each wait, so that many clients retrying together spread out."""

    max_attempts: int = 3
    base_delay: float = 1.0
    max_delay: float = 60.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.1
    retryable_exceptions: Sequence[type[BaseException]] = (Exception,)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"RetryPolicy.max_attempts is {self.max_attempts}; use 1 or more")
        if self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError(
                f"RetryPolicy delays base={self.base_delay} max={self.max_delay} are not "
                "valid; use 0 <= base_delay <= max_delay")
        if self.backoff_multiplier < 1:
            raise ValueError(
                f"RetryPolicy.backoff_multiplier is {self.backoff_multiplier}; use 1 or more")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"RetryPolicy.jitter is {self.jitter}; use a fraction in [0, 1]")
        object.__setattr__(self, "retryable_exceptions", tuple(self.retryable_exceptions))

    def is_retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, tuple(self.retryable_exceptions))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.max_delay, self.base_delay * self.backoff_multiplier ** (attempt - 1))
        if self.jitter:
            raw *= 1 - self.jitter + 2 * self.jitter * rand()
        return min(self.max_delay, raw)


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Stops calling a dependency after ``failure_threshold`` consecutive failures, for
    ``timeout`` seconds; then lets ``half_open_requests`` probes through and closes again
    when they all succeed (one failed probe reopens it)."""

    def __init__(self, failure_threshold: int = 5, timeout: float = 60.0,
                 half_open_requests: int = 3, *, name: str = "circuit",
                 clock: Clock | None = None) -> None:
        if failure_threshold < 1 or half_open_requests < 1 or timeout < 0:
            raise ValueError(
                f"CircuitBreaker {name!r}: failure_threshold and half_open_requests must be "
                "1 or more and timeout 0 or more")
        self.name = name
        self.failure_threshold = failure_threshold
        self.timeout = timeout
        self.half_open_requests = half_open_requests
        self._now = timer_from(clock)
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self._probe_successes = 0

    @property
    def state(self) -> CircuitState:
        with self._lock:
            self._maybe_half_open()
            return self._state

    def _maybe_half_open(self) -> None:
        if self._state is CircuitState.OPEN and self._now() - self._opened_at >= self.timeout:
            self._state = CircuitState.HALF_OPEN
            self._probes = 0
            self._probe_successes = 0

    def retry_after(self) -> float:
        with self._lock:
            if self._state is not CircuitState.OPEN:
                return 0.0
            return max(0.0, self.timeout - (self._now() - self._opened_at))

    def allow(self) -> bool:
        """May a call go through now? (Counts a half-open probe when it says yes.)"""
        with self._lock:
            self._maybe_half_open()
            if self._state is CircuitState.CLOSED:
                return True
            if self._state is CircuitState.HALF_OPEN and self._probes < self.half_open_requests:
                self._probes += 1
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            if self._state is CircuitState.HALF_OPEN:
                self._probe_successes += 1
                if self._probe_successes >= self.half_open_requests:
                    self._state = CircuitState.CLOSED
                    self._failures = 0
                    log.info("circuit %r closed again", self.name)
            else:
                self._failures = 0

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if (self._state is CircuitState.HALF_OPEN
                    or self._failures >= self.failure_threshold) \
                    and self._state is not CircuitState.OPEN:
                self._state = CircuitState.OPEN
                self._opened_at = self._now()
                log.warning("circuit %r opened after %d failures", self.name, self._failures)

    def open_error(self) -> CircuitOpen:
        return CircuitOpen(self.name, self._failures, self.retry_after())

    def reset(self) -> None:
        with self._lock:
            self._state = CircuitState.CLOSED
            self._failures = 0


@dataclass(frozen=True)
class DeadLetter:
    id: str
    queue: str
    payload: dict[str, Any]
    error: str
    attempts: int
    created_at: str


class DLQStore(Protocol):
    def add(self, letter: DeadLetter) -> None: ...
    def list(self, queue: str, limit: int) -> list[DeadLetter]: ...
    def remove(self, letter_id: str) -> bool: ...
    def count(self, queue: str) -> int: ...


class MemoryDLQStore:
    """Dead letters in a list; the default, lost when the process ends."""

    def __init__(self) -> None:
        self._letters: dict[str, DeadLetter] = {}
        self._lock = threading.Lock()

    def add(self, letter: DeadLetter) -> None:
        with self._lock:
            self._letters[letter.id] = letter

    def list(self, queue: str, limit: int) -> list[DeadLetter]:
        with self._lock:
            return [x for x in self._letters.values() if x.queue == queue][:limit]

    def remove(self, letter_id: str) -> bool:
        with self._lock:
            return self._letters.pop(letter_id, None) is not None

    def count(self, queue: str) -> int:
        with self._lock:
            return sum(1 for x in self._letters.values() if x.queue == queue)


class SqlDLQStore:
    """Dead letters in ``components_dlq`` (SQLite or PostgreSQL); they survive restarts."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, letter: DeadLetter) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO components_dlq (id, queue, payload, error, attempts, created_at) "
                "VALUES (:id, :queue, :payload, :error, :attempts, :created_at)"),
                {"id": letter.id, "queue": letter.queue, "payload": json.dumps(letter.payload),
                 "error": letter.error, "attempts": letter.attempts,
                 "created_at": letter.created_at})

    def list(self, queue: str, limit: int) -> list[DeadLetter]:
        with self.db.engine.begin() as conn:
            rows = conn.execute(text(
                "SELECT id, queue, payload, error, attempts, created_at FROM components_dlq "
                "WHERE queue = :queue ORDER BY created_at, id LIMIT :limit"),
                {"queue": queue, "limit": limit}).all()
        return [DeadLetter(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5]) for r in rows]

    def remove(self, letter_id: str) -> bool:
        with self.db.engine.begin() as conn:
            result = conn.execute(text("DELETE FROM components_dlq WHERE id = :id"),
                                  {"id": letter_id})
        return bool(result.rowcount)

    def count(self, queue: str) -> int:
        with self.db.engine.begin() as conn:
            return int(conn.execute(text(
                "SELECT COUNT(*) FROM components_dlq WHERE queue = :queue"),
                {"queue": queue}).scalar_one())


@dataclass
class ReplayResult:
    replayed: int = 0
    failed: list[str] = field(default_factory=list)


class DLQHandler:
    """Where work that kept failing goes to wait for a person (or a replay).

    ``max_retries_before_dlq`` is how many attempts a caller (the message bus, an
    ``ErrorHandler`` without its own policy) makes before dead-lettering.
    """

    def __init__(self, queue_name: str = "failed_tasks", max_retries_before_dlq: int = 3, *,
                 store: DLQStore | None = None, clock: Clock | None = None,
                 on_change: Callable[[str, int], None] | None = None) -> None:
        if max_retries_before_dlq < 1:
            raise ValueError(
                f"DLQHandler {queue_name!r}: max_retries_before_dlq must be 1 or more")
        self.queue_name = queue_name
        self.max_retries_before_dlq = max_retries_before_dlq
        self.store: DLQStore = store or MemoryDLQStore()
        self._clock = clock
        self.on_change = on_change

    def _now(self) -> str:
        return rfc3339(self._clock.now() if self._clock else datetime.now(UTC))

    def send(self, payload: Mapping[str, Any], error: BaseException | str,
             attempts: int) -> DeadLetter:
        reason = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        # Time-ordered ids: letters written in the same clock tick still list in order.
        letter_id = f"{time.time_ns():016x}-{uuid.uuid4().hex[:12]}"
        letter = DeadLetter(letter_id, self.queue_name, dict(payload), reason, attempts,
                            self._now())
        self.store.add(letter)
        log.error("dead-lettered to %r after %d attempts: %s", self.queue_name, attempts,
                  reason)
        self._changed()
        return letter

    def entries(self, limit: int = 100) -> list[DeadLetter]:
        return self.store.list(self.queue_name, limit)

    def size(self) -> int:
        return self.store.count(self.queue_name)

    def discard(self, letter_id: str) -> bool:
        removed = self.store.remove(letter_id)
        self._changed()
        return removed

    def replay(self, handler: Callable[[dict[str, Any]], object],
               limit: int = 100) -> ReplayResult:
        """Hand each dead letter to ``handler`` again; those that succeed leave the queue."""
        result = ReplayResult()
        for letter in self.entries(limit):
            try:
                handler(letter.payload)
            except Exception as exc:
                log.warning("replay of dead letter %s failed again: %s", letter.id, exc)
                result.failed.append(letter.id)
                continue
            self.store.remove(letter.id)
            result.replayed += 1
        self._changed()
        return result

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.queue_name, self.size())


class ErrorHandler:
    """Retries, circuit breaking and dead-lettering around one kind of operation.

    ``execute(op, fallback=, on_error=)``: a retryable failure is retried per the policy
    (unless the breaker opens); when giving up, ``on_error`` sees the last error, the
    operation goes to the DLQ (if any), and ``fallback()`` answers instead, or the error is
    raised. Non-retryable errors are the caller's bugs: they propagate at once, untouched.
    ``enabled=False`` is the kill switch: ``op()`` is called once, bare.
    """

    def __init__(self, retry_policy: RetryPolicy | None = None,
                 circuit_breaker: CircuitBreaker | None = None,
                 dlq_handler: DLQHandler | None = None, *, name: str = "operation",
                 sleep: Callable[[float], None] = time.sleep, enabled: bool = True) -> None:
        self.retry_policy = retry_policy or RetryPolicy()
        self.circuit_breaker = circuit_breaker
        self.dlq_handler = dlq_handler
        self.name = name
        self._sleep = sleep
        self.enabled = enabled

    def _wait(self, seconds: float) -> None:
        if not is_testing() and seconds > 0:
            self._sleep(seconds)

    def execute(self, operation: Callable[[], T], fallback: Callable[[], T] | None = None,
                on_error: Callable[[BaseException], object] | None = None, *,
                dlq_payload: Mapping[str, Any] | None = None) -> T:
        if not self.enabled:
            return operation()
        policy = self.retry_policy
        breaker = self.circuit_breaker
        attempt = 0
        last: BaseException
        while True:
            if breaker is not None and not breaker.allow():
                last = breaker.open_error()
                break
            attempt += 1
            try:
                result = operation()
            except Exception as exc:
                if not policy.is_retryable(exc):
                    raise
                last = exc
                if breaker is not None:
                    breaker.record_failure()
                if attempt >= policy.max_attempts:
                    break
                self._wait(policy.delay(attempt))
                continue
            if breaker is not None:
                breaker.record_success()
            return result
        if on_error is not None:
            on_error(last)
        if self.dlq_handler is not None and attempt > 0:
            self.dlq_handler.send(dlq_payload or {"operation": self.name}, last, attempt)
        if fallback is not None:
            return fallback()
        raise last
