"""Notifications, outbox, agents and violations view models."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from governor_app import state
from sync.fakes import FakeGovernorClient
from sync.models import (
    Agent,
    Conflict,
    DecisionAction,
    FieldChange,
    Notification,
    OutboxEntry,
    OutboxState,
    Violation,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def note(id: str, type_: str, minutes: int = 0, read: bool = False, **data: object
         ) -> Notification:
    return Notification(id=id, type=type_, timestamp=NOW - timedelta(minutes=minutes),
                        data=dict(data), read=read)


def test_notifications_grouped_by_type_with_unread_count() -> None:
    items = [note("1", "governance.approval.pending", 1, approval_id="REQ-1",
                  agent_name="Tutor"),
             note("2", "governance.budget.threshold_exceeded", 2, agent_name="Bot",
                  threshold=95),
             note("3", "governance.budget.threshold_exceeded", 3, read=True,
                  agent_name="Bot", threshold=80),
             note("4", "governance.agent.violated", 4, agent_id="AGT-1", kind="ethics")]
    groups = dict(state.notification_groups(items, NOW))
    assert list(groups) == ["Pending approvals", "Budget alerts", "Violations"]
    assert groups["Pending approvals"][0].title == "REQ-1 waits for approval: Tutor"
    assert groups["Pending approvals"][0].approval_id == "REQ-1"
    budget = groups["Budget alerts"]
    assert [r.urgent for r in budget] == [True, False]
    assert budget[0].title == "Bot passed 95 % of its budget"
    assert groups["Violations"][0].urgent
    assert state.unread_count(items) == 3


def test_outbox_sections_and_a_rejected_veto_in_words() -> None:
    client = FakeGovernorClient(approvals=4, now=lambda: NOW)
    queued = client.approve("REQ-0001")
    vetoed = client.veto("REQ-0002", state.VetoCategory.SAFETY, "late")
    client.reject(vetoed.id, "VETO_WINDOW_CLOSED", "The veto window closed.",
                  {"deadline": "2026-11-21T11:00:00Z"})
    sections = {key: rows for key, _title, rows in state.outbox_sections(client, NOW)}
    assert [r.id for r in sections["pending"]] == [queued.id]
    assert sections["pending"][0].can_cancel
    rejected = sections["rejected"][0]
    assert rejected.title == "Veto REQ-0002"
    assert rejected.error and "veto window closed before" in rejected.error
    # The deadline in words on the device's clock, not the server's ISO string.
    assert "Deadline was 1 h 0 min ago, 21 Nov " in rejected.error
    assert "2026-11-21T11:00:00Z" not in rejected.error
    assert rejected.can_discard and not rejected.can_decide_again


def held(**fields: object) -> OutboxEntry:
    return OutboxEntry.model_validate({
        "id": "E-1", "seq": 1, "kind": "decision", "approval_id": "REQ-0007",
        "action": DecisionAction.APPROVE, "state": OutboxState.HELD,
        "created_at": NOW - timedelta(minutes=3), "sub": "governor", **fields})


def test_a_held_entry_says_why_it_waits_and_what_to_do() -> None:
    # Held at a server switch: the store's message names both servers.
    switched = state.outbox_row(held(
        error_code="OTHER_SERVER",
        error_message="Queued for http://a.example, not sent to http://b.example. Point "
                      "the app at http://a.example again to send it, or discard it.",
        error_details={"server": "http://a.example"}), NOW)
    assert switched.held_reason and "not sent to http://b.example" in switched.held_reason
    assert switched.error is None  # not refused: no "Open request", no red text
    assert switched.can_cancel and switched.can_discard
    # Held because another account is signed in now.
    other = state.outbox_row(held(sub="li"), NOW)
    assert other.held_reason == ("Queued by li, who is not signed in on this device now. "
                                 "Sign in as li to send it, or discard it.")
    # Nothing to explain for an entry that is not held.
    assert state.outbox_row(held(state=OutboxState.QUEUED), NOW).held_reason is None


def test_a_conflict_can_be_decided_again() -> None:
    client = FakeGovernorClient(approvals=4, now=lambda: NOW)
    entry = client.veto("REQ-0001", state.VetoCategory.SAFETY, "exec")
    client.reject(entry.id, "ALREADY_DECIDED", "Someone approved it.",
                  {"decided_by": "other-governor"})
    row = next(r for _k, _t, rows in state.outbox_sections(client, NOW) for r in rows)
    assert row.can_decide_again and row.error and "Decided by other-governor" in row.error
    again = client.decide_again(row.id)
    assert again.id != row.id
    asyncio.run(client.sync_now())
    assert client.approval("REQ-0001").status == "vetoed"  # type: ignore[union-attr]


def test_a_version_conflict_row_lists_each_changed_field() -> None:
    entry = OutboxEntry(id="E1", seq=1, kind="decision", approval_id="REQ-1",
                        action=DecisionAction.APPROVE, state=OutboxState.REJECTED,
                        created_at=NOW, error_code="VERSION_CONFLICT", error_message="")
    conflict = Conflict(entry=entry, code="VERSION_CONFLICT", message="", changed=[
        FieldChange(field="stage", seen="architect_review", now="ethics_review")])
    row = state.outbox_row(entry, NOW, conflict)
    assert row.changed == ("Stage: was architect_review, now ethics_review",)
    assert row.error and row.error.startswith("The request changed after you decided.")


def test_agents_and_violations_rows() -> None:
    agents = state.agent_rows([Agent(id="A1", name="Tutor", industry="education",
                                     status="active", budget={"utilisation": 0.5},
                                     capabilities=["file_read:/x"])])
    assert agents[0].budget == "50 % of budget used"
    assert agents[0].subtitle == "Education · Active"
    rows = state.violation_rows([
        Violation(id="V1", agent_id="A1", kind="budget", severity="low", description="d",
                  occurred_at=NOW - timedelta(hours=1)),
        Violation(id="V2", agent_id="A1", kind="constitutional", severity="high",
                  description="d", occurred_at=NOW)])
    assert [r.id for r in rows] == ["V2", "V1"] and rows[0].severe
    assert rows[0].title == "Constitutional violation by A1"
