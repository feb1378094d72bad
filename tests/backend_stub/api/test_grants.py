"""Capability grants over the API: a malformed seed pattern is a 422 in the contract's
envelope naming it, and the approval detail says why each dangerous grant is dangerous."""

from __future__ import annotations

from typing import Any

from tests.backend_stub.api.conftest import Api

READ = ("governance:read",)


def test_a_seed_with_a_malformed_pattern_is_a_validation_failure_naming_it(api: Api) -> None:
    body = {"title": "Readers", "description": "d", "auto_approve": True,
            "conditions": {"capabilities_within": ["file_read:/data/../etc/*"]}}
    response = api.client.post("/v1/mobile/seeds", json=body,
                               headers={**api.auth(), "Idempotency-Key": "bad-pattern"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_FAILED"
    message = error["details"]["fields"]["conditions.capabilities_within.0"]
    assert "'file_read:/data/../etc/*'" in message and "'..'" in message
    seeds = api.client.get("/v1/mobile/seeds", headers=api.auth(READ)).json()["data"]
    assert seeds == []


def test_the_detail_carries_a_reason_for_each_dangerous_grant(api: Api) -> None:
    created = api.submit(capabilities=["file_read:/data/x", "file_read:/etc/passwd",
                                       "network_outbound:*.com", "env_read:*"])
    response = api.client.get(f"/v1/mobile/approvals/{created['id']}", headers=api.auth(READ))
    grants: dict[str, Any] = {c["capability"]: c for c in response.json()["data"]["capabilities"]}
    assert grants["file_read:/data/x"]["reasons"] == []
    assert not grants["file_read:/data/x"]["dangerous"]
    for name in ("file_read:/etc/passwd", "network_outbound:*.com", "env_read:*"):
        assert grants[name]["dangerous"] and grants[name]["reasons"], name
    assert "/etc" in grants["file_read:/etc/passwd"]["reasons"][0]
