"""Precedent seeds: their condition rules (validated by JSON Schema) and the matcher.

A seed's ``conditions`` is a small rule set; every rule present must hold for the seed to
match a request. A request fully matched by an active ``auto_approve`` seed needs no
governor decision: it is auto-approved and enters the veto window.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from backend_stub.components.validation import SchemaValidator
from backend_stub.domain import capabilities as caps
from backend_stub.errors import InvalidGrant

INDUSTRIES = ("healthcare", "education", "finance", "retail", "logistics", "energy",
              "public_sector", "coe")

CONDITIONS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Precedent seed conditions",
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {
        "industry_in": {"type": "array", "minItems": 1, "uniqueItems": True,
                        "items": {"enum": list(INDUSTRIES)}},
        "agent_kind_in": {"type": "array", "minItems": 1, "uniqueItems": True,
                          "items": {"enum": ["industry", "coe"]}},
        "capabilities_within": {"type": "array", "uniqueItems": True, "maxItems": 50,
                                "items": {"type": "string", "minLength": 3,
                                          "maxLength": 200,
                                          "pattern": "^[a-z_]+:.+$"}},
        # Bounded: an integer past 64 bits breaks the request fingerprint (a 500).
        "max_daily_token_budget": {"type": "integer", "minimum": 0, "maximum": 2**53},
        "max_monthly_cost_usd": {"type": "number", "minimum": 0, "maximum": 1e12},
        "no_dangerous_capabilities": {"const": True},
        "wasm_valid": {"const": True},
        "max_memory_pages": {"type": "integer", "minimum": 1, "maximum": 16384},
        "requester_in": {"type": "array", "minItems": 1, "uniqueItems": True,
                         "items": {"type": "string", "minLength": 1, "maxLength": 200}},
    },
}
_VALIDATOR = SchemaValidator(CONDITIONS_SCHEMA, root="conditions")


def condition_errors(conditions: Any) -> dict[str, str]:
    """Field path -> message for each way ``conditions`` breaks the schema or holds a
    capability pattern that does not parse (empty: valid)."""
    errors: dict[str, str] = {}
    for issue in _VALIDATOR.validate(conditions):
        errors.setdefault(issue.path, issue.message)
    patterns = conditions.get("capabilities_within") if isinstance(conditions, dict) else None
    for index, pattern in enumerate(patterns if isinstance(patterns, list) else ()):
        if not isinstance(pattern, str):
            continue
        try:
            caps.parse(pattern)
        except InvalidGrant as exc:
            errors.setdefault(f"conditions.capabilities_within.{index}", exc.message)
    return errors


@dataclass(frozen=True)
class RequestFacts:
    """What the matcher knows of a request."""

    industry: str
    agent_kind: str
    capabilities: tuple[str, ...]
    daily_token_budget: int
    monthly_cost_usd: float
    wasm_valid: bool
    memory_pages: int | None
    requester: str


@dataclass(frozen=True)
class SeedRule:
    seed_id: str
    title: str
    conditions: dict[str, Any]
    auto_approve: bool
    status: str


@dataclass(frozen=True)
class MatchResult:
    seed_id: str
    title: str
    score: float
    conditions_met: list[str]
    conditions_failed: list[str]
    auto_approve: bool

    @property
    def full(self) -> bool:
        return not self.conditions_failed

    def as_dict(self) -> dict[str, Any]:
        return {"seed_id": self.seed_id, "title": self.title, "score": self.score,
                "conditions_met": self.conditions_met,
                "conditions_failed": self.conditions_failed}


def _evaluate(name: str, rule: Any, facts: RequestFacts) -> tuple[str, bool]:
    if name == "industry_in":
        return f"industry in [{', '.join(rule)}]", facts.industry in rule
    if name == "agent_kind_in":
        return f"agent kind in [{', '.join(rule)}]", facts.agent_kind in rule
    if name == "capabilities_within":
        label = f"capabilities within [{', '.join(rule)}]"
        return label, all(caps.within(c, rule) for c in facts.capabilities)
    if name == "max_daily_token_budget":
        return f"daily token budget at most {rule}", facts.daily_token_budget <= rule
    if name == "max_monthly_cost_usd":
        return f"monthly cost at most ${rule}", facts.monthly_cost_usd <= rule
    if name == "no_dangerous_capabilities":
        return "no dangerous capabilities", not any(caps.is_dangerous(c)
                                                    for c in facts.capabilities)
    if name == "wasm_valid":
        return "WASM module valid", facts.wasm_valid
    if name == "max_memory_pages":
        return (f"memory at most {rule} pages",
                facts.memory_pages is not None and facts.memory_pages <= rule)
    if name == "requester_in":
        return f"requester in [{', '.join(rule)}]", facts.requester in rule
    return f"unknown rule {name}", False


class SeedMatcher:
    """Scores a request against seeds; the score is the share of conditions it meets."""

    def match(self, facts: RequestFacts, seed: SeedRule) -> MatchResult:
        met: list[str] = []
        failed: list[str] = []
        for name, rule in seed.conditions.items():
            label, holds = _evaluate(name, rule, facts)
            (met if holds else failed).append(label)
        total = len(met) + len(failed)
        score = round(len(met) / total, 3) if total else 0.0
        return MatchResult(seed.seed_id, seed.title, score, met, failed, seed.auto_approve)

    def best(self, facts: RequestFacts, seeds: Iterable[SeedRule], limit: int = 3
             ) -> list[MatchResult]:
        """Matches against active seeds, best first (full auto-approve matches lead)."""
        results = [self.match(facts, s) for s in seeds if s.status == "active"]
        results = [r for r in results if r.score > 0]
        results.sort(key=lambda r: (-r.score, not (r.full and r.auto_approve), r.seed_id))
        return results[:limit]

    def auto_approver(self, matches: list[MatchResult]) -> MatchResult | None:
        return next((m for m in matches if m.full and m.auto_approve), None)
