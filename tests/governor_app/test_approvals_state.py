from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governor_app import state
from governor_app.testing import FakeGovernorClient, demo_approval
from sync.models import (
    SCOPE_READ,
    SCOPE_VETO,
    SCOPE_WRITE,
    Account,
    ApprovalStatus,
    DecisionAction,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GOVERNOR = Account(sub="g", username="governor",
                   scopes=frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_VETO}))
AUDITOR = Account(sub="a", username="auditor", scopes=frozenset({SCOPE_READ}))


def test_list_filters_and_search() -> None:
    client = FakeGovernorClient(approvals=12, now=lambda: NOW)
    pending = state.approval_list_view(client, "pending")
    assert pending.rows and all(r.status == "Pending approval" for r in pending.rows)
    window = state.approval_list_view(client, "veto_window")
    assert all(r.deadline is not None for r in window.rows)
    found = state.approval_list_view(client, "all", "REQ-0003")
    assert [r.id for r in found.rows] == ["REQ-0003"]
    none = state.approval_list_view(client, "all", "no such thing")
    assert none.rows == () and none.empty and "no such thing" in none.empty


def test_list_says_when_there_is_more() -> None:
    client = FakeGovernorClient(approvals=30, now=lambda: NOW)
    view = state.approval_list_view(client, "all", limit=10)
    assert len(view.rows) == 10 and view.more
    assert view.shown == "10 requests shown, more below"
    second = state.approval_list_view(client, "all", limit=20)
    assert [r.id for r in second.rows[:10]] == [r.id for r in view.rows]  # a page added
    last = state.approval_list_view(client, "all", limit=40)
    assert len(last.rows) == 30 and not last.more and last.shown == "30 requests shown"
    one = state.approval_list_view(client, "all", "REQ-0003")
    assert one.shown == "1 request shown"


def test_a_queued_decision_shows_on_the_row() -> None:
    client = FakeGovernorClient(approvals=3, now=lambda: NOW)
    client.veto("REQ-0001", state.VetoCategory.SAFETY, "exec import")
    row = next(r for r in state.approval_list_view(client, "all").rows if r.id == "REQ-0001")
    assert row.pending == "Veto queued"


def test_detail_timeline_capabilities_wasm_and_matches() -> None:
    a = demo_approval(0, NOW)
    v = state.approval_detail_view(a, GOVERNOR, NOW)
    assert next(s.stage for s in v.timeline) == "submitted" and len(v.timeline) == 7
    genesis = next(s for s in v.timeline if s.stage == "genesis_certification")
    assert genesis.done and genesis.notes and "Genesis" in genesis.notes
    assert v.capabilities[0].dangerous and v.capabilities[0].label.endswith("(dangerous)")
    assert v.dangerous_count == 1
    assert "1 issue" in v.wasm_summary and v.wasm_issues
    assert v.seed_matches[0].score == "82 %" and v.seed_matches[0].failed


def test_governor_may_decide_a_pending_request() -> None:
    a = demo_approval(0, NOW, ApprovalStatus.PENDING_APPROVAL)
    actions = state.allowed_actions(a, GOVERNOR, NOW)
    assert (actions.approve, actions.request_changes, actions.veto) == (True, True, True)


def test_auditor_sees_a_read_only_request() -> None:
    a = demo_approval(0, NOW, ApprovalStatus.PENDING_APPROVAL)
    actions = state.allowed_actions(a, AUDITOR, NOW)
    assert not (actions.approve or actions.request_changes or actions.veto)
    assert actions.reason and "read-only" in actions.reason


def test_in_the_window_only_a_veto_and_only_before_the_deadline() -> None:
    a = demo_approval(1, NOW, ApprovalStatus.APPROVED)
    open_ = state.allowed_actions(a, GOVERNOR, NOW)
    assert (open_.approve, open_.veto) == (False, True)
    assert a.veto_deadline is not None
    closed = state.allowed_actions(a, GOVERNOR, a.veto_deadline + timedelta(seconds=1))
    assert not closed.veto and closed.reason == "The veto window has closed."


def test_no_second_decision_while_one_is_queued() -> None:
    a = demo_approval(0, NOW, ApprovalStatus.PENDING_APPROVAL).model_copy(
        update={"pending_decision": DecisionAction.APPROVE})
    actions = state.allowed_actions(a, GOVERNOR, NOW)
    assert not actions.veto and actions.reason and "outbox" in actions.reason


def test_decided_requests_say_so() -> None:
    a = demo_approval(0, NOW, ApprovalStatus.VETOED)
    actions = state.allowed_actions(a, GOVERNOR, NOW)
    assert actions.reason and "vetoed" in actions.reason


def test_the_fake_client_counts_what_it_lists() -> None:
    client = FakeGovernorClient(approvals=30, now=lambda: NOW)
    for filter in ("all", "pending", "veto_window", "decided"):
        assert client.approval_count(filter) == len(client.approvals(filter, limit=1000))
    assert client.approval_count("all", "REQ-0003") == 1
    assert client.approval_count("all", "no such thing") == 0
