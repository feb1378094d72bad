"""The review stages' evidence: a signed Genesis certificate and reviews judged from facts."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest

from backend_stub.domain import pipeline as pl
from backend_stub.domain.attestations import (
    ARCHITECTS,
    ETHICISTS,
    Attestor,
    Subject,
    architect_findings,
    canonical,
    ethics_findings,
    verdict,
)
from backend_stub.domain.service import GovernanceService
from backend_stub.domain.wasm import build_module
from tests.backend_stub.domain.test_service import submit

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def subject(**overrides: Any) -> Subject:
    fields: dict[str, Any] = dict(
        approval_id="REQ-0001", agent_id="AGT-0001", agent_name="Tutor",
        industry="education", requester="genesis@waooaw",
        capabilities=("file_read:/data/curriculum/*",), module_sha256="ab" * 32,
        wasm_report={"valid": True, "issues": [], "memory_pages": 4},
        daily_token_budget=50_000, monthly_cost_usd=50.0)
    fields.update(overrides)
    return Subject(**fields)


def stage(approval: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in approval["pipeline"] if s["stage"] == name)


def test_a_modest_read_only_request_is_approved_without_findings() -> None:
    review = Attestor.review("architect_review", subject(), NOW)
    assert review == {"reviewer": review["reviewer"], "verdict": "approve",
                      "reviewed_at": "2026-12-03T12:00:00.000Z", "findings": []}
    assert review["reviewer"] in ARCHITECTS


def test_dangerous_grants_and_wasm_errors_are_escalated_with_a_finding_each() -> None:
    risky = subject(capabilities=("system_call:exec", "network_inbound:8443",
                                  "file_write:/data/out/*"),
                    wasm_report={"valid": False, "memory_pages": 20_000, "issues": [
                        {"code": "dangerous_import", "severity": "error",
                         "message": "imports env.system_exec"}]})
    findings = architect_findings(risky)
    messages = " ".join(f["message"] for f in findings)
    for text in ("system_call:exec", "port 8443", "/data/out/*", "env.system_exec", "1250 MiB"):
        assert text in messages
    assert verdict(findings) == "escalate"
    assert verdict([{"severity": "warning", "message": "m"}]) == "approve_with_findings"


def test_ethics_looks_at_personal_data_money_and_spend() -> None:
    findings = ethics_findings(subject(
        industry="finance", capabilities=("file_read:/data/patients/*",
                                          "network_outbound:api.bank.example"),
        daily_token_budget=900_000, monthly_cost_usd=2_000.0))
    messages = [f["message"] for f in findings]
    assert len(messages) == 4 and all(f["severity"] == "warning" for f in findings)
    assert "personal data" in messages[0] and "api.bank.example" in messages[1]
    assert "900,000" in messages[2] and "$2,000" in messages[3]


def test_reviewers_differ_between_requests_and_stay_put_for_one() -> None:
    architects = {Attestor.review("architect_review", subject(approval_id=f"REQ-{i:04d}"),
                                  NOW)["reviewer"] for i in range(40)}
    ethicists = {Attestor.review("ethics_review", subject(approval_id=f"REQ-{i:04d}"),
                                 NOW)["reviewer"] for i in range(40)}
    assert architects == set(ARCHITECTS) and ethicists == set(ETHICISTS)
    again = Attestor.review("architect_review", subject(), NOW)["reviewer"]
    assert again == Attestor.review("architect_review", subject(), NOW)["reviewer"]


def test_a_certificate_without_a_signer_says_so_instead_of_faking_one() -> None:
    cert = Attestor(issuer="http://stub").certificate(subject(), NOW)
    assert cert["signature"] is None
    assert cert["issued_at"] == "2026-12-03T12:00:00.000Z"
    assert cert["expires_at"] == "2027-12-03T12:00:00.000Z"
    assert cert["subject_agent"] == "AGT-0001" and cert["module_sha256"] == "ab" * 32
    assert cert["id"].startswith("GC-") and cert["issuer"] == "http://stub"


def test_the_signer_signs_exactly_the_canonical_json_of_the_other_fields() -> None:
    signed: list[bytes] = []

    def sign(payload: bytes) -> tuple[str, str]:
        signed.append(payload)
        return "kid-1", "header.payload.signature"

    cert = Attestor(sign=sign).certificate(subject(), NOW)
    body = {k: v for k, v in cert.items() if k != "signature"}
    assert signed == [canonical(body)]
    assert canonical(body).startswith(b'{"approval_id":"REQ-0001","expires_at":')
    assert cert["signature"] == {"alg": "RS256", "kid": "kid-1",
                                 "jws": "header.payload.signature"}


def test_no_evidence_is_invented_for_stages_not_reached(governance: GovernanceService) -> None:
    module = build_module(functions=2)
    request = submit(governance, stage="submitted", wasm_module=module)
    for name in ("submitted", "genesis_certification", "architect_review", "ethics_review"):
        s = stage(request, name)
        assert s.get("certificate") is None and s.get("review") is None and s["notes"] is None

    received = governance.advance_pipeline(request["id"])
    assert stage(received, "submitted")["notes"] == "Received from genesis."
    assert stage(received, "genesis_certification").get("certificate") is None
    governance.advance_pipeline(request["id"])
    certified = governance.advance_pipeline(request["id"])
    cert = stage(certified, "genesis_certification")["certificate"]
    assert cert["module_sha256"] == hashlib.sha256(module).hexdigest()
    assert cert["subject_agent"] == certified["agent"]["id"]
    assert cert["approval_id"] == certified["id"]
    assert stage(certified, "architect_review")["review"]["verdict"] == "approve"
    assert stage(certified, "ethics_review").get("review") is None
    assert stage(certified, "ethics_review")["status"] == "in_progress"


def test_a_request_arriving_at_the_governor_carries_all_three(
        governance: GovernanceService) -> None:
    request = submit(governance, capabilities=["system_call:exec"])
    assert stage(request, "genesis_certification")["certificate"]["id"].startswith("GC-")
    architect = stage(request, "architect_review")
    assert architect["review"]["verdict"] == "escalate"
    assert architect["notes"].endswith("escalated to the governor with 1 finding.")
    assert stage(request, "ethics_review")["review"]["reviewer"] in ETHICISTS
    assert "review" not in stage(request, "governor_approval")


def test_a_stage_skipped_or_failed_carries_no_evidence() -> None:
    opened = pl.new_pipeline("genesis_certification", NOW, lambda name, when: {"notes": name})
    stopped = pl.stop(opened, NOW, "Refused by Genesis.")
    assert stage({"pipeline": stopped}, "genesis_certification") == {
        "stage": "genesis_certification", "status": "failed",
        "completed_at": "2026-12-03T12:00:00.000Z", "notes": "Refused by Genesis."}
    skipped = pl.enter_veto_window(opened, NOW, "passed", "Approved.")
    assert "certificate" not in stage({"pipeline": skipped}, "genesis_certification")
    assert stage({"pipeline": skipped}, "architect_review")["status"] == "skipped"


@pytest.mark.parametrize("bad", ["no-colon", "teleport:anywhere"])
def test_a_grant_the_platform_cannot_read_is_a_concern_not_a_crash(bad: str) -> None:
    findings = architect_findings(subject(capabilities=(bad,)))
    assert findings[0]["severity"] == "concern" and bad in findings[0]["message"]
