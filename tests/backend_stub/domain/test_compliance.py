"""The dashboard's fleet compliance: seed 002's targets computed from the stored rows."""

from __future__ import annotations

from datetime import timedelta

from backend_stub.clock import FakeClock
from backend_stub.domain.service import DecisionCommand, GovernanceService
from tests.backend_stub.domain.test_service import GOV, seed, submit


def veto(svc: GovernanceService, approval_id: str) -> None:
    result = svc.decide(GOV, [DecisionCommand(key=f"v-{approval_id}", approval_id=approval_id,
                                              action="veto", category="safety",
                                              reason="Too broad.")])[0]
    assert result.error is None


def test_nothing_to_count_is_neither_met_nor_missed(governance: GovernanceService) -> None:
    compliance = governance.dashboard()["compliance"]
    assert compliance == {
        "window_days": 30,
        "seed_match_rate": {"value": None, "target": 0.6, "direction": "above", "met": None,
                            "matched": 0, "requests": 0},
        "veto_rate": {"value": None, "target": 0.05, "direction": "below", "met": None,
                      "vetoed": 0, "decided": 0}}


def test_rates_come_from_the_requests_of_the_window(governance: GovernanceService,
                                                    fake_clock: FakeClock) -> None:
    seed(governance)  # auto-approves education requests
    seed(governance, key="s2", title="Retired", status="retired",
         conditions={"industry_in": ["finance"]})
    old = submit(governance, industry="finance")
    veto(governance, old["id"])
    # The vetoed finance request leaves the window.
    fake_clock.advance(timedelta(days=31).total_seconds())

    tutors = [submit(governance) for _ in range(3)]  # matched and auto-approved
    submit(governance, industry="finance")  # matches only the retired seed: not counted
    submit(governance, industry="retail", stage="ethics_review")  # pending, not decided
    veto(governance, tutors[0]["id"])

    compliance = governance.dashboard()["compliance"]
    match, vetoes = compliance["seed_match_rate"], compliance["veto_rate"]
    assert (match["matched"], match["requests"], match["value"]) == (3, 5, 0.6)
    assert match["met"] is False  # the target is above 60 %, not 60 % itself
    assert (vetoes["vetoed"], vetoes["decided"], vetoes["value"]) == (1, 3, 0.3333)
    assert vetoes["met"] is False

    submit(governance)
    match = governance.dashboard()["compliance"]["seed_match_rate"]
    assert (match["matched"], match["requests"], match["met"]) == (4, 6, True)
