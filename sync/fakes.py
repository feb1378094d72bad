"""An in-memory ``GovernorClient`` for view-model tests, screenshots of screens the stub
cannot reach quickly, and the 5,000-request list benchmark.

It behaves like the engine as the UI sees it: reads come from memory, writes queue an
``OutboxEntry`` at once, ``sync_now`` applies the queue when ``online`` is true and
rejects vetoes past their deadline the way the server does.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sync import rules
from sync.alert_feed import AlertFeed, AlertsThroughFeed
from sync.errors import AuthFlowError, InvalidDecision, ServerUnreachable, SignInRequired
from sync.facade import ApprovalFilter, Listener, Topic
from sync.models import (
    PENDING_SHOWS_AS,
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
    Receipt,
    Seed,
    SeedDraft,
    SeedMatch,
    SeedMetrics,
    SeedSchema,
    SyncStatus,
    VetoCategory,
    Violation,
    WasmReport,
)

if TYPE_CHECKING:
    from sync.alerts import Alert, BeforeApprove, QuietHours, StepUp
    from sync.notify import NotificationCenter
    from sync.push import PushEvent

ACCOUNTS: dict[str, tuple[str, frozenset[str]]] = {
    "governor": ("governor", frozenset({SCOPE_READ, SCOPE_WRITE, SCOPE_VETO})),
    "auditor": ("auditor", frozenset({SCOPE_READ})),
}

DECIDED = {ApprovalStatus.VETOED, ApprovalStatus.CHANGES_REQUESTED, ApprovalStatus.DEPLOYED}


def _refuse(approval_id: str, problem: str | None) -> None:
    if problem is not None:
        raise InvalidDecision(f"{approval_id!r}: {problem}")


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
            {"capability": "system_call:exec", "dangerous": True,
             "reasons": ["Makes the system call 'exec' outside the sandbox."]},
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


def _stub_seed_schema() -> dict[str, Any]:
    # Imported here: only the in-memory client (tests, screenshots) reads the stub's code.
    from backend_stub.api.schemas import seed_schema

    return seed_schema()


@dataclass
class MemoryStreamStatus:
    connected: bool = True
    connects: int = 1
    last_error: str | None = None


class MemoryStream:
    """The in-memory client's event stream (``sync.notify.EventListener``): connected at
    once, no network; its events are handed over by ``FakeGovernorClient.announce``."""

    def __init__(self) -> None:
        self.status = MemoryStreamStatus()
        self._stopped = asyncio.Event()

    def on_event(self, callback: Callable[[PushEvent], None]) -> Callable[[], None]:
        return lambda: None

    def on_status(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        return lambda: None

    async def run(self) -> None:
        await self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()


class FakeGovernorClient(AlertsThroughFeed):
    """In-memory ``GovernorClient``; set ``online`` to simulate the server coming and going.
    Push runs over a ``MemoryStream``: ``announce`` is the server sending an event."""

    def __init__(self, *, approvals: int = 8, signed_in_as: str | None = "governor",
                 now: Callable[[], datetime] = _now, seed_rules: bool = True) -> None:
        self.now = now
        # The stub's own seed schema (not a copy of it), as the engine would have synced it.
        self._seed_schema = SeedSchema(body=_stub_seed_schema(), fetched_at=now()) \
            if seed_rules else None
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
        # Each account's own notifications (the demo ones arrived for the governor).
        self._notifications_of: dict[str | None, list[Notification]] = {"governor": [
            Notification(id="N-1", type="governance.approval.pending", timestamp=t,
                         data={"approval_id": "REQ-0001"}),
            Notification(id="N-2", type="governance.budget.threshold_exceeded",
                         timestamp=t - timedelta(minutes=5),
                         data={"agent": "agent-0002", "threshold": 95, "utilisation": 0.96}),
        ]}
        self._outbox: dict[str, OutboxEntry] = {}
        # Receipt problems to show, by decision id (a test makes one "invalid" this way).
        self.bad_receipts: dict[str, str] = {}
        self._dashboard: CachedDashboard | None = None
        self._status = SyncStatus(online=True, signed_in=self._account is not None,
                                  last_synced_at=t)
        self._refresh_dashboard()
        self.alert_feed = AlertFeed(self, self._push_center, lambda: self._emit("alerts"))

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
        await self.alert_feed.close()

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

    def screen_drawn(self) -> None:
        """Nothing held back in memory."""

    # reads
    def server_now(self) -> datetime:
        """The fake's clock is the server's."""
        return self.now()

    def _sub(self) -> str | None:
        return self._account.sub if self._account else None

    def _mine(self) -> list[OutboxEntry]:
        """The signed-in account's entries in queue order: no one sees another's."""
        return [e for e in sorted(self._outbox.values(), key=lambda e: e.seq)
                if e.sub == self._sub()]

    def status(self) -> SyncStatus:
        mine = self._mine()
        pending = [e for e in mine if e.state in (OutboxState.QUEUED, OutboxState.SENDING)]
        return self._status.model_copy(update={
            "online": self.online, "pending_count": len(pending),
            "oldest_pending_at": min((e.created_at for e in pending), default=None),
            "rejected_count": sum(e.state == OutboxState.REJECTED for e in mine),
            "held_count": sum(e.state == OutboxState.HELD for e in mine),
            "other_accounts_count": sum(e.sub != self._sub() and e.state !=
                                        OutboxState.APPLIED for e in self._outbox.values())})

    def dashboard(self) -> CachedDashboard | None:
        if self._dashboard is None:
            return None
        age = self.now() - self._dashboard.fetched_at
        return self._dashboard.model_copy(update={"stale": age > timedelta(minutes=5)})

    def _with_pending(self, a: ApprovalDetail) -> ApprovalDetail:
        pending = rules.shown_pending([
            e.action for e in self._mine()
            if e.approval_id == a.id and e.action is not None
            and e.state in (OutboxState.QUEUED, OutboxState.SENDING, OutboxState.HELD)])
        return a.model_copy(update={"pending_decision": pending}) if pending else a

    def _listed(self, filter: ApprovalFilter, query: str) -> Iterator[ApprovalDetail]:
        """The requests ``approvals(filter, query)`` lists, newest first."""
        q = query.lower()
        for a in sorted(self._approvals.values(), key=lambda a: a.created_at or self.now(),
                        reverse=True):
            # As the engine lists them: a decision this account queued shows (and filters)
            # as the status it leads to.
            pending = self._with_pending(a).pending_decision
            shown = PENDING_SHOWS_AS[pending] if pending else a.status
            if filter == "pending" and shown != ApprovalStatus.PENDING_APPROVAL:
                continue
            if filter == "veto_window" and a.veto_deadline is None:
                continue
            if filter == "decided" and shown == ApprovalStatus.PENDING_APPROVAL:
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

    def seed_schema(self) -> SeedSchema | None:
        return self._seed_schema

    def agents(self) -> list[Agent]:
        return list(self._agents)

    def violations(self) -> list[Violation]:
        return list(self._violations)

    def notifications(self) -> list[Notification]:
        return sorted(self._notifications_of.get(self._sub(), []), key=lambda n: n.timestamp,
                      reverse=True)

    def outbox(self, states: set[OutboxState] | None = None) -> list[OutboxEntry]:
        return [e for e in self._mine() if states is None or e.state in states]

    def _own(self, entry_id: str, what: str) -> OutboxEntry:
        entry = self._outbox.get(entry_id)
        if entry is None or self._account is None or entry.sub != self._account.sub:
            raise InvalidDecision(f"Outbox entry {entry_id!r} is not in the outbox of this "
                                  f"account; only the account that queued it can {what} it. "
                                  "Refresh the outbox.")
        return entry

    def conflict(self, entry_id: str) -> Conflict | None:
        entry = self._outbox.get(entry_id)
        if entry is not None and entry.sub != self._sub():
            return None
        if entry is None or entry.state != OutboxState.REJECTED or not entry.approval_id:
            return None
        approval = self.approval(entry.approval_id)
        details = entry.error_details
        again = entry.error_code in ("ALREADY_DECIDED", "VERSION_CONFLICT") and \
            approval is not None and entry.action is not None and \
            rules.can_take(entry.action, approval.status)
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
            raise SignInRequired("Sign in before deciding: no account is signed in.")
        if not rules.may(self._account, action):
            raise InvalidDecision(f"Account {self._account.username!r} lacks the "
                                  f"{rules.scope_for(action)!r} scope needed for this; sign "
                                  "in as a governor who has it.")
        a = self._approvals.get(approval_id or "")
        if kind == "decision":
            if a is None or action is None:
                raise InvalidDecision(f"Approval {approval_id!r} is not on this device; "
                                      "sync and open it again.")
            pending = self._with_pending(a).pending_decision
            if pending is not None and rules.queued_blocks(pending, action):
                raise InvalidDecision(f"A {pending.value} of {approval_id!r} is already "
                                      "queued; cancel it first to decide differently.")
            shown = PENDING_SHOWS_AS[pending] if pending else a.status
            if not rules.can_take(action, shown):
                raise InvalidDecision(f"Approval {approval_id!r} is {shown.value}; it can "
                                      f"no longer take a {action.value}.")
        seq = next(self._seq)
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
        _refuse(approval_id, rules.comment_problem(comment))
        return self._queue("decision", approval_id, DecisionAction.APPROVE,
                           {"comment": comment} if comment else {})

    def request_changes(self, approval_id: str, reason: str) -> OutboxEntry:
        _refuse(approval_id, rules.reason_problem(reason, "request-changes"))
        return self._queue("decision", approval_id, DecisionAction.REQUEST_CHANGES,
                           {"reason": reason.strip()})

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: list[Attachment] | None = None) -> OutboxEntry:
        files = list(attachments or [])
        _refuse(approval_id, rules.veto_problem(reason, files))
        return self._queue("decision", approval_id, DecisionAction.VETO,
                           {"category": str(VetoCategory(category)), "reason": reason.strip(),
                            "attachments": [a.model_dump() for a in files]})

    async def retire_seed(self, seed_id: str, reason: str) -> Seed:
        _refuse(f"seed {seed_id}", rules.reason_problem(reason, "retirement"))
        if self._account is None or not self._account.can(SCOPE_WRITE):
            raise InvalidDecision("Retiring a seed needs the 'governance:write' scope; sign "
                                  "in as a governor who has it.")
        if not self.online:
            raise ServerUnreachable("The server is unreachable; retire the seed when "
                                    "online.")
        seed = self._seeds.get(seed_id)
        if seed is None:
            raise InvalidDecision(f"Seed {seed_id!r} does not exist; refresh the seeds list.")
        if seed.status != "retired":
            seed = self._seeds[seed_id] = seed.model_copy(update={
                "status": "retired", "version": seed.version + 1})
            self._emit("seeds")
        return seed

    def create_seed(self, draft: SeedDraft) -> OutboxEntry:
        if not draft.title.strip():
            raise InvalidDecision("A precedent seed needs a title; name what it covers.")
        return self._queue("seed", None, None, draft.model_dump())

    def decide_again(self, entry_id: str) -> OutboxEntry:
        entry = self._own(entry_id, "decide again on")
        del self._outbox[entry_id]
        return self._queue("decision", entry.approval_id, entry.action, entry.payload)

    async def refresh_dashboard(self) -> CachedDashboard | None:
        if self.online:
            self._refresh_dashboard()
            self._emit("dashboard")
        return self.dashboard()

    def cancel(self, entry_id: str) -> None:
        self._remove(entry_id, {OutboxState.QUEUED, OutboxState.HELD}, "taken back",
                     "take back")

    def discard(self, entry_id: str) -> None:
        self._remove(entry_id, {OutboxState.REJECTED, OutboxState.HELD}, "discarded",
                     "discard")

    def _remove(self, entry_id: str, states: set[OutboxState], what: str, verb: str
                ) -> None:
        entry = self._own(entry_id, verb)
        if entry.state not in states:
            raise InvalidDecision(f"Outbox entry {entry_id!r} is {entry.state.value}; it "
                                  f"cannot be {what}.")
        del self._outbox[entry_id]
        self._emit("outbox", "approvals", "status")

    def mark_read(self, notification_id: str) -> None:
        sub = self._sub()
        self._notifications_of[sub] = [n.model_copy(update={"read": True})
                                       if n.id == notification_id else n
                                       for n in self._notifications_of.get(sub, [])]
        self._emit("notifications")

    def sync_interval(self) -> float:
        return 0.0  # nothing to sync with

    def set_sync_interval(self, seconds: float) -> bool:
        if not seconds > 0:
            raise ValueError(f"Sync interval {seconds!r} is not a positive number of "
                             "seconds; give at least 1.")
        return False

    def why_no_push(self) -> str | None:
        return None  # its stream is in memory: always there

    def _push_center(self, step_up: StepUp, *, open_approval: Callable[[Alert], object],
                     quiet_hours: QuietHours, before_approve: BeforeApprove
                     ) -> NotificationCenter:
        from sync.notify import NotificationCenter

        return NotificationCenter(MemoryStream(), self, step_up, open_approval=open_approval,
                                  quiet_hours=quiet_hours, now=self.now,
                                  before_approve=before_approve)

    async def announce(self, event: PushEvent) -> None:
        """Test hook: the server sends ``event`` to the signed-in account; it is kept in
        ``notifications()`` and, while alerts are listened for, becomes one."""
        sub = self._sub()
        self._notifications_of.setdefault(sub, []).insert(0, Notification(
            id=event.id, type=event.type, timestamp=event.timestamp, source=event.source,
            data=dict(event.data)))
        self._emit("notifications")
        await self.alert_feed.deliver(event)

    def reject(self, entry_id: str, code: str, message: str,
               details: dict[str, Any] | None = None) -> None:
        """Test hook: the server refused this entry."""
        self._outbox[entry_id] = self._outbox[entry_id].model_copy(update={
            "state": OutboxState.REJECTED, "error_code": code, "error_message": message,
            "error_details": details or {}})
        self._emit("outbox", "approvals", "status")

    def receipts(self, approval_id: str | None = None) -> list[Receipt]:
        found = []
        for entry in sorted(self._outbox.values(), key=lambda e: e.seq):
            if entry.kind != "decision" or not entry.approval_id or entry.action is None \
                    or entry.state == OutboxState.REJECTED:
                continue
            if approval_id is not None and entry.approval_id != approval_id:
                continue
            status = "awaiting"
            if entry.state == OutboxState.APPLIED:
                status = "invalid" if entry.id in self.bad_receipts else "verified"
            found.append(Receipt(decision_id=entry.id, approval_id=entry.approval_id,
                                 action=entry.action.value, status=status,
                                 problem=self.bad_receipts.get(entry.id)))
        return found

    def receipt(self, approval_id: str) -> Receipt | None:
        found = self.receipts(approval_id)
        return found[-1] if found else None

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
            deadline = a.veto_deadline
            if entry.action == DecisionAction.VETO and deadline is not None \
                    and not rules.window_open(deadline, t):
                self.reject(entry.id, "VETO_WINDOW_CLOSED",
                            f"The veto window of {a.id!r} closed before the veto arrived.",
                            {"deadline": deadline.isoformat()})
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
