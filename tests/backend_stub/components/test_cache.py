from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from backend_stub.clock import FakeClock
from backend_stub.components.cache import (
    CacheHierarchy,
    CacheTier,
    MemoryTier,
    RedisTier,
    SimpleCache,
    SqlTier,
)
from backend_stub.components.errors import CacheSerializationError
from backend_stub.db import Database

# -- SimpleCache ----------------------------------------------------------------------------


def test_simple_cache_get_set_and_default() -> None:
    cache = SimpleCache(max_size=10)
    assert cache.get("k") is None
    assert cache.get("k", default=7) == 7
    cache.set("k", {"a": 1})
    assert cache.get("k") == {"a": 1}
    assert "k" in cache and len(cache) == 1


def test_simple_cache_keeps_none_apart_from_a_miss() -> None:
    cache = SimpleCache()
    cache.set("none", None)
    assert cache.get("none", default="missing") is None
    assert "none" in cache


def test_simple_cache_expires_entries_by_the_clock() -> None:
    clock = FakeClock()
    cache = SimpleCache(clock=clock)
    cache.set("short", 1, ttl=10)
    cache.set("forever", 2)
    clock.advance(9)
    assert cache.get("short") == 1
    clock.advance(2)
    assert cache.get("short") is None
    assert cache.get("forever") == 2


def test_simple_cache_default_ttl_and_non_positive_ttl() -> None:
    clock = FakeClock()
    cache = SimpleCache(default_ttl=5, clock=clock)
    cache.set("k", 1)
    cache.set("gone", 1)
    cache.set("gone", 2, ttl=0)
    assert "gone" not in cache
    clock.advance(6)
    assert cache.get("k") is None


def test_simple_cache_lru_eviction_bounds_memory() -> None:
    cache = SimpleCache(max_size=100)
    for i in range(10_000):
        cache.set(i, "x" * 10)
    assert len(cache) == 100
    cache.get(9_900)  # recently used survives the next insert
    cache.set("new", 1)
    assert 9_900 in cache and 9_901 not in cache


def test_simple_cache_delete_and_clear() -> None:
    cache = SimpleCache()
    cache.set("a", 1)
    assert cache.delete("a") is True
    assert cache.delete("a") is False
    cache.set("b", 2)
    cache.clear()
    assert len(cache) == 0


def test_simple_cache_kill_switch_stores_nothing() -> None:
    cache = SimpleCache(enabled=False)
    cache.set("k", 1)
    assert cache.get("k") is None


def test_simple_cache_refuses_a_zero_size() -> None:
    with pytest.raises(ValueError, match="max_size is 0"):
        SimpleCache(max_size=0)


def test_simple_cache_100_threads() -> None:
    cache = SimpleCache(max_size=50)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(200):
                cache.set((n, i % 60), i)
                cache.get((n, (i * 7) % 60))
                if i % 13 == 0:
                    cache.delete((n, i % 60))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(cache) <= 50


# -- tier contract: memory, SQLite, PostgreSQL, Redis -----------------------------------------


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres),
                        pytest.param("redis", marks=pytest.mark.redis)])
def tier(request: pytest.FixtureRequest) -> tuple[CacheTier, FakeClock | None]:
    clock = FakeClock()
    if request.param == "memory":
        return MemoryTier("l2", clock=clock), clock
    if request.param == "redis":
        client = request.getfixturevalue("redis_client")
        prefix = request.getfixturevalue("redis_prefix")
        return RedisTier(client, prefix=prefix), None
    db: Database = request.getfixturevalue(f"{request.param}_db")
    return SqlTier(db, clock=clock), clock


def test_tier_contract_get_set_overwrite_delete(tier: tuple[CacheTier, Any]) -> None:
    t, _ = tier
    assert t.get("k") is None
    t.set("k", "v1", 60)
    assert t.get("k") == "v1"
    t.set("k", "v2 ünï", 60)
    assert t.get("k") == "v2 ünï"
    t.delete("k")
    assert t.get("k") is None
    t.delete("never-there")


def test_tier_contract_expiry(tier: tuple[CacheTier, FakeClock | None]) -> None:
    t, clock = tier
    t.set("k", "v", 0.05)
    if clock is not None:
        clock.advance(1)
    else:  # Redis keeps its own time; this waits for Redis, it asserts nothing about speed
        time.sleep(0.2)
    assert t.get("k") is None


def test_sql_tier_purges_expired_rows(sqlite_db: Database) -> None:
    clock = FakeClock()
    t = SqlTier(sqlite_db, clock=clock)
    t.set("a", "1", 5)
    t.set("b", "1", 500)
    clock.advance(10)
    assert t.purge_expired() == 1
    assert t.get("b") == "1"


# -- CacheHierarchy -------------------------------------------------------------------------


