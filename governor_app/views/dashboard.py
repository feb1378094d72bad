"""Dashboard: the fleet's figures, veto deadlines, budget alerts, health, freshness.

Each figure, the nearest deadline and each recent veto opens the list or request it
stands for."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import flet as ft

from governor_app import addresses, state
from governor_app.views import approvals
from governor_app.views.common import (
    action_button,
    empty,
    heading,
    labelled,
    pull_to_refresh,
    section,
)
from governor_app.views.screen import Screen as Shell

TOPICS = ("dashboard", "status")


def _signature(shell: Shell) -> object:
    cached = shell.client.dashboard()
    return (cached.dashboard, cached.stale) if cached else None


def _view(shell: Shell, *, with_nearest: bool = False) -> state.DashboardView:
    """The view model; ``with_nearest`` also reads the cached requests in a veto window to
    name the nearest (once per render, not on every tick of the countdowns)."""
    in_window = shell.client.approvals("veto_window") if with_nearest else None
    return state.dashboard_view(shell.client.dashboard(), shell.now(), in_window)


def _link(identifier: str, label: str | None, content: ft.Control,
          go: Callable[[], None]) -> ft.Control:
    """A value that is also a button. ``label`` says what it is when the texts inside do
    not (None: they are read as they are, once)."""
    return ft.Semantics(identifier=identifier, label=label, button=True, container=True,
                        on_tap=lambda e: go(),  # a screen reader's (and the tests') tap
                        content=ft.Container(content, on_click=lambda e: go(), ink=True,
                                             border_radius=8))


def _open_figure(shell: Shell, fig: state.Figure) -> None:
    if fig.approval_filter is not None:
        approvals.open_filtered(shell, fig.approval_filter)
    else:
        shell.go(fig.route)


def build(shell: Shell) -> ft.Control:
    shell.signature = lambda: _signature(shell)
    view = _view(shell, with_nearest=True)

    def refresh(e: object) -> None:
        shell.spawn(shell.client.sync_now())

    refresh_button = action_button("Refresh", refresh, icon=ft.Icons.REFRESH)
    if view.empty:
        return ft.Column([heading("Dashboard", refresh_button), empty(view.empty)])

    age = ft.Text(view.cached_age, size=12)
    shell.tickers.append((age, lambda: _view(shell).cached_age))
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
            _link(f"figure-{fig.key}", f"{fig.label}: {fig.value}", card,
                  partial(_open_figure, shell, fig)),
            col={"xs": 6, "md": 3}))

    deadline = ft.Text(view.nearest_deadline)
    shell.tickers.append((deadline, lambda: _view(shell).nearest_deadline))
    nearest = view.nearest_request
    deadline_row: ft.Control = labelled("nearest-deadline", "Nearest veto deadline", deadline)
    if nearest is not None:
        deadline_row = _link("nearest-deadline", None,
                             ft.Row([ft.Text(nearest, weight=ft.FontWeight.BOLD),
                                     ft.Container(deadline, expand=True),
                                     ft.Icon(ft.Icons.CHEVRON_RIGHT)]),
                             partial(shell.go, addresses.approval(nearest)))
    vetoes: list[ft.Control] = [
        _link(f"recent-veto-{i}", None,
              ft.Row([ft.Text(v.text, size=13, expand=True), ft.Icon(ft.Icons.CHEVRON_RIGHT)]),
              partial(shell.go, addresses.approval(v.approval_id)))
        for i, v in enumerate(view.recent_vetoes)]

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

    return pull_to_refresh(shell, ft.ListView([
        heading("Dashboard", refresh_button),
        ft.Row(freshness, spacing=8),
        ft.ResponsiveRow(cards),
        section("Nearest veto deadline", deadline_row),
        section("Budget utilisation", *budget, key="budget"),
        section("Recent vetoes", *(vetoes or [ft.Text("No recent vetoes.", italic=True)])),
        section("System health", *[ft.Semantics(
            identifier=f"health-{i}", label=f"{k}: {v}", container=True,
            exclude_semantics=True,  # read once, as "Overall: OK"
            content=ft.Row([ft.Text(k, expand=True),
                            ft.Text(v, expand=2, text_align=ft.TextAlign.END)]))
            for i, (k, v) in enumerate(view.health)]),
        section(f"Fleet compliance · {view.compliance_window}", *[
            labelled(f"compliance-{i}", f"{label}: {text}", ft.Row([
                ft.Icon(ft.Icons.HELP_OUTLINE if met is None else ft.Icons.CHECK_CIRCLE
                        if met else ft.Icons.ERROR_OUTLINE,
                        color=None if met is None else ft.Colors.GREEN_700 if met
                        else ft.Colors.RED_700, size=16),
                ft.Text(label, expand=True), ft.Text(text)]))
            for i, (label, text, met) in enumerate(view.compliance)], key="compliance"),
    ], spacing=8, expand=True))
