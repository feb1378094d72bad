"""What the platform's review stages attest: the Genesis certificate and the two reviews.

A stage that passes carries its evidence in its pipeline entry: ``genesis_certification``
a ``certificate`` (data, signed with the stub's published keys), ``architect_review`` and
``ethics_review`` a ``review`` (reviewer, verdict, time, findings). A stage that has not
passed carries none: nothing is shown before it happened.

The reviews are judged from the request's real facts (its grants, its WASM report, its
budget), so they differ from request to request as a real reviewer's would; who reviews is
a stable pick from each stage's roster. Pure: the signer comes in through the constructor.

Verifying a certificate (see docs/api.md): take every field but ``signature``, serialise it
as canonical JSON (``canonical``: keys sorted, no whitespace, UTF-8), check that this is the
payload of ``signature.jws`` and that the JWS verifies (RS256) with the key ``signature.kid``
of ``/oauth/jwks.json`` (the ``jwks_uri`` of the OAuth metadata).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backend_stub.clock import rfc3339
from backend_stub.domain import capabilities as caps

# payload bytes -> (kid, compact JWS over exactly those bytes)
Sign = Callable[[bytes], tuple[str, str]]

CERTIFICATE_VALIDITY = timedelta(days=365)
ARCHITECTS = ("Priya Raman", "Tomás Ferreira", "Aiko Tanaka", "Kwame Mensah")
ETHICISTS = ("Dr. Leila Haddad", "Dr. Samuel Okafor", "Dr. Ingrid Novak")
# Verdicts: nothing to say; findings the governor should read; concerns the reviewer
# passes to the governor instead of deciding alone.
VERDICTS = ("approve", "approve_with_findings", "escalate")
_PERSONAL_DATA = ("patient", "notes", "prescription", "imaging", "claims", "customer",
                  "applicant", "essays")
_MAX_FINDINGS = 8
_LARGE_MEMORY_PAGES = 1024  # 64 MiB
_LARGE_DAILY_TOKENS = 500_000
_LARGE_MONTHLY_USD = 1_000.0


@dataclass(frozen=True)
class Subject:
    """The facts of one request that the review stages judge."""

    approval_id: str
    agent_id: str
    agent_name: str
    industry: str
    requester: str
    capabilities: tuple[str, ...]
    module_sha256: str
    wasm_report: dict[str, Any]
    daily_token_budget: int
    monthly_cost_usd: float


def canonical(value: dict[str, Any]) -> bytes:
    """The bytes a certificate's signature covers: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def _pick(roster: tuple[str, ...], *parts: str) -> str:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return roster[int.from_bytes(digest[:4], "big") % len(roster)]


def _finding(severity: str, message: str) -> dict[str, str]:
    return {"severity": severity, "message": message}


def _dangerous(capability: str) -> bool:
    try:
        return bool(caps.describe(capability)["dangerous"])
    except ValueError:
        return True  # a grant the platform cannot even read is the reviewer's concern


def _grant_finding(capability: str) -> dict[str, str] | None:
    kind, _, target = capability.partition(":")
    if not _dangerous(capability):
        return None
    if kind == "system_call":
        return _finding("concern", f"{capability}: calls {target!r} outside the sandbox.")
    if kind == "network_inbound":
        return _finding("concern", f"{capability}: listens on port {target} for inbound "
                                   "traffic; the endpoint needs an owner and a firewall rule.")
    if kind == "file_write":
        return _finding("warning", f"{capability}: writes to {target}; check that nothing "
                                   "else reads from there unreviewed.")
    return _finding("concern", f"{capability}: broader than its purpose needs; narrow it.")


def architect_findings(subject: Subject) -> list[dict[str, str]]:
    """The design review: dangerous grants, the WASM report's problems, memory."""
    findings = [f for f in map(_grant_finding, subject.capabilities) if f is not None]
    report = subject.wasm_report
    for issue in report.get("issues") or []:
        severity = "concern" if issue.get("severity") == "error" else "warning"
        findings.append(_finding(severity, f"WASM {issue.get('code')}: {issue.get('message')}"))
    pages = report.get("memory_pages")
    if isinstance(pages, int) and pages > _LARGE_MEMORY_PAGES:
        findings.append(_finding("warning", f"Asks for {pages * 64 // 1024} MiB of linear "
                                            "memory; size it to the workload."))
    return findings[:_MAX_FINDINGS]


