"""Agents and violations: lists with an expandable detail per row."""

from __future__ import annotations

import flet as ft

from governor_app import state
from governor_app.views.common import empty, heading, pull_to_refresh
from governor_app.views.screen import Screen as Shell

AGENT_TOPICS = ("agents",)
VIOLATION_TOPICS = ("violations",)


def build_agents(shell: Shell) -> ft.Control:
    rows = state.agent_rows(shell.client.agents())
    shell.signature = lambda: state.agent_rows(shell.client.agents())
    tiles: list[ft.Control] = [ft.Semantics(identifier=f"agent-{r.id}", content=ft.ExpansionTile(
        title=ft.Text(r.name), subtitle=ft.Text(f"{r.subtitle} · {r.budget}", size=12),
        controls=[ft.Container(ft.Column(
            [ft.Text(f"Agent {r.id}", size=12),
             ft.Text("Capability grants", weight=ft.FontWeight.BOLD),
             *([ft.Text(c, size=12, selectable=True) for c in r.capabilities]
               or [ft.Text("None", size=12)])], spacing=2), padding=ft.Padding.only(left=16))]))
        for r in rows] or [empty("No agents on this device yet.")]
    return ft.Column([heading("Agents"),
                      pull_to_refresh(shell, ft.ListView(tiles, expand=True))], expand=True)


def build_violations(shell: Shell) -> ft.Control:
    rows = state.violation_rows(shell.client.violations())
    shell.signature = lambda: state.violation_rows(shell.client.violations())
    tiles: list[ft.Control] = [ft.Semantics(
        identifier=f"violation-{r.id}", content=ft.ExpansionTile(
            leading=ft.Icon(ft.Icons.GPP_BAD if r.severe else ft.Icons.GPP_MAYBE,
                            color=ft.Colors.RED_700 if r.severe else ft.Colors.AMBER_800),
            title=ft.Text(r.title), subtitle=ft.Text(r.subtitle, size=12),
            controls=[ft.Container(ft.Text(r.description, selectable=True),
                                   padding=ft.Padding.only(left=16, bottom=8))]))
        for r in rows] or [empty("No violations recorded.")]
    return ft.Column([heading("Violations"),
                      pull_to_refresh(shell, ft.ListView(tiles, expand=True))], expand=True)
