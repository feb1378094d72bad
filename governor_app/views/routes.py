"""The one route table: path -> (screen builder, topics that re-render it)."""

from __future__ import annotations

from functools import partial

import flet as ft

from governor_app.views import approvals, dashboard, signin, veto
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
    if head == "approvals":
        if len(parts) == 1:
            return approvals.build_list, approvals.TOPICS
        if len(parts) == 3 and parts[2] == "veto":
            return partial(veto.build, approval_id=parts[1]), veto.TOPICS
        return partial(approvals.build_detail, approval_id=parts[1]), approvals.TOPICS
    return _todo(head.title()), ()
