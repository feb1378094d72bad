from __future__ import annotations

import pytest

from backend_stub.domain import capabilities as caps
from backend_stub.domain.seeds import RequestFacts, SeedMatcher, SeedRule, condition_errors

FACTS = RequestFacts(industry="education", agent_kind="industry",
                     capabilities=("file_read:/data/curriculum/x",), daily_token_budget=90_000,
                     monthly_cost_usd=100.0, wasm_valid=True, memory_pages=4, requester="genesis")


def rule(conditions: dict[str, object], *, auto: bool = True, status: str = "active",
         seed_id: str = "GEN-001") -> SeedRule:
    return SeedRule(seed_id, "t", conditions, auto, status)


def test_valid_conditions_have_no_errors() -> None:
    assert condition_errors({"industry_in": ["education"], "max_daily_token_budget": 5,
                             "capabilities_within": ["file_read:/data/*"],
                             "no_dangerous_capabilities": True}) == {}


@pytest.mark.parametrize("conditions, field", [
    ({}, "conditions"),
    ({"industry_in": ["mars"]}, "conditions.industry_in.0"),
    ({"max_daily_token_budget": -1}, "conditions.max_daily_token_budget"),
    ({"max_daily_token_budget": "5"}, "conditions.max_daily_token_budget"),
    ({"colour": "red"}, "conditions"),
    ({"capabilities_within": ["nocolon"]}, "conditions.capabilities_within.0"),
    ({"capabilities_within": ["file_read:/data/*", "file_read:/data/../etc"]},
     "conditions.capabilities_within.1"),
    ({"capabilities_within": ["network_outbound:evil*.example"]},
     "conditions.capabilities_within.0"),
])
def test_invalid_conditions_name_the_field(conditions: dict[str, object], field: str) -> None:
    assert field in condition_errors(conditions)


def test_full_match_scores_one_and_lists_conditions() -> None:
    result = SeedMatcher().match(FACTS, rule({"industry_in": ["education"],
                                              "capabilities_within": ["file_read:/data/**"],
                                              "max_daily_token_budget": 100_000}))
    assert result.full and result.score == 1.0
    assert result.conditions_failed == []
    assert "industry in [education]" in result.conditions_met


def test_partial_match_scores_the_share_met() -> None:
    result = SeedMatcher().match(FACTS, rule({"industry_in": ["finance"],
                                              "max_daily_token_budget": 100_000,
                                              "wasm_valid": True,
                                              "requester_in": ["someone-else"]}))
    assert result.score == 0.5 and not result.full
    assert result.conditions_failed == ["industry in [finance]", "requester in [someone-else]"]


def test_best_ignores_inactive_seeds_and_auto_approver_needs_a_full_auto_match() -> None:
    matcher = SeedMatcher()
    seeds = [rule({"industry_in": ["education"]}, status="retired", seed_id="GEN-009"),
             rule({"industry_in": ["education"]}, auto=False, seed_id="GEN-002"),
             rule({"industry_in": ["education"]}, seed_id="GEN-003"),
             rule({"industry_in": ["finance"], "wasm_valid": True}, seed_id="GEN-004")]
    best = matcher.best(FACTS, seeds)
    assert [m.seed_id for m in best] == ["GEN-003", "GEN-002", "GEN-004"]
    winner = matcher.auto_approver(best)
    assert winner is not None and winner.seed_id == "GEN-003"
    assert matcher.auto_approver(matcher.best(FACTS, seeds[1:2])) is None


def test_every_rule_kind_evaluates() -> None:
    matcher = SeedMatcher()
    conditions = {"agent_kind_in": ["coe"], "max_monthly_cost_usd": 50,
                  "no_dangerous_capabilities": True, "max_memory_pages": 2}
    result = matcher.match(FACTS, rule(conditions))
    assert result.conditions_met == ["no dangerous capabilities"]
    assert len(result.conditions_failed) == 3


def test_capabilities() -> None:
    assert caps.describe("file_read:/etc/passwd")["dangerous"] is True
    assert caps.is_dangerous("system_call:exec")
    assert not caps.is_dangerous("network_outbound:api.example")
    assert caps.within("file_read:/data/a/b", ["file_read:/data/**"])
    assert not caps.within("file_read:/data/a/b", ["file_read:/data/*"])  # '*' is one segment
    for bad in ("nocolon", "teleport:x", "file_read:", "network_inbound:99999"):
        with pytest.raises(ValueError, match=r"(?i)capability"):
            caps.parse(bad)


def test_a_malformed_pattern_is_refused_naming_it() -> None:
    errors = condition_errors({"capabilities_within": ["file_read:/data/*.csv"]})
    assert "'file_read:/data/*.csv'" in errors["conditions.capabilities_within.0"]
    assert "whole segment" in errors["conditions.capabilities_within.0"]


def test_a_traversal_grant_is_never_within_a_seed() -> None:
    # The example: fnmatch let this auto-approve under file_read:/data/*.
    facts = RequestFacts(industry="education", agent_kind="industry",
                         capabilities=("file_read:/data/../etc/shadow",),
                         daily_token_budget=1, monthly_cost_usd=0.0, wasm_valid=True,
                         memory_pages=1, requester="genesis")
    result = SeedMatcher().match(facts, rule({"capabilities_within": ["file_read:/data/*"],
                                              "no_dangerous_capabilities": True}))
    assert result.score == 0.0 and not result.full


def test_a_stored_pattern_that_no_longer_parses_covers_nothing() -> None:
    # Seeds saved before the grammar may hold shell-style patterns: they match nothing.
    result = SeedMatcher().match(FACTS, rule({"capabilities_within": ["file_read:/data/cur*"]}))
    assert result.conditions_failed == ["capabilities within [file_read:/data/cur*]"]
