"""Accounts apart on one device: each account's outbox, notifications, badges and
unanswered decisions are its own; another account can neither see nor change them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sync.errors import InvalidDecision
from sync.models import ApprovalStatus, OutboxState, VetoCategory
from sync.store import MIGRATIONS, LocalStore
from tests.sync.conftest import AUDITOR, GOVERNOR, World, run


def event(event_id: str) -> dict[str, object]:
    return {"id": event_id, "type": "governance.budget.threshold_exceeded",
            "timestamp": "2026-01-01T12:00:00+00:00", "source": "platform",
            "data": {"agent": "ag-1", "threshold": 80}}


def switch_to(world: World, account: object) -> None:
    """Another account signs in on the same device (what ``_signed_in`` does)."""
    world.auth.sign_in_as(account)  # type: ignore[arg-type]
    world.engine._check_account()


def refused_veto(world: World) -> str:
    """The governor's veto, refused by the server (the request was decided elsewhere)."""
    world.server.decide_elsewhere("APR-W", "vetoed")
    entry = world.engine.veto("APR-W", VetoCategory.SAFETY, "Reads patient data.")
    run(world.engine.upload())
    assert world.store.entry(entry.id).state == OutboxState.REJECTED  # type: ignore[union-attr]
    return entry.id


def test_the_next_account_neither_sees_nor_counts_the_governors_outbox(world: World
                                                                         ) -> None:
    refused = refused_veto(world)
    queued = world.engine.approve("APR-0").id  # not sent yet
    governor = world.engine.status()
    assert governor.pending_count == 1 and governor.rejected_count == 1
    assert governor.outbox_count == 2
    switch_to(world, AUDITOR)
    assert world.engine.outbox() == []
    status = world.engine.status()
    assert (status.pending_count, status.rejected_count, status.held_count,
            status.outbox_count) == (0, 0, 0, 0)
    assert status.other_accounts_count == 2 and status.oldest_pending_at is None
    assert world.engine.conflict(refused) is None
    # The governor's queued approve is not the auditor's: the request shows as the
    # server has it, in the list, its count and its detail.
    assert world.engine.approval("APR-0").pending_decision is None  # type: ignore[union-attr]
    listed = {a.id: a for a in world.engine.approvals("pending")}
    assert listed["APR-0"].status == ApprovalStatus.PENDING_APPROVAL
    assert world.engine.approval_count("pending") == len(listed)
    assert world.store.entry(queued) is not None


def test_another_account_can_neither_discard_nor_take_back_nor_redo_them(world: World
                                                                         ) -> None:
    refused = refused_veto(world)
    queued = world.engine.approve("APR-0").id
    switch_to(world, AUDITOR)
    with pytest.raises(InvalidDecision, match="only the account that queued it can discard"):
        world.engine.discard(refused)
    with pytest.raises(InvalidDecision, match="can take back"):
        world.engine.cancel(queued)
    with pytest.raises(InvalidDecision, match="can decide again on"):
        world.engine.decide_again(refused)
    switch_to(world, None)
    with pytest.raises(InvalidDecision, match="only the account that queued it"):
        world.engine.discard(refused)
    # Both are still there for their author, who may discard the refusal.
    switch_to(world, GOVERNOR)
    assert {e.id for e in world.engine.outbox()} == {refused, queued}
    world.engine.discard(refused)
    assert [e.id for e in world.engine.outbox()] == [queued]


def test_notifications_and_their_badge_belong_to_the_account_they_came_for(
        world: World) -> None:
    switch_to(world, GOVERNOR)
    world.engine.apply_event(event("ev-1"))
    world.engine.mark_read("ev-1")
    world.engine.apply_event(event("ev-2"))
    assert [(n.id, n.read) for n in world.engine.notifications()] == [
        ("ev-2", False), ("ev-1", True)]
    switch_to(world, AUDITOR)
    assert world.engine.notifications() == [] and not world.engine.has_event("ev-2")
    world.engine.mark_read("ev-2")  # not the auditor's: nothing to mark
    # The same event, arrived for the auditor, is the auditor's own (unread).
    world.engine.apply_event(event("ev-2"))
    assert [(n.id, n.read) for n in world.engine.notifications()] == [("ev-2", False)]
    switch_to(world, GOVERNOR)
    assert [(n.id, n.read) for n in world.engine.notifications()] == [
        ("ev-2", False), ("ev-1", True)]


def test_reminders_are_for_the_author_of_the_unsent_veto(world: World) -> None:
    world.engine.veto("APR-W", VetoCategory.SAFETY, "Reads patient data.")
    switch_to(world, AUDITOR)
    world.clock.advance(timedelta(hours=1, minutes=30).total_seconds())
    assert world.engine.check_deadlines() == 0 and world.engine.notifications() == []
    switch_to(world, GOVERNOR)
    assert world.engine.check_deadlines() == 1
    [reminder] = world.engine.notifications()
    assert reminder.type == "governor.veto.unsent"


def test_notifications_kept_before_accounts_were_apart_belong_to_no_account() -> None:
    before = [m for m in MIGRATIONS if m.name < "0010"]
    store = LocalStore(migrations=before)
    with store.transaction() as conn:  # as the earlier version wrote it
        conn.exec_driver_sql("INSERT INTO notification (id, timestamp, body) VALUES "
                             "('old', '2026-01-01T12:00:00+00:00', '{\"id\": \"old\"}')")
    assert store.migrate(MIGRATIONS)[0] == "0010_notifications_per_account"
    store.serve(GOVERNOR.sub)
    assert store.notifications() == []
    store.serve(None)
    assert [n["id"] for n, _read in store.notifications()] == ["old"]


# --- retiring a seed --------------------------------------------------------------------
def test_a_seed_is_retired_on_the_server_and_in_the_cache(world: World) -> None:
    from sync.models import Seed

    world.server.add_seed("GEN-001", "Read-only tutors")
    run(world.engine.download())
    retired = run(world.engine.retire_seed("GEN-001", "Replaced by a narrower seed."))
    assert isinstance(retired, Seed) and retired.status == "retired"
    assert world.server.seeds["GEN-001"]["status"] == "retired"
    assert world.engine.seed("GEN-001").status == "retired"  # type: ignore[union-attr]
    # Again: the same seed, nothing moves.
    assert run(world.engine.retire_seed("GEN-001", "again")).version == retired.version


def test_retiring_needs_the_write_scope_a_known_seed_and_the_server(world: World) -> None:
    from sync.errors import ApiRejected, ServerUnreachable

    world.server.add_seed("GEN-001", "Read-only tutors")
    switch_to(world, AUDITOR)
    with pytest.raises(InvalidDecision, match="governance:write"):
        run(world.engine.retire_seed("GEN-001", "why"))
    assert world.server.seeds["GEN-001"]["status"] == "active"
    switch_to(world, GOVERNOR)
    with pytest.raises(ApiRejected, match="'GEN-404' does not exist"):
        run(world.engine.retire_seed("GEN-404", "why"))
    with pytest.raises(InvalidDecision, match="retirement reason is empty"):
        run(world.engine.retire_seed("GEN-001", "  "))
    world.server.offline = True
    with pytest.raises(ServerUnreachable):
        run(world.engine.retire_seed("GEN-001", "why"))
