"""The one route table: path -> (screen builder, topics that re-render it)."""

from __future__ import annotations

import flet as ft

from governor_app.views import dashboard, signin
from governor_app.views.common import empty, heading
from governor_app.views.shell import Builder, Shell


def _todo(title: str) -> Builder:
    def build(shell: Shell) -> ft.Control:
        return ft.Column([heading(title), empty(f"{title} will be shown here.")])
    return build


def resolve(route: str) -> tuple[Builder, tuple[str, ...]]:
    parts = [p for p in route.split("/") if p]
    head = parts[0] if parts else "dashboard"
    if head == "sign-in":
        return signin.build, signin.TOPICS
    if head == "dashboard":
        return dashboard.build, dashboard.TOPICS
    return _todo(head.title()), ()