class CountingTier:
    """Wraps a tier, counting calls; optionally failing or slow."""

    def __init__(self, inner: CacheTier, *, delay: float = 0.0) -> None:
        self.inner = inner
        self.name = inner.name
        self.gets = 0
        self.sets = 0
        self.fail = False
        self.delay = delay

    def _maybe_fail(self) -> None:
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise ConnectionError(f"{self.name} is down")

    def get(self, key: str) -> str | None:
        self.gets += 1
        self._maybe_fail()
        return self.inner.get(key)

    def set(self, key: str, value: str, ttl: float) -> None:
        self.sets += 1
        self._maybe_fail()
        self.inner.set(key, value, ttl)

    def delete(self, key: str) -> None:
        self._maybe_fail()
        self.inner.delete(key)


def memory_hierarchy(clock: FakeClock | None = None, **kwargs: Any
                     ) -> tuple[CacheHierarchy, CountingTier, CountingTier, list[str]]:
    clock = clock or FakeClock()
    l2 = CountingTier(MemoryTier("l2", clock=clock))
    l3 = CountingTier(MemoryTier("l3", clock=clock))
    seen: list[str] = []
    cache = CacheHierarchy(l1_max_size=100, l2_ttl=300, l3_ttl=3600, l2=l2, l3=l3, clock=clock,
                           observer=seen.append, **kwargs)
    return cache, l2, l3, seen


@pytest.fixture(params=[("memory", "memory"),
                        pytest.param(("redis", "sqlite"), marks=pytest.mark.redis),
                        pytest.param(("redis", "postgres"),
                                     marks=[pytest.mark.redis, pytest.mark.postgres])])
def hierarchy(request: pytest.FixtureRequest) -> CacheHierarchy:
    l2_kind, l3_kind = request.param
    clock = FakeClock()
    if l2_kind == "memory":
        return CacheHierarchy(l2=MemoryTier("l2", clock=clock), l3=MemoryTier("l3", clock=clock),
                              clock=clock)
    l2 = RedisTier(request.getfixturevalue("redis_client"),
                   prefix=request.getfixturevalue("redis_prefix"))
    l3 = SqlTier(request.getfixturevalue(f"{l3_kind}_db"), clock=clock)
    return CacheHierarchy(l2=l2, l3=l3, clock=clock)


def test_hierarchy_contract_write_through_and_promotion(hierarchy: CacheHierarchy) -> None:
    hierarchy.set("decision:1", {"approved": False, "n": [1, 2]}, ttl=600)
    hierarchy.l1.clear()
    assert hierarchy.get("decision:1") == {"approved": False, "n": [1, 2]}  # from L2
    hierarchy.delete("decision:1")
    assert hierarchy.get("decision:1", default="gone") == "gone"


def test_hierarchy_contract_get_or_compute(hierarchy: CacheHierarchy) -> None:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"value": 42}

    assert hierarchy.get_or_compute("k", compute) == {"value": 42}
    hierarchy.l1.clear()
    assert hierarchy.get_or_compute("k", compute) == {"value": 42}
    assert len(calls) == 1


def test_get_promotes_an_l2_hit_into_l1() -> None:
    cache, _l2, l3, seen = memory_hierarchy()
    cache.set("k", "v")
    cache.l1.clear()
    assert cache.get("k") == "v"
    assert cache.get("k") == "v"
    assert seen == ["l2", "l1"]
    assert l3.gets == 0


def test_get_promotes_an_l3_hit_into_l2_and_l1_keeping_its_lifetime() -> None:
    clock = FakeClock()
    cache, l2, _l3, seen = memory_hierarchy(clock)
    cache.set("k", "v", ttl=100)
    cache.l1.clear()
    l2.inner.delete("k")
    assert cache.get("k") == "v"
    assert seen == ["l3"]
    assert l2.inner.get("k") is not None
    clock.advance(101)  # the promoted copies die with the original
    assert cache.get("k") is None
    assert seen[-1] == "miss"


def test_set_without_ttl_uses_each_level_default() -> None:
    clock = FakeClock()
    cache, l2, l3, _ = memory_hierarchy(clock)
    cache.set("k", "v")
    clock.advance(301)
    assert l2.inner.get("k") is None
    assert l3.inner.get("k") is not None
    assert cache.get("k") == "v"  # promoted back from L3


def test_set_with_non_positive_ttl_deletes() -> None:
    cache, _l2, _l3, _ = memory_hierarchy()
    cache.set("k", "v")
    cache.set("k", "w", ttl=0)
    assert cache.get("k") is None


def test_values_that_are_not_json_are_refused_with_the_key_named() -> None:
    cache, *_ = memory_hierarchy()
    circular: dict[str, Any] = {}
    circular["self"] = circular
    with pytest.raises(CacheSerializationError, match="'loop'"):
        cache.set("loop", circular)
    with pytest.raises(CacheSerializationError, match="JSON-compatible"):
        cache.set("obj", object())
    with pytest.raises(CacheSerializationError):
        cache.set("nan", float("nan"))


def test_edge_values_round_trip() -> None:
    cache, *_ = memory_hierarchy()
    edge: list[tuple[str, Any]] = [("none", None), ("empty", {}), ("list", []), ("zero", 0),
                                   ("s", "")]
    for key, value in edge:
        cache.set(key, value)
        cache.l1.clear()
        assert cache.get(key, default="MISSING") == value


