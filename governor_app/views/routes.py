"""The one route table: path -> (screen builder, topics that re-render it)."""

from __future__ import annotations

from functools import partial

import flet as ft

from governor_app.views import (
    approvals,
    dashboard,
    fleet,
    notifications,
    outbox,
    seeds,
    settings,
    signin,
    veto,
)
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
    if head == "seeds":
        if len(parts) == 1:
            return seeds.build_list, seeds.TOPICS
        if parts[1] == "new":
            return seeds.build_wizard, ()
        return partial(seeds.build_detail, seed_id=parts[1]), seeds.TOPICS
    if head == "agents":
        return fleet.build_agents, fleet.AGENT_TOPICS
    if head == "violations":
        return fleet.build_violations, fleet.VIOLATION_TOPICS
    if head == "notifications":
        return notifications.build, notifications.TOPICS
    if head == "outbox":
        return outbox.build, outbox.TOPICS
    if head == "settings":
        return settings.build, settings.TOPICS
    if head == "more":
        return settings.build_more, ()
    return _todo(head.title()), ()
