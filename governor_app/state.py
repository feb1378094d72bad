"""View models: what each screen shows, computed from ``GovernorClient`` reads.

No Flet here. Each view model is a frozen dataclass built by a pure function from the
client's state and the current time, so the screens are tested with plain pytest and the
Flet views only lay them out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from governor_app import format as fmt
from sync.models import CachedDashboard, SyncStatus

BUDGET_WARN = 0.80
BUDGET_CRITICAL = 0.95


@dataclass(frozen=True)
class Figure:
    """One number on the dashboard; ``key`` is its stable selector in tests."""

    key: str
    label: str
    value: str
    badge: bool = False


@dataclass(frozen=True)
class ConnectionView:
    """The banner every screen shows: online or not, how fresh the data is."""

    online: bool
    label: str  # "Online" / "Offline"
    synced: str  # "Synced 2 min ago"
    detail: str | None  # the offline sentence or the last error in words
    pending: int


def connection_view(status: SyncStatus, now: datetime) -> ConnectionView:
    synced = f"Synced {fmt.age(status.last_synced_at, now)}"
    if status.online:
        return ConnectionView(True, "Online", synced, status.last_error, status.pending_count)
    detail = ("Offline: showing what this device cached. It reconnects by itself when "
              "the server is reachable again.")
    if status.pending_count:
        detail += f" {status.pending_count} decision(s) wait in the outbox."
    return ConnectionView(False, "Offline", synced, detail, status.pending_count)


@dataclass(frozen=True)
class DashboardView:
    empty: str | None  # a sentence when nothing is cached yet
    figures: tuple[Figure, ...] = ()
    nearest_deadline: str = ""
    recent_vetoes: tuple[str, ...] = ()
    health: tuple[tuple[str, str], ...] = ()
    budget_fraction: float = 0.0
    budget_text: str = ""
    budget_alert: str | None = None  # None, "warning" (80 %) or "critical" (95 %)
    budget_alert_text: str | None = None
    cached_age: str = ""
    stale: bool = False
    alerts: tuple[str, ...] = field(default_factory=tuple)


def dashboard_view(cached: CachedDashboard | None, now: datetime) -> DashboardView:
    if cached is None:
        return DashboardView(empty="No dashboard on this device yet. It appears after the "
                                   "first sync with the server; pull to refresh.")
    d = cached.dashboard
    fraction = d.budget.utilisation
    alert: str | None = None
    alert_text: str | None = None
    if fraction >= BUDGET_CRITICAL:
        alert = "critical"
        alert_text = (f"Budget at {fmt.percent(fraction)}: above the 95 % limit. Review the "
                      "agents spending most.")
    elif fraction >= BUDGET_WARN:
        alert = "warning"
        alert_text = f"Budget at {fmt.percent(fraction)}: above the 80 % warning."
    budget_text = fmt.percent(fraction)
    if d.budget.tokens_limit:
        budget_text += f" ({d.budget.tokens_used:,} of {d.budget.tokens_limit:,} tokens)"
    vetoes = tuple(
        f"{v.get('approval_id') or v.get('id', '?')}: {v.get('category', 'veto')}"
        + (f" — {v['reason']}" if v.get("reason") else "")
        for v in d.recent_vetoes)
    health = tuple((fmt.humanise(str(k)), _health_word(v)) for k, v in d.health.items())
    agent_alerts = tuple(
        f"{a.get('agent', 'fleet')} passed {a.get('threshold', '?')} %" for a in d.budget.alerts)
    return DashboardView(
        empty=None,
        figures=(
            Figure("active-agents", "Active agents", str(d.active_agents)),
            Figure("pending-approvals", "Pending approvals", str(d.pending_approvals),
                   badge=d.pending_approvals > 0),
            Figure("in-veto-window", "In veto window", str(d.in_veto_window)),
            Figure("budget-utilisation", "Budget used", fmt.percent(fraction)),
        ),
        nearest_deadline=(fmt.countdown(d.nearest_veto_deadline, now)
                          if d.nearest_veto_deadline else "No request in a veto window"),
        recent_vetoes=vetoes,
        health=health,
        budget_fraction=max(0.0, min(1.0, fraction)),
        budget_text=budget_text,
        budget_alert=alert,
        budget_alert_text=alert_text,
        cached_age=f"Data from {fmt.age(cached.fetched_at, now)}",
        stale=cached.stale,
        alerts=agent_alerts,
    )


def _health_word(value: object) -> str:
    if isinstance(value, dict):
        value = value.get("status", "?")
    return str(value)
