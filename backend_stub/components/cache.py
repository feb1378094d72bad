"""Caching: ``SimpleCache`` (one LRU map with TTLs) and ``CacheHierarchy`` (L1 memory,
L2 Redis, L3 SQL) with promotion, write-through and single-flight ``get_or_compute``.

A failing lower tier is a cache miss, never an error: each tier sits behind its own
``ErrorHandler`` with a circuit breaker, so a Redis outage degrades to L1 + L3 and costs one
short timeout per breaker period, not one per call.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, Protocol, TypeVar, cast

import cachetools
from sqlalchemy import text

from backend_stub.clock import Clock
from backend_stub.components._support import timer_from
from backend_stub.components.errors import CacheSerializationError
from backend_stub.components.resilience import CircuitBreaker, ErrorHandler, RetryPolicy
from backend_stub.db import Database

T = TypeVar("T")
_MISSING: Any = object()
# Levels reported to the observer: one of these per ``get``.
LEVELS = ("l1", "l2", "l3", "miss")


class SimpleCache:
    """A thread-safe LRU map whose entries expire (``ttl`` seconds, ``None`` = never).

    ``enabled=False`` (the kill switch) makes it forget everything it is told.
    """

    def __init__(self, max_size: int = 1000, *, default_ttl: float | None = None,
                 clock: Clock | None = None, enabled: bool = True) -> None:
        if max_size < 1:
            raise ValueError(f"SimpleCache max_size is {max_size}; use 1 or more")
        self.max_size = max_size
        self.default_ttl = default_ttl
        self.enabled = enabled
        self._timer = timer_from(clock)
        # Each value is stored as (value, ttl) so the TLRU cache can give every entry its
        # own lifetime.
        self._data: cachetools.TLRUCache[Hashable, tuple[Any, float | None]] = \
            cachetools.TLRUCache(max_size, self._expiry, timer=self._timer)
        self._lock = threading.Lock()

    @staticmethod
    def _expiry(_key: Hashable, entry: tuple[Any, float | None], now: float) -> float:
        ttl = entry[1]
        return math.inf if ttl is None else now + ttl

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            entry = self._data.get(key, _MISSING)
        return default if entry is _MISSING else entry[0]

    def set(self, key: Hashable, value: Any, ttl: float | None = None) -> None:
        if not self.enabled:
            return
        ttl = self.default_ttl if ttl is None else ttl
        if ttl is not None and ttl <= 0:
            self.delete(key)
            return
        with self._lock:
            self._data[key] = (value, ttl)

    def delete(self, key: Hashable) -> bool:
        with self._lock:
            return self._data.pop(key, _MISSING) is not _MISSING

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __contains__(self, key: Hashable) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __len__(self) -> int:
        with self._lock:
            self._data.expire()
            return len(self._data)


class CacheTier(Protocol):
    """A lower cache level: strings in, strings out, ``None`` for a miss."""

    name: str

    def get(self, key: str) -> str | None: ...
    def set(self, key: str, value: str, ttl: float) -> None: ...
    def delete(self, key: str) -> None: ...


class MemoryTier:
    """A lower tier kept in a dict; the in-memory stand-in for Redis or SQL in tests."""

    def __init__(self, name: str = "l2", *, clock: Clock | None = None) -> None:
        self.name = name
        self._timer = timer_from(clock)
        self._data: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if entry[1] <= self._timer():
                del self._data[key]
                return None
            return entry[0]

    def set(self, key: str, value: str, ttl: float) -> None:
        with self._lock:
            self._data[key] = (value, self._timer() + ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)


class RedisTier:
    """L2 on Redis: shared by every stub process; Redis expires the keys itself."""

    def __init__(self, client: Any, *, prefix: str = "govstub:cache:", name: str = "l2") -> None:
        self.client = client
        self.prefix = prefix
        self.name = name

    def get(self, key: str) -> str | None:
        raw = self.client.get(self.prefix + key)
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def set(self, key: str, value: str, ttl: float) -> None:
        self.client.set(self.prefix + key, value, px=max(1, int(ttl * 1000)))

    def delete(self, key: str) -> None:
        self.client.delete(self.prefix + key)


class SqlTier:
    """L3 in ``components_cache``: survives restarts; expiry follows the stub's clock."""

    def __init__(self, db: Database, *, clock: Clock | None = None, name: str = "l3") -> None:
        self.db = db
        self.name = name
        self._timer = timer_from(clock) if clock else time.time

    def get(self, key: str) -> str | None:
        with self.db.engine.begin() as conn:
            value = conn.execute(text(
                "SELECT value FROM components_cache WHERE cache_key = :k AND expires_at > :now"),
                {"k": key, "now": self._timer()}).scalar_one_or_none()
        return None if value is None else str(value)

    def set(self, key: str, value: str, ttl: float) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO components_cache (cache_key, value, expires_at) "
                "VALUES (:k, :v, :e) ON CONFLICT (cache_key) DO UPDATE SET "
                "value = excluded.value, expires_at = excluded.expires_at"),
                {"k": key, "v": value, "e": self._timer() + ttl})

    def delete(self, key: str) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(text("DELETE FROM components_cache WHERE cache_key = :k"), {"k": key})

    def purge_expired(self) -> int:
        with self.db.engine.begin() as conn:
            result = conn.execute(text("DELETE FROM components_cache WHERE expires_at <= :now"),
                                  {"now": self._timer()})
        return int(result.rowcount or 0)


