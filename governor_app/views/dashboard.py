"""Dashboard: the fleet's figures, veto deadlines, budget alerts, health, freshness."""

from __future__ import annotations

import flet as ft

from governor_app import state
from governor_app.views.common import action_button, empty, heading, labelled, section
from governor_app.views.shell import Shell

TOPICS = ("dashboard", "status")


def _signature(shell: Shell) -> object:
    cached = shell.client.dashboard()
    return (cached.dashboard, cached.stale) if cached else None


def build(shell: Shell) -> ft.Control:
    shell.signature = lambda: _signature(shell)
    view = state.dashboard_view(shell.client.dashboard(), shell.now())

    def refresh(e: object) -> None:
        shell.spawn(shell.client.sync_now())

    refresh_button = action_button("Refresh", refresh, icon=ft.Icons.REFRESH)
    if view.empty:
        return ft.Column([heading("Dashboard", refresh_button), empty(view.empty)])

    age = ft.Text(view.cached_age, size=12)
    shell.tickers.append((age, lambda: state.dashboard_view(shell.client.dashboard(),
                                                            shell.now()).cached_age))
    freshness: list[ft.Control] = [labelled("dashboard-age", "Dashboard data age", age)]
    if view.stale:
        freshness.append(labelled("stale-marker", "Stale data", ft.Container(
            ft.Text("Stale", size=12, color=ft.Colors.BLACK), bgcolor=ft.Colors.AMBER_300,
            padding=ft.Padding.symmetric(vertical=2, horizontal=8), border_radius=8)))

    cards: list[ft.Control] = []
    for fig in view.figures:
        value = ft.Text(fig.value, size=28, weight=ft.FontWeight.BOLD)
        body = ft.Column([ft.Text(fig.label, size=13), value], spacing=2)
        # A waiting approval is the one figure that asks for action: tint it.
        card = ft.Card(ft.Container(body, padding=12),
                       bgcolor=ft.Colors.AMBER_50 if fig.badge else None)
        cards.append(ft.Container(
            labelled(f"figure-{fig.key}", f"{fig.label}: {fig.value}", card),
            col={"xs": 6, "md": 3}))

    deadline = ft.Text(view.nearest_deadline)
    shell.tickers.append((deadline, lambda: state.dashboard_view(
        shell.client.dashboard(), shell.now()).nearest_deadline))

    budget: list[ft.Control] = [
        ft.ProgressBar(value=view.budget_fraction, color=(
            ft.Colors.RED_700 if view.budget_alert == "critical" else
            ft.Colors.AMBER_700 if view.budget_alert == "warning" else None)),
        ft.Text(view.budget_text)]
    if view.budget_alert_text:
        budget.append(labelled("budget-alert", view.budget_alert_text, ft.Row([
            ft.Icon(ft.Icons.WARNING_AMBER, color=ft.Colors.RED_700
                    if view.budget_alert == "critical" else ft.Colors.AMBER_800),
            ft.Text(view.budget_alert_text, expand=True)])))
    budget += [labelled(f"budget-agent-alert-{i}", text, ft.Row([
        ft.Icon(ft.Icons.WARNING_AMBER, size=16,
                color=ft.Colors.RED_700 if critical else ft.Colors.AMBER_800),
        ft.Text(text, size=12, expand=True,
                weight=ft.FontWeight.BOLD if critical else None)]))
        for i, (text, critical) in enumerate(view.alerts)]

    return ft.ListView([
        heading("Dashboard", refresh_button),
        ft.Row(freshness, spacing=8),
        ft.ResponsiveRow(cards),
        section("Nearest veto deadline", labelled("nearest-deadline", "Nearest veto deadline",
                                                  deadline)),
        section("Budget utilisation", *budget, key="budget"),
        section("Recent vetoes", *([ft.Text(v) for v in view.recent_vetoes]
                                   or [ft.Text("No recent vetoes.", italic=True)])),
        section("System health", *[ft.Row([ft.Text(k, expand=True), ft.Text(v)])
                                    for k, v in view.health]),
    ], spacing=8, expand=True)
