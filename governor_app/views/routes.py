"""The one route table: path -> (screen builder, topics that re-render it); ``app.py``
hands ``resolve`` to each session's shell."""

from __future__ import annotations

from functools import partial

from governor_app import addresses
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
from governor_app.views.common import not_found
from governor_app.views.screen import Builder


def resolve(route: str) -> tuple[Builder, tuple[str, ...]]:
    address = addresses.parse(route)
    screen, object_id = address.screen, address.id or ""
    if screen == "sign-in":
        return signin.build, signin.TOPICS
    if screen == "dashboard":
        return dashboard.build, dashboard.TOPICS
    if screen == "approvals":
        return approvals.build_list, approvals.TOPICS
    if screen == "veto":
        return partial(veto.build, approval_id=object_id), veto.TOPICS
    if screen == "approval":
        return partial(approvals.build_detail, approval_id=object_id), approvals.TOPICS
    if screen == "seeds":
        return seeds.build_list, seeds.TOPICS
    if screen == addresses.SEED_WIZARD:
        return seeds.build_wizard, ()
    if screen == "seed":
        return partial(seeds.build_detail, seed_id=object_id), seeds.TOPICS
    if screen == "agents":
        return fleet.build_agents, fleet.AGENT_TOPICS
    if screen == "violations":
        return fleet.build_violations, fleet.VIOLATION_TOPICS
    if screen == "notifications":
        return notifications.build, notifications.TOPICS
    if screen == "outbox":
        return outbox.build, outbox.TOPICS
    if screen == "settings":
        return settings.build, settings.TOPICS
    if screen == "more":
        return settings.build_more, ()
    return partial(not_found, what=f"The page {address.path!r}", back=addresses.HOME,
                   back_label="Go to the dashboard"), ()
