"""The outbox against the fake server: every outcome sorted, nothing lost or doubled."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import orjson
import pytest

from sync.engine import SyncEngine
from sync.errors import InvalidDecision, SignInRequired
from sync.fake_server import Fault
from sync.models import (
    ApprovalStatus,
    Attachment,
    DecisionAction,
    OutboxState,
    SeedDraft,
    VetoCategory,
)
from sync.store import Outcome
from tests.sync.conftest import AUDITOR, OTHER, World, run


def test_a_decision_shows_at_once_as_pending_and_survives_a_restart(world: World) -> None:
    entry = world.engine.approve("APR-0", comment="fine")
    assert entry.state == OutboxState.QUEUED and entry.seq == 1
    assert entry.payload["expected_version"] == 1 and entry.payload["device_id"] == "dev-test"
    shown = world.engine.approval("APR-0")
    assert shown is not None and shown.pending_decision == DecisionAction.APPROVE
    assert shown.status == ApprovalStatus.APPROVED
    assert [a.id for a in world.engine.approvals("pending")] == ["APR-2", "APR-1"]
    assert world.engine.status().pending_count == 1
    again = world.new_engine()
    assert [e.id for e in again.outbox({OutboxState.QUEUED})] == [entry.id]


def test_upload_applies_each_decision_once_and_clears_the_pending_mark(world: World) -> None:
    a = world.engine.approve("APR-0")
    b = world.engine.request_changes("APR-1", "needs a budget cap")
    report = run(world.engine.upload())
    assert report is not None and sorted(report.applied) == sorted([a.id, b.id])
    assert world.server.applied_count(a.id) == 1 and world.server.applied_count(b.id) == 1
    shown = world.engine.approval("APR-0")
    assert shown is not None and shown.pending_decision is None
    assert shown.status == ApprovalStatus.APPROVED and shown.version == 2
    assert world.engine.status().pending_count == 0
    assert world.engine.status().online


def test_a_lost_acknowledgement_is_replayed_and_applied_once(world: World) -> None:
    entry = world.engine.approve("APR-0")
    world.server.faults.append("lose_ack")
    run(world.engine.upload())
    assert world.server.applied_count(entry.id) == 1
    assert world.store.entry(entry.id).state == OutboxState.QUEUED  # type: ignore[union-attr]
    run(world.engine.sync_now())
    assert world.store.entry(entry.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
    assert world.server.applied_count(entry.id) == 1


def test_an_entry_left_sending_by_a_killed_process_is_replayed(world: World) -> None:
    entry = world.engine.approve("APR-0")
    world.store.claim("decision", 10, "sub-governor", world.clock.now())
    engine = world.new_engine()  # the process died mid-send
    run(engine.upload())
    assert world.store.entry(entry.id).state == OutboxState.APPLIED  # type: ignore[union-attr]


def test_a_rejected_entry_is_recorded_shown_and_does_not_block_others(world: World) -> None:
    world.server.decide_elsewhere("APR-0", "approved", by="sub-other")
    bad = world.engine.approve("APR-0")
    good = world.engine.approve("APR-1")
    run(world.engine.upload())
    rejected = world.store.entry(bad.id)
    assert rejected is not None and rejected.state == OutboxState.REJECTED
    assert rejected.error_code == "ALREADY_DECIDED"
    assert world.store.entry(good.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
    assert world.engine.status().rejected_count == 1
    conflict = world.engine.conflict(bad.id)
    assert conflict is not None and conflict.decided_by == "sub-other"
    assert conflict.current_status == ApprovalStatus.APPROVED
    assert not conflict.can_decide_again  # approving an approved request makes no sense


def test_a_poison_entry_is_isolated_by_splitting_the_batch(world: World) -> None:
    entries = [world.engine.approve("APR-0"), world.engine.request_changes("APR-1", "POISON"),
               world.engine.approve("APR-2")]
    run(world.engine.upload())
    states = [world.store.entry(e.id).state for e in entries]  # type: ignore[union-attr]
    assert states == [OutboxState.APPLIED, OutboxState.REJECTED, OutboxState.APPLIED]
    assert world.store.entry(entries[1].id).error_code == "VALIDATION_FAILED"  # type: ignore[union-attr]


def test_a_batch_refused_as_too_large_is_split_until_it_fits(world: World) -> None:
    entries = [world.engine.approve(f"APR-{i}") for i in range(3)]
    world.server.faults.append("refuse_batch")
    run(world.engine.upload())
    assert all(world.server.applied_count(e.id) == 1 for e in entries)


def test_reordered_and_missing_results_are_matched_by_id(world: World) -> None:
    entries = [world.engine.approve(f"APR-{i}") for i in range(3)]
    world.server.faults.extend(["drop_result"])
    run(world.engine.upload())
    assert sum(world.store.entry(e.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
               for e in entries) == 2
    world.server.faults.append("reorder")
    run(world.engine.upload())
    assert all(world.store.entry(e.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
               for e in entries)
    assert all(world.server.applied_count(e.id) == 1 for e in entries)


def test_vetoes_are_sent_first(world: World) -> None:
    world.engine.approve("APR-0")
    veto = world.engine.veto("APR-W", VetoCategory.SAFETY, "unsafe network access")
    world.engine.settings.batch_size = 1
    world.engine.outbox_sender.batch_size = 1
    run(world.engine.upload())
    assert world.server.audit[0].decision_id == veto.id


def test_a_401_refreshes_once_and_retries(world: World) -> None:
    entry = world.engine.approve("APR-0")
    world.server.expire_tokens(world.auth.generation)
    run(world.engine.upload())
    assert world.auth.refreshes == 1
    assert world.store.entry(entry.id).state == OutboxState.APPLIED  # type: ignore[union-attr]


def test_a_refused_refresh_keeps_the_outbox_and_asks_to_sign_in(world: World) -> None:
    entry = world.engine.approve("APR-0")
    world.server.expire_tokens(world.auth.generation)
    world.auth.refuse_refresh = True
    run(world.engine.upload())
    status = world.engine.status()
    assert status.needs_sign_in and status.pending_count == 1
    assert world.store.entry(entry.id).state == OutboxState.QUEUED  # type: ignore[union-attr]
    assert world.engine.dashboard() is None or world.engine.approval("APR-0") is not None
    run(world.engine.sign_in_with_password("governor", "governor"))
    assert not world.engine.status().needs_sign_in


def test_a_second_401_after_refresh_asks_to_sign_in(world: World) -> None:
    world.engine.approve("APR-0")
    world.server.min_token_generation = 10**6
    run(world.engine.upload())
    assert world.engine.status().needs_sign_in
    assert world.engine.status().pending_count == 1


def test_429_waits_for_retry_after(world: World) -> None:
    world.engine.approve("APR-0")
    world.server.faults.append("rate_limited")
    run(world.engine.upload())
    assert world.engine.status().pending_count == 1
    assert not world.engine.retry.ready()
    before = len(world.server.requests)
    run(world.engine.tick())
    assert len(world.server.requests) == before  # still waiting
    world.clock.advance(7)
    run(world.engine.tick())
    assert world.engine.status().pending_count == 0


def test_network_errors_back_off_and_open_the_breaker(world: World) -> None:
    world.engine.approve("APR-0")
    for _ in range(5):
        world.server.faults.append("connect_error")
        run(world.engine.upload())
    assert world.engine.retry.state == "open"
    status = world.engine.status()
    assert not status.online and status.pending_count == 1
    assert status.last_error is not None and "Next attempt" in status.last_error
    world.clock.advance(61)
    assert world.engine.retry.state == "half_open"
    run(world.engine.tick())
    assert world.engine.status().pending_count == 0 and world.engine.status().online


def test_server_errors_requeue_without_losing_anything(world: World) -> None:
    entry = world.engine.approve("APR-0")
    world.server.faults.append("server_error")
    run(world.engine.upload())
    assert world.store.entry(entry.id).state == OutboxState.QUEUED  # type: ignore[union-attr]
    assert world.engine.retry.failures == 1


def test_version_conflict_can_be_decided_again_on_the_fresh_version(world: World) -> None:
    entry = world.engine.approve("APR-0")
    world.server.approvals["APR-0"]["version"] = 5  # changed while we were offline
    run(world.engine.upload())
    conflict = world.engine.conflict(entry.id)
    assert conflict is not None and conflict.code == "VERSION_CONFLICT"
    assert conflict.current_version == 5 and conflict.can_decide_again
    again = world.engine.decide_again(entry.id)
    assert again.payload["expected_version"] == 5 and again.id != entry.id
    assert world.store.entry(entry.id) is None
    run(world.engine.upload())
    assert world.store.entry(again.id).state == OutboxState.APPLIED  # type: ignore[union-attr]


def test_a_version_conflict_names_the_fields_that_changed_since_the_decision(
        world: World) -> None:
    entry = world.engine.approve("APR-0")
    record = world.server.approvals["APR-0"]
    record.update(version=record["version"] + 1, requester="finance-team",
                  pipeline=[{"stage": "security_review", "status": "passed"}])
    run(world.engine.upload())
    # Named from the refusal itself, before any download: under the slim answer a
    # rejection still carries the whole request (a CI failure of this session: the
    # refusal's request was stamped like a slim one, and the screen named no field).
    for _ in range(2):
        conflict = world.engine.conflict(entry.id)
        assert conflict is not None and conflict.code == "VERSION_CONFLICT"
        assert [(c.field, c.seen, c.now) for c in conflict.changed] == [
            ("pipeline", "none", "security_review passed"),
            ("requester", "ops", "finance-team")]
        run(world.engine.download())
    world.engine.discard(entry.id)
    assert world.store.seen(entry.id) is None  # kept with its entry, gone with it


def test_veto_after_approval_elsewhere_can_be_decided_again(world: World) -> None:
    entry = world.engine.request_changes("APR-0", "no")
    world.server.decide_elsewhere("APR-0", "approved")
    run(world.engine.upload())
    conflict = world.engine.conflict(entry.id)
    assert conflict is not None and conflict.code == "ALREADY_DECIDED"
    assert not conflict.can_decide_again
    with pytest.raises(InvalidDecision, match="no longer take"):
        world.engine.decide_again(entry.id)
    veto = world.engine.veto("APR-0", VetoCategory.OTHER, "approved by mistake")
    run(world.engine.upload())
    assert world.store.entry(veto.id).state == OutboxState.APPLIED  # type: ignore[union-attr]


def test_decide_again_refuses_an_entry_that_is_not_rejected(world: World) -> None:
    entry = world.engine.approve("APR-0")
    with pytest.raises(InvalidDecision, match="not a rejected decision"):
        world.engine.decide_again(entry.id)
    assert world.engine.conflict(entry.id) is None


def test_a_late_veto_comes_back_window_closed_and_is_kept(world: World) -> None:
    veto = world.engine.veto("APR-W", VetoCategory.BUDGET, "over budget")
    world.clock.advance(3 * 3600)
    run(world.engine.upload())
    entry = world.store.entry(veto.id)
    assert entry is not None and entry.state == OutboxState.REJECTED
    assert entry.error_code == "VETO_WINDOW_CLOSED"
    assert entry.veto_deadline is not None


def test_veto_reminders_one_hour_and_ten_minutes_before_the_deadline(world: World) -> None:
    world.engine.veto("APR-W", VetoCategory.SAFETY, "unsafe")
    assert world.engine.check_deadlines() == 0
    world.clock.advance(3600 + 1)
    assert world.engine.check_deadlines() == 1
    assert world.engine.check_deadlines() == 0
    world.clock.advance(50 * 60)
    assert world.engine.check_deadlines() == 1
    kinds = [n for n in world.engine.notifications() if n.type == "governor.veto.unsent"]
    assert len(kinds) == 2 and "10 minutes" in kinds[0].data["message"]


def test_attachments_are_stored_locally_and_sent_with_the_veto(world: World) -> None:
    files = [Attachment(name="log.txt", content_type="text/plain", data_base64="aGVsbG8=")]
    veto = world.engine.veto("APR-W", VetoCategory.SAFETY, "see log", files)
    assert world.store.attachments([veto.id])[veto.id][0]["name"] == "log.txt"
    run(world.engine.upload())
    assert world.server.applied_count(veto.id) == 1
    assert world.store.attachments([veto.id]) == {}


@pytest.mark.parametrize(("call", "message"), [
    (lambda e: e.approve("APR-X"), "not on this device"),
    (lambda e: e.request_changes("APR-0", " "), "1 to 2000"),
    (lambda e: e.veto("APR-W", VetoCategory.SAFETY, "x" * 2001), "1 to 2000"),
    (lambda e: e.approve("APR-0", comment="x" * 2001), "keep it to"),
    (lambda e: e.veto("APR-W", VetoCategory.SAFETY, "r", [
        Attachment(name=str(i), content_type="a/b", data_base64="") for i in range(6)]),
     "at most 5"),
    (lambda e: e.veto("APR-W", VetoCategory.SAFETY, "r", [
        Attachment(name="bad", content_type="a/b", data_base64="***")]), "not valid base64"),
    (lambda e: e.veto("APR-W", VetoCategory.SAFETY, "r", [
        Attachment(name="big", content_type="a/b", data_base64="A" * (7 * 1024 * 1024))]),
     "5 MB"),
])
def test_invalid_decisions_are_refused_before_queueing(
        world: World, call: Callable[[SyncEngine], object], message: str) -> None:
    with pytest.raises(InvalidDecision, match=message):
        call(world.engine)
    assert world.engine.outbox() == []


def test_a_second_decision_on_the_same_request_must_cancel_the_first(world: World) -> None:
    entry = world.engine.approve("APR-0")
    with pytest.raises(InvalidDecision, match="already queued"):
        world.engine.request_changes("APR-0", "wait")
    world.engine.cancel(entry.id)
    changes = world.engine.request_changes("APR-0", "wait")
    with pytest.raises(InvalidDecision, match="changes_requested"):
        world.engine.veto("APR-0", VetoCategory.OTHER, "stop")
    world.engine.cancel(changes.id)
    world.engine.approve("APR-0")
    veto = world.engine.veto("APR-0", VetoCategory.OTHER, "stop")  # a veto may follow
    assert world.engine.approval("APR-0").pending_decision == DecisionAction.VETO  # type: ignore[union-attr]
    with pytest.raises(InvalidDecision, match="already queued"):
        world.engine.veto("APR-0", VetoCategory.OTHER, "again")
    assert veto.action == DecisionAction.VETO


def test_cancel_and_discard_refuse_entries_in_the_wrong_state(world: World) -> None:
    entry = world.engine.approve("APR-0")
    with pytest.raises(InvalidDecision, match="only rejected or held"):
        world.engine.discard(entry.id)
    run(world.engine.upload())
    with pytest.raises(InvalidDecision, match="only a queued decision"):
        world.engine.cancel(entry.id)
    with pytest.raises(InvalidDecision, match="does not exist"):
        world.engine.cancel("nope")
    with pytest.raises(InvalidDecision, match="does not exist"):
        world.engine.discard("nope")


def test_discard_removes_a_rejected_entry(world: World) -> None:
    world.server.decide_elsewhere("APR-0")
    entry = world.engine.approve("APR-0")
    run(world.engine.upload())
    world.engine.discard(entry.id)
    assert world.engine.outbox() == []


def test_deciding_needs_a_signed_in_account_with_the_scope(world: World) -> None:
    world.auth.sign_in_as(AUDITOR)
    with pytest.raises(InvalidDecision, match="veto:execute"):
        world.engine.veto("APR-W", VetoCategory.OTHER, "no")
    with pytest.raises(InvalidDecision, match="governance:write"):
        world.engine.approve("APR-0")
    world.auth.sign_in_as(None)
    with pytest.raises(SignInRequired):
        world.engine.approve("APR-0")


def test_entries_of_another_account_are_held_until_it_returns(world: World) -> None:
    entry = world.engine.approve("APR-0")
    world.auth.sign_in_as(OTHER)
    run(world.engine.upload())
    assert world.store.entry(entry.id).state == OutboxState.HELD  # type: ignore[union-attr]
    assert world.server.audit == []
    # The account signed in now neither sees nor counts it; it only learns that something
    # another account left waits on this device.
    assert world.engine.outbox() == [] and world.engine.status().held_count == 0
    assert world.engine.status().other_accounts_count == 1
    run(world.engine.sign_in_with_password("governor", "governor"))
    run(world.engine.upload())
    assert world.server.applied_count(entry.id) == 1


def test_new_seeds_are_posted_with_their_idempotency_key(world: World) -> None:
    entry = world.engine.create_seed(SeedDraft(title="Read-only healthcare",
                                               description="file_read only",
                                               conditions={"industry": ["healthcare"]}))
    bad = world.engine.create_seed(SeedDraft(title="Empty", description="", conditions={}))
    world.server.faults.append("lose_ack")
    run(world.engine.upload())
    run(world.engine.upload())
    assert world.server.applied_count(entry.id) == 1
    assert world.store.entry(entry.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
    assert world.store.entry(bad.id).error_code == "VALIDATION_FAILED"  # type: ignore[union-attr]
    assert [s.title for s in world.engine.seeds("healthcare")] == ["Read-only healthcare"]
    with pytest.raises(InvalidDecision, match="title"):
        world.engine.create_seed(SeedDraft(title=" ", description="", conditions={}))


def test_applied_entries_are_pruned_after_a_week(world: World) -> None:
    entry = world.engine.approve("APR-0")
    run(world.engine.upload())
    world.clock.advance(timedelta(days=8).total_seconds())
    world.engine.approve("APR-1")
    run(world.engine.upload())
    assert world.store.entry(entry.id) is None
    assert world.engine.approve("APR-2").seq == 3  # the sequence never goes back


def test_a_full_approval_in_the_answer_also_refreshes_the_detail(world: World) -> None:
    world.server.honours_prefer = False  # a server that ignores Prefer answers in full
    world.engine.approve("APR-0")
    run(world.engine.upload())
    assert world.server.requests[-1] == "POST /v1/mobile/decisions"
    assert "APR-0" not in world.store.stale_detail_ids(10, {"approved"})
    detail = world.engine.approval("APR-0")
    assert detail is not None and detail.version == 2 and detail.decided_by == "sub-governor"


def test_decisions_ask_for_the_slim_answer_and_it_updates_the_cached_summary(
        world: World) -> None:
    sent: list[str] = []
    original = world.server.handle_async_request

    async def spy(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/decisions"):
            sent.append(request.headers.get("prefer", ""))
        return await original(request)

    world.server.handle_async_request = spy  # type: ignore[method-assign]
    run(world.engine.refresh_approval("APR-0"))  # the detail is cached at version 1
    world.clock.advance(60)
    entry = world.engine.approve("APR-0")
    report = run(world.engine.upload())
    assert sent == ["return=minimal"]
    assert report is not None and report.applied == [entry.id]
    shown = world.engine.approval("APR-0")
    assert shown is not None and shown.pending_decision is None
    assert shown.status == ApprovalStatus.APPROVED and shown.version == 2
    summary = next(a for a in world.store.approval_summaries() if a["id"] == "APR-0")
    assert summary["updated_at"] == world.server.approvals["APR-0"]["updated_at"]
    assert summary["agent"]["name"] == "Agent APR-0"  # the rest of the row is kept
    # The slim answer says nothing of the deadline or the decider: the detail is stale
    # and the next download brings both.
    assert "APR-0" in world.store.stale_detail_ids(10, {"approved"})
    run(world.engine.download())
    detail = world.engine.approval("APR-0")
    assert detail is not None and detail.decided_by == "sub-governor"
    assert detail.veto_deadline is not None
    assert "APR-0" not in world.store.stale_detail_ids(10, {"approved"})


def test_a_slim_answer_never_takes_a_cached_request_back_to_an_older_version(
        world: World) -> None:
    entry = world.engine.approve("APR-0")
    old = {"id": "APR-0", "status": "pending_approval", "version": 1, "updated_at": "x"}
    cached = next(a for a in world.store.approval_summaries() if a["id"] == "APR-0")
    world.store.upsert_approvals([{**cached, "version": 3, "status": "vetoed"}])  # newer
    world.store.record_outcomes([Outcome(entry.id, applied=True, approval=old)],
                                world.clock.now())
    summary = next(a for a in world.store.approval_summaries() if a["id"] == "APR-0")
    assert summary["updated_at"] != "x"  # not stamped
    assert summary["version"] == 3 and summary["status"] == "vetoed"


def test_a_slim_approval_without_the_header_is_stamped_not_merged(world: World) -> None:
    entry = world.engine.approve("APR-0")
    slim = {"id": "APR-0", "status": "approved", "version": 2,
            "updated_at": "2026-01-01T00:00:00Z"}
    world.store.record_outcomes([Outcome(entry.id, applied=True, approval=slim)],
                                world.clock.now())
    summary = next(a for a in world.store.approval_summaries() if a["id"] == "APR-0")
    assert summary["status"] == "approved" and summary["version"] == 2
    assert summary["updated_at"] == "2026-01-01T00:00:00Z"
    assert summary["requester"] == "ops"


def test_a_missing_endpoint_keeps_the_queue_instead_of_rejecting_it(world: World) -> None:
    from sync.fake_server import _error

    original = world.server._route

    def route(request: httpx.Request, fault: Fault | None) -> httpx.Response:
        if request.method == "POST":
            return _error(404, "NOT_FOUND", "No route.")
        return original(request, fault)

    world.server._route = route  # type: ignore[method-assign]
    decision = world.engine.approve("APR-0")
    seed = world.engine.create_seed(SeedDraft(title="t", description="", conditions={"a": 1}))
    run(world.engine.upload())
    assert world.store.entry(decision.id).state == OutboxState.QUEUED  # type: ignore[union-attr]
    world.server.faults.clear()
    world.engine.outbox_sender.batch_size = 1
    with world.store.transaction() as conn:  # only the seed left to send
        conn.exec_driver_sql(f"UPDATE outbox SET state = 'applied' WHERE id = '{decision.id}'")
    run(world.engine.upload())
    assert world.store.entry(seed.id).state == OutboxState.QUEUED  # type: ignore[union-attr]
    assert "NOT_FOUND" in (world.engine.status().last_error or "")


class _Overlapping(httpx.AsyncBaseTransport):
    """The fake server behind a transport that yields to the loop, so requests overlap."""

    def __init__(self, inner: httpx.AsyncBaseTransport, fail_on: int | None = None) -> None:
        self.inner = inner
        self.in_flight = 0
        self.most = 0
        self.calls = 0
        self.fail_on = fail_on
        self.fail_from: int | None = None  # every call from this one on fails

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        call = self.calls
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            for _ in range(3):
                await asyncio.sleep(0)
            if call == self.fail_on or (self.fail_from is not None
                                        and call >= self.fail_from):
                raise httpx.ConnectError("dropped", request=request)
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1


def _overlapping_world(world: World, fail_on: int | None = None) -> _Overlapping:
    transport = _Overlapping(world.server, fail_on)
    world.engine = SyncEngine(world.engine.settings, authenticator=world.auth,
                              store=world.store, transport=transport, clock=world.clock)
    world.engine.outbox_sender.batch_size = 1
    return transport


def test_two_batches_overlap_and_each_decision_applies_once(world: World) -> None:
    transport = _overlapping_world(world)
    entries = [world.engine.approve(f"APR-{i}") for i in range(3)]
    run(world.engine.upload())
    assert transport.most == 2
    assert all(world.server.applied_count(e.id) == 1 for e in entries)
    assert all(world.store.entry(e.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
               for e in entries)


def test_a_failing_batch_waits_for_the_one_in_flight_then_requeues(world: World) -> None:
    transport = _overlapping_world(world, fail_on=1)
    entries = [world.engine.approve(f"APR-{i}") for i in range(3)]
    run(world.engine.upload())
    states = [world.store.entry(e.id).state for e in entries]  # type: ignore[union-attr]
    # (The reconnect flush that the second answer triggered may have been cut off when
    # the loop closed: its entries are left ``sending``, which is replayable.)
    assert states.count(OutboxState.APPLIED) == 1
    assert world.engine.status().pending_count == 2
    transport.fail_on = None
    world.clock.advance(600)
    run(world.engine.upload())
    assert all(world.server.applied_count(e.id) == 1 for e in entries)


def test_batches_failing_together_leave_no_error_unread(world: World) -> None:
    """The server gone with two batches in flight: both fail, the pass reports one error
    and reads the other, so asyncio never logs an unread task exception."""
    transport = _overlapping_world(world)
    transport.fail_from = 1
    entries = [world.engine.approve(f"APR-{i}") for i in range(3)]
    unread: list[dict[str, object]] = []

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: unread.append(ctx))
        await world.engine.upload()
        gc.collect()  # an unread task exception is reported when its task is collected

    run(scenario())
    assert transport.most == 2
    assert unread == []
    assert {world.store.entry(e.id).state  # type: ignore[union-attr]
            for e in entries} == {OutboxState.QUEUED}
    assert world.server.audit == []


def test_an_upload_cancelled_mid_flight_puts_its_entries_back(world: World) -> None:
    transport = _overlapping_world(world)
    entries = [world.engine.approve(f"APR-{i}") for i in range(3)]

    async def scenario() -> None:
        task = asyncio.ensure_future(world.engine.upload())
        while transport.in_flight < 2:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    states = {world.store.entry(e.id).state for e in entries}  # type: ignore[union-attr]
    assert states == {OutboxState.QUEUED}
    assert world.server.audit == []


def test_a_compact_answer_keeps_the_cached_detail_and_moves_it_forward(world: World) -> None:
    world.server.honours_prefer = False  # the answer in full: what a decision changes
    world.server.approvals["APR-0"]["version"] = 2
    world.server.approvals["APR-0"]["capabilities"] = [{"capability": "file_read:/data/*"}]
    run(world.engine.download())
    world.engine.approve("APR-0")
    run(world.engine.upload())
    detail = world.engine.approval("APR-0")
    assert detail is not None and detail.version == 3 and detail.status.value == "approved"
    assert detail.capabilities == [{"capability": "file_read:/data/*"}]
    assert "APR-0" not in world.store.stale_detail_ids(10, {"approved"})


def test_a_bare_answer_for_a_request_not_held_is_not_cached() -> None:
    from sync.store import LocalStore, Outcome

    store = LocalStore()
    store.enqueue(entry_id="e1", kind="decision", payload={}, created_at=world_now())
    store.record_outcomes([Outcome("e1", applied=True,
                                   approval={"id": "X", "status": "approved", "version": 2})],
                          world_now())
    assert store.approval("X") is None


def world_now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


class _Recording(httpx.AsyncBaseTransport):
    """The fake server, with every decisions request body kept."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.bodies: list[bytes] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if request.url.path.endswith("/decisions"):
            self.bodies.append(body)
        return await self.inner.handle_async_request(request)


