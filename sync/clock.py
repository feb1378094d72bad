"""Time as a collaborator: the client's clock.

Veto reminders, dashboard TTLs, backoff and token expiry are computed from a ``Clock``
passed in, so tests move time instead of sleeping. Deadlines themselves come from the
server; the device clock only schedules reminders and measures ages.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


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


class SkewedClock:
    """Another clock shifted by ``seconds``: a device whose clock is wrong. Test-only (the
    settings' ``clock_skew_s``), so a test can show that nothing the app says depends on
    the device clock."""

    def __init__(self, device: Clock, seconds: float) -> None:
        self.device = device
        self.skew = timedelta(seconds=seconds)

    def now(self) -> datetime:
        return self.device.now() + self.skew


class ServerClock:
    """The server's time as this device knows it: the device clock plus the offset last
    measured from a server answer (the envelope's ``meta.timestamp``, the event stream's
    heartbeat). Countdowns, "window closed" checks, reminders and ages use this, so a
    device clock an hour wrong, or the demo's clock control, changes nothing the app says.

    Until the first answer the offset is 0 (the device clock). The latest measure wins: the
    demo clock jumps, and a jump must show at once.
    """

    def __init__(self, device: Clock, *, max_rtt: float = 2.0) -> None:
        self.device = device
        self.max_rtt = max_rtt
        self._offset = timedelta(0)
        self.measured = False

    @property
    def offset(self) -> timedelta:
        """Server time minus device time."""
        return self._offset

    def now(self) -> datetime:
        return self.device.now() + self._offset

    def observe(self, server_time: datetime, rtt: float = 0.0) -> None:
        """An answer stamped ``server_time`` arrived ``rtt`` seconds after its request left;
        the server stamped it about half-way. An answer slower than ``max_rtt`` says too
        little about when it was stamped and is ignored once an offset is known."""
        if server_time.tzinfo is None:
            raise ValueError(f"Server time {server_time!r} has no timezone; the contract "
                             "stamps RFC 3339 times with one (…Z).")
        if self.measured and rtt > self.max_rtt:
            return
        self._offset = server_time + timedelta(seconds=rtt / 2) - self.device.now()
        self.measured = True
