"""Login throttling: failed password attempts per account and per client address.

Once either key has ``limit`` failures in the last minute, every attempt on it is refused
(even with the right password) until the oldest failure leaves the window, so guessing
costs a minute per ``limit`` tries. Counted on the stub's clock, in a ``FailureStore``:
in this process by default (``MemoryFailures``), in Redis (``RedisFailures``) when the
stub has one, so that several replicas behind one balancer hold one limit together.
"""

from __future__ import annotations

import logging
import math
import threading
import uuid
from collections import deque
from typing import Any, Protocol

from backend_stub.clock import Clock

WINDOW_S = 60.0

log = logging.getLogger("backend_stub.oauth")


class FailureStore(Protocol):
    """Failure times per key, for the last ``WINDOW_S`` seconds."""

    def window(self, key: str, now: float) -> tuple[int, float | None]:
        """How many failures ``key`` has in the window ending at ``now``, and the oldest."""
        ...

    def add(self, keys: list[str], now: float) -> None: ...


class MemoryFailures:
    """Failures counted in this process."""

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def window(self, key: str, now: float) -> tuple[int, float | None]:
        with self._lock:
            window = self._failures.setdefault(key, deque())
            while window and window[0] <= now - WINDOW_S:
                window.popleft()
            return len(window), (window[0] if window else None)

    def add(self, keys: list[str], now: float) -> None:
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)


class RedisFailures:
    """Failures in Redis, one sorted set per key (scored by time), shared by every replica.

    When Redis cannot be reached the failures are counted in this process instead (logged):
    signing in keeps working, throttled per replica until Redis is back.
    """

    def __init__(self, client: Any, prefix: str) -> None:
        self._redis = client
        self._prefix = prefix
        self._local = MemoryFailures()

    def window(self, key: str, now: float) -> tuple[int, float | None]:
        name = self._prefix + key
        try:
            pipe = self._redis.pipeline()
            pipe.zremrangebyscore(name, "-inf", now - WINDOW_S)
            pipe.zcard(name)
            pipe.zrange(name, 0, 0, withscores=True)
            _, size, oldest = pipe.execute()
        except Exception as exc:  # redis errors, timeouts, refused connections
            log.warning("login limiter: Redis unreachable (%s); counting in this process",
                        exc)
            return self._local.window(key, now)
        remote = (int(size), float(oldest[0][1]) if oldest else None)
        local = self._local.window(key, now)
        # Failures counted here while Redis was down still count.
        if local[0] == 0:
            return remote
        starts = [t for t in (remote[1], local[1]) if t is not None]
        return remote[0] + local[0], min(starts)

    def add(self, keys: list[str], now: float) -> None:
        try:
            pipe = self._redis.pipeline()
            for key in keys:
                name = self._prefix + key
                # A unique member: two failures in the same instant are two failures.
                pipe.zadd(name, {f"{now!r}:{uuid.uuid4().hex}": now})
                pipe.expire(name, math.ceil(WINDOW_S) + 1)
            pipe.execute()
        except Exception as exc:
            log.warning("login limiter: Redis unreachable (%s); counting in this process",
                        exc)
            self._local.add(keys, now)


class LoginLimiter:
    def __init__(self, clock: Clock, limit_per_minute: int,
                 store: FailureStore | None = None) -> None:
        self._clock = clock
        self._limit = limit_per_minute
        self._store: FailureStore = store or MemoryFailures()

    @staticmethod
    def keys(username: str, address: str | None) -> list[str]:
        return [f"user:{username.strip().lower()}", f"addr:{address or 'unknown'}"]

    def retry_after(self, keys: list[str]) -> int | None:
        """Seconds to wait when any key is over the limit, else None."""
        now = self._clock.now().timestamp()
        wait = 0.0
        for key in keys:
            count, oldest = self._store.window(key, now)
            if count >= self._limit and oldest is not None:
                wait = max(wait, oldest + WINDOW_S - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    def record_failure(self, keys: list[str]) -> None:
        self._store.add(keys, self._clock.now().timestamp())
