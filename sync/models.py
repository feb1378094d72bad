"""What the client knows, in the contract's vocabulary.

These pydantic models are parsed from the API (``model_validate`` on the envelope's
``data``) and handed to the UI. They are the only types ``governor_app`` sees of ``sync``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PIPELINE_STAGES: tuple[str, ...] = (
    "submitted",
    "genesis_certification",
    "architect_review",
    "ethics_review",
    "governor_approval",
    "veto_window",
    "deployed",
)

SCOPE_READ = "governance:read"
SCOPE_WRITE = "governance:write"
SCOPE_VETO = "veto:execute"

# Event types of the contract ("Events").
APPROVAL_PENDING = "governance.approval.pending"
APPROVAL_DECIDED = "governance.approval.decided"
SEED_AUTO_APPROVED = "governance.seed.auto_approved"
BUDGET_THRESHOLD = "governance.budget.threshold_exceeded"
AGENT_VIOLATED = "governance.agent.violated"
VETO_WINDOW_CLOSING = "governance.veto_window.closing"
# Types the stub emits beyond the contract's list (informational only).
APPROVAL_DEPLOYED = "governance.approval.deployed"
SEED_CHANGED = "governance.seed.changed"
# The device's own reminder that a queued veto is still unsent near its deadline.
VETO_UNSENT = "governor.veto.unsent"
# A decision of this device that the server refused (raised from the outbox, not pushed).
DECISION_REFUSED = "governor.decision.refused"
# What became of a banner acted on, shown in its place for a moment.
BANNER_OUTCOME = "governor.banner.outcome"


class _Model(BaseModel):
    # The server may add fields; an older client must still parse what it knows.
    model_config = ConfigDict(extra="ignore")


class ApprovalStatus(StrEnum):
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"
    VETOED = "vetoed"
    AUTO_APPROVED = "auto_approved"
    DEPLOYED = "deployed"


class VetoCategory(StrEnum):
    CONSTITUTIONAL = "constitutional"
    SAFETY = "safety"
    BUDGET = "budget"
    OTHER = "other"


class DecisionAction(StrEnum):
    APPROVE = "approve"
    REQUEST_CHANGES = "request_changes"
    VETO = "veto"


# What a decision turns a request into, shown while the decision is still unanswered
# (one definition: the engine shows it, and the store filters and counts by it in SQL).
PENDING_SHOWS_AS: dict[DecisionAction, ApprovalStatus] = {
    DecisionAction.APPROVE: ApprovalStatus.APPROVED,
    DecisionAction.REQUEST_CHANGES: ApprovalStatus.CHANGES_REQUESTED,
    DecisionAction.VETO: ApprovalStatus.VETOED,
}


class BudgetSummary(_Model):
    utilisation: float = 0.0  # 0..1 across the fleet
    tokens_used: int = 0
    tokens_limit: int = 0
    alerts: list[dict[str, Any]] = Field(default_factory=list)


class TargetRate(_Model):
    """A fleet rate against seed 002's target; ``value``/``met`` null with nothing counted."""

    value: float | None = None
    target: float
    direction: Literal["above", "below"]
    met: bool | None = None


class Compliance(_Model):
    window_days: int
    seed_match_rate: TargetRate
    veto_rate: TargetRate


class Dashboard(_Model):
    active_agents: int
    pending_approvals: int
    in_veto_window: int
    nearest_veto_deadline: datetime | None = None
    recent_vetoes: list[dict[str, Any]] = Field(default_factory=list)
    health: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSummary = Field(default_factory=BudgetSummary)
    # Absent from servers (and caches) that predate it.
    compliance: Compliance | None = None
    generated_at: datetime


class CachedDashboard(_Model):
    """The dashboard as cached on this device, with how old it is."""

    dashboard: Dashboard
    fetched_at: datetime
    stale: bool  # older than the 5-minute TTL
    age_s: float = 0.0  # seconds since it was fetched (shown when stale)


class Certificate(_Model):
    """The Genesis certificate (the stub signs it; docs/api.md says how to verify)."""

    id: str
    issuer: str = ""
    issued_at: datetime | None = None
    expires_at: datetime | None = None
    subject_agent: str = ""
    module_sha256: str = ""
    signature: dict[str, Any] | None = None


class Review(_Model):
    reviewer: str
    verdict: str
    reviewed_at: datetime | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)


class PipelineStage(_Model):
    stage: str
    status: Literal["pending", "in_progress", "passed", "failed", "skipped"]
    completed_at: datetime | None = None
    notes: str | None = None
    # Evidence of a passed review stage; absent in caches written before it existed.
    certificate: Certificate | None = None
    review: Review | None = None


class SeedMatch(_Model):
    seed_id: str
    title: str = ""
    score: float
    conditions_met: list[str] = Field(default_factory=list)
    conditions_failed: list[str] = Field(default_factory=list)


class WasmReport(_Model):
    valid: bool = True
    magic_ok: bool = True
    version: int | None = None
    sections: list[str] = Field(default_factory=list)
    imports: list[str] = Field(default_factory=list)
    exports: list[str] = Field(default_factory=list)
    memory_pages: int | None = None
    issues: list[dict[str, Any]] = Field(default_factory=list)


