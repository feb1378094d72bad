"""Request and response shapes of ``/v1/mobile`` and ``/v1/demo``: the OpenAPI document.

Request models are strict (no coercion of ``"1"`` to ``1``, no unknown fields) so what the
schema says is refused really is refused. Response models describe what the routes write;
the routes build their JSON directly, and the contract tests check it against these.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend_stub.domain.seeds import CONDITIONS_SCHEMA

T = TypeVar("T")

RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
MAX_REASON = 2000
MAX_ATTACHMENT_B64 = 7_000_000  # 5 MB decoded is about 6.7 M base64 characters

Category = Literal["constitutional", "safety", "budget", "other"]
ApprovalStatus = Literal["pending_approval", "approved", "changes_requested", "vetoed",
                         "auto_approved", "deployed"]
SeedStatus = Literal["proposed", "active", "retired"]
StageStatus = Literal["pending", "in_progress", "passed", "failed", "skipped"]


class _In(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class AttachmentIn(_In):
    name: str = Field(min_length=1, max_length=255)
    content_type: str = Field(min_length=3, max_length=255, pattern=r"^[\w.+-]+/[\w.+-]+$")
    data_base64: str = Field(max_length=MAX_ATTACHMENT_B64, pattern=r"^[A-Za-z0-9+/]*={0,2}$",
                             description="Standard base64; 5 MB decoded across all attachments.")

    @field_validator("data_base64")
    @classmethod
    def _base64(cls, value: str) -> str:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("data_base64 is not valid base64") from exc
        return value

    def decoded(self) -> bytes:
        return base64.b64decode(self.data_base64)


Reason = Annotated[str, Field(min_length=1, max_length=MAX_REASON)]
Comment = Annotated[str, Field(max_length=MAX_REASON)]
Attachments = Annotated[list[AttachmentIn], Field(max_length=5)]


class ApproveIn(_In):
    expected_version: int = Field(ge=1, le=2**31 - 1)
    comment: Comment | None = None


class RequestChangesIn(_In):
    expected_version: int = Field(ge=1, le=2**31 - 1)
    reason: Reason


class VetoIn(_In):
    category: Category
    reason: Reason
    attachments: Attachments | None = None
    expected_version: int | None = Field(
        default=None, ge=1, le=2**31 - 1,
        description="Ignored: a veto is absolute. Accepted so clients may always send it.")


def _device_time(value: str) -> str:
    if not RFC3339.match(value):
        raise ValueError("decided_at must be an RFC 3339 date-time with an offset")
    return value


_DecidedAt = Annotated[str, Field(json_schema_extra={"format": "date-time"}, max_length=64,
                                  description="The device's clock; recorded, never trusted.")]
_ItemId = Annotated[str, Field(min_length=1, max_length=200,
                               description="Client-made; the item's idempotency key.")]
_Id = Annotated[str, Field(min_length=1, max_length=64)]
_Device = Annotated[str, Field(min_length=1, max_length=200)]


class _BatchItem(_In):
    id: _ItemId
    approval_id: _Id
    decided_at: _DecidedAt
    device_id: _Device

    @field_validator("decided_at")
    @classmethod
    def _decided_at(cls, value: str) -> str:
        return _device_time(value)


class ApproveItem(_BatchItem):
    action: Literal["approve"]
    expected_version: int = Field(ge=1, le=2**31 - 1)
    comment: Comment | None = None


class RequestChangesItem(_BatchItem):
    action: Literal["request_changes"]
    expected_version: int = Field(ge=1, le=2**31 - 1)
    reason: Reason


class VetoItem(_BatchItem):
    action: Literal["veto"]
    category: Category
    reason: Reason
    attachments: Attachments | None = None
    expected_version: int | None = Field(default=None, ge=1, le=2**31 - 1)


BatchItem = Annotated[ApproveItem | RequestChangesItem | VetoItem,
                      Field(discriminator="action")]


class BatchIn(_In):
    decisions: list[BatchItem] = Field(max_length=500)


_conditions_schema = {k: v for k, v in CONDITIONS_SCHEMA.items() if k not in ("$schema",)}


class SeedIn(_In):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=4000)
    conditions: dict[str, Any] = Field(json_schema_extra=_conditions_schema)
    auto_approve: bool = False
    status: Literal["proposed", "active"] = "active"


def seed_schema() -> dict[str, Any]:
    """The JSON Schema of a seed's body, generated from ``SeedIn`` (its ``conditions`` is the
    very rule schema the service validates with): what ``GET /seeds/schema`` publishes so a
    client validates a draft with the server's own rules."""
    return {"$schema": CONDITIONS_SCHEMA["$schema"], **SeedIn.model_json_schema()}


