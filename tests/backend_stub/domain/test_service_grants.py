"""Where grants enter the service: a bad grant or pattern is refused naming it, and nothing
is written; good grants are stored canonical and judged with reasons."""

from __future__ import annotations

from typing import Any

import pytest

from backend_stub.domain.service import PLATFORM, GovernanceService
from backend_stub.domain.wasm import build_module
from backend_stub.errors import ValidationFailed


def _submit(svc: GovernanceService, capabilities: list[str]) -> dict[str, Any]:
    return svc.submit_request(agent_name="Tutor", industry="education", agent_kind="industry",
                              requester="genesis", capabilities=capabilities,
                              wasm_module=build_module(), daily_token_budget=50_000,
                              monthly_cost_usd=50.0)


def _seed(svc: GovernanceService, patterns: list[str], key: str = "s1") -> dict[str, Any]:
    return svc.create_seed(PLATFORM, key=key, title="Readers", description="d",
                           conditions={"industry_in": ["education"],
                                       "capabilities_within": patterns,
                                       "no_dangerous_capabilities": True},
                           auto_approve=True)[1]["data"]


def _written(svc: GovernanceService) -> tuple[int, int, int, int]:
    return (len(svc.list_approvals(limit=200)[0]), len(svc.list_agents(limit=200)[0]),
            len(svc.list_seeds(limit=200)[0]), len(svc.published))  # type: ignore[attr-defined]


@pytest.mark.parametrize("grants, field, named", [
    (["file_read:/data/x", "file_read:/data/../etc/shadow"], "capabilities.1",
     "'file_read:/data/../etc/shadow'"),
    (["file_read:/data/%2e%2e/etc"], "capabilities.0", "percent-encoding"),
    (["network_outbound:bank.example."], "capabilities.0", "trailing dot"),
    (["network_inbound:99999"], "capabilities.0", "between 1 and 65535"),
])
def test_a_request_with_a_bad_grant_is_refused_and_nothing_is_written(
        governance: GovernanceService, grants: list[str], field: str, named: str) -> None:
    _seed(governance, ["file_read:/data/*"])
    before = _written(governance)
    with pytest.raises(ValidationFailed) as caught:
        _submit(governance, grants)
    assert caught.value.status_code == 422
    assert named in caught.value.details["fields"][field]
    assert _written(governance) == before


def test_an_agent_with_a_bad_grant_is_refused_and_nothing_is_written(
        governance: GovernanceService) -> None:
    before = _written(governance)
    with pytest.raises(ValidationFailed) as caught:
        governance.add_agent(name="A", industry="retail", kind="industry", tokens_limit=1,
                             capabilities=["env_read:HOME", "env_read:*HOME"])
    assert "'env_read:*HOME'" in caught.value.details["fields"]["capabilities.1"]
    assert _written(governance) == before


def test_a_seed_with_a_malformed_pattern_is_refused_and_nothing_is_written(
        governance: GovernanceService) -> None:
    before = _written(governance)
    with pytest.raises(ValidationFailed) as caught:
        _seed(governance, ["file_read:/data/*", "network_outbound:*bank.example"])
    message = caught.value.details["fields"]["conditions.capabilities_within.1"]
    assert "'network_outbound:*bank.example'" in message and "partial wildcard" in message
    assert _written(governance) == before


def test_star_is_one_segment_and_a_deeper_path_needs_globstar(
        governance: GovernanceService) -> None:
    _seed(governance, ["file_read:/data/*"])
    one_level = _submit(governance, ["file_read:/data/report"])
    assert one_level["status"] == "auto_approved"
    deeper = _submit(governance, ["file_read:/data/a/report"])
    assert deeper["status"] == "pending_approval"
    assert any("capabilities within" in c for c in deeper["seed_matches"][0]["conditions_failed"])
    _seed(governance, ["file_read:/data/**"], key="s2")
    assert _submit(governance, ["file_read:/data/a/report"])["status"] == "auto_approved"


def test_broad_grants_do_not_auto_approve_and_the_detail_says_why(
        governance: GovernanceService) -> None:
    _seed(governance, ["file_read:*", "env_read:*", "network_outbound:*.com"])
    request = _submit(governance, ["file_read:*", "env_read:*", "network_outbound:*.com"])
    assert request["status"] == "pending_approval"
    detail = governance.get_approval(request["id"])
    by_grant = {c["capability"]: c for c in detail["capabilities"]}
    assert set(by_grant) == {"file_read:/**", "env_read:*", "network_outbound:*.com"}
    assert all(c["dangerous"] and c["reasons"] for c in by_grant.values())
    assert "every environment variable" in by_grant["env_read:*"]["reasons"][0]


def test_grants_are_stored_canonical(governance: GovernanceService) -> None:
    request = _submit(governance, ["network_outbound:API.Bank\u3002Example"])
    detail = governance.get_approval(request["id"])
    assert detail["capabilities"] == [{
        "capability": "network_outbound:api.bank.example", "kind": "network_outbound",
        "target": "api.bank.example", "dangerous": False, "reasons": []}]
    agents = governance.list_agents(limit=10)[0]
    assert agents[0]["capabilities"] == ["network_outbound:api.bank.example"]
