"""What a governance server does with the engine's requests, over the fake and the stub.

Decisions (the batch the outbox sends), idempotent replay, versions, veto windows,
listing and the events a decision leaves, asserted on the answers alone, so the same
assertions judge both servers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from tests.sync.server_behaviour.conftest import VETO_WINDOW, Server, Target


def approve(approval_id: str, version: int, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "approval_id": approval_id, "action": "approve",
            "expected_version": version, "decided_at": "2026-01-01T12:00:00Z",
            "device_id": "phone-7", **extra}


def veto(approval_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "approval_id": approval_id, "action": "veto",
            "category": "safety", "reason": "Reads patient records it does not need.",
            "attachments": [], "decided_at": "2026-01-01T12:00:00Z", "device_id": "phone-7",
            **extra}


def test_an_approval_at_the_current_version_is_applied_and_opens_the_veto_window(
        server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        before = await s.approval(approval_id)
        assert before["status"] == "pending_approval"
        assert before["veto_deadline"] is None
        now = await s.now()
        [result] = await s.decide(approve(approval_id, before["version"]))
        assert result["outcome"] == "applied"
        assert result["approval"]["id"] == approval_id
        assert result["approval"]["status"] == "approved"
        assert result["approval"]["version"] == before["version"] + 1
        after = await s.approval(approval_id)
        assert after["status"] == "approved"
        assert after["version"] == before["version"] + 1
        assert after["decided_by"]
        deadline = datetime.fromisoformat(after["veto_deadline"])
        assert abs((deadline - now - VETO_WINDOW).total_seconds()) < 60
    server.run(scenario)


def test_a_replayed_decision_answers_as_the_first_and_is_applied_once(
        server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        version = (await s.approval(approval_id))["version"]
        decision = approve(approval_id, version)
        [first] = await s.decide(decision)
        [again] = await s.decide(decision)
        assert first["outcome"] == "applied"
        assert again["outcome"] == "replayed"
        assert again["id"] == first["id"] == decision["id"]
        assert again["approval"]["version"] == first["approval"]["version"]
        assert (await s.approval(approval_id))["version"] == version + 1
    server.run(scenario)


def test_a_decision_id_reused_with_another_body_is_refused(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        version = (await s.approval(approval_id))["version"]
        decision = approve(approval_id, version)
        await s.decide(decision)
        [reused] = await s.decide({**decision, "comment": "another body"})
        assert reused["outcome"] == "rejected"
        assert reused["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    server.run(scenario)


def test_an_approval_at_an_old_version_is_a_version_conflict(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        version = (await s.approval(approval_id))["version"]
        [result] = await s.decide(approve(approval_id, version + 5))
        assert result["outcome"] == "rejected"
        assert result["error"]["code"] == "VERSION_CONFLICT"
        assert result["error"]["details"]["current_version"] == version
        assert result["approval"]["status"] == "pending_approval"
        assert (await s.approval(approval_id))["status"] == "pending_approval"
    server.run(scenario)


def test_approving_a_decided_request_says_it_was_already_decided(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        version = (await s.approval(approval_id))["version"]
        await s.decide(approve(approval_id, version))
        [late] = await s.decide(approve(approval_id, version + 1))
        assert late["outcome"] == "rejected"
        assert late["error"]["code"] == "ALREADY_DECIDED"
        assert late["error"]["details"]["status"] == "approved"
        assert late["approval"]["status"] == "approved"
    server.run(scenario)


def test_a_veto_within_the_window_is_applied(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.auto_approved()
        before = await s.approval(approval_id)
        assert before["status"] == "auto_approved"
        assert before["veto_deadline"] is not None
        [result] = await s.decide(veto(approval_id))
        assert result["outcome"] == "applied"
        assert result["approval"]["status"] == "vetoed"
        after = await s.approval(approval_id)
        assert after["status"] == "vetoed"
        assert after["version"] == before["version"] + 1
    server.run(scenario)


def test_a_veto_of_a_vetoed_request_says_it_was_already_decided(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.auto_approved()
        await s.decide(veto(approval_id))
        [again] = await s.decide(veto(approval_id))
        assert again["outcome"] == "rejected"
        assert again["error"]["code"] == "ALREADY_DECIDED"
        assert again["error"]["details"]["status"] == "vetoed"
    server.run(scenario)


def test_a_veto_after_the_window_closed_is_refused_with_the_deadline(
        server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.auto_approved()
        deadline = (await s.approval(approval_id))["veto_deadline"]
        await s.advance(VETO_WINDOW.total_seconds() + 3600)
        [late] = await s.decide(veto(approval_id))
        assert late["outcome"] == "rejected"
        assert late["error"]["code"] == "VETO_WINDOW_CLOSED"
        assert datetime.fromisoformat(late["error"]["details"]["deadline"]) == \
            datetime.fromisoformat(deadline)
        assert (await s.approval(approval_id))["status"] != "vetoed"
    server.run(scenario)


def test_an_unknown_request_is_not_found_when_read_or_decided(server: Target) -> None:
    async def scenario(s: Server) -> None:
        response = await s.get("/approvals/REQ-NOPE")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
        [result] = await s.decide(approve("REQ-NOPE", 1))
        assert result["outcome"] == "rejected"
        assert result["error"]["code"] == "NOT_FOUND"
    server.run(scenario)


def test_the_list_holds_a_new_request_and_its_etag_answers_304_until_it_changes(
        server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        listed = await s.get("/approvals", params={"limit": 200})
        assert listed.status_code == 200
        assert approval_id in {a["id"] for a in listed.json()["data"]}
        etag = listed.headers["etag"]
        unchanged = await s.get("/approvals", params={"limit": 200},
                                headers={"If-None-Match": etag})
        assert unchanged.status_code == 304
        version = (await s.approval(approval_id))["version"]
        await s.decide(approve(approval_id, version))
        changed = await s.get("/approvals", params={"limit": 200},
                              headers={"If-None-Match": etag})
        assert changed.status_code == 200
        assert {a["id"]: a["status"] for a in changed.json()["data"]}[approval_id] == \
            "approved"
    server.run(scenario)


def test_a_decision_leaves_an_event_after_the_last_one(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approval_id = await s.pending()
        first = await s.get("/notifications", params={"limit": 500})
        assert first.status_code == 200
        seen = [n["id"] for n in first.json()["data"]]
        version = (await s.approval(approval_id))["version"]
        await s.decide(approve(approval_id, version))
        params = {"limit": 500, **({"after": seen[-1]} if seen else {})}
        later = (await s.get("/notifications", params=params)).json()["data"]
        decided = [n for n in later if n["type"] == "governance.approval.decided"
                   and n["data"].get("approval_id") == approval_id]
        assert len(decided) == 1
        assert decided[0]["data"]["status"] == "approved"
        assert not set(seen) & {n["id"] for n in later}
    server.run(scenario)


SEED = {"title": "Retail forecasters", "description": "Small retail forecasting agents.",
        "conditions": {"industry_in": ["retail"], "max_daily_token_budget": 1000},
        "auto_approve": False}


async def create_seed(s: Server, key: str, body: dict[str, Any] = SEED) -> Any:
    return await s.http.post("/v1/mobile/seeds", json=body,
                             headers={"Idempotency-Key": key})


def test_a_new_seed_is_created_once_and_its_replay_answers_the_same_seed(
        server: Target) -> None:
    async def scenario(s: Server) -> None:
        key = str(uuid.uuid4())
        created = await create_seed(s, key)
        assert created.status_code == 201
        seed = created.json()["data"]
        assert seed["title"] == SEED["title"]
        assert seed["status"] == "active"
        replayed = await create_seed(s, key)
        assert replayed.status_code == 201
        assert replayed.headers.get("idempotent-replayed") == "true"
        assert replayed.json()["data"]["id"] == seed["id"]
        reused = await create_seed(s, key, {**SEED, "title": "Another title"})
        assert reused.status_code == 422
        assert reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
        missing = await s.http.post("/v1/mobile/seeds", json=SEED)
        assert missing.status_code in (400, 422)
    server.run(scenario)


def test_a_seed_without_conditions_is_refused_and_nothing_is_made(server: Target) -> None:
    async def scenario(s: Server) -> None:
        before = (await s.get("/seeds", params={"limit": 100})).json()["meta"]["version"]
        refused = await create_seed(s, str(uuid.uuid4()), {**SEED, "conditions": {}})
        assert refused.status_code == 422
        assert refused.json()["error"]["code"] == "VALIDATION_FAILED"
        after = (await s.get("/seeds", params={"limit": 100})).json()["meta"]["version"]
        assert after == before
    server.run(scenario)


def test_the_seed_delta_since_a_version_holds_what_changed_after_it(
        server: Target) -> None:
    async def scenario(s: Server) -> None:
        version = (await s.get("/seeds", params={"limit": 100})).json()["meta"]["version"]
        seed = (await create_seed(s, str(uuid.uuid4()))).json()["data"]
        delta = (await s.get("/seeds", params={"since": version, "limit": 100})).json()
        assert seed["id"] in {x["id"] for x in delta["data"]}
        assert delta["meta"]["version"] > version
        assert seed["id"] not in delta["meta"]["deleted"]
        latest = delta["meta"]["version"]
        nothing = (await s.get("/seeds", params={"since": latest, "limit": 100})).json()
        assert nothing["data"] == []
        assert nothing["meta"]["version"] == latest
    server.run(scenario)


def test_retiring_a_seed_moves_its_version_once_and_an_unknown_one_is_not_found(
        server: Target) -> None:
    async def scenario(s: Server) -> None:
        seed = (await create_seed(s, str(uuid.uuid4()))).json()["data"]
        path = f"/v1/mobile/seeds/{seed['id']}/retire"
        no_reason = await s.http.post(path, json={})
        assert no_reason.status_code == 422
        retired = await s.http.post(path, json={"reason": "Superseded."})
        assert retired.status_code == 200
        body = retired.json()["data"]
        assert body["status"] == "retired"
        assert body["version"] > seed["version"]
        again = await s.http.post(path, json={"reason": "Superseded."})
        assert again.status_code == 200
        assert again.json()["data"]["version"] == body["version"]
        unknown = await s.http.post("/v1/mobile/seeds/GEN-NOPE/retire",
                                    json={"reason": "x"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "NOT_FOUND"
    server.run(scenario)


def test_a_page_size_out_of_bounds_is_refused_on_every_list(server: Target) -> None:
    async def scenario(s: Server) -> None:
        for path, most in (("/approvals", 200), ("/seeds", 200), ("/violations", 200),
                           ("/agents", 200), ("/notifications", 500)):
            for limit in (0, most + 1):
                refused = await s.get(path, params={"limit": limit})
                assert refused.status_code == 422, (path, limit)
                assert refused.json()["error"]["code"] == "VALIDATION_FAILED"
            assert (await s.get(path, params={"limit": most})).status_code == 200, path
    server.run(scenario)


def test_events_after_a_cursor_come_a_page_at_a_time_in_order(server: Target) -> None:
    async def scenario(s: Server) -> None:
        approvals = [await s.pending(), await s.pending()]
        seen = (await s.get("/notifications", params={"limit": 500})).json()
        last = seen["data"][-1]["id"] if seen["data"] else None
        for approval_id in approvals:
            version = (await s.approval(approval_id))["version"]
            await s.decide(approve(approval_id, version))
        got: list[dict[str, Any]] = []
        cursor = last
        for _ in range(20):
            params: dict[str, Any] = {"limit": 1, **({"after": cursor} if cursor else {})}
            page = (await s.get("/notifications", params=params)).json()
            assert len(page["data"]) <= 1
            if not page["data"]:
                assert not page["meta"].get("next_cursor")
                break
            got += page["data"]
            assert str(page["meta"]["last_event_id"]) == page["data"][-1]["id"]
            assert page["meta"]["next_cursor"] == page["data"][-1]["id"]  # a full page
            cursor = page["meta"]["next_cursor"]
        ids = [int(n["id"]) for n in got]
        assert ids == sorted(ids)
        decided = [n["data"]["approval_id"] for n in got
                   if n["type"] == "governance.approval.decided"]
        assert decided == approvals
    server.run(scenario)
