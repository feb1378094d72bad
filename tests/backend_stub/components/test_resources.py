from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest

from backend_stub.clock import FakeClock
from backend_stub.components.errors import UnknownBudget
from backend_stub.components.resources import (
    Budget,
    MemoryUsageStore,
    Priority,
    RateLimiter,
    ResourceManager,
    SqlUsageStore,
    UsageStore,
)
from backend_stub.db import Database


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> UsageStore:
    if request.param == "memory":
        return MemoryUsageStore()
    db: Database = request.getfixturevalue(f"{request.param}_db")
    return SqlUsageStore(db)


def manager(store: UsageStore, clock: FakeClock, alerts: list[Any] | None = None,
            **budgets: Budget) -> ResourceManager:
    return ResourceManager(budgets or {"wowvision": Budget(100_000, 50, "HIGH")}, store=store,
                           clock=clock,
                           on_threshold=(lambda a, t, u: alerts.append((a, t, u)))
                           if alerts is not None else None)


def test_contract_check_consume_status(store: UsageStore) -> None:
    rm = manager(store, FakeClock())
    assert rm.check_budget("wowvision", tokens=5000)
    status = rm.consume("wowvision", tokens=45_000)
    assert status["tokens_used"] == 45_000 and status["tokens_remaining"] == 55_000
    assert status["utilisation"] == 0.45 and status["priority"] == "HIGH"
    assert status["requests_today"] == 1
    assert rm.check_budget("wowvision", tokens=55_000)
    assert not rm.check_budget("wowvision", tokens=55_001)


def test_contract_thresholds_fire_once_per_threshold_per_day(store: UsageStore) -> None:
    clock = FakeClock()
    alerts: list[Any] = []
    rm = manager(store, clock, alerts)
    rm.consume("wowvision", 79_999)
    assert alerts == []
    rm.consume("wowvision", 1)
    assert alerts == [("wowvision", 80, 0.8)]
    rm.consume("wowvision", 1000)
    assert len(alerts) == 1
    rm.consume("wowvision", 20_000)  # 101 %: 95 fires once, 80 does not fire again
    assert [a[1] for a in alerts] == [80, 95]
    assert rm.get_status("wowvision")["thresholds_crossed"] == [80, 95]
    clock.advance(timedelta(days=1).total_seconds())
    assert rm.get_status("wowvision")["tokens_used"] == 0
    rm.consume("wowvision", 96_000)  # a new day: both fire again, in order
    assert [a[1] for a in alerts] == [80, 95, 80, 95]


def test_contract_concurrent_consumers_lose_nothing(store: UsageStore) -> None:
    alerts: list[Any] = []
    rm = manager(store, FakeClock(), alerts)

    def spend() -> None:
        for _ in range(10):
            rm.consume("wowvision", 1000)

    threads = [threading.Thread(target=spend) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert rm.get_status("wowvision")["tokens_used"] == 100_000
    assert sorted(a[1] for a in alerts) == [80, 95]


def test_usage_gauge_hook_and_zero_budget() -> None:
    seen: list[tuple[str, float]] = []
    rm = ResourceManager({"free": Budget(0, 10)}, on_usage=lambda a, u: seen.append((a, u)))
    assert rm.get_status("free")["utilisation"] == 0.0
    rm.consume("free", 1)
    assert seen == [("free", 1.0)]
    assert not rm.check_budget("free", 1)


def test_unknown_agent_and_bad_amounts() -> None:
    rm = ResourceManager()
    with pytest.raises(UnknownBudget, match="agent 'ghost' has no budget"):
        rm.check_budget("ghost")
    rm.set_budget("a", Budget(10))
    with pytest.raises(ValueError, match="cannot be negative"):
        rm.consume("a", -1)


@pytest.mark.parametrize("kwargs, match", [
    ({"tokens_per_day": -1}, "is not valid"),
    ({"tokens_per_day": 1, "requests_per_minute": 0}, "is not valid"),
    ({"tokens_per_day": 1, "priority": "URGENT"}, "'URGENT' is unknown"),
])
def test_budget_validation(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Budget(**kwargs)


def test_priority_orders_agents() -> None:
    rm = ResourceManager({"c": Budget(1, priority="low"), "b": Budget(1),
                          "a": Budget(1, priority=Priority.HIGH), "d": Budget(1, priority="HIGH")})
    assert rm.by_priority() == ["a", "d", "b", "c"]
    assert set(rm.budgets()) == {"a", "b", "c", "d"}


def test_agent_rate_limit() -> None:
    rm = ResourceManager({"a": Budget(1000, requests_per_minute=3)})
    assert [rm.check_rate_limit("a") for _ in range(4)] == [True, True, True, False]
    assert rm.get_status("a")["requests_this_minute"] == 3
    assert rm.check_rate_limit("a", window=120)  # a separate, wider window


# -- RateLimiter contract: memory and Redis ------------------------------------------------------


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter(request: pytest.FixtureRequest) -> RateLimiter:
    if request.param == "memory":
        return RateLimiter()
    url = request.getfixturevalue("redis_url")
    prefix = request.getfixturevalue("redis_prefix")
    return RateLimiter(url, key_prefix=prefix.rstrip(":"))


def test_limiter_contract_refuses_past_the_limit_with_retry_after(limiter: RateLimiter) -> None:
    decisions = [limiter.hit("client:1", 5) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    refused = decisions[-1]
    assert 1 <= refused.retry_after <= 60 and refused.remaining == 0 and refused.limit == 5
    assert limiter.hit("client:2", 5).allowed  # keys are independent
    assert limiter.used("client:1", 5) == 5


def test_limiter_kill_switch() -> None:
    limiter = RateLimiter(enabled=False)
    assert all(limiter.hit("k", 1).allowed for _ in range(10))
    assert limiter.used("k", 1) == 0


def test_limiter_falls_back_to_memory_when_redis_stops(own_redis: Any) -> None:
    limiter = RateLimiter(own_redis.url)
    assert limiter.hit("k", 2).allowed
    own_redis.stop()
    # No error reaches the caller: counting continues in this process.
    decisions = [limiter.hit("k", 2) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]
    assert limiter.used("k", 2) == 2
