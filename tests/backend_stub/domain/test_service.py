from __future__ import annotations

from typing import Any

import pytest

from backend_stub.clock import FakeClock
from backend_stub.domain.service import (
    PLATFORM,
    Actor,
    AttachmentIn,
    DecisionCommand,
    GovernanceService,
)
from backend_stub.domain.wasm import build_module
from backend_stub.errors import AlreadyDecided, NotFound, ValidationFailed

GOV = Actor("governor", frozenset({"governance:read", "governance:write", "veto:execute"}),
            "governor-app", "req-1")
READER = Actor("auditor", frozenset({"governance:read"}), "governor-app", "req-2")


def submit(svc: GovernanceService, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(agent_name="Tutor", industry="education",
                                  agent_kind="industry", requester="genesis",
                                  capabilities=["file_read:/data/x"],
                                  wasm_module=build_module(), daily_token_budget=50_000,
                                  monthly_cost_usd=50.0)
    fields.update(overrides)
    return svc.submit_request(**fields)


def seed(svc: GovernanceService, key: str = "s1", **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(title="Education", description="d",
                                  conditions={"industry_in": ["education"]},
                                  auto_approve=True)
    fields.update(overrides)
    return svc.create_seed(PLATFORM, key=key, **fields)[1]["data"]


def types(svc: GovernanceService) -> list[str]:
    return [m["type"] for m in svc.published]  # type: ignore[attr-defined]


def test_a_request_matching_an_auto_approve_seed_enters_the_veto_window(
        governance: GovernanceService, fake_clock: FakeClock) -> None:
    seed(governance)
    request = submit(governance)
    assert request["status"] == "auto_approved"
    assert request["matched_seed_id"] == "GEN-001"
    assert request["decided_by"] == "seed:GEN-001"
    assert request["veto_deadline"] == "2026-01-02T12:00:00.000Z"
    stages = {s["stage"]: s["status"] for s in request["pipeline"]}
    assert stages["governor_approval"] == "skipped" and stages["veto_window"] == "in_progress"
    assert "governance.seed.auto_approved" in types(governance)


def test_a_request_without_an_auto_seed_is_pending_with_its_best_matches(
        governance: GovernanceService) -> None:
    seed(governance, auto_approve=False)
    request = submit(governance)
    assert request["status"] == "pending_approval"
    assert request["veto_deadline"] is None
    assert request["seed_matches"][0]["seed_id"] == "GEN-001"
    assert request["seed_matches"][0]["score"] == 1.0
    event = governance.published[-1]  # type: ignore[attr-defined]
    assert event["type"] == "governance.approval.pending"
    assert event["metadata"]["correlation_id"] == request["id"]


def test_requests_before_the_governor_stage_are_not_matched(
        governance: GovernanceService) -> None:
    seed(governance)
    request = submit(governance, stage="architect_review")
    assert request["status"] == "pending_approval" and request["seed_matches"] == []
    assert request["stage"] == "architect_review"


def test_approve_then_deploy_at_the_deadline_with_a_closing_notice_first(
        governance: GovernanceService, fake_clock: FakeClock) -> None:
    request = submit(governance)
    [result] = governance.decide(GOV, [DecisionCommand("k1", request["id"], "approve",
                                                       expected_version=1)])
    assert result.outcome == "applied"
    approved = result.approval
    assert approved is not None and approved["status"] == "approved"
    assert approved["version"] == 2 and approved["decided_by"] == "governor"
    fake_clock.advance(23 * 3600)
    assert governance.sweep() == 1
    assert types(governance)[-1] == "governance.veto_window.closing"
    assert governance.sweep() == 0  # announced once
    fake_clock.advance(3599)
    governance.sweep()
    assert governance.get_approval(request["id"])["status"] == "approved"
    fake_clock.advance(1)
    assert governance.sweep() == 1
    deployed = governance.get_approval(request["id"])
    assert deployed["status"] == "deployed" and deployed["veto_deadline"] is None
    assert all(s["status"] == "passed" for s in deployed["pipeline"])
    agents, _ = governance.list_agents(status="active")
    assert [a["name"] for a in agents] == ["Tutor"]


def test_version_conflict_and_already_decided(governance: GovernanceService) -> None:
    request = submit(governance)
    [conflict] = governance.decide(GOV, [DecisionCommand("k1", request["id"], "approve",
                                                         expected_version=7)])
    assert conflict.outcome == "rejected" and conflict.error is not None
    assert conflict.error.code == "VERSION_CONFLICT"
    assert conflict.error.details["current_version"] == 1
    governance.decide(GOV, [DecisionCommand("k2", request["id"], "request_changes",
                                            expected_version=1, reason="add tests")])
    [again] = governance.decide(GOV, [DecisionCommand("k3", request["id"], "approve",
                                                      expected_version=2)])
    assert again.error is not None and again.error.code == "ALREADY_DECIDED"
    assert again.error.details["status"] == "changes_requested"
    assert again.error.details["decided_by"] == "governor"
    [veto] = governance.decide(GOV, [DecisionCommand("k4", request["id"], "veto",
                                                     category="other", reason="x")])
    assert veto.error is not None and veto.error.code == "ALREADY_DECIDED"


def test_a_veto_is_absolute_inside_the_window_and_refused_after_it(
        governance: GovernanceService, fake_clock: FakeClock) -> None:
    seed(governance)
    first, second = submit(governance), submit(governance, agent_name="Tutor 2")
    [vetoed] = governance.decide(GOV, [DecisionCommand("v1", first["id"], "veto",
                                                       expected_version=99, category="safety",
                                                       reason="no")])
    assert vetoed.approval is not None and vetoed.approval["status"] == "vetoed"
    assert vetoed.approval["veto_deadline"] is None
    fake_clock.advance(24 * 3600)
    # Before the sweeper runs, the deadline alone closes the window.
    [late] = governance.decide(GOV, [DecisionCommand("v2", second["id"], "veto",
                                                     category="safety", reason="late")])
    assert late.error is not None and late.error.code == "VETO_WINDOW_CLOSED"
    assert late.error.details["deadline"] == "2026-01-02T12:00:00.000Z"
    governance.sweep()
    [after] = governance.decide(GOV, [DecisionCommand("v3", second["id"], "veto",
                                                      category="safety", reason="late")])
    assert after.error is not None and after.error.code == "VETO_WINDOW_CLOSED"


def test_idempotent_replay_and_key_reuse(governance: GovernanceService) -> None:
    request = submit(governance)
    command = DecisionCommand("same", request["id"], "approve", expected_version=1,
                              device_id="phone", comment="ok")
    [first] = governance.decide(GOV, [command])
    [replay] = governance.decide(GOV, [command])
    assert replay.outcome == "replayed" and replay.body == first.body
    [reused] = governance.decide(GOV, [DecisionCommand("same", request["id"], "approve",
                                                       expected_version=1, comment="other")])
    assert reused.error is not None and reused.error.code == "IDEMPOTENCY_KEY_REUSED"
    # Keys belong to their subject: another person's key of the same name is independent.
    other = Actor("governor-2", GOV.scopes)
    [conflict] = governance.decide(other, [DecisionCommand("same", request["id"], "veto",
                                                           category="other", reason="r")])
    assert conflict.outcome == "applied"


def test_a_batch_replays_stored_answers_beside_new_and_refused_decisions(
        governance: GovernanceService) -> None:
    """The stored answers a batch reads (``_answered``: by the driver on SQLite) are this
    decider's alone, replayed as first given, beside applied and refused items."""
    first, second, third = (submit(governance) for _ in range(3))
    answered = governance.decide(GOV, [
        DecisionCommand("k1", first["id"], "approve", expected_version=1, comment="ok"),
        DecisionCommand("k2", second["id"], "approve", expected_version=1)], minimal=True)
    # Another decider's k3: not an answer to this decider's k3.
    [other] = governance.decide(Actor("governor-2", GOV.scopes), [DecisionCommand(
        "k3", third["id"], "request_changes", expected_version=1, reason="r")])
    assert other.outcome == "applied"
    results = governance.decide(GOV, [
        DecisionCommand("k1", first["id"], "approve", expected_version=1, comment="ok"),
        DecisionCommand("k2", second["id"], "veto", category="other", reason="r"),
        DecisionCommand("k3", third["id"], "approve", expected_version=1),
        DecisionCommand("k4", second["id"], "veto", category="safety", reason="r")],
        minimal=True)
    assert [r.outcome for r in results] == ["replayed", "rejected", "rejected", "applied"]
    assert (results[0].status_code, results[0].body) == (200, answered[0].body)
    assert results[1].error is not None and results[1].error.code == "IDEMPOTENCY_KEY_REUSED"
    assert results[2].error is not None and results[2].error.code == "ALREADY_DECIDED"
    assert results[3].approval is not None and results[3].approval["status"] == "vetoed"


def test_batch_duplicates_unknown_ids_and_scopes(governance: GovernanceService) -> None:
    request = submit(governance)
    commands = [DecisionCommand("a", request["id"], "approve", expected_version=1),
                DecisionCommand("a", request["id"], "approve", expected_version=1),
                DecisionCommand("b", "REQ-9999", "approve", expected_version=1)]
    results = governance.decide(GOV, commands)
    assert [r.outcome for r in results] == ["applied", "replayed", "rejected"]
    assert results[2].error is not None and results[2].error.code == "NOT_FOUND"
    [denied] = governance.decide(READER, [DecisionCommand("c", request["id"], "veto",
                                                          category="other", reason="r")])
    assert denied.error is not None and denied.error.code == "INSUFFICIENT_SCOPE"
    assert governance.decide(GOV, []) == []


def test_attachments_over_five_megabytes_are_refused_and_nothing_is_written(
        governance: GovernanceService) -> None:
    request = submit(governance)
    big = AttachmentIn("evidence.bin", "application/octet-stream", b"x" * (5 * 1024 * 1024 + 1))
    [result] = governance.decide(GOV, [DecisionCommand("k", request["id"], "veto",
                                                       category="other", reason="r",
                                                       attachments=(big,))])
    assert result.error is not None and result.error.code == "PAYLOAD_TOO_LARGE"
    assert governance.get_approval(request["id"])["status"] == "pending_approval"
    small = AttachmentIn("evidence.txt", "text/plain", b"proof")
    [ok] = governance.decide(GOV, [DecisionCommand("k2", request["id"], "veto",
                                                   category="other", reason="r",
                                                   attachments=(small,))])
    assert ok.outcome == "applied"


def test_seed_metrics_follow_matches_and_vetoes(governance: GovernanceService) -> None:
    submit(governance)  # before the seed: counted by the backtest
    created = seed(governance)
    assert created["metrics"] == {"matches": 1, "vetoes": 0, "match_rate": 1.0,
                                  "veto_rate": 0.0}
    request = submit(governance)
    submit(governance, industry="finance")
    governance.decide(GOV, [DecisionCommand("v", request["id"], "veto", category="safety",
                                            reason="r")])
    metrics = governance.get_seed("GEN-001")["metrics"]
    assert metrics == {"matches": 2, "vetoes": 1, "match_rate": 0.6667, "veto_rate": 0.5}


def test_seed_delta_and_tombstones(governance: GovernanceService) -> None:
    seed(governance, "s1")
    seed(governance, "s2", title="Second")
    items, _, version, deleted = governance.list_seeds()
    assert [s["id"] for s in items] == ["GEN-001", "GEN-002"] and deleted == []
    governance.delete_seed(PLATFORM, "GEN-001")
    items, _, new_version, deleted = governance.list_seeds(since=version)
    assert items == [] and deleted == ["GEN-001"] and new_version == version + 1
    with pytest.raises(NotFound):
        governance.delete_seed(PLATFORM, "GEN-001")
    with pytest.raises(NotFound):
        governance.get_seed("GEN-001")


def test_seed_conditions_are_validated_and_keys_replay(governance: GovernanceService) -> None:
    with pytest.raises(ValidationFailed) as err:
        seed(governance, conditions={"industry_in": ["atlantis"]})
    assert "conditions.industry_in.0" in err.value.details["fields"]
    status, body, replayed = governance.create_seed(
        PLATFORM, key="k", title="t", description="d", conditions={"wasm_valid": True},
        auto_approve=False)
    again = governance.create_seed(PLATFORM, key="k", title="t", description="d",
                                   conditions={"wasm_valid": True}, auto_approve=False)
    assert (status, replayed) == (201, False) and again == (201, body, True)


def test_budget_thresholds_are_announced_once_each(governance: GovernanceService) -> None:
    agent = governance.add_agent(name="A", industry="retail", kind="industry",
                                 tokens_limit=1000, tokens_used=700)
    assert governance.consume_budget(agent, 100) == [80]
    assert governance.consume_budget(agent, 10) == []
    assert governance.consume_budget(agent, 150) == [95]
    event = governance.published[-1]  # type: ignore[attr-defined]
    assert event["type"] == "governance.budget.threshold_exceeded"
    assert event["data"]["threshold"] == 95 and event["data"]["utilisation"] == 0.96
    governance.consume_budget(agent, 100)  # over 100 %: a budget violation
    violations, *_ = governance.list_violations()
    assert violations[0]["kind"] == "budget"
    with pytest.raises(NotFound):
        governance.consume_budget("AGT-nope", 1)


def test_violation_delta_and_resolution(governance: GovernanceService) -> None:
    agent = governance.add_agent(name="A", industry="retail", kind="industry", tokens_limit=1)
    first = governance.record_violation(agent, "ethics", "low", "x")
    items, _, version, _ = governance.list_violations()
    governance.record_violation(agent, "constitutional", "high", "y")
    governance.resolve_violation(first["id"])
    items, _, _, deleted = governance.list_violations(since=version)
    assert [v["kind"] for v in items] == ["constitutional"] and deleted == [first["id"]]
    with pytest.raises(NotFound):
        governance.record_violation("AGT-none", "ethics", "low", "x")
    with pytest.raises(NotFound):
        governance.resolve_violation(first["id"])


def test_pagination_cursors_and_bad_cursors(governance: GovernanceService,
                                            fake_clock: FakeClock) -> None:
    for i in range(5):
        submit(governance, agent_name=f"T{i}")
        fake_clock.advance(1)
    page, cursor = governance.list_approvals(limit=2)
    seen = [r["id"] for r in page]
    while cursor:
        page, cursor = governance.list_approvals(limit=2, cursor=cursor)
        seen += [r["id"] for r in page]
    assert seen == ["REQ-0005", "REQ-0004", "REQ-0003", "REQ-0002", "REQ-0001"]
    for bad in ("%%%", "WyJ4Il0", "bm90IGpzb24"):
        with pytest.raises(ValidationFailed):
            governance.list_approvals(cursor=bad)


def test_events_are_numbered_and_readable_after_an_id(governance: GovernanceService) -> None:
    submit(governance)
    submit(governance)
    items, _ = governance.notifications(after=0)
    assert [i["id"] for i in items] == ["1", "2"]
    later, _ = governance.notifications(after=1)
    assert [i["id"] for i in later] == ["2"]
    assert governance.last_event_id() == 2


def test_a_failing_publisher_does_not_fail_the_write(fake_clock: FakeClock,
                                                     governance: GovernanceService) -> None:
    def broken(_: dict[str, Any]) -> None:
        raise RuntimeError("bus down")

    svc = GovernanceService(governance.db, fake_clock, publish=broken)
    assert submit(svc)["status"] == "pending_approval"
    assert svc.last_event_id() == 1


def _pending_batch(svc: GovernanceService, n: int) -> list[DecisionCommand]:
    return [DecisionCommand(f"b{i}", submit(svc)["id"], "approve", expected_version=1)
            for i in range(n)]


def test_the_events_of_one_commit_go_to_publish_many_at_once(
        fake_clock: FakeClock, governance: GovernanceService) -> None:
    calls: list[list[dict[str, Any]]] = []
    svc = GovernanceService(governance.db, fake_clock, publish_many=calls.append)
    commands = _pending_batch(svc, 3)
    calls.clear()
    svc.decide(GOV, commands)
    (batch,) = calls
    assert [m["type"] for m in batch] == ["governance.approval.decided"] * 3
    assert [m["metadata"]["causation_id"] for m in batch] == ["b0", "b1", "b2"]
    assert [int(m["id"]) for m in batch] == sorted(int(m["id"]) for m in batch)


def test_a_failing_batch_publisher_does_not_fail_the_write(
        fake_clock: FakeClock, governance: GovernanceService,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(_: list[dict[str, Any]]) -> None:
        raise RuntimeError("bus down")

    svc = GovernanceService(governance.db, fake_clock, publish_many=broken)
    commands = _pending_batch(svc, 2)
    results = svc.decide(GOV, commands)
    assert [r.outcome for r in results] == ["applied", "applied"]
    assert "publishing events" in caplog.text


def test_without_publish_many_each_event_is_published_alone(
        fake_clock: FakeClock, governance: GovernanceService) -> None:
    seen: list[str] = []

    def flaky(message: dict[str, Any]) -> None:
        seen.append(message["metadata"]["causation_id"])
        if len(seen) == 1:
            raise RuntimeError("one push failed")

    commands = _pending_batch(governance, 2)
    governance.publish = flaky
    governance.decide(GOV, commands)
    assert seen == ["b0", "b1"]  # the first failing does not stop the second


def test_dashboard_counts(governance: GovernanceService) -> None:
    seed(governance)
    submit(governance)
    submit(governance, industry="finance")
    governance.add_agent(name="Hot", industry="retail", kind="industry", tokens_limit=100,
                         tokens_used=96)
    board = governance.dashboard()
    assert board["pending_approvals"] == 1 and board["in_veto_window"] == 1
    assert board["active_agents"] == 1
    assert board["nearest_veto_deadline"] == "2026-01-02T12:00:00.000Z"
    assert board["budget"]["alerts"][0]["threshold"] == 95


def test_batch_writes_read_back_exactly(governance: GovernanceService,
                                        fake_clock: FakeClock) -> None:
    from sqlalchemy import select

    from backend_stub.domain.models import Decision, IdempotencyRecord

    request = submit(governance)
    [result] = governance.decide(GOV, [DecisionCommand("rt", request["id"], "approve",
                                                       expected_version=1, device_id="p",
                                                       device_decided_at=fake_clock.now())])
    stored = governance.get_approval(request["id"])
    assert stored["veto_deadline"] == "2026-01-02T12:00:00.000Z"
    assert stored["decided_at"] == "2026-01-01T12:00:00.000Z"
    assert stored["pipeline"] == result.approval["pipeline"]  # type: ignore[index]
    with governance.db.session() as session:
        decision = session.execute(select(Decision)).scalars().one()
        record = session.execute(select(IdempotencyRecord)).scalars().one()
    assert decision.decided_at == fake_clock.now() and decision.device_id == "p"
    assert decision.device_decided_at == fake_clock.now()
    assert record.body == result.body and record.created_at == fake_clock.now()


def test_the_pipeline_advances_to_the_governor_and_is_then_matched(
        governance: GovernanceService) -> None:
    seed(governance)
    request = submit(governance, stage="genesis_certification")
    assert governance.early_requests() == [request["id"]]
    reviewed = governance.advance_pipeline(request["id"])
    assert reviewed["stage"] == "architect_review" and reviewed["version"] == 2
    governance.advance_pipeline(request["id"])
    arrived = governance.advance_pipeline(request["id"])
    assert arrived["stage"] == "veto_window" and arrived["status"] == "auto_approved"
    stages = {s["stage"]: s["status"] for s in arrived["pipeline"]}
    assert stages["ethics_review"] == "passed" and stages["veto_window"] == "in_progress"
    assert governance.early_requests() == []
    with pytest.raises(AlreadyDecided):
        governance.advance_pipeline(request["id"])
    with pytest.raises(NotFound):
        governance.advance_pipeline("REQ-0404")


def test_rows_read_from_the_sqlite_driver_are_what_was_written() -> None:
    """``_from_sqlite`` (the decision batch's locked read) undoes ``_sqlite_rows`` (its bulk
    writes): aware UTC times, parsed JSON, nulls kept."""
    from datetime import UTC, datetime, timedelta, timezone

    from backend_stub.domain.service import APPROVALS, _from_sqlite, _sqlite_rows

    columns = ["id", "version", "pipeline", "veto_deadline", "decided_at", "decided_by"]
    at = datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    rows = [("REQ-1", 2, [{"stage": "review", "status": "passed"}], at, None, "governor"),
            ("REQ-2", 1, {"nested": [1, None, "é"]}, None, at.replace(microsecond=0), None)]
    read = _from_sqlite(APPROVALS, columns, _sqlite_rows(APPROVALS, columns, rows))
    assert read == [dict(zip(columns, row, strict=True)) for row in rows]
    assert read[0]["veto_deadline"].tzinfo is UTC
    assert read[0]["veto_deadline"] == at
