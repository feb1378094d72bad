"""When to try the server again: exponential backoff with full jitter behind a circuit
breaker.

Nothing here sleeps. The policy only answers "may we try now?" and "when next?"; the
scheduler's tick and a reconnect do the trying, so tests move a clock instead of waiting.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Literal

from sync.clock import Clock

BreakerState = Literal["closed", "open", "half_open"]


class RetryPolicy:
    """Backoff after network errors and 5xx; a breaker that stops trying for ``open_for``
    seconds after ``failures_to_open`` failures in a row, then lets one attempt through."""

    def __init__(self, clock: Clock, *, rng: random.Random | None = None,
                 base: float = 1.0, cap: float = 30.0, failures_to_open: int = 5,
                 open_for: float = 20.0) -> None:
        # Short caps on purpose: the only traffic while the server is away is one probe
        # every 20-30 s, and the governor sees the app back online soon after it returns.
        self.clock = clock
        self.rng = rng or random.Random()
        self.base = base
        self.cap = cap
        self.failures_to_open = failures_to_open
        self.open_for = open_for
        self.failures = 0
        self.next_attempt_at: datetime | None = None
        # Kept apart from the backoff: a reconnect resets backoff but must still honour
        # the server's Retry-After.
        self.rate_limited_until: datetime | None = None

    @property
    def state(self) -> BreakerState:
        if self.failures < self.failures_to_open:
            return "closed"
        if self.next_attempt_at is not None and self.clock.now() < self.next_attempt_at:
            return "open"
        return "half_open"

    def ready(self) -> bool:
        now = self.clock.now()
        if self.rate_limited_until is not None and now < self.rate_limited_until:
            return False
        return self.next_attempt_at is None or now >= self.next_attempt_at

    def failed(self) -> float:
        """Record a failure; returns the seconds until the next attempt."""
        self.failures += 1
        # Full jitter: many devices coming back after an outage must not retry in step.
        delay = self.rng.uniform(0, min(self.cap, self.base * 2 ** (self.failures - 1)))
        if self.failures >= self.failures_to_open:
            delay = max(delay, self.open_for)
        self.next_attempt_at = self.clock.now() + timedelta(seconds=delay)
        return delay

    def rate_limited(self, retry_after: float) -> None:
        """A 429 is the server working as designed: wait as told, no breaker count."""
        self.rate_limited_until = self.clock.now() + timedelta(seconds=retry_after)

    def succeeded(self) -> None:
        self.failures = 0
        self.next_attempt_at = None

    def reset(self) -> None:
        """The network is back: try at once."""
        self.succeeded()
