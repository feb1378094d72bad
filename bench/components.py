"""Core components figures, all measured in one run.

- ``components_overhead_pct``: ``GET /v1/mobile/approvals`` (a real token, demo data) on a
  stub app with every component on, against the same app built with every kill switch on
  (``GOVSTUB_DISABLE_CACHE``, ``_METRICS``, ``_TRACING``, ``_RATE_LIMIT``). Both apps run
  in this process over ASGI (no sockets, so network noise does not drown the difference);
  requests alternate in a random order each round so machine load hits both alike, and the
  figure compares the medians. Target: at most 5 % (the design's own).
- ``l1_hit_p95_ms``: ``CacheHierarchy.get`` answered by L1. Target: at most 0.05 ms.
- ``l2_redis_hit_p95_ms``: ``CacheHierarchy.get`` answered by L2 on the real Redis at
  127.0.0.1:6379 (L1 emptied before each, untimed). Target: at most 1.0 ms.

``python bench/components.py``; ``BENCH_SHORT=1`` runs fewer rounds. The last line is one
JSON object ``{"bench": "components", "figures", "targets", "ok"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from backend_stub.app import create_app
from backend_stub.clock import SystemClock
from backend_stub.components import install_components
from backend_stub.components.cache import CacheHierarchy, RedisTier
from backend_stub.db import Database
from backend_stub.settings import StubSettings

TARGETS = {"components_overhead_pct": {"max": 5.0}, "l1_hit_p95_ms": {"max": 0.05},
           "l2_redis_hit_p95_ms": {"max": 1.0}}
SHORT = os.environ.get("BENCH_SHORT") == "1"
ROUNDS = 300 if SHORT else 2000
WARMUP = 100
CACHE_SAMPLES = 2000 if SHORT else 20000
REDIS_URL = os.environ.get("GOVERNOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KILL_SWITCHES = {"disable_cache": True, "disable_metrics": True, "disable_tracing": True,
                 "disable_rate_limit": True}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_app(root: Path, name: str, **switches: bool) -> Any:
    values: dict[str, Any] = {
        "data_dir": root / name, "db_url": f"sqlite:///{root / name}.db", "demo": True,
        "public_url": "http://testserver", "log_level": "WARNING",
        "secret_key": "bench-secret-key-" + "x" * 16, **switches}
    settings = StubSettings(**values)
    app = create_app(settings, clock=SystemClock(), database=Database(settings.database_url))
    install_components(app)  # a no-op once create_app installs them itself
    return app


async def http_timings(root: Path) -> tuple[list[float], list[float]]:
    from backend_stub.oauth.testing import bearer

    apps = {"on": build_app(root, "on"), "off": build_app(root, "off", **KILL_SWITCHES)}
    clients = {k: httpx.AsyncClient(transport=httpx.ASGITransport(app=a),
                                     base_url="http://testserver", headers=bearer(a))
               for k, a in apps.items()}
    timings: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for k in clients:
            answer = await clients[k].get("/v1/mobile/approvals")
            if answer.status_code != 200:
                raise SystemExit(f"GET /v1/mobile/approvals on the {k!r} app answered "
                                 f"{answer.status_code}: {answer.text[:300]}")
        for n in range(WARMUP + ROUNDS):
            order = ["on", "off"]
            random.shuffle(order)
            for k in order:
                started = time.perf_counter()
                answer = await clients[k].get("/v1/mobile/approvals")
                elapsed = (time.perf_counter() - started) * 1000
                assert answer.status_code == 200, answer.text
                if n >= WARMUP:
                    timings[k].append(elapsed)
    finally:
        for c in clients.values():
            await c.aclose()
        for a in apps.values():
            a.state.components.close()
    return timings["on"], timings["off"]


def l1_timings() -> list[float]:
    cache = CacheHierarchy(l1_max_size=1000)
    for i in range(1000):
        cache.set(f"k{i}", {"i": i, "payload": "x" * 100})
    out = []
    for n in range(CACHE_SAMPLES):
        key = f"k{n % 1000}"
        started = time.perf_counter()
        cache.get(key)
        out.append((time.perf_counter() - started) * 1000)
    return out


def l2_timings() -> list[float] | None:
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        print(f"Redis at {REDIS_URL} is not reachable ({exc}): l2_redis_hit_p95_ms not measured")
        return None
    prefix = f"bench-components:{uuid.uuid4().hex[:8]}:"
    cache = CacheHierarchy(l1_max_size=1000, l2=RedisTier(client, prefix=prefix))
    dashboard = {"active_agents": 12, "pending_approvals": 4, "recent_vetoes": [1, 2, 3],
                 "health": "ok", "budget": {"utilisation": 0.42}}
    cache.set("dashboard", dashboard)
    out = []
    try:
        for _ in range(CACHE_SAMPLES // 4):
            cache.l1.clear()
            started = time.perf_counter()
            value = cache.get("dashboard")
            out.append((time.perf_counter() - started) * 1000)
            assert value == dashboard
    finally:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()
    return out


def main() -> None:
    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        on, off = asyncio.run(http_timings(Path(tmp)))
    l1 = l1_timings()
    l2 = l2_timings()
    rows: list[tuple[str, list[float]]] = [
        ("GET /v1/mobile/approvals, components on", on),
        ("GET /v1/mobile/approvals, kill switches", off),
        ("L1 hit", l1)]
    if l2 is not None:
        rows.append(("L2 (Redis) hit", l2))
    print(f"{'measurement (ms)':42} {'n':>6} {'p50':>9} {'p95':>9} {'max':>9}")
    for name, values in rows:
        print(f"{name:42} {len(values):6d} {percentile(values, 0.5):9.4f} "
              f"{percentile(values, 0.95):9.4f} {max(values):9.4f}")
    figures: dict[str, float | None] = {
        "components_overhead_pct": round(
            (statistics.median(on) / statistics.median(off) - 1) * 100, 2),
        "l1_hit_p95_ms": round(percentile(l1, 0.95), 5),
        "l2_redis_hit_p95_ms": None if l2 is None else round(percentile(l2, 0.95), 4),
    }
    print()
    ok = True
    for name, value in figures.items():
        limit = TARGETS[name]["max"]
        met = value is not None and value <= limit
        ok = ok and met
        print(f"{name}: {value} (max {limit}) {'ok' if met else 'NOT MET'}")
    print(json.dumps({"bench": "components", "figures": figures, "targets": TARGETS,
                      "ok": ok}))


if __name__ == "__main__":
    main()