class ApprovalSummary(_Model):
    id: str
    agent: dict[str, Any]
    requester: str
    industry: str
    status: ApprovalStatus
    version: int
    veto_deadline: datetime | None = None
    created_at: datetime | None = None
    # Client-side: a decision on this request is queued and not yet applied.
    pending_decision: DecisionAction | None = None


class ApprovalDetail(ApprovalSummary):
    pipeline: list[PipelineStage] = Field(default_factory=list)
    capabilities: list[dict[str, Any]] = Field(default_factory=list)
    wasm_report: WasmReport = Field(default_factory=WasmReport)
    budget: dict[str, Any] = Field(default_factory=dict)
    seed_matches: list[SeedMatch] = Field(default_factory=list)
    decided_by: str | None = None
    decided_at: datetime | None = None


class SeedMetrics(_Model):
    matches: int = 0
    vetoes: int = 0
    match_rate: float = 0.0
    veto_rate: float = 0.0


class Seed(_Model):
    id: str
    title: str
    description: str
    conditions: dict[str, Any]
    auto_approve: bool
    status: Literal["proposed", "active", "retired"]
    metrics: SeedMetrics = Field(default_factory=SeedMetrics)
    created_by: str
    created_at: datetime
    version: int


class SeedDraft(_Model):
    title: str
    description: str
    conditions: dict[str, Any]
    auto_approve: bool = False


class SeedSchema(_Model):
    """The server's JSON Schema of a new seed (``GET /seeds/schema``), as cached on this
    device: the seed wizard validates a draft with it, so it refuses what the server would
    refuse and offers every rule kind the server knows."""

    body: dict[str, Any]
    fetched_at: datetime


class Agent(_Model):
    id: str
    name: str
    industry: str
    status: str
    budget: dict[str, Any] = Field(default_factory=dict)
    capabilities: list[str] = Field(default_factory=list)


class Violation(_Model):
    id: str
    agent_id: str
    kind: str  # constitutional | budget | ethics
    severity: str
    description: str
    occurred_at: datetime


class Notification(_Model):
    id: str
    type: str
    timestamp: datetime
    source: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    read: bool = False


class Attachment(_Model):
    name: str
    content_type: str
    data_base64: str


class OutboxState(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    APPLIED = "applied"
    REJECTED = "rejected"
    HELD = "held"  # queued by another account; never sent as someone else


class OutboxEntry(_Model):
    id: str  # client-made; the idempotency key
    seq: int  # per-device sequence number
    kind: Literal["decision", "seed"]
    approval_id: str | None = None
    action: DecisionAction | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    expected_version: int | None = None
    veto_deadline: datetime | None = None
    state: OutboxState
    created_at: datetime
    attempts: int = 0
    error_code: str | None = None
    error_message: str | None = None
    error_details: dict[str, Any] = Field(default_factory=dict)
    sub: str | None = None  # who decided


class Account(_Model):
    sub: str
    username: str
    scopes: frozenset[str]

    def can(self, scope: str) -> bool:
        return scope in self.scopes


class DeviceCode(_Model):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None = None
    expires_in: int
    interval: int = 5


class SyncStatus(_Model):
    online: bool = False
    uploading: bool = False
    downloading: bool = False
    last_synced_at: datetime | None = None
    pending_count: int = 0
    oldest_pending_at: datetime | None = None
    last_error: str | None = None
    signed_in: bool = False
    needs_sign_in: bool = False
    oldest_pending_age_s: float | None = None
    held_count: int = 0  # this account's, held for another server or the device key
    rejected_count: int = 0  # refused by the server; shown until discarded
    # Entries other accounts left on this device: never shown to this one, only counted
    # (sign-out and the outbox say what stays here).
    other_accounts_count: int = 0

    @property
    def outbox_count(self) -> int:
        """Every entry the account's outbox lists (waiting, sending, refused, held): what
        its badge counts."""
        return self.pending_count + self.rejected_count + self.held_count


class FieldChange(_Model):
    """One field of a request that changed after the governor decided on it."""

    field: str
    seen: str  # as the governor saw it, in words
    now: str  # as the server has it now


class Conflict(_Model):
    """A decision the server refused, with what changed under it."""

    entry: OutboxEntry
    code: str  # ALREADY_DECIDED, VERSION_CONFLICT, VETO_WINDOW_CLOSED, ...
    message: str
    decided_by: str | None = None
    decided_at: datetime | None = None
    current_status: ApprovalStatus | None = None
    current_version: int | None = None
    approval: ApprovalDetail | None = None  # the fresh version as cached
    can_decide_again: bool = False  # decide_again(entry.id) makes the same decision anew
    # VERSION_CONFLICT: the fields that differ between the version decided on and the
    # server's, once this device has the fresh one (empty until then).
    changed: list[FieldChange] = Field(default_factory=list)


class Receipt(_Model):
    """A decision's receipt from the server, as this device checked it offline.

    ``status``: ``verified`` (signed by a published key, naming this decision exactly),
    ``invalid`` (``problem`` says why), or ``awaiting`` (queued or sent, no receipt yet).
    """

    decision_id: str
    approval_id: str
    action: str
    status: Literal["verified", "invalid", "awaiting"]
    problem: str | None = None
    applied_at: str | None = None
    audit_seq: int | None = None
    token: str | None = None
