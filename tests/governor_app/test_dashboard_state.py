from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governor_app import state
from sync.models import (
    ApprovalStatus,
    ApprovalSummary,
    BudgetSummary,
    CachedDashboard,
    Compliance,
    Dashboard,
    SyncStatus,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def cached(utilisation: float = 0.5, stale: bool = False, pending: int = 3
           ) -> CachedDashboard:
    return CachedDashboard(
        dashboard=Dashboard(active_agents=7, pending_approvals=pending, in_veto_window=2,
                            nearest_veto_deadline=NOW + timedelta(hours=1, minutes=2),
                            recent_vetoes=[{"approval_id": "REQ-9", "category": "safety",
                                            "reason": "exec import"}],
                            health={"database": {"status": "ok"}, "event_bus": "degraded"},
                            budget=BudgetSummary(utilisation=utilisation, tokens_used=10,
                                                 tokens_limit=20),
                            generated_at=NOW),
        fetched_at=NOW - timedelta(minutes=7), stale=stale)


def test_nothing_cached_says_what_happens_next() -> None:
    view = state.dashboard_view(None, NOW)
    assert view.empty and "first sync" in view.empty
    assert view.figures == ()


def test_figures_deadline_vetoes_health_and_age() -> None:
    view = state.dashboard_view(cached(), NOW)
    assert [(f.key, f.value) for f in view.figures] == [
        ("active-agents", "7"), ("pending-approvals", "3"), ("in-veto-window", "2"),
        ("budget-utilisation", "50 %")]
    assert view.figures[1].badge
    assert view.nearest_deadline == "1:02:00 left"
    assert view.recent_vetoes == (
        state.RecentVeto("REQ-9", "REQ-9 · vetoed · Safety: exec import"),)
    assert view.health == (("Database", "OK"), ("Event bus", "Degraded"))
    assert view.cached_age == "Data from 7 min ago"
    assert view.budget_alert is None


def test_no_badge_when_nothing_waits() -> None:
    assert not state.dashboard_view(cached(pending=0), NOW).figures[1].badge


def test_budget_alerts_at_80_and_95_percent() -> None:
    warning = state.dashboard_view(cached(0.8), NOW)
    assert warning.budget_alert == "warning" and "80 %" in (warning.budget_alert_text or "")
    critical = state.dashboard_view(cached(0.96), NOW)
    assert critical.budget_alert == "critical"
    assert "95 %" in (critical.budget_alert_text or "")


def test_stale_marker_follows_the_cache() -> None:
    assert state.dashboard_view(cached(stale=True), NOW).stale


def test_connection_banner_offline_with_pending_decisions() -> None:
    status = SyncStatus(online=False, last_synced_at=NOW - timedelta(minutes=3),
                        pending_count=2)
    view = state.connection_view(status, NOW)
    assert not view.online and view.label == "Offline"
    assert view.synced == "Synced 3 min ago"
    assert view.detail and "reconnects by itself" in view.detail and "2 decision" in view.detail


def test_connection_online_shows_the_last_error() -> None:
    view = state.connection_view(SyncStatus(online=True, last_error="Rate limited"), NOW)
    assert view.online and view.detail == "Rate limited"


def test_per_agent_budget_alerts_name_the_agent_and_flag_95_percent() -> None:
    c = cached()
    c.dashboard.budget.alerts = [
        {"agent_id": "AGT-1", "agent_name": "Pricing Bot", "threshold": 95,
         "utilisation": 0.97},
        {"agent_id": "AGT-2", "threshold": 80, "utilisation": 0.81}]
    view = state.dashboard_view(c, NOW)
    assert view.alerts == (("Pricing Bot passed 95 % of its budget (at 97 %)", True),
                           ("AGT-2 passed 80 % of its budget (at 81 %)", False))


def test_fleet_compliance_shows_each_target_and_whether_it_is_met() -> None:
    board = cached().dashboard.model_copy(update={"compliance": Compliance.model_validate({
        "window_days": 30,
        "seed_match_rate": {"value": 0.38, "target": 0.6, "direction": "above", "met": False,
                            "matched": 5, "requests": 13},
        "veto_rate": {"value": None, "target": 0.05, "direction": "below", "met": None,
                      "vetoed": 0, "decided": 0}})})
    view = state.dashboard_view(CachedDashboard(dashboard=board, fetched_at=NOW, stale=False),
                                NOW)
    assert view.compliance_window == "Last 30 days"
    assert view.compliance == (
        ("Precedent-seed match rate", "38 % (target above 60 %) · missed", False),
        ("Governor veto rate", "no requests yet (target below 5 %)", None))


def test_a_dashboard_cached_before_compliance_existed_still_shows() -> None:
    body = cached().dashboard.model_dump(mode="json", exclude={"compliance"})
    view = state.dashboard_view(CachedDashboard(dashboard=Dashboard.model_validate(body),
                                                fetched_at=NOW, stale=False), NOW)
    assert view.compliance == () and view.compliance_window == "Not reported by this server"


def test_each_figure_leads_to_the_list_it_counts() -> None:
    view = state.dashboard_view(cached(), NOW)
    assert [(f.key, f.route, f.approval_filter) for f in view.figures] == [
        ("active-agents", "/agents", None), ("pending-approvals", "/approvals", "pending"),
        ("in-veto-window", "/approvals", "veto_window"),
        ("budget-utilisation", "/agents", None)]


def summary(approval_id: str, deadline: datetime | None) -> ApprovalSummary:
    return ApprovalSummary(id=approval_id, agent={"name": "Bot"}, requester="ops",
                           industry="retail", status=ApprovalStatus.APPROVED, version=1,
                           veto_deadline=deadline)


def test_the_nearest_deadline_names_the_request_whose_window_closes_first() -> None:
    in_window = [summary("REQ-2", NOW + timedelta(hours=3)),
                 summary("REQ-1", NOW + timedelta(minutes=5)),
                 summary("REQ-0", NOW - timedelta(minutes=1)),  # closed already
                 summary("REQ-3", None)]
    assert state.dashboard_view(cached(), NOW, in_window).nearest_request == "REQ-1"
    assert state.dashboard_view(cached(), NOW, []).nearest_request is None
    closed = [summary("REQ-0", NOW - timedelta(minutes=1))]
    assert state.dashboard_view(cached(), NOW, closed).nearest_request is None


def test_a_recent_veto_says_who_which_agent_when_and_why() -> None:
    c = cached()
    c.dashboard.recent_vetoes = [{
        "approval_id": "REQ-16", "agent_name": "Pricing Bot", "category": "data_privacy",
        "reason": "reads card numbers", "decided_by": "governor",
        "decided_at": (NOW - timedelta(minutes=5)).isoformat()}]
    (veto,) = state.dashboard_view(c, NOW).recent_vetoes
    assert veto.approval_id == "REQ-16"
    assert veto.text.startswith("REQ-16 · Pricing Bot · vetoed by governor 5 min ago, ")
    assert veto.text.endswith(" · Data privacy: reads card numbers")
    assert "T11:55" not in veto.text  # no raw timestamp


def test_degraded_health_says_why() -> None:
    c = cached()
    c.dashboard.health = {"status": "degraded", "database": {"status": "ok"},
                          "violations_24h": 7}
    assert state.dashboard_view(c, NOW).health == (
        ("Overall", "Degraded: 7 violations in the last 24 hours (5 or more degrade the "
                    "fleet)"),
        ("Database", "OK"), ("Violations in the last 24 hours", "7"))


def test_down_health_names_the_check_that_is_down_and_its_error() -> None:
    c = cached()
    c.dashboard.health = {"status": "down", "redis": {"status": "down",
                                                      "error": "connection refused"},
                          "violations_24h": 0}
    assert state.dashboard_view(c, NOW).health[:2] == (
        ("Overall", "Down: Redis not answering"), ("Redis", "Down: connection refused"))


def test_health_from_a_server_with_an_unknown_status_is_still_words() -> None:
    c = cached()
    c.dashboard.health = {"status": "under_maintenance"}
    assert state.dashboard_view(c, NOW).health == (("Overall", "Under maintenance"),)
