"""``POST /v1/agents``: a submitted module becomes a request the governor sees; every bad
submission gets the contract's error and writes nothing (rows and upload files counted)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from backend_stub.domain.models import Agent, AgentSubmission, ApprovalRequest
from backend_stub.domain.service import PLATFORM
from backend_stub.domain.wasm import MAGIC, MAX_MODULE_BYTES, _leb, _section, build_module
from tests.backend_stub.api.conftest import Api

SUBMIT = ("agents:submit",)
GOOD = build_module(imports=[("wasi_snapshot_preview1", "fd_write")], functions=2)


def fields(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "Essay Coach", "industry": "education",
                            "capability": ["file_read:/data/essays/*"],
                            "daily_token_budget": "50000", "monthly_cost_usd": "120.50"}
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def post(api: Api, module: bytes | None = GOOD, *, scopes: tuple[str, ...] = SUBMIT,
         sub: str = "submitter", **overrides: Any) -> Any:
    files = {"module": ("agent.wasm", module, "application/wasm")} if module is not None else {}
    return api.client.post("/v1/agents", data=fields(**overrides), files=files or None,
                           headers=api.auth(scopes, sub=sub))


def written(api: Api) -> tuple[int, int, int, list[str], list[str]]:
    """What a submission can write: requests, agents, submissions, files in uploads/ and
    in the module store."""
    with api.svc.db.session() as session:
        counts = [session.execute(select(func.count()).select_from(model)).scalar_one()
                  for model in (ApprovalRequest, Agent, AgentSubmission)]
    data_dir = Path(api.app.state.settings.data_dir)
    files = [sorted(p.name for p in d.iterdir()) if d.exists() else []
             for d in (data_dir / "uploads", data_dir / "modules")]
    return counts[0], counts[1], counts[2], files[0], files[1]


def data_module(size: int) -> bytes:
    """A valid module of about ``size`` bytes: one memory and one active data segment."""
    mem = _section(5, b"\x01\x00" + _leb((size >> 16) + 1))
    return MAGIC + b"\x01\x00\x00\x00" + mem + _section(
        11, _leb(1) + b"\x00\x41\x00\x0b" + _leb(size) + b"\x5a" * size)


def test_a_submitted_module_reaches_the_governor_with_its_report(api: Api) -> None:
    before = written(api)
    answer = post(api)
    assert answer.status_code == 201, answer.text
    created = answer.json()["data"]
    assert created["requester"] == "submitter" and created["status"] == "pending_approval"
    assert created["agent"]["name"] == "Essay Coach" and created["industry"] == "education"
    report = created["wasm_report"]
    assert report["valid"] and report["spec_outcome"] == "valid"
    assert report["imports"] == ["wasi_snapshot_preview1.fd_write"]
    import hashlib

    assert report["sha256"] == hashlib.sha256(GOOD).hexdigest()
    assert report["size_bytes"] == len(GOOD)
    assert [c["capability"] for c in created["capabilities"]] == ["file_read:/data/essays/*"]
    assert created["budget"]["daily_token_budget"] == 50_000
    assert created["budget"]["monthly_cost_usd"] == 120.5
    seen = api.client.get(f"/v1/mobile/approvals/{created['id']}", headers=api.auth()).json()
    assert seen["data"]["wasm_report"] == report
    assert api.svc.get_module(created["id"]) == GOOD
    after = written(api)
    assert after[:3] == (before[0] + 1, before[1] + 1, before[2] + 1)
    assert after[3] == []  # the upload file is gone: moved into the module store
    assert after[4] == [f"{report['sha256']}.wasm"]


def test_the_genesis_certificate_of_a_submitted_module_names_its_digest(api: Api) -> None:
    # The row keeps no bytes for a submitted module (they live in the module store): the
    # certificate must still name the module's own SHA-256, not the digest of nothing.
    import hashlib

    created = post(api).json()["data"]
    seen = api.client.get(f"/v1/mobile/approvals/{created['id']}", headers=api.auth()).json()
    certificates = [stage["certificate"] for stage in seen["data"]["pipeline"]
                    if stage.get("certificate")]
    assert certificates, seen["data"]["pipeline"]
    assert certificates[0]["module_sha256"] == hashlib.sha256(GOOD).hexdigest()
    assert certificates[0]["module_sha256"] != hashlib.sha256(b"").hexdigest()


def test_a_matching_seed_is_applied_to_a_submitted_module(api: Api) -> None:
    api.svc.create_seed(PLATFORM, key="k", title="Education readers",
                        description="Education agents that read data, valid modules",
                        conditions={"industry_in": ["education"], "wasm_valid": True},
                        auto_approve=False)
    report = post(api).json()["data"]
    assert [m["seed_id"] for m in report["seed_matches"]] == ["GEN-001"]
    assert report["seed_matches"][0]["conditions_failed"] == []


def test_the_same_module_and_declaration_is_the_same_request(api: Api) -> None:
    first = post(api)
    before = written(api)
    again = post(api)
    assert again.status_code == 200
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert written(api) == before
    # Another declaration, or another submitter, is another request.
    assert post(api, daily_token_budget="60000").status_code == 201
    assert post(api, sub="someone-else").status_code == 201


def test_a_valid_module_with_policy_errors_still_reaches_the_governor(api: Api) -> None:
    answer = post(api, build_module(imports=[("env", "system_exec")]))
    assert answer.status_code == 201
    report = answer.json()["data"]["wasm_report"]
    assert not report["valid"] and report["spec_outcome"] == "valid"
    assert [i["code"] for i in report["issues"]] == ["dangerous_import"]


def _refused(api: Api, answer: Any, status: int, code: str, before: Any) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body: dict[str, Any] = answer.json()
    assert body["error"]["code"] == code
    assert written(api) == before
    return body["error"]


@pytest.mark.parametrize(("module", "fragment"), [
    (b"#!/bin/sh\necho not wasm\n", "does not start with \\0asm"),
    (GOOD[:-3], "malformed or invalid"),
    (MAGIC + b"\x01\x00\x00\x00" + _section(3, b"\x01\x00"), "malformed or invalid"),
    (b"", "does not start"),
])
def test_a_module_the_spec_refuses_is_422_and_writes_nothing(api: Api, module: bytes,
                                                             fragment: str) -> None:
    before = written(api)
    error = _refused(api, post(api, module), 422, "VALIDATION_FAILED", before)
    assert fragment in error["details"]["fields"]["module"]
    assert "offset" in error["details"]


def test_an_oversized_module_is_413_and_writes_nothing(api: Api) -> None:
    before = written(api)
    error = _refused(api, post(api, data_module(MAX_MODULE_BYTES)), 413,
                     "PAYLOAD_TOO_LARGE", before)
    assert error["details"]["max_bytes"] == MAX_MODULE_BYTES


def test_a_module_of_exactly_the_limit_is_accepted(api: Api) -> None:
    half = MAX_MODULE_BYTES // 2  # the same LEB128 widths as at 50 MB
    overhead = len(data_module(half)) - half
    module = data_module(MAX_MODULE_BYTES - overhead)
    assert len(module) == MAX_MODULE_BYTES
    answer = post(api, module)
    assert answer.status_code == 201, answer.text
    assert answer.json()["data"]["wasm_report"]["size_bytes"] == MAX_MODULE_BYTES
    assert written(api)[3] == []


def test_a_body_over_the_form_limit_is_413(api: Api) -> None:
    before = written(api)
    answer = api.client.post("/v1/agents", content=b"x" * (61 * 1024 * 1024),
                             headers={**api.auth(SUBMIT),
                                      "Content-Type": "multipart/form-data; boundary=b"})
    _refused(api, answer, 413, "PAYLOAD_TOO_LARGE", before)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"capability": ["file_read"]}, "capability[0]"),
    ({"capability": ["file_read:/data/x", "teleport:/anywhere"]}, "capability[1]"),
    ({"capability": ["network_inbound:99999"]}, "capability[0]"),
    ({"capability": ["file_read:/a", "file_read:/a"]}, "capability"),
    ({"name": None}, "name"),
    ({"industry": None}, "industry"),
    ({"industry": "edu cation"}, "industry"),
    ({"industry": "astrology"}, "industry"),
    ({"daily_token_budget": None}, "daily_token_budget"),
    ({"daily_token_budget": "-5"}, "daily_token_budget"),
    ({"daily_token_budget": "lots"}, "daily_token_budget"),
    ({"monthly_cost_usd": None}, "monthly_cost_usd"),
    ({"monthly_cost_usd": "nan"}, "monthly_cost_usd"),
    ({"monthly_cost_usd": "1e9999"}, "monthly_cost_usd"),
    ({"kind": "robot"}, "kind"),
    ({"colour": "blue"}, "colour"),
    ({"name": ["a", "b"]}, "name"),
])
def test_a_bad_declaration_is_422_naming_the_field(api: Api, overrides: dict[str, Any],
                                                   field: str) -> None:
    before = written(api)
    error = _refused(api, post(api, **overrides), 422, "VALIDATION_FAILED", before)
    assert field in error["details"]["fields"]


def test_a_missing_module_is_422(api: Api) -> None:
    before = written(api)
    parts = [(k, (None, v)) for k, value in fields().items()
             for v in (value if isinstance(value, list) else [value])]
    answer = api.client.post("/v1/agents", files=parts, headers=api.auth(SUBMIT))
    error = _refused(api, answer, 422, "VALIDATION_FAILED", before)
    assert list(error["details"]["fields"]) == ["module"]


def test_a_body_that_is_not_multipart_is_422(api: Api) -> None:
    before = written(api)
    answer = api.client.post("/v1/agents", json=fields(), headers=api.auth(SUBMIT))
    error = _refused(api, answer, 422, "VALIDATION_FAILED", before)
    assert "multipart/form-data" in error["details"]["fields"]["body"]
    broken = api.client.post("/v1/agents", content=b"--b\r\nnot a part",
                             headers={**api.auth(SUBMIT),
                                      "Content-Type": "multipart/form-data; boundary=b"})
    _refused(api, broken, 422, "VALIDATION_FAILED", before)


def test_the_route_needs_the_submit_scope(api: Api) -> None:
    before = written(api)
    files = {"module": ("agent.wasm", GOOD, "application/wasm")}
    anonymous = api.client.post("/v1/agents", data=fields(), files=files)
    _refused(api, anonymous, 401, "INVALID_TOKEN", before)
    governor = post(api, scopes=("governance:read", "governance:write", "veto:execute"),
                    sub="governor")
    _refused(api, governor, 403, "INSUFFICIENT_SCOPE", before)


def test_openapi_lists_the_route_and_every_status(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    operation = spec["paths"]["/v1/agents"]["post"]
    assert {"200", "201", "401", "403", "413", "422", "429", "500"} <= set(
        operation["responses"])
    body = operation["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert {"module", "name", "industry", "daily_token_budget"} <= set(body["required"])


def test_the_module_limit_is_checked_while_the_body_streams(api: Api) -> None:
    """The 413 comes after 50 MB of module have been read, not after the whole body:
    the body here is a 58 MB stream, of which the stub pulls 1 MB at a time."""
    import asyncio

    import httpx

    before = written(api)
    pulled = 0
    chunk = b"\x00" * (1024 * 1024)

    async def body() -> Any:
        nonlocal pulled
        yield (b"--b\r\nContent-Disposition: form-data; name=\"module\"; "
               b"filename=\"big.wasm\"\r\nContent-Type: application/wasm\r\n\r\n")
        for _ in range(58):
            pulled += 1
            yield chunk
        yield b"\r\n--b--\r\n"

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=api.app)  # pulls the body as the app reads it
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.post("/v1/agents", content=body(), headers={
                **api.auth(SUBMIT), "Content-Type": "multipart/form-data; boundary=b"})

    answer = asyncio.run(send())
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert pulled <= MAX_MODULE_BYTES // len(chunk) + 1 < 58
    assert written(api) == before
