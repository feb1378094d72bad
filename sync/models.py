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


class Dashboard(_Model):
    active_agents: int
    pending_approvals: int
    in_veto_window: int
    nearest_veto_deadline: datetime | None = None
    recent_vetoes: list[dict[str, Any]] = Field(default_factory=list)
    health: dict[str, Any] = Field(default_factory=dict)
    budget: BudgetSummary = Field(default_factory=BudgetSummary)
    generated_at: datetime


class CachedDashboard(_Model):
    """The dashboard as cached on this device, with how old it is."""

    dashboard: Dashboard
    fetched_at: datetime
    stale: bool  # older than the 5-minute TTL
    age_s: float = 0.0  # seconds since it was fetched (shown when stale)


class PipelineStage(_Model):
    stage: str
    status: Literal["pending", "in_progress", "passed", "failed", "skipped"]
    completed_at: datetime | None = None
    notes: str | None = None


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
    held_count: int = 0  # queued by another account; waits for that governor
    rejected_count: int = 0  # refused by the server; shown until discarded


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
