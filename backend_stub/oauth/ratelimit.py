"""Login throttling: failed password attempts per account and per client address.

Once either key has ``limit`` failures in the last minute, every attempt on it is refused
(even with the right password) until the oldest failure leaves the window, so guessing
costs a minute per ``limit`` tries. Counted in this process, on the stub's clock.
"""

from __future__ import annotations

import math
import threading
from collections import deque

from backend_stub.clock import Clock

WINDOW_S = 60.0


class LoginLimiter:
    def __init__(self, clock: Clock, limit_per_minute: int) -> None:
        self._clock = clock
        self._limit = limit_per_minute
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def keys(username: str, address: str | None) -> list[str]:
        return [f"user:{username.strip().lower()}", f"addr:{address or 'unknown'}"]

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds to wait when any key is over the limit, else None."""
        now = self._clock.now().timestamp()
        wait = 0.0
        with self._lock:
            for key in keys:
                window = self._prune(key, now)
                if len(window) >= self._limit:
                    wait = max(wait, window[0] + WINDOW_S - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, keys: list[str]) -> None:
        now = self._clock.now().timestamp()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)

    def _prune(self, key: str, now: float) -> deque[float]:
        window = self._failures.setdefault(key, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        return window
