"""Downloading, reconnects, push events, status and settings."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sync.api import FakeAuthenticator
from sync.engine import SyncEngine
from sync.errors import SyncError
from sync.fake_server import Fault
from sync.models import OutboxState
from sync.settings import GovernorSettings
from sync.store import LocalStore
from tests.sync.conftest import GOVERNOR, World, run


def test_seeds_sync_as_deltas_with_tombstones(world: World) -> None:
    world.server.add_seed("GEN-1", "Healthcare read-only")
    world.server.add_seed("GEN-2", "Finance cap")
    run(world.engine.download())
    assert {s.id for s in world.engine.seeds()} == {"GEN-1", "GEN-2"}
    world.server.delete_seed("GEN-1")
    world.server.add_seed("GEN-3", "Retail")
    run(world.engine.download())
    assert {s.id for s in world.engine.seeds()} == {"GEN-2", "GEN-3"}
    assert world.store.cursor("seeds").cursor == str(world.server.seed_version)
    assert world.engine.seed("GEN-2") is not None and world.engine.seed("GEN-1") is None


def test_an_unchanged_resync_costs_a_few_hundred_bytes_per_collection(world: World) -> None:
    world.server.add_seed("GEN-1", "x" * 5000)
    run(world.engine.download())
    run(world.engine.download())
    costs = world.engine.downloader.bytes_by_collection
    assert set(costs) == {"dashboard", "approvals", "agents", "seeds", "violations",
                          "notifications"}
    assert all(size < 400 for size in costs.values()), costs


def test_approval_details_are_fetched_when_their_version_changes(world: World) -> None:
    detail = world.engine.approval("APR-0")
    assert detail is not None and detail.pipeline == []
    world.server.approvals["APR-0"]["version"] = 2
    world.server.approvals["APR-0"]["pipeline"] = [
        {"stage": "submitted", "status": "passed"}]
    before = len(world.server.requests)
    run(world.engine.download())
    fetched = [r for r in world.server.requests[before:] if r.endswith("/APR-0")]
    assert fetched and world.engine.approval("APR-0").pipeline[0].stage == "submitted"  # type: ignore[union-attr]


def test_approvals_gone_from_the_server_are_forgotten(world: World) -> None:
    del world.server.approvals["APR-1"]
    run(world.engine.download())
    assert world.engine.approval("APR-1") is None


def test_filters_and_search_over_cached_approvals(world: World) -> None:
    assert len(world.engine.approvals()) == 4
    assert [a.id for a in world.engine.approvals("veto_window")] == ["APR-W"]
    assert [a.id for a in world.engine.approvals("decided")] == ["APR-W"]
    assert [a.id for a in world.engine.approvals(query="apr-2")] == ["APR-2"]
    assert len(world.engine.approvals(limit=2, offset=1)) == 2
    world.clock.advance(3 * 3600)
    assert world.engine.approvals("veto_window") == []


def test_a_failing_collection_does_not_stop_the_others(world: World) -> None:
    world.server.add_seed("GEN-1", "Seed")
    original = world.server._route

    def route(request: httpx.Request, fault: Fault | None) -> httpx.Response:
        if request.url.path.endswith("/violations"):
            from sync.fake_server import _error
            return _error(404, "NOT_FOUND", "No violations here.")
        return original(request, fault)

    world.server._route = route  # type: ignore[method-assign]
    assert run(world.engine.download()) is False
    assert world.engine.seed("GEN-1") is not None
    assert "NOT_FOUND" in (world.engine.status().last_error or "")


def test_notifications_are_fetched_after_the_last_one_seen(world: World) -> None:
    stamp = world.clock.now().isoformat()
    world.server.notifications = [{"id": "n1", "type": "t", "timestamp": stamp}]
    run(world.engine.download())
    world.server.notifications.append({"id": "n2", "type": "t", "timestamp": stamp})
    run(world.engine.download())
    assert {n.id for n in world.engine.notifications()} == {"n1", "n2"}
    assert world.store.cursor("notifications").cursor == "n2"
    world.engine.mark_read("n1")
    assert [n.read for n in world.engine.notifications() if n.id == "n1"] == [True]


def test_status_reports_pending_age_and_last_sync(world: World) -> None:
    seen: list[str] = []
    unsubscribe = world.engine.subscribe(seen.append)
    world.engine.approve("APR-0")
    world.clock.advance(90)
    status = world.engine.status()
    assert status.pending_count == 1 and status.oldest_pending_age_s == 90
    assert status.signed_in and status.last_synced_at is not None
    assert {"outbox", "approvals", "status"} <= set(seen)
    unsubscribe()
    unsubscribe()
    seen.clear()
    run(world.engine.sync_now())
    assert seen == []
    assert world.engine.status().pending_count == 0


def test_a_broken_listener_does_not_break_syncing(world: World) -> None:
    def broken(topic: str) -> None:
        raise RuntimeError("view crashed")

    world.engine.subscribe(broken)
    world.engine.approve("APR-0")
    run(world.engine.sync_now())
    assert world.engine.status().pending_count == 0


def test_a_reconnect_flushes_the_outbox_at_once(world: World) -> None:
    async def scenario() -> None:
        world.server.offline = True
        await world.engine.download()
        assert not world.engine.status().online
        world.engine.approve("APR-0")
        world.engine.approve("APR-1")
        # Backoff holds the enqueue's own attempt back.
        assert world.engine._flush_task is None or world.engine._flush_task.done()
        assert world.engine.status().pending_count == 2
        # A request succeeds again: that alone must send the queue.
        world.server.offline = False
        await world.engine.refresh_dashboard()
        assert world.engine._flush_task is not None
        await world.engine._flush_task
        assert world.engine.status().pending_count == 0

    run(scenario())


@pytest.mark.parametrize("signal", ["network_available", "event_stream_opened"])
def test_os_and_event_stream_signals_count_as_reconnect(world: World, signal: str) -> None:
    async def scenario() -> None:
        world.server.offline = True
        for _ in range(5):
            await world.engine.download()
        assert world.engine.retry.state == "open"
        world.server.offline = False
        world.auth.sign_in_as(world.auth.account())
        entry = world.engine.approve("APR-0")
        getattr(world.engine, signal)()
        assert world.engine._flush_task is not None
        await world.engine._flush_task
        assert world.store.entry(entry.id).state == OutboxState.APPLIED  # type: ignore[union-attr]

    run(scenario())


def test_an_event_decided_elsewhere_updates_the_cached_approval(world: World) -> None:
    world.engine.apply_event({
        "id": "evt-1", "type": "governance.approval.decided", "timestamp":
        world.clock.now().isoformat(), "source": "platform",
        "data": {"approval": {"id": "APR-0", "status": "approved", "version": 2,
                              "decided_by": "sub-other"}}, "cursor": "c-1"})
    shown = world.engine.approval("APR-0")
    assert shown is not None and shown.status.value == "approved"
    assert world.engine.has_event("evt-1") and world.engine.push_cursor() == "c-1"
    assert [n.id for n in world.engine.notifications()] == ["evt-1"]
    world.engine.apply_event({"id": "evt-2", "type": "governance.budget.threshold_exceeded",
                              "data": {"threshold": 80}})
    assert len(world.engine.notifications()) == 2
    with pytest.raises(SyncError, match="lacks an id"):
        world.engine.apply_event({"type": "x"})


def test_an_event_object_with_attributes_is_accepted(world: World) -> None:
    class Event:
        id = "evt-9"
        type = "governance.approval.decided"
        timestamp = world.clock.now()
        source = "platform"
        data = {"approval_id": "APR-1", "id": "APR-1", "status": "vetoed", "version": 4}
        cursor = "c-9"

    world.engine.apply_event(Event())
    assert world.engine.approval("APR-1").status.value == "vetoed"  # type: ignore[union-attr]


def test_start_and_stop_run_the_periodic_sync(world: World) -> None:
    async def scenario() -> None:
        world.engine.settings.sync_interval = 3600
        world.engine.approve("APR-0")
        await world.engine.start()
        for _ in range(50):
            await asyncio.sleep(0.01)
            if world.engine.status().pending_count == 0:
                break
        await world.engine.stop()
        assert world.engine.status().pending_count == 0

    run(scenario())


def test_the_sync_interval_changes_while_running(world: World) -> None:
    assert not world.engine.set_sync_interval(60)  # not started: applies at the start
    with pytest.raises(ValueError, match="Sync interval 0 is not a positive number"):
        world.engine.set_sync_interval(0)

    async def scenario() -> None:
        world.engine.settings.sync_interval = 3600
        await world.engine.start()
        try:
            assert world.engine.set_sync_interval(5)
            assert world.engine.settings.sync_interval == 5
        finally:
            await world.engine.stop()
        assert not world.engine.set_sync_interval(5)  # stopped: nothing to reschedule

    run(scenario())


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.setenv("GOVERNOR_SERVER_URL", "http://127.0.0.1:1234")
    monkeypatch.setenv("GOVERNOR_SYNC_INTERVAL", "5")
    monkeypatch.setenv("GOVERNOR_DATA_DIR", str(tmp_path))
    settings = GovernorSettings()
    assert settings.server_url == "http://127.0.0.1:1234" and settings.sync_interval == 5
    assert settings.database_path == tmp_path / "governor.db"
    assert settings.dashboard_ttl == 300 and settings.step_up_for_veto


def test_the_sign_in_flows_are_delegated(world: World) -> None:
    async def scenario() -> None:
        code = await world.engine.start_device_sign_in()
        assert (await world.engine.finish_device_sign_in(code)).username == "governor"
        assert (await world.engine.sign_in_with_browser(lambda url: None)).username
        assert await world.engine.confirm_identity("governor")
        await world.engine.sign_out()
        assert world.engine.account() is None and not world.engine.status().signed_in

    run(scenario())
    assert timedelta(0) == timedelta(0)


def test_details_are_prefetched_for_open_requests_first_and_capped(world: World) -> None:
    from sync import download

    for i in range(download.DETAIL_PREFETCH + 20):
        world.server.add_approval(f"BULK-{i:03d}", "vetoed" if i % 2 else "pending_approval")
    before = len(world.server.requests)
    run(world.engine.download())
    details = [r for r in world.server.requests[before:] if "/approvals/" in r]
    assert len(details) == download.DETAIL_PREFETCH
    fetched = {r.rsplit("/", 1)[1] for r in details}
    pending = {a for a, rec in world.server.approvals.items()
               if rec["status"] == "pending_approval" and a.startswith("BULK")}
    assert pending <= fetched  # every open request has its detail offline
    run(world.engine.refresh_approval("BULK-001"))
    assert world.store.approval("BULK-001")[1]  # type: ignore[index]


def test_an_unchanged_list_without_etag_is_not_written_again(world: World) -> None:
    from sync.fake_server import _ok

    original = world.server._route

    def route(request: httpx.Request, fault: Fault | None) -> httpx.Response:
        if request.url.path.endswith(("/approvals", "/agents")):
            response = original(request, fault)
            return _ok(response.json()["data"], {"next_cursor": None})  # no ETag
        return original(request, fault)

    world.server._route = route  # type: ignore[method-assign]
    run(world.engine.download())
    seen: list[str] = []
    world.engine.subscribe(seen.append)
    run(world.engine.download())
    assert "approvals" not in seen and "agents" not in seen
    world.server.add_approval("APR-NEW")
    run(world.engine.download())
    assert "approvals" in seen and world.engine.approval("APR-NEW") is not None


def _paged_seeds(world: World, monkeypatch: pytest.MonkeyPatch, ids: range) -> None:
    """Seeds ``GEN-i`` on the server, served two a page and stored every two rows."""
    from sync import download

    monkeypatch.setattr(download, "PAGE", 2)
    monkeypatch.setattr(download, "FLUSH_ROWS", 2)
    for i in ids:
        world.server.add_seed(f"GEN-{i}", f"Seed {i}")


def test_a_long_seed_delta_is_paged_stored_as_it_comes_and_resumable(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    _paged_seeds(world, monkeypatch, range(7))
    run(world.engine.download())
    assert world.store.seed_count() == 7
    assert world.store.cursor("seeds").cursor == str(world.server.seed_version)
    # Deleted, then created again under the same id: the seed exists.
    world.server.delete_seed("GEN-3")
    world.server.add_seed("GEN-3", "Seed 3 again")
    world.server.delete_seed("GEN-5")
    run(world.engine.download())
    assert world.engine.seed("GEN-3").title == "Seed 3 again"  # type: ignore[union-attr]
    assert world.engine.seed("GEN-5") is None


def test_a_delta_cut_short_keeps_its_cursor_and_resumes(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from sync import download

    monkeypatch.setattr(download, "PAGE", 2)
    for i in range(5):
        world.server.add_seed(f"GEN-{i}", f"Seed {i}")
    original = world.server._route
    calls = {"n": 0}

    def route(request: httpx.Request, fault: Fault | None) -> httpx.Response:
        if request.url.path.endswith("/seeds"):
            calls["n"] += 1
            if calls["n"] == 2:
                from sync.fake_server import _error
                return _error(503, "INTERNAL", "down")
        return original(request, fault)

    world.server._route = route  # type: ignore[method-assign]
    before = world.store.cursor("seeds").cursor
    run(world.engine.download())
    assert world.store.cursor("seeds").cursor == before
    run(world.engine.download())
    assert world.store.seed_count() == 5


def test_a_verified_push_event_updates_the_cache_in_the_stubs_shape(world: World) -> None:
    from sync.push import APPROVAL_DECIDED, APPROVAL_PENDING, PushEvent

    now = world.clock.now()
    world.engine.apply_event(PushEvent(
        id="41", type=APPROVAL_DECIDED, timestamp=now, source="governance", metadata={},
        data={"approval_id": "APR-0", "status": "approved", "version": 2,
              "decided_by": "sub-other"}, cursor="41"))
    shown = world.engine.approval("APR-0")
    assert shown is not None and shown.status.value == "approved" and shown.version == 2
    world.engine.apply_event(PushEvent(
        id="42", type=APPROVAL_PENDING, timestamp=now, source="governance", metadata={},
        data={"approval_id": "APR-NEW", "agent_name": "Fresh", "industry": "retail"},
        cursor="42"))
    assert world.engine.approval("APR-NEW") is not None
    assert world.engine.push_cursor() == "42" and world.engine.has_event("41")


def test_an_engine_pointed_at_another_server_starts_from_an_empty_cache(world: World) -> None:
    from sync.engine import SyncEngine, server_identity

    assert server_identity(" HTTP://127.0.0.1:9/ ") == "http://127.0.0.1:9"
    world.engine.approve("APR-0")
    assert world.engine.approvals() and world.engine.status().pending_count == 1
    # The same server spelt another way is the same server: nothing is dropped.
    same = SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9/", sync_interval=0),
                      authenticator=world.auth, store=world.store, transport=world.server)
    assert same.server_switch is None and same.approvals()

    other = SyncEngine(GovernorSettings(server_url="http://127.0.0.1:10", sync_interval=0),
                       authenticator=world.auth, store=world.store, transport=world.server)
    assert other.server_switch is not None and other.server_switch.held == 1
    assert other.approvals() == [] and other.status().pending_count == 0
    held = other.outbox()[0]
    assert held.state is OutboxState.HELD and "http://127.0.0.1:9" in (held.error_message or "")


def test_the_servers_seed_schema_is_kept_for_offline_use_and_asked_for_daily(
        world: World) -> None:
    from backend_stub.api.schemas import seed_schema

    assert world.engine.seed_schema() is None  # a server without the route: no rules
    world.server.seed_schema = seed_schema()
    run(world.engine.download())
    kept = world.engine.seed_schema()
    assert kept is not None and kept.body == seed_schema()
    asked = len([r for r in world.server.requests if r.endswith("/seeds/schema")])
    run(world.engine.download())  # within the day: not asked again
    assert len([r for r in world.server.requests if r.endswith("/seeds/schema")]) == asked
    world.server.offline = True
    world.clock.advance(2 * 86400)
    run(world.engine.download())  # offline and a day old: the kept rules still answer
    assert world.engine.seed_schema() == kept
    world.server.offline = False
    run(world.engine.download())  # a day old: asked again, a 304, kept as it was
    assert len([r for r in world.server.requests if r.endswith("/seeds/schema")]) == asked + 1
    refreshed = world.engine.seed_schema()
    assert refreshed is not None and refreshed.body == kept.body
    assert refreshed.fetched_at > kept.fetched_at


def test_the_seed_schema_is_dropped_with_the_rest_of_a_servers_cache(world: World) -> None:
    from backend_stub.api.schemas import seed_schema

    world.server.seed_schema = seed_schema()
    run(world.engine.download())
    world.store.bind_server("http://127.0.0.1:9")
    assert world.engine.seed_schema() is not None
    world.store.bind_server("http://other.example")
    assert world.engine.seed_schema() is None


def test_building_an_engine_that_syncs_imports_its_scheduler(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The app builds the engine in a worker thread and starts it on the event loop: the
    scheduler's import belongs to the build, so ``start()`` does not hold the loop."""
    for name in [n for n in sys.modules if n.startswith("apscheduler")]:
        monkeypatch.delitem(sys.modules, name)
    SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=60),
               authenticator=FakeAuthenticator(GOVERNOR), store=LocalStore())
    assert "apscheduler.schedulers.asyncio" in sys.modules


