from __future__ import annotations

import random
from collections import Counter
from datetime import datetime
from typing import Any

import pytest

from backend_stub.clock import FakeClock
from backend_stub.demo.activity import DemoActivity, DemoPlatform
from backend_stub.demo.world import load_demo_world
from backend_stub.domain import pipeline as pl
from backend_stub.domain.service import GovernanceService
from backend_stub.errors import NotFound


def test_the_demo_world_is_believable(governance: GovernanceService,
                                      fake_clock: FakeClock) -> None:
    load_demo_world(governance)
    agents, _ = governance.list_agents(limit=200)
    industries = Counter(a["industry"] for a in agents if a["kind"] == "industry")
    assert sum(1 for a in agents if a["status"] == "active") >= 12
    assert len(industries) >= 4
    requests, _ = governance.list_approvals(limit=200)
    assert len(requests) >= 8
    assert {r["status"] for r in requests} == set(pl.APPROVAL_STATUSES)
    assert {r["stage"] for r in requests} >= {"submitted", "genesis_certification",
                                              "architect_review", "ethics_review",
                                              "governor_approval", "veto_window", "deployed"}
    now = fake_clock.now()
    closing = [r for r in requests if r["veto_deadline"]
               and (datetime.fromisoformat(r["veto_deadline"].replace("Z", "+00:00")) - now)
               .total_seconds() < 6 * 3600]
    assert len(closing) >= 2
    seeds, *_ = governance.list_seeds()
    assert len(seeds) >= 6 and any(s["metrics"]["matches"] for s in seeds)
    assert any(s["metrics"]["vetoes"] for s in seeds)
    violations, *_ = governance.list_violations()
    assert {v["kind"] for v in violations} == {"constitutional", "ethics", "budget"}
    board = governance.dashboard()
    assert board["budget"]["alerts"] and board["recent_vetoes"]
    invalid = [governance.get_approval(r["id"])["wasm_report"] for r in requests]
    assert any(not report["valid"] for report in invalid)


def test_loading_twice_changes_nothing(governance: GovernanceService) -> None:
    load_demo_world(governance)
    before = governance.last_event_id()
    load_demo_world(governance)
    assert governance.last_event_id() == before


def test_every_scenario_acts(governance: GovernanceService) -> None:
    load_demo_world(governance)
    platform = DemoPlatform(governance, random.Random(7))
    assert platform.scenario("new_pending_approval")["status"] == "pending_approval"
    auto = platform.scenario("seed_auto_approval")
    assert auto["status"] == "auto_approved" and auto["seed_id"]
    assert platform.scenario("budget_80")["thresholds_crossed"]
    assert 95 in platform.scenario("budget_95")["thresholds_crossed"]
    assert platform.scenario("violation")["id"].startswith("VIO-")
    progressed = platform.pipeline_progress()
    assert progressed["stage"] == "genesis_certification"  # the oldest early request moved
    assert "event" in platform.tick()


class _AlwaysViolation(random.Random):
    def choices(self, population: Any, weights: Any = None, **_: Any) -> list[Any]:
        return ["violation"]


def test_budget_scenarios_say_when_nobody_is_left_to_push(
        governance: GovernanceService) -> None:
    platform = DemoPlatform(governance)
    with pytest.raises(NotFound, match="advance the clock"):
        platform.budget(80)
    with pytest.raises(NotFound, match="no active agent"):
        platform.violation()
    assert "skipped" in DemoPlatform(governance, _AlwaysViolation()).tick()


def test_activity_thread_starts_and_stops(governance: GovernanceService) -> None:
    activity = DemoActivity(DemoPlatform(governance), 3600)
    activity.start()
    activity.stop()


def test_the_demo_reviews_vary_and_nothing_is_shown_before_its_stage(
        governance: GovernanceService) -> None:
    load_demo_world(governance)
    requests, _ = governance.list_approvals(limit=200)
    reviewers, verdicts, certificates = set(), set(), set()
    for summary in requests:
        detail = governance.get_approval(summary["id"])
        for stage in detail["pipeline"]:
            passed = stage["status"] == "passed"
            if stage["stage"] == "genesis_certification":
                assert ("certificate" in stage) == passed, (summary["id"], stage)
                if passed:
                    certificates.add(stage["certificate"]["id"])
            elif stage["stage"] in ("architect_review", "ethics_review"):
                assert ("review" in stage) == passed, (summary["id"], stage)
                if passed:
                    reviewers.add(stage["review"]["reviewer"])
                    verdicts.add(stage["review"]["verdict"])
            else:
                assert "certificate" not in stage and "review" not in stage
    assert len(reviewers) >= 5 and len(certificates) >= 10
    assert verdicts == {"approve", "approve_with_findings", "escalate"}
