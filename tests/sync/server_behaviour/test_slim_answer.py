"""The slim decision answer (``Prefer: return=minimal``, RFC 7240), over the fake and the
stub: the outbox asks for it on every batch and records a slim answer differently from a
full one, so both servers must agree on when it is given and what it holds."""

from __future__ import annotations

from typing import Any

from tests.sync.server_behaviour.conftest import Server, Target
from tests.sync.server_behaviour.test_server_behaviour import approve

MINIMAL = {"Prefer": "return=minimal"}
SLIM_KEYS = {"id", "status", "version", "updated_at"}


async def _post(s: Server, items: list[dict[str, Any]],
                headers: dict[str, str]) -> tuple[dict[str, str], list[dict[str, Any]]]:
    response = await s.http.post("/v1/mobile/decisions", json={"decisions": items},
                                 headers=headers)
    response.raise_for_status()
    return ({k.lower(): v for k, v in response.headers.items()},
            list(response.json()["data"]))


def test_return_minimal_slims_each_approval_and_says_so(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        version = (await s.approval(approval_id))["version"]
        headers, [result] = await _post(s, [approve(approval_id, version)], MINIMAL)
        assert headers.get("preference-applied") == "return=minimal"
        assert result["outcome"] == "applied"
        assert set(result["approval"]) == SLIM_KEYS
        assert result["approval"]["id"] == approval_id
        assert result["approval"]["status"] == "approved"
        assert result["approval"]["version"] == version + 1
        # The slim answer changes only the answer: the request is decided in full.
        after = await s.approval(approval_id)
        assert after["status"] == "approved" and after["decided_by"]
        assert after["updated_at"] == result["approval"]["updated_at"]
    server.run(scenario)


def test_a_rejected_result_carries_the_whole_approval(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        version = (await s.approval(approval_id))["version"]
        await _post(s, [approve(approval_id, version)], {})
        headers, [result] = await _post(s, [approve(approval_id, version + 1)], MINIMAL)
        assert headers.get("preference-applied") == "return=minimal"
        assert result["outcome"] == "rejected"
        assert result["error"]["code"] == "ALREADY_DECIDED"
        # Whole: a client names the fields that changed from it.
        assert set(result["approval"]) > SLIM_KEYS
        assert result["approval"]["status"] == "approved"
        assert result["approval"]["decided_by"] and "pipeline" in result["approval"]
    server.run(scenario)


def test_without_the_preference_the_answer_is_in_full(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        version = (await s.approval(approval_id))["version"]
        headers, [result] = await _post(s, [approve(approval_id, version)], {})
        assert "preference-applied" not in headers
        assert result["outcome"] == "applied"
        assert set(result["approval"]) > SLIM_KEYS
        assert result["approval"]["agent"]["id"]
        assert result["approval"]["decided_by"]
    server.run(scenario)
