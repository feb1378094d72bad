"""Resources: daily token budgets with threshold alerts, and rate limits.

``ResourceManager`` answers "may this agent spend N tokens?" (``check_budget``), records
what was spent (``consume``) and tells once per threshold per day when 80 % and 95 % of a
budget are crossed. ``RateLimiter`` counts requests per key on the ``limits`` library, in
memory or on Redis (shared by every stub process); a Redis outage falls back to counting
in memory rather than refusing or failing requests.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from sqlalchemy import Connection, text

from backend_stub.clock import Clock
from backend_stub.components.errors import UnknownBudget
from backend_stub.components.resilience import CircuitBreaker, ErrorHandler, RetryPolicy
from backend_stub.db import Database

THRESHOLDS = (80, 95)


def thresholds_reached(utilisation: float) -> list[int]:
    """The alert thresholds (80, 95 %) that ``utilisation`` (a share, 1.0 = all) reached."""
    return [t for t in THRESHOLDS if utilisation * 100 >= t]


class Priority(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


@dataclass(frozen=True)
class Budget:
    """An agent's allowance: tokens per UTC day, requests per minute, and its priority
    (which orders agents when capacity is shared: ``ResourceManager.by_priority``)."""

    tokens_per_day: int
    requests_per_minute: int = 60
    priority: Priority | str = Priority.MEDIUM

    def __post_init__(self) -> None:
        if self.tokens_per_day < 0 or self.requests_per_minute < 1:
            raise ValueError(
                f"Budget(tokens_per_day={self.tokens_per_day}, requests_per_minute="
                f"{self.requests_per_minute}) is not valid: tokens 0 or more, requests 1 or more")
        try:
            object.__setattr__(self, "priority", Priority(str(self.priority).upper()))
        except ValueError:
            raise ValueError(f"Budget priority {self.priority!r} is unknown; use HIGH, MEDIUM "
                             "or LOW") from None


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int | None  # known only for a refusal (saves a Redis round trip)
    retry_after: int  # whole seconds until a refused key may try again; 0 when allowed


class _LocalWindows:
    """Fixed-window counters in this process. Hand-written rather than ``limits``' memory
    storage, whose per-key expiry timers cost ~15 µs and a thread per hit on the request
    path; this is a dict and a lock (~1 µs)."""

    def __init__(self, timer: Callable[[], float] = time.time) -> None:
        self._counts: dict[tuple[str, int, int], int] = {}
        self._lock = threading.Lock()
        self._timer = timer

    def hit(self, key: str, limit: int, window: int, cost: int) -> RateDecision:
        now = self._timer()
        slot = int(now // window)
        counter = (key, window, slot)
        with self._lock:
            used = self._counts.get(counter, 0)
            if used + cost > limit:
                retry = max(1, math.ceil((slot + 1) * window - now))
                return RateDecision(False, limit, max(0, limit - used), retry)
            self._counts[counter] = used + cost
            if len(self._counts) > 10_000:
                self._prune(now)
        return RateDecision(True, limit, None, 0)

    def used(self, key: str, window: int) -> int:
        with self._lock:
            return self._counts.get((key, window, int(self._timer() // window)), 0)

    def _prune(self, now: float) -> None:
        for counter in [c for c in self._counts if c[2] < int(now // c[1])]:
            del self._counts[counter]


class RateLimiter:
    """Requests per window per key, in fixed windows (the cheapest strategy: a dict update
    in memory, one INCR on Redis through ``limits``; the price is that up to twice the limit
    can pass across a window boundary).

    ``storage_uri``: ``memory://`` (default) or a Redis URL. ``enabled=False`` is the kill
    switch: everything is allowed and nothing is counted.
    """

    def __init__(self, storage_uri: str = "memory://", *, enabled: bool = True,
                 key_prefix: str = "govstub-rl") -> None:
        self.enabled = enabled
        self._local = _LocalWindows()
        self._shared: FixedWindowRateLimiter | None = None
        if not storage_uri.startswith("memory"):
            storage = RedisStorage(storage_uri, key_prefix=key_prefix, socket_timeout=0.5,
                                   socket_connect_timeout=0.5)
            self._shared = FixedWindowRateLimiter(storage)
        self._guard = ErrorHandler(
            RetryPolicy(max_attempts=1),
            CircuitBreaker(failure_threshold=3, timeout=10.0, half_open_requests=1,
                           name="rate-limit-redis"), name="rate-limit-redis")

    @staticmethod
    def item(limit: int, window: int) -> RateLimitItem:
        return RateLimitItemPerSecond(limit, window)

    @staticmethod
    def _decide(limiter: FixedWindowRateLimiter, item: RateLimitItem, key: str,
                cost: int) -> RateDecision:
        if limiter.hit(item, key, cost=cost):
            # The window's stats cost another round trip: only a refusal needs them.
            return RateDecision(True, item.amount, None, 0)
        stats = limiter.get_window_stats(item, key)
        retry = max(1, math.ceil(stats.reset_time - time.time()))
        return RateDecision(False, item.amount, stats.remaining, retry)

    def hit(self, key: str, limit: int, window: int = 60, cost: int = 1) -> RateDecision:
        """Count one request (``cost`` of them) for ``key``; refuse past ``limit``."""
        if not self.enabled:
            return RateDecision(True, limit, None, 0)
        shared = self._shared
        if shared is None:
            return self._local.hit(key, limit, window, cost)
        item = self.item(limit, window)
        return self._guard.execute(lambda: self._decide(shared, item, key, cost),
                                   fallback=lambda: self._local.hit(key, limit, window, cost))

    def used(self, key: str, limit: int, window: int = 60) -> int:
        """Requests counted in the current window (without counting one)."""
        if not self.enabled:
            return 0
        shared = self._shared
        if shared is None:
            return self._local.used(key, window)
        item = self.item(limit, window)
        return self._guard.execute(
            lambda: limit - shared.get_window_stats(item, key).remaining,
            fallback=lambda: self._local.used(key, window))


class UsageStore(Protocol):
    def add(self, agent_id: str, day: str, tokens: int, requests: int) -> tuple[int, int]:
        """Add usage; return the day's (tokens, requests) after it."""
        ...
    def used(self, agent_id: str, day: str) -> tuple[int, int]: ...
    def mark_threshold(self, agent_id: str, day: str, threshold: int,
                       conn: Connection | None = None) -> bool:
        """Record that ``threshold`` was crossed; ``True`` only the first time that day.
        ``conn``: mark it in the caller's transaction (a SQL store; others ignore it)."""
        ...
    def thresholds(self, agent_id: str, day: str) -> list[int]: ...


