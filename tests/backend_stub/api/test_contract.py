"""The contract over HTTP, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.backend_stub.api.conftest import Api

READ = ("governance:read",)


def data(response: Any) -> Any:
    return response.json()["data"]


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert set(response.json()) == {"error", "meta"}
    return body


def decisions_count(api: Api) -> int:
    from sqlalchemy import func, select

    from backend_stub.domain.models import Decision

    with api.svc.db.session() as session:
        return int(session.execute(select(func.count()).select_from(Decision)).scalar_one())


# ---------------------------------------------------------------- envelopes and auth
def test_health_needs_no_token_and_echoes_the_request_id(api: Api) -> None:
    response = api.client.get("/v1/health", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "abc-123"
    assert response.json()["meta"]["request_id"] == "abc-123"


@pytest.mark.parametrize("path", ["/v1/mobile/dashboard", "/v1/mobile/approvals",
                                  "/v1/mobile/seeds", "/v1/mobile/agents",
                                  "/v1/mobile/violations", "/v1/mobile/notifications",
                                  "/v1/mobile/approvals/REQ-0001", "/v1/mobile/seeds/GEN-001"])
def test_every_read_route_needs_a_token(api: Api, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 401
    assert error(response)["code"] == "INVALID_TOKEN"
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    assert response.headers["X-Request-ID"]


@pytest.mark.parametrize("method, path, body, scope", [
    ("post", "/v1/mobile/approvals/REQ-0001/approve", {"expected_version": 1},
     "governance:write"),
    ("post", "/v1/mobile/approvals/REQ-0001/request-changes",
     {"expected_version": 1, "reason": "r"}, "governance:write"),
    ("post", "/v1/mobile/approvals/REQ-0001/veto", {"category": "other", "reason": "r"},
     "veto:execute"),
    ("post", "/v1/mobile/seeds", {"title": "t", "description": "d",
                                  "conditions": {"wasm_valid": True}}, "governance:write"),
    ("delete", "/v1/mobile/seeds/GEN-001", None, "governance:write"),
])
def test_writes_need_their_scope(api: Api, method: str, path: str, body: Any,
                                 scope: str) -> None:
    api.submit()
    headers = {**api.auth(READ), "Idempotency-Key": "k"}
    response = api.client.request(method, path, json=body, headers=headers)
    assert response.status_code == 403
    assert error(response)["code"] == "INSUFFICIENT_SCOPE"
    assert f'scope="{scope}"' in response.headers["WWW-Authenticate"]
    assert decisions_count(api) == 0


# ---------------------------------------------------------------- dashboard
def test_dashboard_has_an_etag_and_answers_304_until_something_changes(api: Api) -> None:
    api.submit()
    first = api.client.get("/v1/mobile/dashboard", headers=api.auth(READ))
    assert first.status_code == 200
    board = data(first)
    assert board["pending_approvals"] == 1 and board["generated_at"]
    etag = first.headers["ETag"]
    cached = api.client.get("/v1/mobile/dashboard",
                            headers={**api.auth(READ), "If-None-Match": etag})
    assert cached.status_code == 304 and cached.headers["ETag"] == etag
    assert cached.content == b""
    api.submit(agent_name="Another")
    changed = api.client.get("/v1/mobile/dashboard",
                             headers={**api.auth(READ), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert data(changed)["pending_approvals"] == 2


# ---------------------------------------------------------------- ETags of lists (an extension)
@pytest.mark.parametrize("path", ["/v1/mobile/approvals", "/v1/mobile/agents"])
def test_lists_have_an_etag_and_answer_304_until_they_change(api: Api, path: str) -> None:
    api.submit()
    first = api.client.get(path, headers=api.auth(READ))
    assert first.status_code == 200 and len(data(first)) == 1
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=0"
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = api.client.get(path, headers={**api.auth(READ), "If-None-Match": sent})
        assert cached.status_code == 304 and cached.headers["ETag"] == etag, sent
        assert cached.content == b""
    again = api.client.get(path, headers=api.auth(READ))
    assert again.headers["ETag"] == etag  # the request id and time are not part of it
    assert data(again) == data(first) and again.json()["meta"]["next_cursor"] is None
    api.submit(agent_name="Another")
    changed = api.client.get(path, headers={**api.auth(READ), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    assert len(data(changed)) == 2


def test_each_page_of_a_list_has_its_own_etag(api: Api) -> None:
    for i in range(3):
        api.submit(agent_name=f"T{i}")
        api.clock.advance(60)
    first = api.client.get("/v1/mobile/approvals", params={"limit": 2},
                           headers=api.auth(READ))
    whole = api.client.get("/v1/mobile/approvals", headers=api.auth(READ))
    assert first.headers["ETag"] != whole.headers["ETag"]
    cursor = first.json()["meta"]["next_cursor"]
    assert cursor
    stale = api.client.get("/v1/mobile/approvals", params={"limit": 2, "cursor": cursor},
                           headers={**api.auth(READ), "If-None-Match": first.headers["ETag"]})
    assert stale.status_code == 200 and len(data(stale)) == 1


def test_an_unauthorised_list_request_gets_no_304(api: Api) -> None:
    first = api.client.get("/v1/mobile/agents", headers=api.auth(READ))
    response = api.client.get("/v1/mobile/agents", headers={"If-None-Match": "*"})
    assert first.status_code == 200 and response.status_code == 401


# ---------------------------------------------------------------- approvals
def test_approvals_newest_first_with_cursor_pagination_and_status_filter(api: Api) -> None:
    for i in range(3):
        api.submit(agent_name=f"T{i}")
        api.clock.advance(60)
    page = api.client.get("/v1/mobile/approvals", params={"limit": 2}, headers=api.auth(READ))
    assert [a["id"] for a in data(page)] == ["REQ-0003", "REQ-0002"]
    cursor = page.json()["meta"]["next_cursor"]
    rest = api.client.get("/v1/mobile/approvals", params={"limit": 2, "cursor": cursor},
                          headers=api.auth(READ))
    assert [a["id"] for a in data(rest)] == ["REQ-0001"]
    assert rest.json()["meta"]["next_cursor"] is None
    summary = data(rest)[0]
    assert set(summary) >= {"id", "agent", "requester", "industry", "status", "version",
                            "veto_deadline", "created_at"}
    assert summary["agent"]["name"] == "T0"
    none = api.client.get("/v1/mobile/approvals", params={"status": "vetoed"},
                          headers=api.auth(READ))
    assert data(none) == []


@pytest.mark.parametrize("params", [{"status": "sideways"}, {"limit": 0}, {"limit": 201},
                                    {"cursor": "not-a-cursor"}, {"limit": "ten"}])
def test_bad_list_parameters_are_validation_failures(api: Api, params: dict[str, Any]) -> None:
    response = api.client.get("/v1/mobile/approvals", params=params, headers=api.auth(READ))
    assert response.status_code == 422
    assert error(response)["code"] == "VALIDATION_FAILED"
    assert error(response)["details"]["fields"]


def test_approval_detail_and_unknown_id(api: Api) -> None:
    created = api.submit(capabilities=["system_call:exec", "file_read:/data/x"])
    detail = data(api.client.get(f"/v1/mobile/approvals/{created['id']}",
                                 headers=api.auth(READ)))
    assert [s["stage"] for s in detail["pipeline"]] == [
        "submitted", "genesis_certification", "architect_review", "ethics_review",
        "governor_approval", "veto_window", "deployed"]
    assert detail["capabilities"][0] == {"capability": "system_call:exec",
                                         "kind": "system_call", "target": "exec",
                                         "dangerous": True, "reasons": [
                                             "Makes the system call 'exec' outside the "
                                             "sandbox."]}
    assert detail["wasm_report"]["valid"] is True and detail["wasm_report"]["magic_ok"]
    assert detail["budget"]["daily_token_budget"] == 50_000
    missing = api.client.get("/v1/mobile/approvals/REQ-9999", headers=api.auth(READ))
    assert missing.status_code == 404 and error(missing)["code"] == "NOT_FOUND"
    assert "REQ-9999" in error(missing)["message"]


# ---------------------------------------------------------------- decisions
def approve(api: Api, approval_id: str, version: int, key: str = "k1",
            **extra: Any) -> Any:
    return api.client.post(f"/v1/mobile/approvals/{approval_id}/approve",
                           json={"expected_version": version, **extra},
                           headers={**api.auth(), "Idempotency-Key": key})


def test_approve_replay_and_key_reuse(api: Api) -> None:
    request = api.submit()
    first = approve(api, request["id"], 1, comment="fine")
    assert first.status_code == 200
    approved = data(first)
    assert approved["status"] == "approved" and approved["version"] == 2
    assert approved["veto_deadline"] == "2026-01-02T12:00:00.000Z"
    replay = approve(api, request["id"], 1, comment="fine")
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    reused = approve(api, request["id"], 1, comment="different")
    assert reused.status_code == 422
    assert error(reused)["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert decisions_count(api) == 1


def test_version_conflict_and_already_decided_over_http(api: Api) -> None:
    request = api.submit()
    conflict = approve(api, request["id"], 5)
    assert conflict.status_code == 409 and error(conflict)["code"] == "VERSION_CONFLICT"
    assert error(conflict)["details"]["current_version"] == 1
    assert approve(api, request["id"], 1, key="k2").status_code == 200
    again = api.client.post(f"/v1/mobile/approvals/{request['id']}/request-changes",
                            json={"expected_version": 2, "reason": "late"},
                            headers=api.auth())
    assert again.status_code == 409 and error(again)["code"] == "ALREADY_DECIDED"
    assert error(again)["details"] == {"status": "approved", "decided_by": "governor",
                                       "decided_at": "2026-01-01T12:00:00.000Z"}
    assert decisions_count(api) == 1


def test_request_changes_needs_a_reason(api: Api) -> None:
    request = api.submit()
    response = api.client.post(f"/v1/mobile/approvals/{request['id']}/request-changes",
                               json={"expected_version": 1}, headers=api.auth())
    assert response.status_code == 422
    assert "reason" in error(response)["details"]["fields"]
    ok = api.client.post(f"/v1/mobile/approvals/{request['id']}/request-changes",
                         json={"expected_version": 1, "reason": "add tests"},
                         headers=api.auth())
    assert ok.status_code == 200 and data(ok)["status"] == "changes_requested"


def veto(api: Api, approval_id: str, body: dict[str, Any], key: str = "v1") -> Any:
    return api.client.post(f"/v1/mobile/approvals/{approval_id}/veto", json=body,
                           headers={**api.auth(), "Idempotency-Key": key})


def test_veto_inside_the_window_then_closed_after_the_deadline(api: Api) -> None:
    first, second = api.submit(), api.submit(agent_name="Second")
    approve(api, first["id"], 1, key="a1")
    approve(api, second["id"], 1, key="a2")
    attachment = {"name": "log.txt", "content_type": "text/plain",
                  "data_base64": base64.b64encode(b"evidence").decode()}
    vetoed = veto(api, first["id"], {"category": "safety", "reason": "unsafe",
                                     "attachments": [attachment]})
    assert vetoed.status_code == 200 and data(vetoed)["status"] == "vetoed"
    api.clock.advance(24 * 3600)
    late = veto(api, second["id"], {"category": "safety", "reason": "too late"}, key="v2")
    assert late.status_code == 409 and error(late)["code"] == "VETO_WINDOW_CLOSED"
    assert error(late)["details"]["deadline"] == "2026-01-02T12:00:00.000Z"
    deployed = data(api.client.get(f"/v1/mobile/approvals/{second['id']}",
                                   headers=api.auth(READ)))
    assert deployed["status"] == "deployed"


@pytest.mark.parametrize("body, field", [
    ({"category": "boredom", "reason": "r"}, "category"),
    ({"category": "other", "reason": "x" * 2001}, "reason"),
    ({"category": "other", "reason": ""}, "reason"),
    ({"category": "other"}, "reason"),
    ({"category": "other", "reason": "r", "attachments": [
        {"name": "a", "content_type": "text/plain", "data_base64": "!!!"}]},
     "attachments.0.data_base64"),
    ({"category": "other", "reason": "r", "attachments": [
        {"name": "a", "content_type": "text/plain", "data_base64": ""}] * 6}, "attachments"),
    ({"category": "other", "reason": "r", "surprise": 1}, "surprise"),
])
def test_bad_veto_bodies_are_refused_and_nothing_is_written(api: Api, body: dict[str, Any],
                                                            field: str) -> None:
    request = api.submit()
    response = veto(api, request["id"], body)
    assert response.status_code == 422
    assert field in error(response)["details"]["fields"]
    assert decisions_count(api) == 0


def test_attachments_over_five_megabytes_are_payload_too_large(api: Api) -> None:
    request = api.submit()
    chunk = base64.b64encode(b"\0" * (2 * 1024 * 1024 + 512 * 1024 + 1)).decode()
    attachments = [{"name": f"a{i}", "content_type": "application/pdf", "data_base64": chunk}
                   for i in range(2)]
    response = veto(api, request["id"], {"category": "other", "reason": "r",
                                         "attachments": attachments})
    assert response.status_code == 413 and error(response)["code"] == "PAYLOAD_TOO_LARGE"
    assert decisions_count(api) == 0
    huge = api.client.post(f"/v1/mobile/approvals/{request['id']}/veto",
                           content=b"{" + b" " * (9 * 1024 * 1024) + b"}",
                           headers={**api.auth(), "Idempotency-Key": "h",
                                    "Content-Type": "application/json"})
    assert huge.status_code == 413 and error(huge)["code"] == "PAYLOAD_TOO_LARGE"
    assert decisions_count(api) == 0


def test_malformed_json_and_missing_idempotency_key(api: Api) -> None:
    request = api.submit()
    broken = api.client.post(f"/v1/mobile/approvals/{request['id']}/approve",
                             content=b'{"expected_version": 1,',
                             headers={**api.auth(), "Idempotency-Key": "k",
                                      "Content-Type": "application/json"})
    assert broken.status_code == 422 and error(broken)["code"] == "VALIDATION_FAILED"
    no_key = api.client.post(f"/v1/mobile/approvals/{request['id']}/approve",
                             json={"expected_version": 1}, headers=api.auth())
    assert no_key.status_code == 422
    assert "header.Idempotency-Key" in error(no_key)["details"]["fields"]
    as_string = approve(api, request["id"], "1")  # type: ignore[arg-type]
    assert as_string.status_code == 422
    assert decisions_count(api) == 0


def test_unknown_approval_in_a_decision_is_not_found(api: Api) -> None:
    response = approve(api, "REQ-4040", 1)
    assert response.status_code == 404 and error(response)["code"] == "NOT_FOUND"


# ---------------------------------------------------------------- batch
def item(approval_id: str, key: str, action: str = "approve", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": key, "approval_id": approval_id, "action": action,
                            "decided_at": "2026-01-01T11:59:00Z", "device_id": "phone-1"}
    if action != "veto":
        body["expected_version"] = 1
    if action != "approve":
        body["reason"] = "because"
    if action == "veto":
        body["category"] = "safety"
    body.update(extra)
    return body


def test_batch_results_in_order_with_replays_and_rejections(api: Api) -> None:
    a, b, c = (api.submit(agent_name=n) for n in ("A", "B", "C"))
    batch = [item(a["id"], "d1"), item(b["id"], "d2", "veto"),
             item(c["id"], "d3", expected_version=9), item("REQ-0404", "d4"),
             item(c["id"], "d5", "request_changes")]
    response = api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                               headers=api.auth())
    assert response.status_code == 200
    results = data(response)
    assert [r["id"] for r in results] == ["d1", "d2", "d3", "d4", "d5"]
    assert [r["outcome"] for r in results] == ["applied", "applied", "rejected", "rejected",
                                               "applied"]
    assert results[2]["error"]["code"] == "VERSION_CONFLICT"
    # A rejection carries the request as it is now, so the client can refresh from it.
    assert results[2]["approval"]["version"] == 1
    assert results[3]["error"]["code"] == "NOT_FOUND" and "approval" not in results[3]
    assert results[0]["approval"]["status"] == "approved"
    again = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch[:2]},
                                 headers=api.auth()))
    assert [r["outcome"] for r in again] == ["replayed", "replayed"]
    assert again[0]["approval"] == results[0]["approval"]
    reused = data(api.client.post("/v1/mobile/decisions",
                                  json={"decisions": [item(a["id"], "d1", comment="new")]},
                                  headers=api.auth()))
    assert reused[0]["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_batch_items_need_the_scope_of_their_action(api: Api) -> None:
    a = api.submit()
    response = api.client.post("/v1/mobile/decisions",
                               json={"decisions": [item(a["id"], "x", "veto")]},
                               headers=api.auth(("governance:read", "governance:write")))
    [result] = data(response)
    assert result["outcome"] == "rejected"
    assert result["error"]["code"] == "INSUFFICIENT_SCOPE"
    unauthenticated = api.client.post("/v1/mobile/decisions", json={"decisions": []})
    assert unauthenticated.status_code == 401


@pytest.mark.parametrize("mutate, field", [
    (lambda b: b.update(action="shrug"), "decisions.1"),
    (lambda b: b.pop("device_id"), "device_id"),
    (lambda b: b.update(decided_at="yesterday"), "decided_at"),
    (lambda b: b.update(reason="x" * 2001), "reason"),
])
def test_an_invalid_batch_item_refuses_the_whole_batch(api: Api, mutate: Any,
                                                       field: str) -> None:
    a = api.submit()
    good, bad = item(a["id"], "ok"), item(a["id"], "bad", "veto")
    mutate(bad)
    response = api.client.post("/v1/mobile/decisions", json={"decisions": [good, bad]},
                               headers=api.auth())
    assert response.status_code == 422
    assert any(field in f for f in error(response)["details"]["fields"])
    assert decisions_count(api) == 0


def test_a_batch_over_500_items_is_refused_and_nothing_is_written(api: Api) -> None:
    a = api.submit()
    batch = [item(a["id"], f"k{i}") for i in range(501)]
    response = api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                               headers=api.auth())
    assert response.status_code == 422
    assert "decisions" in error(response)["details"]["fields"]
    assert decisions_count(api) == 0


def test_a_batch_of_500_applies_in_one_go(api: Api) -> None:
    ids = [api.submit(agent_name=f"A{i}", match_seeds=False)["id"] for i in range(500)]
    batch = [item(i, f"k{n}") for n, i in enumerate(ids)]
    response = api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                               headers=api.auth())
    assert {r["outcome"] for r in data(response)} == {"applied"}
    assert decisions_count(api) == 500


# ---------------------------------------------------------------- seeds
SEED = {"title": "Read-only tutors", "description": "Education tutors that only read.",
        "conditions": {"industry_in": ["education"], "no_dangerous_capabilities": True},
        "auto_approve": True}


def test_create_seed_then_it_auto_approves_matching_requests(api: Api) -> None:
    created = api.client.post("/v1/mobile/seeds", json=SEED,
                              headers={**api.auth(), "Idempotency-Key": "s1"})
    assert created.status_code == 201
    seed = data(created)
    assert seed["id"] == "GEN-001" and seed["status"] == "active"
    assert seed["created_by"] == "governor"
    replay = api.client.post("/v1/mobile/seeds", json=SEED,
                             headers={**api.auth(), "Idempotency-Key": "s1"})
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    reused = api.client.post("/v1/mobile/seeds", json={**SEED, "title": "other"},
                             headers={**api.auth(), "Idempotency-Key": "s1"})
    assert reused.status_code == 422 and error(reused)["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert api.submit()["status"] == "auto_approved"
    fetched = api.client.get("/v1/mobile/seeds/GEN-001", headers=api.auth(READ))
    assert data(fetched)["metrics"]["matches"] == 1
    assert fetched.json()["meta"]["version"] >= 1


@pytest.mark.parametrize("conditions", [{}, {"industry_in": ["atlantis"]},
                                        {"max_daily_token_budget": "a lot"}, {"colour": 1}])
def test_seed_conditions_are_validated(api: Api, conditions: dict[str, Any]) -> None:
    response = api.client.post("/v1/mobile/seeds", json={**SEED, "conditions": conditions},
                               headers={**api.auth(), "Idempotency-Key": "s"})
    assert response.status_code == 422 and error(response)["code"] == "VALIDATION_FAILED"
    assert any(f.startswith("conditions") for f in error(response)["details"]["fields"])
    assert data(api.client.get("/v1/mobile/seeds", headers=api.auth(READ))) == []


def test_the_seed_schema_is_the_rule_schema_the_server_validates_with(api: Api) -> None:
    from jsonschema import Draft202012Validator

    from backend_stub.domain.seeds import CONDITIONS_SCHEMA

    response = api.client.get("/v1/mobile/seeds/schema", headers=api.auth(READ))
    assert response.status_code == 200 and response.headers["ETag"]
    schema = data(response)
    Draft202012Validator.check_schema(schema)
    conditions = schema["properties"]["conditions"]
    for key in ("properties", "additionalProperties", "minProperties"):
        assert conditions[key] == CONDITIONS_SCHEMA[key]
    assert schema["properties"]["title"]["maxLength"] == 200
    assert set(schema["required"]) >= {"title", "description", "conditions"}
    assert Draft202012Validator(schema).is_valid(SEED)
    again = api.client.get("/v1/mobile/seeds/schema", headers={
        **api.auth(READ), "If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert api.client.get("/v1/mobile/seeds/schema").status_code == 401


def test_seed_delta_reads_with_tombstones(api: Api) -> None:
    for key in ("a", "b"):
        api.client.post("/v1/mobile/seeds", json={**SEED, "title": key},
                        headers={**api.auth(), "Idempotency-Key": key})
    full = api.client.get("/v1/mobile/seeds", headers=api.auth(READ)).json()
    version = full["meta"]["version"]
    assert [s["title"] for s in full["data"]] == ["a", "b"] and full["meta"]["deleted"] == []
    deleted = api.client.delete("/v1/mobile/seeds/GEN-001", headers=api.auth())
    assert deleted.status_code == 200
    delta = api.client.get("/v1/mobile/seeds", params={"since": version},
                           headers=api.auth(READ)).json()
    assert delta["data"] == [] and delta["meta"]["deleted"] == ["GEN-001"]
    assert delta["meta"]["version"] == version + 1
    search = api.client.get("/v1/mobile/seeds", params={"q": "B"}, headers=api.auth(READ))
    assert [s["title"] for s in data(search)] == ["b"]
    gone = api.client.get("/v1/mobile/seeds/GEN-001", headers=api.auth(READ))
    assert gone.status_code == 404
    assert api.client.delete("/v1/mobile/seeds/GEN-001", headers=api.auth()).status_code == 404


# ---------------------------------------------------------------- agents, violations, events
def test_agents_violations_and_notifications(api: Api) -> None:
    agent = api.svc.add_agent(name="Hot", industry="retail", kind="industry",
                              tokens_limit=100, tokens_used=79, capabilities=["custom:x"])
    api.svc.consume_budget(agent, 2)
    agents = data(api.client.get("/v1/mobile/agents", headers=api.auth(READ)))
    assert agents[0]["budget"]["utilisation"] == 0.81
    assert agents[0]["capabilities"] == ["custom:x"]
    version = api.client.get("/v1/mobile/violations",
                             headers=api.auth(READ)).json()["meta"]["version"]
    api.svc.record_violation(agent, "ethics", "medium", "biased advice")
    delta = api.client.get("/v1/mobile/violations", params={"since": version},
                           headers=api.auth(READ)).json()
    assert [v["description"] for v in delta["data"]] == ["biased advice"]
    events = api.client.get("/v1/mobile/notifications", params={"after": 0},
                            headers=api.auth(READ)).json()
    kinds = [e["type"] for e in events["data"]]
    assert kinds == ["governance.budget.threshold_exceeded", "governance.agent.violated"]
    assert events["data"][0]["data"]["threshold"] == 80
    assert events["meta"]["last_event_id"] == 2
    assert set(events["data"][0]["metadata"]) == {"correlation_id", "causation_id", "user_id"}


def test_a_decision_event_carries_the_request_id_as_correlation(api: Api) -> None:
    request = api.submit()
    api.client.post(f"/v1/mobile/approvals/{request['id']}/approve",
                    json={"expected_version": 1},
                    headers={**api.auth(), "Idempotency-Key": "corr", "X-Request-ID": "rq-9"})
    events = data(api.client.get("/v1/mobile/notifications", params={"after": 1},
                                 headers=api.auth(READ)))
    assert events[0]["type"] == "governance.approval.decided"
    assert events[0]["metadata"] == {"correlation_id": "rq-9", "causation_id": "corr",
                                     "user_id": "governor"}


def test_demo_endpoints_do_not_exist_without_demo(api: Api) -> None:
    response = api.client.post("/v1/demo/clock", json={"advance_seconds": 1})
    assert response.status_code == 404 and error(response)["code"] == "NOT_FOUND"


def test_published_messages_reach_the_bus_when_one_is_installed(api: Api) -> None:
    seen: list[dict[str, Any]] = []

    class Bus:
        def publish(self, message: dict[str, Any]) -> None:
            seen.append(message)

    api.app.state.bus = Bus()
    api.submit()
    assert [m["type"] for m in seen] == ["governance.approval.pending"]
    json.dumps(seen)  # the message format is plain JSON


def test_a_query_parameter_given_twice_is_refused(api: Api) -> None:
    response = api.client.get("/v1/mobile/agents?industry=retail&industry=&limit=5",
                              headers=api.auth(READ))
    assert response.status_code == 422
    assert error(response)["details"]["fields"] == {"query.industry": "given more than once"}


def test_unknown_query_parameters_are_refused(api: Api) -> None:
    response = api.client.get("/v1/mobile/approvals", params={"statuss": "vetoed"},
                              headers=api.auth(READ))
    assert response.status_code == 422
    assert error(response)["details"]["fields"] == {"query.statuss": "unknown parameter"}


def test_the_push_routes_refuse_unknown_and_repeated_query_parameters(api: Api) -> None:
    repeated = api.client.get("/v1/mobile/notifications?after=1&after=2",
                              headers=api.auth(READ))
    assert repeated.status_code == 422
    assert error(repeated)["details"]["fields"] == {"query.after": "given more than once"}
    unknown = api.client.get("/v1/mobile/notifications?afterr=1", headers=api.auth(READ))
    assert unknown.status_code == 422
    assert error(unknown)["details"]["fields"] == {"query.afterr": "unknown parameter"}
    assert api.client.get("/v1/mobile/notifications?after=0&limit=5",
                          headers=api.auth(READ)).status_code == 200
