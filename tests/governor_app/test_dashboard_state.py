from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governor_app import state
from sync.models import BudgetSummary, CachedDashboard, Dashboard, SyncStatus

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
    assert view.recent_vetoes == ("REQ-9: safety — exec import",)
    assert view.health == (("Database", "ok"), ("Event bus", "degraded"))
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