class SeedRetireIn(_In):
    """Why the seed is retired: kept in the audit trail with the seed's change event."""

    reason: str = Field(min_length=1, max_length=2000)


class ScenarioIn(_In):
    event: Literal["new_pending_approval", "budget_80", "budget_95", "violation",
                   "seed_auto_approval"]


class ClockIn(_In):
    advance_seconds: float = Field(ge=0, le=366 * 24 * 3600, allow_inf_nan=False)

    @field_validator("advance_seconds", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # Strict floats refuse ints; a whole number of seconds is the common case.
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value


# ---------------------------------------------------------------- responses
class Meta(BaseModel):
    request_id: str
    timestamp: datetime


class ListMeta(Meta):
    next_cursor: str | None


class VersionedMeta(ListMeta):
    version: int = Field(description="The collection's current version; pass it as since=.")
    deleted: list[str] = Field(description="Ids deleted after since= (empty without since).")


class SeedMeta(Meta):
    version: int


class NotificationMeta(ListMeta):
    last_event_id: int


class Envelope(BaseModel, Generic[T]):
    data: T
    meta: Meta


class ListEnvelope(BaseModel, Generic[T]):
    data: list[T]
    meta: ListMeta


class VersionedEnvelope(BaseModel, Generic[T]):
    data: list[T]
    meta: VersionedMeta


class ErrorDetail(BaseModel):
    code: str = Field(description="UPPER_SNAKE contract code, e.g. VERSION_CONFLICT")
    message: str
    details: dict[str, Any]


class ErrorEnvelope(BaseModel):
    error: ErrorDetail
    meta: Meta


class AgentRef(BaseModel):
    id: str
    name: str
    kind: Literal["industry", "coe"]
    industry: str


class ApprovalSummary(BaseModel):
    id: str
    agent: AgentRef
    requester: str
    industry: str
    status: ApprovalStatus
    stage: str
    version: int
    veto_deadline: datetime | None
    created_at: datetime


class CertificateSignature(BaseModel):
    alg: Literal["RS256"]
    kid: str = Field(description="The key in /oauth/jwks.json that verifies it")
    jws: str = Field(description="Compact JWS whose payload is the certificate's canonical "
                                 "JSON (every field but signature; keys sorted, no spaces)")


class Certificate(BaseModel):
    """The Genesis certificate: on the genesis_certification stage once it passed."""

    id: str
    issuer: str
    issued_at: datetime
    expires_at: datetime
    subject_agent: str
    approval_id: str
    module_sha256: str
    signature: CertificateSignature | None = Field(
        description="null only when the stub runs without signing keys")


class Finding(BaseModel):
    severity: Literal["info", "warning", "concern"]
    message: str


class Review(BaseModel):
    """An architect or ethics review: on its stage once it passed."""

    reviewer: str
    verdict: Literal["approve", "approve_with_findings", "escalate"]
    reviewed_at: datetime
    findings: list[Finding]


class PipelineStage(BaseModel):
    stage: str
    status: StageStatus
    completed_at: datetime | None
    notes: str | None
    certificate: Certificate | None = None
    review: Review | None = None


class Capability(BaseModel):
    capability: str
    kind: str
    target: str
    dangerous: bool
    # Extension: why the grant is dangerous, one sentence each (empty when it is not).
    reasons: list[str] = Field(default_factory=list)


class WasmIssue(BaseModel):
    code: str
    severity: Literal["error", "warning"]
    message: str


class WasmReport(BaseModel):
    valid: bool = Field(description="Valid per the WebAssembly specification (the features "
                        "enabled here) and free of platform errors: the wasm_valid condition.")
    spec_outcome: Literal["valid", "refused", "feature_not_enabled"] = Field(
        "valid", description="The specification's verdict: refused (malformed or invalid, "
        "error_offset says where) or feature_not_enabled (valid with a newer proposal, named "
        "in features_used).")
    magic_ok: bool
    version: int | None
    sha256: str = ""
    features_enabled: list[str] = []
    features_used: list[str] = []
    error_offset: int | None = None
    sections: list[str]
    sections_omitted: int = 0
    imports: list[str]
    imports_omitted: int = 0
    exports: list[str]
    exports_omitted: int = 0
    memory_pages: int | None
    function_count: int
    table_elements: int
    size_bytes: int
    issues: list[WasmIssue]


class SeedMatch(BaseModel):
    seed_id: str
    title: str
    score: float
    conditions_met: list[str]
    conditions_failed: list[str]


class ApprovalChange(ApprovalSummary):
    """A request as a decision left it: the summary plus what decisions change."""

    pipeline: list[PipelineStage]
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    updated_at: datetime


class ApprovalDetail(ApprovalChange):
    capabilities: list[Capability]
    wasm_report: WasmReport
    budget: dict[str, Any]
    seed_matches: list[SeedMatch]
    matched_seed_id: str | None


class BudgetAlert(BaseModel):
    agent_id: str
    agent_name: str
    threshold: Literal[80, 95]
    utilisation: float


class FleetBudget(BaseModel):
    utilisation: float
    tokens_used: int
    tokens_limit: int
    alerts: list[BudgetAlert]


class RecentVeto(BaseModel):
    approval_id: str
    agent_name: str
    category: str | None
    reason: str | None
    decided_by: str
    decided_at: datetime


class TargetRate(BaseModel):
    value: float | None = Field(description="null when there is nothing to count")
    target: float
    direction: Literal["above", "below"]
    met: bool | None


class SeedMatchRate(TargetRate):
    matched: int
    requests: int


class VetoRate(TargetRate):
    vetoed: int
    decided: int


class Compliance(BaseModel):
    """Seed 002's targets over the requests created in the last ``window_days``."""

    window_days: int
    seed_match_rate: SeedMatchRate
    veto_rate: VetoRate


class Dashboard(BaseModel):
    active_agents: int
    pending_approvals: int
    in_veto_window: int
    nearest_veto_deadline: datetime | None
    recent_vetoes: list[RecentVeto]
    health: dict[str, Any] = Field(description=(
        "status (ok | degraded | down), one {status, error} per /v1/ready check, "
        "violations_24h"))
    budget: FleetBudget
    compliance: Compliance
    generated_at: datetime


class BatchError(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class Receipt(BaseModel):
    jws: str = Field(description="Compact JWS (RS256, kid of /oauth/jwks.json) over "
                     "{receipts_root, receipts_count} of the decisions applied together.")
    claims: dict[str, Any] = Field(description="What this receipt names: decision_id, "
                                   "approval_id, action, decision_digest, applied_at, ...")
    path: list[list[str]] = Field(description="Merkle path from this leaf to the root: "
                                  "[side, sibling hex] pairs.")


class ApprovalMinimal(BaseModel):
    """A request in a minimal decision answer (``Prefer: return=minimal``)."""

    id: str
    status: ApprovalStatus
    version: int
    updated_at: datetime


class BatchResult(BaseModel):
    id: str
    outcome: Literal["applied", "replayed", "rejected"]
    error: BatchError | None = None
    approval: ApprovalChange | ApprovalMinimal | None = Field(
        default=None, description="The request after the decision (applied, replayed) or "
        "as it is now (rejected: refresh from it); absent for an unknown request. Only "
        "`{id, status, version, updated_at}` under `Prefer: return=minimal`, and on the "
        "replay of a decision first answered so.")
    receipt: Receipt | None = Field(
        default=None, description="Applied or replayed: the decision's signed receipt "
        "(see docs/api.md, Decision receipts). A replay carries the same receipt.")


class AuditEntryOut(BaseModel):
    seq: int
    at: str
    actor: str
    action: str
    resource: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditHeadOut(BaseModel):
    seq: int
    hash: str
    signed: str = Field(description="The head as a JWS signed with a key of /oauth/jwks.json.")


class SeedMetrics(BaseModel):
    matches: int
    vetoes: int
    match_rate: float
    veto_rate: float


class Seed(BaseModel):
    id: str
    title: str
    description: str
    conditions: dict[str, Any]
    auto_approve: bool
    status: SeedStatus
    metrics: SeedMetrics
    created_by: str
    created_at: datetime
    updated_at: datetime
    version: int


class SeedEnvelope(BaseModel):
    data: Seed
    meta: SeedMeta


class AgentBudget(BaseModel):
    tokens_used: int
    tokens_limit: int
    utilisation: float
    cost_used_usd: float
    cost_limit_usd: float
    alert_level: int


class Agent(BaseModel):
    id: str
    name: str
    industry: str
    kind: Literal["industry", "coe"]
    status: str
    budget: AgentBudget
    capabilities: list[str]


class Violation(BaseModel):
    id: str
    agent_id: str
    kind: Literal["constitutional", "budget", "ethics"]
    severity: Literal["low", "medium", "high", "critical"]
    description: str
    occurred_at: datetime
    version: int


class EventMetadata(BaseModel):
    correlation_id: str | None
    causation_id: str | None
    user_id: str | None


class Notification(BaseModel):
    id: str
    type: str
    timestamp: datetime
    source: str
    data: dict[str, Any]
    metadata: EventMetadata


class NotificationEnvelope(BaseModel):
    data: list[Notification]
    meta: NotificationMeta


class SeedDeleted(BaseModel):
    id: str
    deleted: bool
    version: int


class ClockState(BaseModel):
    now: datetime
    advanced_seconds: float
    deployed_or_notified: int


class ScenarioResult(BaseModel):
    event: str
    result: dict[str, Any]
