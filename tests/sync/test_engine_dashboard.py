from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from sync.api import FakeAuthenticator
from sync.clock import FakeClock
from sync.engine import SyncEngine
from sync.models import Account
from sync.settings import GovernorSettings
from sync.store import LocalStore

GOVERNOR = Account(sub="sub-governor", username="governor",
                   scopes=frozenset({"governance:read", "governance:write", "veto:execute"}))
DASHBOARD = {"active_agents": 3, "pending_approvals": 2, "in_veto_window": 1,
             "generated_at": "2026-01-01T12:00:00Z"}


def _engine(handler: Callable[[httpx.Request], httpx.Response], clock: FakeClock,
            store: LocalStore | None = None) -> SyncEngine:
    return SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=0),
                      authenticator=FakeAuthenticator(GOVERNOR), store=store or LocalStore(),
                      transport=httpx.MockTransport(handler), clock=clock)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_dashboard_is_fetched_cached_and_revalidated_with_its_etag() -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("if-none-match"))
        if request.headers.get("if-none-match") == '"v1"':
            return httpx.Response(304, headers={"ETag": '"v1"'})
        return httpx.Response(200, json={"data": DASHBOARD, "meta": {}},
                              headers={"ETag": '"v1"'})

    clock = FakeClock()
    engine = _engine(handler, clock)
    cached = _run(engine.refresh_dashboard())
    assert cached is not None and cached.dashboard.active_agents == 3 and not cached.stale
    clock.advance(400)
    assert engine.dashboard() is not None and engine.dashboard().stale  # type: ignore[union-attr]
    again = _run(engine.refresh_dashboard())
    assert seen == [None, '"v1"']
    assert again is not None and not again.stale and engine.status().online


def test_dashboard_offline_is_read_from_the_cache_and_shown_stale_with_its_age() -> None:
    clock = FakeClock()
    store = LocalStore()
    online = _engine(lambda r: httpx.Response(200, json={"data": DASHBOARD, "meta": {}}),
                     clock, store)
    _run(online.refresh_dashboard())

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("no route", request=request)

    offline = _engine(down, clock, store)
    clock.advance(301)
    cached = _run(offline.refresh_dashboard())
    assert cached is not None and cached.stale and cached.age_s == 301
    status = offline.status()
    assert not status.online
    assert status.last_error is not None and "Cannot reach" in status.last_error


def test_no_dashboard_before_the_first_sync() -> None:
    assert _engine(lambda r: httpx.Response(500), FakeClock()).dashboard() is None


def test_fleet_compliance_is_cached_offline_with_the_rest(tmp_path: Any) -> None:
    compliance = {"window_days": 30,
                  "seed_match_rate": {"value": 0.7, "target": 0.6, "direction": "above",
                                      "met": True, "matched": 7, "requests": 10},
                  "veto_rate": {"value": 0.1, "target": 0.05, "direction": "below",
                                "met": False, "vetoed": 1, "decided": 10}}
    store = LocalStore(tmp_path / "cache.db")
    online = _engine(lambda r: httpx.Response(
        200, json={"data": {**DASHBOARD, "compliance": compliance}, "meta": {}}),
        FakeClock(), store)
    _run(online.refresh_dashboard())
    offline = _engine(lambda r: httpx.Response(503), FakeClock(), store)
    cached = _run(offline.refresh_dashboard())
    assert cached is not None and cached.dashboard.compliance is not None
    assert cached.dashboard.compliance.model_dump() == {
        "window_days": 30,
        "seed_match_rate": {"value": 0.7, "target": 0.6, "direction": "above", "met": True},
        "veto_rate": {"value": 0.1, "target": 0.05, "direction": "below", "met": False}}