def ethics_findings(subject: Subject) -> list[dict[str, str]]:
    """The ethics review: personal data, money, reach beyond the platform."""
    findings = []
    for capability in subject.capabilities:
        kind, _, target = capability.partition(":")
        if kind in ("file_read", "file_write") and any(p in target for p in _PERSONAL_DATA):
            findings.append(_finding("warning", f"{capability}: personal data; keep a "
                                                "data-protection impact assessment on file."))
        elif kind == "network_outbound" and subject.industry == "finance":
            findings.append(_finding("warning", f"{capability}: moves financial data to "
                                                f"{target}; log every call for audit."))
        elif kind == "system_call":
            findings.append(_finding("concern", f"{capability}: actions outside the sandbox "
                                                "cannot be reviewed after the fact."))
    if subject.daily_token_budget > _LARGE_DAILY_TOKENS:
        findings.append(_finding("warning", f"Daily budget of {subject.daily_token_budget:,} "
                                            "tokens is above the fleet's usual ceiling."))
    if subject.monthly_cost_usd > _LARGE_MONTHLY_USD:
        findings.append(_finding("warning", f"Costs ${subject.monthly_cost_usd:,.0f} a month; "
                                            "a governor should weigh the spend."))
    return findings[:_MAX_FINDINGS]


def verdict(findings: list[dict[str, str]]) -> str:
    if any(f["severity"] == "concern" for f in findings):
        return "escalate"
    return "approve_with_findings" if findings else "approve"


_VERDICT_TEXT = {"approve": "approved, no findings",
                 "approve_with_findings": "approved with {n} finding{s}",
                 "escalate": "escalated to the governor with {n} finding{s}"}


class Attestor:
    """Makes each review stage's evidence; one per service (``GovernanceService.attestor``).

    ``sign`` signs certificates (the app wires the OAuth key ring's); without it the
    certificate says ``signature: null`` rather than carry a fake one.
    """

    def __init__(self, *, issuer: str = "genesis.waooaw", sign: Sign | None = None,
                 validity: timedelta = CERTIFICATE_VALIDITY) -> None:
        self.issuer = issuer
        self.sign = sign
        self.validity = validity

    def certificate(self, subject: Subject, now: datetime) -> dict[str, Any]:
        issued = rfc3339(now)
        serial = hashlib.sha256(f"{subject.approval_id}|{subject.module_sha256}|{issued}"
                                .encode()).hexdigest()[:16].upper()
        body: dict[str, Any] = {
            "id": f"GC-{serial}", "issuer": self.issuer, "issued_at": issued,
            "expires_at": rfc3339(now + self.validity), "subject_agent": subject.agent_id,
            "approval_id": subject.approval_id, "module_sha256": subject.module_sha256}
        signature = None
        if self.sign is not None:
            kid, jws = self.sign(canonical(body))
            signature = {"alg": "RS256", "kid": kid, "jws": jws}
        return {**body, "signature": signature}

    @staticmethod
    def review(stage: str, subject: Subject, now: datetime) -> dict[str, Any]:
        judge = architect_findings if stage == "architect_review" else ethics_findings
        roster = ARCHITECTS if stage == "architect_review" else ETHICISTS
        findings = judge(subject)
        return {"reviewer": _pick(roster, subject.approval_id, stage),
                "verdict": verdict(findings), "reviewed_at": rfc3339(now),
                "findings": findings}

    def attest(self, stage: str, subject: Subject, now: datetime) -> dict[str, Any]:
        """What ``stage`` carries when it passes at ``now``: its notes and its evidence."""
        if stage == "submitted":
            return {"notes": f"Received from {subject.requester}."}
        if stage == "genesis_certification":
            cert = self.certificate(subject, now)
            signed = "signed" if cert["signature"] else "unsigned"
            return {"certificate": cert,
                    "notes": f"Certificate {cert['id']} ({signed}) for {subject.agent_id}, "
                             f"module sha256 {subject.module_sha256[:12]}…, valid until "
                             f"{cert['expires_at'][:10]}."}
        if stage in ("architect_review", "ethics_review"):
            review = self.review(stage, subject, now)
            n = len(review["findings"])
            text = _VERDICT_TEXT[review["verdict"]].format(n=n, s="" if n == 1 else "s")
            return {"review": review, "notes": f"{review['reviewer']}: {text}."}
        return {}
