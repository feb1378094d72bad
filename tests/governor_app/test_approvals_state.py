from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governor_app import state
from sync.fakes import FakeGovernorClient, demo_approval
from sync.models import (
    SCOPE_READ,
    SCOPE_VETO,
    SCOPE_WRITE,
    Account,
    ApprovalStatus,
    DecisionAction,
    PipelineStage,
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
    assert v.capabilities[0].reasons == ("Makes the system call 'exec' outside the sandbox.",)
    assert v.capabilities[1].reasons == ()


def test_a_cached_detail_without_reasons_still_shows_its_grants() -> None:
    # Details cached before the server sent reasons: the grants show, with no reasons.
    cached = demo_approval(0, NOW).model_dump(mode="json")
    cached["capabilities"] = [{"capability": "system_call:exec", "dangerous": True},
                              {"capability": "custom:x", "dangerous": False, "reasons": None}]
    a = type(demo_approval(0, NOW)).model_validate(cached)
    v = state.approval_detail_view(a, GOVERNOR, NOW)
    assert [(c.capability, c.dangerous, c.reasons) for c in v.capabilities] == [
        ("system_call:exec", True, ()), ("custom:x", False, ())]
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


def test_the_timeline_shows_the_certificate_and_the_reviews() -> None:
    a = demo_approval(0, NOW).model_copy(update={"pipeline": [
        PipelineStage.model_validate({
            "stage": "genesis_certification", "status": "passed", "notes": "Certified.",
            "certificate": {"id": "GC-1", "issuer": "http://stub", "subject_agent": "AGT-7",
                            "issued_at": "2026-11-21T11:00:00Z",
                            "expires_at": "2027-11-21T11:00:00Z", "module_sha256": "ab" * 32,
                            "signature": {"alg": "RS256", "kid": "k1", "jws": "a.b.c"}}}),
        PipelineStage.model_validate({
            "stage": "architect_review", "status": "passed",
            "review": {"reviewer": "Aiko Tanaka", "verdict": "escalate",
                       "reviewed_at": "2026-11-21T11:30:00Z", "findings": [
                           {"severity": "concern", "message": "system_call:exec"}]}}),
        PipelineStage(stage="ethics_review", status="in_progress")]})
    rows = {s.stage: s for s in state.approval_detail_view(a, GOVERNOR, NOW).timeline}
    assert rows["genesis_certification"].evidence == (
        "Certificate GC-1 from http://stub for agent AGT-7",
        "Issued 21 Nov 11:00 UTC, expires 21 Nov 11:00 UTC",
        f"Module SHA-256 {'ab' * 32}", "Signed with key k1")
    assert rows["architect_review"].evidence == (
        "Reviewer Aiko Tanaka: Escalate · 21 Nov 11:30 UTC", "Concern: system_call:exec")
    assert rows["ethics_review"].evidence == () and rows["submitted"].evidence == ()


def test_a_cached_stage_from_before_the_evidence_still_loads() -> None:
    old = PipelineStage.model_validate_json(
        '{"stage": "genesis_certification", "status": "passed", "completed_at": null, '
        '"notes": "Genesis certified the agent."}')
    assert old.certificate is None and old.review is None
    unsigned = PipelineStage.model_validate({"stage": "genesis_certification",
                                             "status": "passed",
                                             "certificate": {"id": "GC-2", "signature": None}})
    row = state.approval_detail_view(
        demo_approval(0, NOW).model_copy(update={"pipeline": [unsigned]}), GOVERNOR, NOW)
    assert row.timeline[1].evidence[-1] == "Not signed"


def test_the_request_says_what_became_of_the_governors_own_refused_decision() -> None:
    client = FakeGovernorClient(now=lambda: NOW)
    assert state.refused_decisions(client, "REQ-0001", NOW) == ()
    mine = client.approve("REQ-0001")
    client.reject(mine.id, "ALREADY_DECIDED", "Approved by alice first.",
                  {"decided_by": "alice"})
    client.approve("REQ-0007")  # another request's decision is not this one's
    [row] = state.refused_decisions(client, "REQ-0001", NOW)
    assert row.title == "Approve REQ-0001" and row.can_discard
    assert row.error is not None and "decided elsewhere first" in row.error
    assert "Decided by alice." in row.error
    # The outbox badge counts it until it is discarded.
    assert client.status().rejected_count == 1
    # Another account signed in on the device sees none of it.
    client._account = client._make_account("auditor")
    assert state.refused_decisions(client, "REQ-0001", NOW) == ()
