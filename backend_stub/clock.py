"""Time as a collaborator: the stub's clock.

Every deadline (veto windows, token expiry, TTLs) is computed from a ``Clock`` passed in,
so tests move time instead of sleeping and the demo can fast-forward with
``POST /v1/demo/clock``.
"""

from __future__ import annotations

import functools
import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Wall-clock time, shifted by an offset the demo endpoint can advance."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += timedelta(seconds=seconds)


class FakeClock:
    """A clock that only moves when told to; for tests."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        self._now = when


@functools.lru_cache(maxsize=4096)
def rfc3339(value: datetime) -> str:
    """RFC 3339 with a ``Z`` suffix and millisecond precision, as every envelope uses.

    Cached: a batch of decisions formats the same few instants thousands of times (equal
    instants in other zones give the same text, so sharing their entry is right).
    """
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