def _recording_world(world: World) -> _Recording:
    transport = _Recording(world.server)
    world.engine = SyncEngine(world.engine.settings, authenticator=world.auth,
                              store=world.store, transport=transport, clock=world.clock)
    return transport


def test_one_batch_carries_the_vetoes_first_then_the_rest_in_sequence(world: World) -> None:
    transport = _recording_world(world)
    first = world.engine.approve("APR-0")
    veto_w = world.engine.veto("APR-W", VetoCategory.SAFETY, "unsafe network access")
    second = world.engine.approve("APR-1")
    veto_2 = world.engine.veto("APR-2", VetoCategory.BUDGET, "no budget cap")
    run(world.engine.upload())
    [body] = transport.bodies
    sent = [item["id"] for item in orjson.loads(body)["decisions"]]
    assert sent == [veto_w.id, veto_2.id, first.id, second.id]


def test_a_replay_sends_the_very_same_bytes_as_the_first_attempt(world: World) -> None:
    transport = _recording_world(world)
    files = [Attachment(name="log.txt", content_type="text/plain", data_base64="aGVsbG8=")]
    veto = world.engine.veto("APR-W", VetoCategory.SAFETY, "see the log – ü", files)
    approve = world.engine.approve("APR-0", comment="fine, ünïcode")
    world.server.faults.append("lose_ack")
    run(world.engine.upload())
    run(world.engine.upload())
    first, replay = transport.bodies
    assert first == replay
    items = orjson.loads(first)["decisions"]
    assert items[0] == {**veto.payload, "attachments": [f.model_dump() for f in files]}
    assert items[1] == approve.payload
    assert world.server.applied_count(veto.id) == world.server.applied_count(approve.id) == 1