@pytest.mark.parametrize("page", [[{"title": "no id"}], ["GEN-9"], {"id": "GEN-9"}])
def test_a_malformed_seed_page_is_refused_and_loses_nothing_stored(
        world: World, monkeypatch: pytest.MonkeyPatch, page: object) -> None:
    _paged_seeds(world, monkeypatch, range(3))
    run(world.engine.download())
    cursor = world.store.cursor("seeds").cursor
    for i in range(3, 8):
        world.server.add_seed(f"GEN-{i}", f"Seed {i}")
    original = world.server._route
    calls = {"n": 0}

    def route(request: httpx.Request, fault: Fault | None) -> httpx.Response:
        response = original(request, fault)
        if request.url.path.endswith("/seeds"):
            calls["n"] += 1
            if calls["n"] == 3:  # after a flush of the first two pages
                body = response.json()
                return httpx.Response(200, json={**body, "data": page})
        return response

    world.server._route = route  # type: ignore[method-assign]
    assert run(world.engine.download()) is False
    error = world.engine.status().last_error or ""
    assert "seeds page" in error and "Sync again" in error
    assert world.store.cursor("seeds").cursor == cursor
    # The two pages before it were stored as they came (the second one's write was on
    # its way in the worker thread when the third page was refused, and finished).
    assert {s.id for s in world.engine.seeds()} == {f"GEN-{i}" for i in range(7)}
    world.server._route = original  # type: ignore[method-assign]
    assert run(world.engine.download()) is True
    assert world.store.seed_count() == 8


def test_a_delta_cancelled_while_a_write_is_on_its_way_lets_it_finish_and_keeps_its_cursor(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    _paged_seeds(world, monkeypatch, range(6))
    before = world.store.cursor("seeds").cursor
    writing, release = threading.Event(), threading.Event()
    upsert = world.store.upsert_seeds

    def slow_upsert(seeds: Iterable[dict[str, Any]]) -> int:
        writing.set()
        release.wait(10)
        return upsert(seeds)

    monkeypatch.setattr(world.store, "upsert_seeds", slow_upsert)

    async def scenario() -> None:
        task = asyncio.ensure_future(world.engine.downloader.seeds())
        while not writing.is_set():
            await asyncio.sleep(0.001)
        task.cancel()
        await asyncio.sleep(0.01)
        assert not task.done()  # it waits for the write in the worker thread
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert world.store.seed_count() == 2  # the write on its way, and nothing after it
    assert world.store.cursor("seeds").cursor == before
    monkeypatch.setattr(world.store, "upsert_seeds", upsert)
    run(world.engine.download())
    assert world.store.seed_count() == 6
