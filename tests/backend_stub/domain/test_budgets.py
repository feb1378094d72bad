"""The domain's budget alerts are the resources component's rule: 80 % and 95 %, once per
agent per day, remembered in the component's store (shared by every stub process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_stub.clock import FakeClock
from backend_stub.components.migrations import MIGRATIONS as COMPONENT_MIGRATIONS
from backend_stub.components.resources import ResourceManager, SqlUsageStore
from backend_stub.db import Database
from backend_stub.domain.migrations import MIGRATIONS
from backend_stub.domain.service import GovernanceService
from backend_stub.errors import NotFound


def thresholds(svc: GovernanceService) -> list[int]:
    return [e["data"]["threshold"] for e in svc.published  # type: ignore[attr-defined]
            if e["type"] == "governance.budget.threshold_exceeded"]


def test_alerts_fire_once_per_agent_per_day(governance: GovernanceService,
                                            fake_clock: FakeClock) -> None:
    agent = governance.add_agent(name="A", industry="retail", kind="industry",
                                 tokens_limit=1000, tokens_used=500)
    assert governance.consume_budget(agent, 300) == [80]
    assert governance.consume_budget(agent, 160) == [95]
    assert governance.consume_budget(agent, 10) == []
    fake_clock.advance(24 * 3600)  # a new day: still over both, announced again once
    assert governance.consume_budget(agent, 1) == [80, 95]
    assert governance.consume_budget(agent, 1) == []
    assert thresholds(governance) == [80, 95, 80, 95]


def test_an_agent_arriving_over_a_threshold_has_it_known_not_announced(
        governance: GovernanceService) -> None:
    agent = governance.add_agent(name="Hot", industry="retail", kind="industry",
                                 tokens_limit=100, tokens_used=85)
    assert governance.consume_budget(agent, 1) == []
    assert governance.consume_budget(agent, 10) == [95]
    assert governance.list_agents()[0][0]["budget"]["alert_level"] == 95


def test_the_rule_is_the_components(governance: GovernanceService) -> None:
    agent = governance.add_agent(name="A", industry="retail", kind="industry",
                                 tokens_limit=100)
    governance.consume_budget(agent, 81)
    day = governance.clock.now().date().isoformat()
    assert governance.budgets.store.thresholds(agent, day) == [80]


def test_processes_sharing_a_database_announce_once(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'shared.db'}")
    db.migrate(MIGRATIONS)
    db.migrate(COMPONENT_MIGRATIONS)
    clock = FakeClock()
    services = []
    for _ in range(2):  # two stub processes, each with its own component instance
        published: list[dict[str, object]] = []
        svc = GovernanceService(db, clock, publish=published.append)
        svc.budgets = ResourceManager(store=SqlUsageStore(db), clock=clock)
        svc.published = published  # type: ignore[attr-defined]
        services.append(svc)
    first, second = services
    agent = first.add_agent(name="Shared", industry="retail", kind="industry",
                            tokens_limit=1000)
    assert first.consume_budget(agent, 850) == [80]
    assert second.consume_budget(agent, 10) == []  # the other process knows it was told
    assert second.consume_budget(agent, 100) == [95]
    assert thresholds(first) == [80] and thresholds(second) == [95]
    db.dispose()


def test_a_refused_charge_marks_nothing(governance: GovernanceService) -> None:
    with pytest.raises(NotFound):
        governance.consume_budget("AGT-nope", 10**9)
    day = governance.clock.now().date().isoformat()
    assert governance.budgets.store.thresholds("AGT-nope", day) == []