def tier_guard(name: str, *, clock: Clock | None = None) -> ErrorHandler:
    """The default protection of a lower tier: one quick retry, then a breaker that stops
    calling it for 10 s after 3 straight failures."""
    return ErrorHandler(
        RetryPolicy(max_attempts=2, base_delay=0.005, max_delay=0.05, jitter=0.5),
        CircuitBreaker(failure_threshold=3, timeout=10.0, half_open_requests=1,
                       name=f"cache-{name}", clock=clock),
        name=f"cache-{name}")


class CacheHierarchy:
    """Three cache levels behind one ``get`` / ``set``.

    - ``get`` looks in L1, then L2, then L3; a lower hit is copied into the levels above it
      (with what is left of its lifetime).
    - ``set`` writes through every level; each level keeps it for ``min(ttl, its own TTL)``
      (L1 lives no longer than L2, so processes sharing Redis see changes within ``l2_ttl``).
    - ``get_or_compute`` runs ``compute_fn`` once per key even with concurrent callers.
    - Values for L2/L3 must be JSON-compatible (they are shared with other processes).
    - ``enabled=False`` is the kill switch: nothing is stored, every ``get`` misses.
    - ``observer(level)`` is called once per ``get`` with ``l1``, ``l2``, ``l3`` or ``miss``.
    """

    def __init__(self, l1_max_size: int = 1000, l2_ttl: float = 300, l3_ttl: float = 3600, *,
                 l2: CacheTier | None = None, l3: CacheTier | None = None,
                 clock: Clock | None = None, enabled: bool = True,
                 observer: Callable[[str], None] | None = None,
                 guards: dict[str, ErrorHandler] | None = None) -> None:
        if l2_ttl <= 0 or l3_ttl <= 0:
            raise ValueError(f"CacheHierarchy TTLs l2={l2_ttl} l3={l3_ttl} must be positive")
        self.l1 = SimpleCache(l1_max_size, clock=clock, enabled=enabled)
        self.l2_ttl = l2_ttl
        self.l3_ttl = l3_ttl
        self.enabled = enabled
        self.observer = observer
        self._timer = timer_from(clock) if clock else time.time
        self._tiers: list[tuple[CacheTier, float]] = [
            (tier, tier_ttl) for tier, tier_ttl in ((l2, l2_ttl), (l3, l3_ttl))
            if tier is not None]
        guards = guards or {}
        self._guards = {tier.name: guards.get(tier.name) or tier_guard(tier.name, clock=clock)
                        for tier, _ in self._tiers}
        self._flights: dict[str, tuple[threading.Lock, int]] = {}
        self._flights_lock = threading.Lock()

    @property
    def tiers(self) -> list[str]:
        return ["l1", *(tier.name for tier, _ in self._tiers)]

    def _observe(self, level: str) -> None:
        if self.observer is not None:
            self.observer(level)

    # -- encoding: the envelope carries the absolute expiry so promotion keeps it --
    def _encode(self, key: str, value: Any, expires_at: float) -> str:
        try:
            return json.dumps({"v": value, "exp": expires_at}, separators=(",", ":"),
                              allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise CacheSerializationError(
                f"the value for cache key {key!r} cannot be shared through L2/L3 ({exc}); "
                "cache JSON-compatible data (dicts, lists, strings, numbers, None)") from exc

    def _tier_call(self, tier: CacheTier, op: Callable[[], T], default: T) -> T:
        return self._guards[tier.name].execute(op, fallback=lambda: default)

    def get(self, key: str, default: Any = None) -> Any:
        value = self._lookup(key)
        return default if value is _MISSING else value

    def _lookup(self, key: str, observe: bool = True) -> Any:
        if not self.enabled:
            if observe:
                self._observe("miss")
            return _MISSING
        value = self.l1.get(key, _MISSING)
        if value is not _MISSING:
            if observe:
                self._observe("l1")
            return value
        for index, (tier, _ttl) in enumerate(self._tiers):
            raw = self._tier_call(tier, partial(tier.get, key), None)
            if raw is None:
                continue
            try:
                envelope = json.loads(raw)
                value, expires_at = envelope["v"], float(envelope["exp"])
            except (ValueError, KeyError, TypeError):
                # Someone else's or a corrupt entry: drop it rather than serve garbage.
                self._tier_call(tier, partial(tier.delete, key), None)
                continue
            remaining = expires_at - self._timer()
            if remaining <= 0:
                continue
            for upper, upper_ttl in self._tiers[:index]:
                ttl = min(remaining, upper_ttl)
                self._tier_call(upper, partial(upper.set, key, raw, ttl), None)
            self.l1.set(key, value, min(remaining, self.l2_ttl))
            if observe:
                self._observe(tier.name)
            return value
        if observe:
            self._observe("miss")
        return _MISSING

    def set(self, key: str, value: Any, ttl: float | None = None) -> None:
        if not self.enabled:
            return
        if ttl is not None and ttl <= 0:
            self.delete(key)
            return
        now = self._timer()
        encoded = [(tier, tier_ttl if ttl is None else min(ttl, tier_ttl))
                   for tier, tier_ttl in self._tiers]
        payloads = [(tier, self._encode(key, value, now + t), t) for tier, t in encoded]
        self.l1.set(key, value, self.l2_ttl if ttl is None else min(ttl, self.l2_ttl))
        # Lowest level first: a reader never finds a value above that is missing below.
        for tier, payload, t in reversed(payloads):
            self._tier_call(tier, partial(tier.set, key, payload, t), None)

    def delete(self, key: str) -> None:
        """Forget ``key`` at every level (call it when the underlying data changes)."""
        for tier, _ in reversed(self._tiers):
            self._tier_call(tier, partial(tier.delete, key), None)
        self.l1.delete(key)

    invalidate = delete

    def get_or_compute(self, key: str, compute_fn: Callable[[], T],
                       ttl: float | None = None) -> T:
        if not self.enabled:
            return compute_fn()
        value = self._lookup(key)
        if value is not _MISSING:
            return cast(T, value)
        lock = self._enter_flight(key)
        try:
            with lock:
                value = self._lookup(key, observe=False)
                if value is not _MISSING:
                    return cast(T, value)
                computed = compute_fn()
                self.set(key, computed, ttl)
                return computed
        finally:
            self._leave_flight(key)

    def _enter_flight(self, key: str) -> threading.Lock:
        with self._flights_lock:
            lock, users = self._flights.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._flights[key] = (lock, users + 1)
            return lock

    def _leave_flight(self, key: str) -> None:
        with self._flights_lock:
            lock, users = self._flights[key]
            if users <= 1:
                del self._flights[key]
            else:
                self._flights[key] = (lock, users - 1)