class MemoryUsageStore:
    def __init__(self) -> None:
        self._usage: dict[tuple[str, str], tuple[int, int]] = {}
        self._marks: set[tuple[str, str, int]] = set()
        self._lock = threading.Lock()

    def add(self, agent_id: str, day: str, tokens: int, requests: int) -> tuple[int, int]:
        with self._lock:
            used_tokens, used_requests = self._usage.get((agent_id, day), (0, 0))
            after = (used_tokens + tokens, used_requests + requests)
            self._usage[(agent_id, day)] = after
            return after

    def used(self, agent_id: str, day: str) -> tuple[int, int]:
        with self._lock:
            return self._usage.get((agent_id, day), (0, 0))

    def mark_threshold(self, agent_id: str, day: str, threshold: int,
                       conn: Connection | None = None) -> bool:
        with self._lock:
            if (agent_id, day, threshold) in self._marks:
                return False
            self._marks.add((agent_id, day, threshold))
            return True

    def thresholds(self, agent_id: str, day: str) -> list[int]:
        with self._lock:
            return sorted(t for a, d, t in self._marks if a == agent_id and d == day)


class SqlUsageStore:
    """Usage in ``components_budget_usage``; alerts in ``components_budget_alerts``, whose
    primary key keeps "once per threshold per day" true across processes."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, agent_id: str, day: str, tokens: int, requests: int) -> tuple[int, int]:
        params = {"a": agent_id, "d": day, "t": tokens, "r": requests}
        with self.db.engine.begin() as conn:
            # An atomic upsert: concurrent consumers never lose an increment.
            conn.execute(text(
                "INSERT INTO components_budget_usage (agent_id, day, tokens_used, requests) "
                "VALUES (:a, :d, :t, :r) ON CONFLICT (agent_id, day) DO UPDATE SET "
                "tokens_used = components_budget_usage.tokens_used + excluded.tokens_used, "
                "requests = components_budget_usage.requests + excluded.requests"), params)
            row = conn.execute(text(
                "SELECT tokens_used, requests FROM components_budget_usage "
                "WHERE agent_id = :a AND day = :d"), params).one()
        return int(row[0]), int(row[1])

    def used(self, agent_id: str, day: str) -> tuple[int, int]:
        with self.db.engine.begin() as conn:
            row = conn.execute(text(
                "SELECT tokens_used, requests FROM components_budget_usage "
                "WHERE agent_id = :a AND day = :d"), {"a": agent_id, "d": day}).first()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def mark_threshold(self, agent_id: str, day: str, threshold: int,
                       conn: Connection | None = None) -> bool:
        if conn is None:
            with self.db.engine.begin() as own:
                return self.mark_threshold(agent_id, day, threshold, own)
        result = conn.execute(text(
            "INSERT INTO components_budget_alerts (agent_id, day, threshold) "
            "VALUES (:a, :d, :t) ON CONFLICT DO NOTHING"),
            {"a": agent_id, "d": day, "t": threshold})
        return bool(result.rowcount)

    def thresholds(self, agent_id: str, day: str) -> list[int]:
        with self.db.engine.begin() as conn:
            rows = conn.execute(text(
                "SELECT threshold FROM components_budget_alerts WHERE agent_id = :a "
                "AND day = :d ORDER BY threshold"), {"a": agent_id, "d": day}).all()
        return [int(r[0]) for r in rows]


ThresholdHandler = Callable[[str, int, float], None]


class ResourceManager:
    """Per-agent daily token budgets and request rates.

    ``on_threshold(agent_id, threshold, utilisation)`` is called once per threshold
    (80, 95) per agent per UTC day; ``on_usage(agent_id, utilisation)`` after every
    ``consume`` (for a gauge).
    """

    def __init__(self, budgets: Mapping[str, Budget] | None = None, *,
                 store: UsageStore | None = None, rate_limiter: RateLimiter | None = None,
                 clock: Clock | None = None, on_threshold: ThresholdHandler | None = None,
                 on_usage: Callable[[str, float], None] | None = None) -> None:
        self._budgets: dict[str, Budget] = dict(budgets or {})
        self.store: UsageStore = store or MemoryUsageStore()
        self.rate_limiter = rate_limiter or RateLimiter()
        self._clock = clock
        self.on_threshold = on_threshold
        self.on_usage = on_usage

    def _day(self) -> str:
        return (self._clock.now() if self._clock else datetime.now(UTC)).date().isoformat()

    def set_budget(self, agent_id: str, budget: Budget) -> None:
        self._budgets[agent_id] = budget

    def budget(self, agent_id: str) -> Budget:
        try:
            return self._budgets[agent_id]
        except KeyError:
            raise UnknownBudget(f"agent {agent_id!r} has no budget; register one with "
                                "ResourceManager.set_budget()") from None

    def budgets(self) -> dict[str, Budget]:
        return dict(self._budgets)

    def by_priority(self) -> list[str]:
        """Agents in the order capacity should go to them: HIGH first, then by name."""
        order = {Priority.HIGH: 0, Priority.MEDIUM: 1, Priority.LOW: 2}
        return sorted(self._budgets, key=lambda a: (order[Priority(self._budgets[a].priority)],
                                                    a))

    def check_budget(self, agent_id: str, tokens: int = 0) -> bool:
        """Would spending ``tokens`` more stay within today's budget?"""
        budget = self.budget(agent_id)
        used, _ = self.store.used(agent_id, self._day())
        return used + tokens <= budget.tokens_per_day

    def consume(self, agent_id: str, tokens: int, requests: int = 1) -> dict[str, Any]:
        """Record what was spent and raise the day's threshold alerts it crossed."""
        if tokens < 0 or requests < 0:
            raise ValueError(f"consume({agent_id!r}, tokens={tokens}, requests={requests}): "
                             "amounts cannot be negative")
        budget = self.budget(agent_id)
        day = self._day()
        used, _ = self.store.add(agent_id, day, tokens, requests)
        utilisation = self._utilisation(used, budget)
        if self.on_usage is not None:
            self.on_usage(agent_id, utilisation)
        for threshold in self.announce(agent_id, utilisation, day=day):
            if self.on_threshold is not None:
                self.on_threshold(agent_id, threshold, utilisation)
        return self.get_status(agent_id)

    def announce(self, agent_id: str, utilisation: float, *, day: str | None = None,
                 conn: Connection | None = None) -> list[int]:
        """The thresholds ``utilisation`` reached that were not yet announced for the agent
        on ``day`` (today by default), each marked announced now: the once per agent per
        day rule, for ``consume`` and for the governance domain's budgets alike. With
        ``conn`` the marks are written in the caller's transaction."""
        day = day or self._day()
        return [t for t in thresholds_reached(utilisation)
                if self.store.mark_threshold(agent_id, day, t, conn=conn)]

    @staticmethod
    def _utilisation(used: int, budget: Budget) -> float:
        if budget.tokens_per_day == 0:
            return 1.0 if used else 0.0
        return used / budget.tokens_per_day

    def check_rate_limit(self, agent_id: str, window: int = 60) -> bool:
        """Count one request for the agent; ``False`` past its requests-per-minute."""
        budget = self.budget(agent_id)
        limit = max(1, math.ceil(budget.requests_per_minute * window / 60))
        return self.rate_limiter.hit(f"agent:{agent_id}", limit, window).allowed

    def get_status(self, agent_id: str) -> dict[str, Any]:
        budget = self.budget(agent_id)
        day = self._day()
        used, requests = self.store.used(agent_id, day)
        return {
            "agent_id": agent_id,
            "day": day,
            "tokens_per_day": budget.tokens_per_day,
            "tokens_used": used,
            "tokens_remaining": max(0, budget.tokens_per_day - used),
            "utilisation": round(self._utilisation(used, budget), 4),
            "requests_today": requests,
            "requests_this_minute": self.rate_limiter.used(
                f"agent:{agent_id}", budget.requests_per_minute),
            "priority": str(budget.priority),
            "thresholds_crossed": self.store.thresholds(agent_id, day),
        }