def test_a_corrupt_lower_entry_is_dropped_not_served() -> None:
    cache, l2, l3, _seen = memory_hierarchy()
    l2.inner.set("k", "not json", 60)
    l3.inner.set("k", '{"no": "envelope"}', 60)
    assert cache.get("k", default="miss") == "miss"
    assert l2.inner.get("k") is None and l3.inner.get("k") is None


def test_an_expired_envelope_is_a_miss() -> None:
    cache, l2, _l3, _ = memory_hierarchy()
    l2.inner.set("k", '{"v": 1, "exp": 0}', 60)
    assert cache.get("k") is None


def test_kill_switch_makes_the_hierarchy_a_pass_through() -> None:
    cache, l2, l3, seen = memory_hierarchy(enabled=False)
    cache.set("k", "v")
    assert cache.get("k") is None
    assert l2.sets == 0 and l3.sets == 0
    calls: list[int] = []

    def five() -> int:
        calls.append(1)
        return 5

    assert cache.get_or_compute("k", five) == 5
    assert cache.get_or_compute("k", five) == 5
    assert len(calls) == 2
    assert seen == ["miss"]


def test_hierarchy_without_lower_tiers_is_l1_only() -> None:
    cache = CacheHierarchy()
    assert cache.tiers == ["l1"]
    cache.set("k", object())  # no sharing, no serialisation needed
    assert cache.get("k") is not None


def test_invalid_ttls_are_refused() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        CacheHierarchy(l2_ttl=0)


def test_get_or_compute_computes_once_for_100_concurrent_callers() -> None:
    cache, *_ = memory_hierarchy()
    calls: list[int] = []
    gate = threading.Event()
    results: list[Any] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        gate.wait(5)
        return {"answer": 42}

    def caller() -> None:
        results.append(cache.get_or_compute("hot", compute))

    threads = [threading.Thread(target=caller) for _ in range(100)]
    for t in threads:
        t.start()
    time.sleep(0.05)  # let them pile up on the key's lock (not a timing assertion)
    gate.set()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert results == [{"answer": 42}] * 100
    assert cache._flights == {}


def test_100_threads_on_one_cache_mixed_operations() -> None:
    cache, *_ = memory_hierarchy()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                key = f"k{(n + i) % 20}"
                cache.set(key, {"n": n, "i": i})
                value = cache.get(key)
                assert value is None or set(value) == {"n", "i"}
                cache.get_or_compute(f"c{i % 5}", lambda: {"c": 1})
                if i % 17 == 0:
                    cache.delete(key)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# -- chaos: a failing or slow lower tier ----------------------------------------------------------


def test_a_failing_l2_degrades_to_l1_and_l3_without_errors() -> None:
    cache, l2, _l3, _seen = memory_hierarchy()
    cache.set("before", "v")
    l2.fail = True
    cache.set("during", "w")  # no error to the caller
    cache.l1.clear()
    assert cache.get("before") == "v"  # from L3
    assert cache.get("during") == "w"
    calls_while_open = l2.gets
    cache.l1.clear()
    cache.get("before")
    assert l2.gets == calls_while_open  # the breaker stopped calling the dead tier


def test_the_l2_breaker_lets_traffic_back_after_its_timeout() -> None:
    clock = FakeClock()
    cache, l2, _l3, _ = memory_hierarchy(clock)
    l2.fail = True
    for _ in range(3):
        cache.get("x")
    l2.fail = False
    clock.advance(11)
    cache.set("k", "v")
    assert l2.inner.get("k") is not None


def test_redis_stopped_mid_run_degrades_to_l1_and_l3(own_redis: Any, sqlite_db: Database) -> None:
    import redis

    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    seen: list[str] = []
    cache = CacheHierarchy(l2=RedisTier(client, prefix="t:"), l3=SqlTier(sqlite_db),
                           observer=seen.append)
    cache.set("a", {"v": 1})
    cache.l1.clear()
    assert cache.get("a") == {"v": 1}
    assert seen == ["l2"]
    own_redis.stop()
    cache.l1.clear()
    assert cache.get("a") == {"v": 1}  # L3 answers, no error
    cache.set("b", [1, 2, 3])
    cache.l1.clear()
    assert cache.get("b") == [1, 2, 3]
    assert cache.get_or_compute("c", lambda: "computed") == "computed"
    assert seen[-2:] == ["l3", "l3"] or "l3" in seen
    client.close()


def test_a_slow_database_does_not_slow_l1_hits_or_duplicate_work(sqlite_db: Database) -> None:
    slow = CountingTier(SqlTier(sqlite_db), delay=0.02)
    cache = CacheHierarchy(l3=slow)
    calls: list[int] = []
    results: list[Any] = []

    def report() -> dict[str, int]:
        calls.append(1)
        return {"r": 1}

    def caller() -> None:
        results.append(cache.get_or_compute("report", report))

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [{"r": 1}] * 20
    gets_before = slow.gets
    for _ in range(100):
        assert cache.get("report") == {"r": 1}
    assert slow.gets == gets_before  # L1 answered every one