def test_a_stored_item_damaged_on_disk_is_rejected_alone(world: World) -> None:
    """Stored items are sent as they are: one that is no longer JSON makes the server
    refuse the batch, and splitting finds it; the others are applied."""
    good = [world.engine.approve(f"APR-{i}") for i in (0, 1)]
    bad = world.engine.approve("APR-2")
    with world.store.transaction() as conn:
        conn.exec_driver_sql("UPDATE outbox SET payload = '{\"id\": ' WHERE id = ?", (bad.id,))
    run(world.engine.upload())
    assert all(world.server.applied_count(e.id) == 1 for e in good)
    rejected = world.store.entry(bad.id)
    assert rejected is not None and rejected.state == OutboxState.REJECTED
    assert rejected.error_code == "VALIDATION_FAILED"


def test_a_damaged_item_with_attachments_is_rejected_alone(world: World) -> None:
    """An entry with attachments is parsed to add them; one whose stored item is no longer
    JSON is sent as it is instead, so the split rejects it alone and the queue moves on."""
    files = [Attachment(name="log.txt", content_type="text/plain", data_base64="aGVsbG8=")]
    bad = world.engine.veto("APR-W", VetoCategory.SAFETY, "see log", files)
    good = [world.engine.approve(f"APR-{i}") for i in (0, 1)]
    with world.store.transaction() as conn:
        conn.exec_driver_sql("UPDATE outbox SET payload = '{\"id\": ' WHERE id = ?", (bad.id,))
    run(world.engine.upload())
    assert all(world.server.applied_count(e.id) == 1 for e in good)
    rejected = world.store.entry(bad.id)
    assert rejected is not None and rejected.state == OutboxState.REJECTED
    assert rejected.error_code == "VALIDATION_FAILED"
