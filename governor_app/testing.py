"""An in-memory ``GovernorClient`` for view-model tests, screenshots of screens the stub
cannot reach quickly, and the 5,000-request list benchmark.

It behaves like the engine as the UI sees it: reads come from memory, writes queue an
``OutboxEntry`` at once, ``sync_now`` applies the queue when ``online`` is true and
rejects vetoes past their deadline the way the server does.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sync.facade import ApprovalFilter, Listener, Topic
from sync.models import (
    PIPELINE_STAGES,
    SCOPE_READ,
    SCOPE_VETO,
    SCOPE_WRITE,
    Account,
    Agent,
    ApprovalDetail,
    ApprovalStatus,
    ApprovalSummary,
    Attachment,
    BudgetSummary,
    CachedDashboard,
    Conflict,
    Dashboard,
    DecisionAction,
    DeviceCode,
    Notification,
    OutboxEntry,
    OutboxState,
    PipelineStage,
    Seed,
    SeedDraft,
    SeedMatch,
    SeedMetrics,
    SyncStatus,
    VetoCategory,
    Violation,
    WasmReport,
)

ACCOUNTS: dict[str, tuple[str, frozenset[str]]] = {
    "governor": ("governor", frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_VETO})),
    "auditor": ("auditor", frozenset({SCOPE_READ})),
}

DECIDED = {ApprovalStatus.VETOED, ApprovalStatus.CHANGES_REQUESTED, ApprovalStatus.DEPLOYED}
VETOABLE = {ApprovalStatus.PENDING_APPROVAL, ApprovalStatus.APPROVED,
            ApprovalStatus.AUTO_APPROVED}


def _now() -> datetime:
    return datetime.now(UTC)


def demo_approval(index: int, now: datetime, status: ApprovalStatus | None = None
                  ) -> ApprovalDetail:
    """One plausible request; ``index`` varies the agent, industry and pipeline stage."""
    industries = ("healthcare", "education", "sales", "finance", "marketing")
    statuses = (ApprovalStatus.PENDING_APPROVAL, ApprovalStatus.APPROVED,
                ApprovalStatus.AUTO_APPROVED, ApprovalStatus.VETOED,
                ApprovalStatus.DEPLOYED, ApprovalStatus.CHANGES_REQUESTED)
    st = status or statuses[index % len(statuses)]
    created = now - timedelta(hours=index + 1)
    reached = {ApprovalStatus.PENDING_APPROVAL: 4, ApprovalStatus.APPROVED: 5,
               ApprovalStatus.AUTO_APPROVED: 5, ApprovalStatus.VETOED: 5,
               ApprovalStatus.DEPLOYED: 7, ApprovalStatus.CHANGES_REQUESTED: 4}[st]
    pipeline = []
    for i, stage in enumerate(PIPELINE_STAGES):
        if i < reached:
            pipeline.append(PipelineStage(stage=stage, status="passed",
                                          completed_at=created + timedelta(minutes=10 * i),
                                          notes=_stage_note(stage)))
        elif i == reached:
            pipeline.append(PipelineStage(stage=stage, status="in_progress"))
        else:
            pipeline.append(PipelineStage(stage=stage, status="pending"))
    in_window = st in (ApprovalStatus.APPROVED, ApprovalStatus.AUTO_APPROVED)
    industry = industries[index % len(industries)]
    return ApprovalDetail(
        id=f"REQ-{index + 1:04d}",
        agent={"id": f"agent-{index + 1:04d}", "name": f"{industry.title()} Assistant {index + 1}"},
        requester=("maya@waooaw.example", "li@waooaw.example")[index % 2],
        industry=industry,
        status=st,
        version=1,
        veto_deadline=now + timedelta(hours=23 - (index % 20)) if in_window else None,
        created_at=created,
        pipeline=pipeline,
        capabilities=[
            {"capability": "file_read:/data/customers", "dangerous": False},
            {"capability": "network_outbound:api.crm.example", "dangerous": False},
            {"capability": "system_call:exec", "dangerous": True},
        ],
        wasm_report=WasmReport(valid=True, magic_ok=True, version=1,
                               sections=["type", "import", "function", "memory", "export"],
                               imports=["wasi_snapshot_preview1.fd_write", "env.exec"],
                               exports=["run", "memory"], memory_pages=17,
                               issues=[{"severity": "warning",
                                        "message": "imports env.exec (dangerous)"}]),
        budget={"daily_tokens": 50_000, "monthly_usd": 120},
        seed_matches=[SeedMatch(seed_id="GEN-002", title="Read-only CRM assistants",
                                score=0.82, conditions_met=["industry in [sales]",
                                                            "daily tokens <= 100000"],
                                conditions_failed=["capabilities within read-only set"])],
    )


def _stage_note(stage: str) -> str | None:
    return {
        "genesis_certification": "Genesis certified: ME-WoW profile complete.",
        "architect_review": "Architecture fits the platform; one dangerous import flagged.",
        "ethics_review": "No ethical concerns for the stated industry.",
    }.get(stage)


class FakeGovernorClient:
    """In-memory ``GovernorClient``; set ``online`` to simulate the server coming and going."""

    def __init__(self, *, approvals: int = 8, signed_in_as: str | None = "governor",
                 now: Callable[[], datetime] = _now) -> None:
        self.now = now
        self.online = True
        self.step_up_password = "governor"
        self._listeners: list[Listener] = []
        self._seq = itertools.count(1)
        t = now()
        self._account: Account | None = None
        if signed_in_as:
            self._account = self._make_account(signed_in_as)
        self._approvals: dict[str, ApprovalDetail] = {
            a.id: a for a in (demo_approval(i, t) for i in range(approvals))}
        self._seeds: dict[str, Seed] = {
            "GEN-002": Seed(id="GEN-002", title="Read-only CRM assistants",
                            description="Sales agents that only read the CRM.",
                            conditions={"industry_in": ["retail"],
                                        "capabilities_within": ["file_read:*",
                                                                "network_outbound:*"],
                                        "max_daily_token_budget": 100_000},
                            auto_approve=True, status="active",
                            metrics=SeedMetrics(matches=42, vetoes=2, match_rate=0.31,
                                                veto_rate=0.05),
                            created_by="governor", created_at=t - timedelta(days=30),
                            version=3),
            "GEN-004": Seed(id="GEN-004", title="Tutors without network",
                            description="Education agents with no outbound network.",
                            conditions={"industry_in": ["education"],
                                        "capabilities_within": ["file_read:*"]},
                            auto_approve=False, status="active",
                            metrics=SeedMetrics(matches=12, vetoes=0, match_rate=0.12,
                                                veto_rate=0.0),
                            created_by="governor", created_at=t - timedelta(days=12),
                            version=1),
        }
        self._agents = [Agent(id=f"agent-{i:04d}", name=f"Agent {i}", industry="sales",
                              status="active", budget={"utilisation": 0.4 + i / 20},
                              capabilities=["file_read:/data"]) for i in range(1, 6)]
        self._violations = [Violation(id="V-1", agent_id="agent-0002", kind="budget",
                                      severity="high", description="Budget over 95 %.",
                                      occurred_at=t - timedelta(hours=2))]
        self._notifications = [
            Notification(id="N-1", type="governance.approval.pending", timestamp=t,
                         data={"approval_id": "REQ-0001"}),
            Notification(id="N-2", type="governance.budget.threshold_exceeded",
                         timestamp=t - timedelta(minutes=5),
                         data={"agent": "agent-0002", "threshold": 95, "utilisation": 0.96}),
        ]
        self._outbox: dict[str, OutboxEntry] = {}
        self._dashboard: CachedDashboard | None = None
        self._status = SyncStatus(online=True, signed_in=self._account is not None,
                                  last_synced_at=t)
        self._refresh_dashboard()

    @staticmethod
    def _make_account(username: str) -> Account:
        sub, scopes = ACCOUNTS[username]
        return Account(sub=sub, username=username, scopes=scopes)

    def _emit(self, *topics: Topic) -> None:
        for topic in topics:
            for listener in list(self._listeners):
                listener(topic)

    def _refresh_dashboard(self) -> None:
        t = self.now()
        pending = [a for a in self._approvals.values()
                   if a.status == ApprovalStatus.PENDING_APPROVAL]
        windows = [a.veto_deadline for a in self._approvals.values() if a.veto_deadline]
        self._dashboard = CachedDashboard(
            dashboard=Dashboard(active_agents=len(self._agents),
                                pending_approvals=len(pending), in_veto_window=len(windows),
                                nearest_veto_deadline=min(windows) if windows else None,
                                recent_vetoes=[{"approval_id": a.id, "category": "safety"}
                                               for a in self._approvals.values()
                                               if a.status == ApprovalStatus.VETOED][:3],
                                health={"api": "ok", "database": "ok", "event_bus": "ok"},
                                budget=BudgetSummary(utilisation=0.82, tokens_used=820_000,
                                                     tokens_limit=1_000_000,
                                                     alerts=[{"agent": "agent-0002",
                                                              "threshold": 80}]),
                                generated_at=t),
            fetched_at=t, stale=False)

    # lifecycle
    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    # auth
    def account(self) -> Account | None:
        return self._account

    def _sign_in(self, username: str) -> Account:
        self._account = self._make_account(username)
        self._status = self._status.model_copy(update={"signed_in": True,
                                                       "needs_sign_in": False})
        self._emit("auth", "status")
        return self._account

    async def sign_in_with_browser(self, open_url: Callable[[str], Awaitable[None] | None]
                                   ) -> Account:
        return self._sign_in("governor")

    async def sign_in_with_password(self, username: str, password: str) -> Account:
        if username not in ACCOUNTS or password != username:
            from sync.errors import AuthFlowError
            raise AuthFlowError(f"The server refused the password for {username!r}: "
                                "check the user name and password and try again.")
        return self._sign_in(username)

    async def start_device_sign_in(self) -> DeviceCode:
        return DeviceCode(device_code="dev-1", user_code="WDJB-MJHT",
                          verification_uri="http://127.0.0.1/device", expires_in=600)

    async def finish_device_sign_in(self, code: DeviceCode) -> Account:
        return self._sign_in("governor")

    async def sign_out(self) -> None:
        self._account = None
        self._status = self._status.model_copy(update={"signed_in": False})
        self._emit("auth", "status")

    async def confirm_identity(self, password: str) -> bool:
        return password == self.step_up_password

    # reads
    def status(self) -> SyncStatus:
        pending = [e for e in self._outbox.values()
                   if e.state in (OutboxState.QUEUED, OutboxState.SENDING)]
        return self._status.model_copy(update={
            "online": self.online, "pending_count": len(pending),
            "oldest_pending_at": min((e.created_at for e in pending), default=None)})

    def dashboard(self) -> CachedDashboard | None:
        if self._dashboard is None:
            return None
        age = self.now() - self._dashboard.fetched_at
        return self._dashboard.model_copy(update={"stale": age > timedelta(minutes=5)})

    def _with_pending(self, a: ApprovalDetail) -> ApprovalDetail:
        for e in self._outbox.values():
            if e.approval_id == a.id and e.state in (OutboxState.QUEUED, OutboxState.SENDING):
                return a.model_copy(update={"pending_decision": e.action})
        return a

    def _listed(self, filter: ApprovalFilter, query: str) -> Iterator[ApprovalDetail]:
        """The requests ``approvals(filter, query)`` lists, newest first."""
        q = query.lower()
        for a in sorted(self._approvals.values(), key=lambda a: a.created_at or self.now(),
                        reverse=True):
            if filter == "pending" and a.status != ApprovalStatus.PENDING_APPROVAL:
                continue
            if filter == "veto_window" and a.veto_deadline is None:
                continue
            if filter == "decided" and a.status not in DECIDED:
                continue
            if q and q not in f"{a.id} {a.agent.get('name', '')} {a.requester} {a.industry}"\
                    .lower():
                continue
            yield a

    def approvals(self, filter: ApprovalFilter = "all", query: str = "", limit: int = 200,
                  offset: int = 0) -> list[ApprovalSummary]:
        rows = list(itertools.islice(self._listed(filter, query), offset + limit))
        # Only the page is validated, as the engine does.
        return [ApprovalSummary.model_validate(self._with_pending(a).model_dump())
                for a in rows[offset:offset + limit]]

    def approval_count(self, filter: ApprovalFilter = "all", query: str = "") -> int:
        return sum(1 for _ in self._listed(filter, query))

    def approval(self, approval_id: str) -> ApprovalDetail | None:
        a = self._approvals.get(approval_id)
        return self._with_pending(a) if a else None

    def seeds(self, query: str = "", limit: int = 200) -> list[Seed]:
        q = query.lower()
        return [s for s in self._seeds.values()
                if not q or q in f"{s.id} {s.title} {s.description}".lower()][:limit]

    def seed(self, seed_id: str) -> Seed | None:
        return self._seeds.get(seed_id)

    def agents(self) -> list[Agent]:
        return list(self._agents)

    def violations(self) -> list[Violation]:
        return list(self._violations)

    def notifications(self) -> list[Notification]:
        return sorted(self._notifications, key=lambda n: n.timestamp, reverse=True)

    def outbox(self, states: set[OutboxState] | None = None) -> list[OutboxEntry]:
        return [e for e in sorted(self._outbox.values(), key=lambda e: e.seq)
                if states is None or e.state in states]

    def conflict(self, entry_id: str) -> Conflict | None:
        entry = self._outbox.get(entry_id)
        if entry is None or entry.state != OutboxState.REJECTED or not entry.approval_id:
            return None
        approval = self.approval(entry.approval_id)
        details = entry.error_details
        again = entry.error_code in ("ALREADY_DECIDED", "VERSION_CONFLICT") and \
            approval is not None and ((entry.action == DecisionAction.VETO
                                      and approval.status in VETOABLE)
                                      or approval.status == ApprovalStatus.PENDING_APPROVAL)
        return Conflict(entry=entry, code=entry.error_code or "REJECTED",
                        message=entry.error_message or "",
                        decided_by=details.get("decided_by"),
                        current_status=approval.status if approval else None,
                        current_version=approval.version if approval else None,
                        approval=approval, can_decide_again=again)

    # writes
    def _queue(self, kind: Literal["decision", "seed"], approval_id: str | None,
               action: DecisionAction | None, payload: dict[str, Any]) -> OutboxEntry:
        if self._account is None:
            from sync.errors import SignInRequired
            raise SignInRequired("Sign in before deciding: no account is signed in.")
        seq = next(self._seq)
        a = self._approvals.get(approval_id or "")
        entry = OutboxEntry(id=f"E-{seq}", seq=seq, kind=kind,
                            approval_id=approval_id, action=action, payload=payload,
                            expected_version=a.version if a else None,
                            veto_deadline=a.veto_deadline if a else None,
                            state=OutboxState.QUEUED, created_at=self.now(),
                            sub=self._account.sub)
        self._outbox[entry.id] = entry
        self._emit("outbox", "approvals", "status")
        return entry

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
        return self._queue("decision", approval_id, DecisionAction.APPROVE,
                           {"comment": comment} if comment else {})

    def request_changes(self, approval_id: str, reason: str) -> OutboxEntry:
        return self._queue("decision", approval_id, DecisionAction.REQUEST_CHANGES,
                           {"reason": reason})

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: list[Attachment] | None = None) -> OutboxEntry:
        return self._queue("decision", approval_id, DecisionAction.VETO,
                           {"category": str(category), "reason": reason,
                            "attachments": [a.model_dump() for a in attachments or []]})

    def create_seed(self, draft: SeedDraft) -> OutboxEntry:
        return self._queue("seed", None, None, draft.model_dump())

    def decide_again(self, entry_id: str) -> OutboxEntry:
        entry = self._outbox.pop(entry_id)
        return self._queue("decision", entry.approval_id, entry.action, entry.payload)

    async def refresh_dashboard(self) -> CachedDashboard | None:
        if self.online:
            self._refresh_dashboard()
            self._emit("dashboard")
        return self.dashboard()

    def cancel(self, entry_id: str) -> None:
        entry = self._outbox.get(entry_id)
        if entry and entry.state == OutboxState.QUEUED:
            del self._outbox[entry_id]
            self._emit("outbox", "approvals", "status")

    def discard(self, entry_id: str) -> None:
        if self._outbox.pop(entry_id, None):
            self._emit("outbox", "approvals", "status")

    def mark_read(self, notification_id: str) -> None:
        self._notifications = [n.model_copy(update={"read": True})
                               if n.id == notification_id else n
                               for n in self._notifications]
        self._emit("notifications")

    def reject(self, entry_id: str, code: str, message: str,
               details: dict[str, Any] | None = None) -> None:
        """Test hook: the server refused this entry."""
        self._outbox[entry_id] = self._outbox[entry_id].model_copy(update={
            "state": OutboxState.REJECTED, "error_code": code, "error_message": message,
            "error_details": details or {}})
        self._emit("outbox", "approvals", "status")

    async def sync_now(self) -> None:
        if not self.online:
            self._status = self._status.model_copy(update={
                "last_error": "The server is unreachable; decisions stay queued."})
            self._emit("status")
            return
        t = self.now()
        for entry in self.outbox({OutboxState.QUEUED}):
            a = self._approvals.get(entry.approval_id or "")
            if entry.kind == "seed":
                draft = SeedDraft.model_validate(entry.payload)
                sid = f"GEN-{100 + entry.seq:03d}"
                self._seeds[sid] = Seed(id=sid, title=draft.title,
                                        description=draft.description,
                                        conditions=draft.conditions,
                                        auto_approve=draft.auto_approve, status="proposed",
                                        created_by=entry.sub or "", created_at=t, version=1)
                self._outbox[entry.id] = entry.model_copy(
                    update={"state": OutboxState.APPLIED})
                continue
            if a is None:
                continue
            if entry.action == DecisionAction.VETO and a.veto_deadline and a.veto_deadline < t:
                self.reject(entry.id, "VETO_WINDOW_CLOSED",
                            f"The veto window of {a.id!r} closed before the veto arrived.",
                            {"deadline": a.veto_deadline.isoformat()})
                continue
            new_status = {DecisionAction.APPROVE: ApprovalStatus.APPROVED,
                          DecisionAction.REQUEST_CHANGES: ApprovalStatus.CHANGES_REQUESTED,
                          DecisionAction.VETO: ApprovalStatus.VETOED}[entry.action
                                                                      or DecisionAction.VETO]
            deadline = t + timedelta(hours=24) if new_status == ApprovalStatus.APPROVED \
                else None
            self._approvals[a.id] = a.model_copy(update={
                "status": new_status, "version": a.version + 1, "veto_deadline": deadline,
                "decided_by": entry.sub, "decided_at": t})
            self._outbox[entry.id] = entry.model_copy(update={"state": OutboxState.APPLIED})
        self._refresh_dashboard()
        self._status = self._status.model_copy(update={"last_synced_at": t,
                                                       "last_error": None})
        self._emit("outbox", "approvals", "dashboard", "seeds", "status")
