"""View models: what each screen shows, computed from ``GovernorClient`` reads.

No Flet here. Each view model is a frozen dataclass built by a pure function from the
client's state and the current time, so the screens are tested with plain pytest and the
Flet views only lay them out.
"""

from __future__ import annotations

import base64
import contextlib
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

from governor_app import format as fmt
from sync.facade import ApprovalFilter, GovernorClient
from sync.models import (
    PIPELINE_STAGES,
    SCOPE_VETO,
    SCOPE_WRITE,
    Account,
    Agent,
    ApprovalDetail,
    ApprovalStatus,
    ApprovalSummary,
    Attachment,
    CachedDashboard,
    Conflict,
    DecisionAction,
    Notification,
    OutboxEntry,
    OutboxState,
    Seed,
    SeedDraft,
    SyncStatus,
    VetoCategory,
    Violation,
)

BUDGET_WARN = 0.80
BUDGET_CRITICAL = 0.95


@dataclass(frozen=True)
class Figure:
    """One number on the dashboard; ``key`` is its stable selector in tests."""

    key: str
    label: str
    value: str
    badge: bool = False


@dataclass(frozen=True)
class ConnectionView:
    """The banner every screen shows: online or not, how fresh the data is."""

    online: bool
    label: str  # "Online" / "Offline"
    synced: str  # "Synced 2 min ago"
    detail: str | None  # the offline sentence or the last error in words
    pending: int


def connection_view(status: SyncStatus, now: datetime) -> ConnectionView:
    synced = f"Synced {fmt.age(status.last_synced_at, now)}"
    if status.online:
        return ConnectionView(True, "Online", synced, status.last_error, status.pending_count)
    detail = ("Offline: showing what this device cached. It reconnects by itself when "
              "the server is reachable again.")
    if status.pending_count:
        detail += f" {status.pending_count} decision(s) wait in the outbox."
    return ConnectionView(False, "Offline", synced, detail, status.pending_count)


@dataclass(frozen=True)
class DashboardView:
    empty: str | None  # a sentence when nothing is cached yet
    figures: tuple[Figure, ...] = ()
    nearest_deadline: str = ""
    recent_vetoes: tuple[str, ...] = ()
    health: tuple[tuple[str, str], ...] = ()
    budget_fraction: float = 0.0
    budget_text: str = ""
    budget_alert: str | None = None  # None, "warning" (80 %) or "critical" (95 %)
    budget_alert_text: str | None = None
    cached_age: str = ""
    stale: bool = False
    # Per-agent budget alerts: (words, critical at 95 %).
    alerts: tuple[tuple[str, bool], ...] = field(default_factory=tuple)


def dashboard_view(cached: CachedDashboard | None, now: datetime) -> DashboardView:
    if cached is None:
        return DashboardView(empty="No dashboard on this device yet. It appears after the "
                                   "first sync with the server; pull to refresh.")
    d = cached.dashboard
    fraction = d.budget.utilisation
    alert: str | None = None
    alert_text: str | None = None
    if fraction >= BUDGET_CRITICAL:
        alert = "critical"
        alert_text = (f"Budget at {fmt.percent(fraction)}: above the 95 % limit. Review the "
                      "agents spending most.")
    elif fraction >= BUDGET_WARN:
        alert = "warning"
        alert_text = f"Budget at {fmt.percent(fraction)}: above the 80 % warning."
    budget_text = fmt.percent(fraction)
    if d.budget.tokens_limit:
        budget_text += f" ({d.budget.tokens_used:,} of {d.budget.tokens_limit:,} tokens)"
    vetoes = tuple(
        f"{v.get('approval_id') or v.get('id', '?')}: {v.get('category', 'veto')}"
        + (f" — {v['reason']}" if v.get("reason") else "")
        for v in d.recent_vetoes)
    health = tuple((fmt.humanise(str(k)), _health_word(v)) for k, v in d.health.items())
    agent_alerts = tuple((_budget_alert(a), _critical(a)) for a in d.budget.alerts)
    return DashboardView(
        empty=None,
        figures=(
            Figure("active-agents", "Active agents", str(d.active_agents)),
            Figure("pending-approvals", "Pending approvals", str(d.pending_approvals),
                   badge=d.pending_approvals > 0),
            Figure("in-veto-window", "In veto window", str(d.in_veto_window)),
            Figure("budget-utilisation", "Budget used", fmt.percent(fraction)),
        ),
        nearest_deadline=(fmt.countdown(d.nearest_veto_deadline, now)
                          if d.nearest_veto_deadline else "No request in a veto window"),
        recent_vetoes=vetoes,
        health=health,
        budget_fraction=max(0.0, min(1.0, fraction)),
        budget_text=budget_text,
        budget_alert=alert,
        budget_alert_text=alert_text,
        cached_age=f"Data from {fmt.age(cached.fetched_at, now)}",
        stale=cached.stale,
        alerts=agent_alerts,
    )


def _budget_alert(alert: dict[str, Any]) -> str:
    who = alert.get("agent_name") or alert.get("agent") or alert.get("agent_id") or "The fleet"
    text = f"{who} passed {alert.get('threshold', '?')} % of its budget"
    used = alert.get("utilisation")
    if isinstance(used, int | float):
        text += f" (at {fmt.percent(float(used))})"
    return text


def _critical(alert: dict[str, Any]) -> bool:
    try:
        return float(alert.get("threshold", 0)) >= 95
    except (TypeError, ValueError):
        return False


def _health_word(value: object) -> str:
    if isinstance(value, dict):
        value = value.get("status", "?")
    return str(value)


# --- approvals ------------------------------------------------------------------------

STATUS_LABELS = {
    ApprovalStatus.PENDING_APPROVAL: "Pending approval",
    ApprovalStatus.APPROVED: "Approved (veto window)",
    ApprovalStatus.CHANGES_REQUESTED: "Changes requested",
    ApprovalStatus.VETOED: "Vetoed",
    ApprovalStatus.AUTO_APPROVED: "Auto-approved (veto window)",
    ApprovalStatus.DEPLOYED: "Deployed",
}
PENDING_LABELS = {
    DecisionAction.APPROVE: "Approval queued",
    DecisionAction.REQUEST_CHANGES: "Change request queued",
    DecisionAction.VETO: "Veto queued",
}
FILTERS: tuple[tuple[ApprovalFilter, str], ...] = (
    ("all", "All"), ("pending", "Pending"), ("veto_window", "In veto window"),
    ("decided", "Decided"))
_VETOABLE = {ApprovalStatus.PENDING_APPROVAL, ApprovalStatus.APPROVED,
             ApprovalStatus.AUTO_APPROVED}


def agent_name(agent: dict[str, Any]) -> str:
    return str(agent.get("name") or agent.get("id") or "Unnamed agent")


@dataclass(frozen=True)
class ApprovalRow:
    id: str
    title: str  # the agent's name
    subtitle: str  # requester · industry
    status: str
    deadline: datetime | None
    pending: str | None  # "Veto queued" while a decision waits in the outbox


def approval_row(a: ApprovalSummary) -> ApprovalRow:
    return ApprovalRow(
        id=a.id, title=agent_name(a.agent), subtitle=f"{a.id} · {a.requester} · "
        f"{fmt.humanise(a.industry)}", status=STATUS_LABELS.get(a.status, str(a.status)),
        deadline=a.veto_deadline,
        pending=PENDING_LABELS.get(a.pending_decision) if a.pending_decision else None)


@dataclass(frozen=True)
class ApprovalListView:
    filter: ApprovalFilter
    query: str
    rows: tuple[ApprovalRow, ...]
    empty: str | None
    more: bool  # more rows than shown: narrow the search or show more

    @property
    def shown(self) -> str:
        """How much of the list is on the device's screen list ("20 requests shown, more
        below")."""
        count = len(self.rows)
        text = f"{count} request{'' if count == 1 else 's'} shown"
        return text + (", more below" if self.more else "")


def approval_list_view(client: GovernorClient, filter: ApprovalFilter = "pending",
                       query: str = "", limit: int = 100) -> ApprovalListView:
    """The list as shown: the first ``limit`` requests that pass ``filter`` and ``query``
    (the client filters, searches and pages; one more is asked for to know whether there
    are more)."""
    items = client.approvals(filter, query.strip(), limit=limit + 1)
    rows = tuple(approval_row(a) for a in items[:limit])
    empty = None
    if not rows:
        empty = (f"No request matches {query.strip()!r}." if query.strip()
                 else "Nothing here. New requests appear as soon as the device syncs.")
    return ApprovalListView(filter, query, rows, empty, more=len(items) > limit)


@dataclass(frozen=True)
class StageRow:
    stage: str
    label: str
    status: str
    when: str
    notes: str | None
    done: bool
    failed: bool


@dataclass(frozen=True)
class CapabilityRow:
    capability: str
    dangerous: bool
    label: str


@dataclass(frozen=True)
class SeedMatchRow:
    seed_id: str
    title: str
    score: str
    met: tuple[str, ...]
    failed: tuple[str, ...]


@dataclass(frozen=True)
class Actions:
    """What this account may do on this request now, and why not when it may not."""

    approve: bool
    request_changes: bool
    veto: bool
    reason: str | None  # why the buttons are missing (read-only account, decided, ...)


def allowed_actions(a: ApprovalSummary, account: Account | None, now: datetime) -> Actions:
    if account is None:
        return Actions(False, False, False, "Sign in to decide.")
    can_write = account.can(SCOPE_WRITE)
    can_veto = account.can(SCOPE_VETO)
    if not can_write and not can_veto:
        return Actions(False, False, False,
                       f"{account.username} has read-only access: no decisions.")
    if a.pending_decision is not None:
        return Actions(False, False, False, f"{PENDING_LABELS[a.pending_decision]}: see "
                                            "the outbox (undo or wait for delivery).")
    pending = a.status == ApprovalStatus.PENDING_APPROVAL
    window_open = a.veto_deadline is None or a.veto_deadline > now
    veto = can_veto and a.status in _VETOABLE and window_open
    reason = None
    if not (pending and can_write) and not veto:
        reason = ("The veto window has closed." if a.status in _VETOABLE and not window_open
                  else f"This request is {STATUS_LABELS.get(a.status, a.status).lower()}: "
                       "nothing left to decide.")
    return Actions(approve=pending and can_write, request_changes=pending and can_write,
                   veto=veto, reason=reason)


@dataclass(frozen=True)
class ApprovalDetailView:
    id: str
    title: str
    agent_id: str
    requester: str
    industry: str
    status: str
    pending: str | None
    deadline: datetime | None
    version: int
    timeline: tuple[StageRow, ...]
    capabilities: tuple[CapabilityRow, ...]
    dangerous_count: int
    wasm_summary: str
    wasm_lines: tuple[str, ...]
    wasm_issues: tuple[str, ...]
    budget: tuple[tuple[str, str], ...]
    seed_matches: tuple[SeedMatchRow, ...]
    decided: str | None
    actions: Actions


def approval_detail_view(a: ApprovalDetail, account: Account | None, now: datetime
                         ) -> ApprovalDetailView:
    stages = {s.stage: s for s in a.pipeline}
    timeline = []
    for name in PIPELINE_STAGES:
        s = stages.get(name)
        status = s.status if s else "pending"
        timeline.append(StageRow(
            stage=name, label=fmt.humanise(name), status=fmt.humanise(status),
            when=fmt.short_time(s.completed_at) if s and s.completed_at else "",
            notes=s.notes if s else None, done=status == "passed",
            failed=status == "failed"))
    caps = []
    for c in a.capabilities:
        text = str(c.get("capability") or c)
        caps.append(CapabilityRow(text, bool(c.get("dangerous")),
                                  f"{text} (dangerous)" if c.get("dangerous") else text))
    caps.sort(key=lambda c: (not c.dangerous, c.capability))
    w = a.wasm_report
    summary = ("Module valid" if w.valid else "Module invalid") + \
        (f", {len(w.issues)} issue(s)" if w.issues else ", no issues")
    lines = (f"Magic and version: {'ok' if w.magic_ok else 'bad'}"
             + (f" (version {w.version})" if w.version is not None else ""),
             f"Sections: {', '.join(w.sections) or 'none'}",
             f"Imports: {', '.join(w.imports) or 'none'}",
             f"Exports: {', '.join(w.exports) or 'none'}",
             f"Memory pages: {w.memory_pages if w.memory_pages is not None else 'none'}")
    issues = tuple(str(i.get("message") or i) + (f" ({i['severity']})" if i.get("severity")
                                                 else "") for i in w.issues)
    budget = tuple((fmt.humanise(str(k)), f"{v:,}" if isinstance(v, int) else str(v))
                   for k, v in a.budget.items())
    matches = tuple(SeedMatchRow(m.seed_id, m.title, fmt.percent(m.score),
                                 tuple(m.conditions_met), tuple(m.conditions_failed))
                    for m in a.seed_matches)
    decided = None
    if a.decided_by:
        decided = f"Decided by {a.decided_by}" + (f" at {fmt.short_time(a.decided_at)}"
                                                  if a.decided_at else "")
    return ApprovalDetailView(
        id=a.id, title=agent_name(a.agent), agent_id=str(a.agent.get("id", "")),
        requester=a.requester, industry=fmt.humanise(a.industry),
        status=STATUS_LABELS.get(a.status, str(a.status)),
        pending=PENDING_LABELS.get(a.pending_decision) if a.pending_decision else None,
        deadline=a.veto_deadline, version=a.version, timeline=tuple(timeline),
        capabilities=tuple(caps), dangerous_count=sum(c.dangerous for c in caps),
        wasm_summary=summary, wasm_lines=lines, wasm_issues=issues, budget=budget,
        seed_matches=matches, decided=decided, actions=allowed_actions(a, account, now))


# --- veto -----------------------------------------------------------------------------

MAX_REASON = 2000
MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
CATEGORIES: tuple[tuple[VetoCategory, str], ...] = (
    (VetoCategory.CONSTITUTIONAL, "Constitutional"), (VetoCategory.SAFETY, "Safety"),
    (VetoCategory.BUDGET, "Budget"), (VetoCategory.OTHER, "Other"))
ATTACHMENT_LIMITS = (f"Up to {MAX_ATTACHMENTS} files, "
                     f"{fmt.size(MAX_ATTACHMENT_BYTES)} in all.")


def veto_reason_problem(reason: str) -> str:
    """Why the server would refuse this veto reason ("" when it would not)."""
    if not reason.strip():
        return "Explain the veto: the requester reads this reason."
    if len(reason) > MAX_REASON:
        return f"The reason is {len(reason)} characters; shorten it to {MAX_REASON}."
    return ""


@dataclass
class VetoForm:
    """The veto being written; validates as the server does before anything is queued."""

    approval_id: str
    category: VetoCategory | None = None
    reason: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    @property
    def counter(self) -> str:
        return f"{len(self.reason)} / {MAX_REASON}"

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def add_attachment(self, name: str, content_type: str, data: bytes) -> str | None:
        """Add a file; returns why it was refused (None when added)."""
        if len(self.attachments) >= MAX_ATTACHMENTS:
            return f"{name!r} not added: a veto carries at most {MAX_ATTACHMENTS} files."
        if self.total_bytes + len(data) > MAX_ATTACHMENT_BYTES:
            return (f"{name!r} not added: the attachments would exceed "
                    f"{fmt.size(MAX_ATTACHMENT_BYTES)} in all. Remove or shrink some.")
        self.attachments.append(Attachment(name=name, content_type=content_type,
                                           data_base64=base64.b64encode(data).decode()))
        self.sizes.append(len(data))
        return None

    def remove_attachment(self, index: int) -> None:
        del self.attachments[index]
        del self.sizes[index]

    def attachment_lines(self) -> list[str]:
        return [f"{a.name} ({fmt.size(n)})" for a, n in zip(self.attachments, self.sizes,
                                                               strict=True)]

    def errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        if self.category is None:
            errors["category"] = "Choose a category: constitutional, safety, budget or other."
        reason = veto_reason_problem(self.reason)
        if reason:
            errors["reason"] = reason
        return errors

    @property
    def ready(self) -> bool:
        return not self.errors()


@dataclass
class UndoWindow:
    """A decision held on the device for a few seconds so it can be taken back before it
    is queued for the server (the engine sends queued decisions at once)."""

    started: datetime
    seconds: float
    cancelled: bool = False
    committed: bool = False

    def left(self, now: datetime) -> float:
        return max(0.0, self.seconds - (now - self.started).total_seconds())

    def due(self, now: datetime) -> bool:
        return not self.cancelled and not self.committed and self.left(now) <= 0

    def cancel(self) -> bool:
        if self.committed:
            return False
        self.cancelled = True
        return True


# --- seeds ----------------------------------------------------------------------------

INDUSTRIES = ("healthcare", "education", "finance", "retail", "logistics", "energy",
              "public_sector", "coe")
CAPABILITY_CHOICES = (
    "file_read:/data/*", "file_read:*", "network_outbound:*.internal",
    "network_outbound:*", "env_read:*", "custom:*", "file_write:/tmp/*")
_CAP_PATTERN = re.compile(r"^[a-z_]+:.+$")


def describe_conditions(conditions: dict[str, Any]) -> list[str]:
    """The rule set in words, one line per rule."""
    words: list[str] = []
    for name, rule in conditions.items():
        if name == "industry_in":
            words.append("Industry is one of " + ", ".join(fmt.humanise(i) for i in rule))
        elif name == "agent_kind_in":
            words.append("Agent kind is one of " + ", ".join(rule))
        elif name == "capabilities_within":
            words.append("Capabilities stay within " + ", ".join(rule))
        elif name == "max_daily_token_budget":
            words.append(f"Daily token budget at most {int(rule):,}")
        elif name == "max_monthly_cost_usd":
            words.append(f"Monthly cost at most ${rule}")
        elif name == "no_dangerous_capabilities":
            words.append("No dangerous capabilities")
        elif name == "wasm_valid":
            words.append("The WASM module is valid")
        elif name == "max_memory_pages":
            words.append(f"At most {rule} memory pages")
        elif name == "requester_in":
            words.append("Requested by " + ", ".join(rule))
        else:
            words.append(f"{fmt.humanise(name)}: {rule}")
    return words


@dataclass(frozen=True)
class SeedRow:
    id: str
    title: str
    subtitle: str
    status: str
    auto_approve: bool


def seed_rows(seeds: list[Seed]) -> tuple[SeedRow, ...]:
    return tuple(SeedRow(s.id, s.title, f"{s.id} · match {fmt.percent(s.metrics.match_rate)}"
                         f" · veto {fmt.percent(s.metrics.veto_rate)}",
                         fmt.humanise(s.status), s.auto_approve) for s in seeds)


@dataclass(frozen=True)
class SeedDetailView:
    id: str
    title: str
    description: str
    status: str
    auto_approve: str
    conditions: tuple[str, ...]
    metrics: tuple[tuple[str, str], ...]
    chart: tuple[tuple[str, float], ...]  # (label, 0..1) bars: matched, vetoed of matched
    created: str


def seed_detail_view(s: Seed) -> SeedDetailView:
    m = s.metrics
    return SeedDetailView(
        id=s.id, title=s.title, description=s.description, status=fmt.humanise(s.status),
        auto_approve="Auto-approves a full match" if s.auto_approve
        else "Suggests only: the governor decides",
        conditions=tuple(describe_conditions(s.conditions)),
        metrics=(("Matches", f"{m.matches:,}"), ("Vetoes", f"{m.vetoes:,}"),
                 ("Match rate", fmt.percent(m.match_rate)),
                 ("Veto rate", fmt.percent(m.veto_rate))),
        chart=(("Match rate", max(0.0, min(1.0, m.match_rate))),
               ("Veto rate", max(0.0, min(1.0, m.veto_rate)))),
        created=f"Created by {s.created_by} on {fmt.short_time(s.created_at)}, "
                f"version {s.version}")


def matches_over_time(seed_id: str, requests: list[ApprovalDetail], now: datetime,
                      days: int = 7) -> tuple[tuple[str, int], ...]:
    """Requests per day (oldest first) that matched ``seed_id``, from the cached ones."""
    counts = {i: 0 for i in range(days)}
    for r in requests:
        if r.created_at is None or not any(m.seed_id == seed_id for m in r.seed_matches):
            continue
        age = (now.date() - r.created_at.astimezone(now.tzinfo).date()).days
        if 0 <= age < days:
            counts[age] += 1
    return tuple(((now - timedelta(days=age)).strftime("%d %b"), counts[age])
                 for age in reversed(range(days)))


@dataclass
class SeedWizard:
    """Builds a seed draft from choices, step by step; validates as the server's schema
    does (backend conditions: at least one rule, known industries, KIND:TARGET patterns)."""

    STEPS: ClassVar[tuple[str, ...]] = ("About", "Conditions", "Auto-approve", "Review")
    step: int = 0
    title: str = ""
    description: str = ""
    industries: set[str] = field(default_factory=set)
    capabilities: set[str] = field(default_factory=set)
    max_daily_tokens: str = ""
    max_monthly_cost: str = ""
    no_dangerous: bool = False
    wasm_valid: bool = False
    auto_approve: bool = False

    def conditions(self) -> dict[str, Any]:
        rules: dict[str, Any] = {}
        if self.industries:
            rules["industry_in"] = sorted(self.industries)
        if self.capabilities:
            rules["capabilities_within"] = sorted(self.capabilities)
        if self.max_daily_tokens.strip():
            with contextlib.suppress(ValueError):
                rules["max_daily_token_budget"] = int(self.max_daily_tokens.strip())
        if self.max_monthly_cost.strip():
            with contextlib.suppress(ValueError):
                rules["max_monthly_cost_usd"] = float(self.max_monthly_cost.strip())
        if self.no_dangerous:
            rules["no_dangerous_capabilities"] = True
        if self.wasm_valid:
            rules["wasm_valid"] = True
        return rules

    def errors(self, step: int | None = None) -> dict[str, str]:
        """Errors of one step (or of all steps when ``step`` is None)."""
        steps = range(len(self.STEPS)) if step is None else [step]
        errors: dict[str, str] = {}
        for s in steps:
            if s == 0:
                if not self.title.strip():
                    errors["title"] = "Give the seed a title: what kind of request it covers."
                elif len(self.title) > 200:
                    errors["title"] = "Shorten the title to 200 characters."
                if not self.description.strip():
                    errors["description"] = "Describe when this precedent applies."
                elif len(self.description) > 4000:
                    errors["description"] = "Shorten the description to 4,000 characters."
            if s == 1:
                errors.update(self._condition_errors())
        return errors

    def _condition_errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        unknown = self.industries - set(INDUSTRIES)
        if unknown:
            errors["industry_in"] = f"Unknown industries: {', '.join(sorted(unknown))}."
        bad = [c for c in self.capabilities if not _CAP_PATTERN.match(c) or len(c) < 3]
        if bad:
            errors["capabilities_within"] = f"Not KIND:TARGET: {', '.join(sorted(bad))}."
        raw = self.max_daily_tokens.strip()
        if raw and (not raw.isdigit()):
            errors["max_daily_token_budget"] = "The daily token budget is a whole number ≥ 0."
        raw = self.max_monthly_cost.strip()
        if raw:
            try:
                if float(raw) < 0:
                    raise ValueError
            except ValueError:
                errors["max_monthly_cost_usd"] = "The monthly cost is a number ≥ 0."
        if not errors and not self.conditions():
            errors["conditions"] = "Choose at least one condition; a seed without rules " \
                                   "would match every request."
        return errors

    def next(self) -> bool:
        if self.errors(self.step):
            return False
        self.step = min(self.step + 1, len(self.STEPS) - 1)
        return True

    def back(self) -> None:
        self.step = max(0, self.step - 1)

    def draft(self) -> SeedDraft:
        return SeedDraft(title=self.title.strip(), description=self.description.strip(),
                         conditions=self.conditions(), auto_approve=self.auto_approve)

    def review(self) -> list[str]:
        return [f"Title: {self.title.strip()}", f"Description: {self.description.strip()}",
                *describe_conditions(self.conditions()),
                "Auto-approve full matches" if self.auto_approve else "Suggest only"]


# --- agents, violations ----------------------------------------------------------------

@dataclass(frozen=True)
class AgentRow:
    id: str
    name: str
    subtitle: str
    budget: str
    capabilities: tuple[str, ...]


def agent_rows(agents: list[Agent]) -> tuple[AgentRow, ...]:
    rows = []
    for a in agents:
        used = a.budget.get("utilisation")
        budget = fmt.percent(float(used)) + " of budget used" if isinstance(
            used, int | float) else ", ".join(f"{k}: {v}" for k, v in a.budget.items())
        rows.append(AgentRow(a.id, a.name, f"{fmt.humanise(a.industry)} · "
                             f"{fmt.humanise(a.status)}", budget, tuple(a.capabilities)))
    return tuple(rows)


@dataclass(frozen=True)
class ViolationRow:
    id: str
    title: str
    subtitle: str
    description: str
    severe: bool


def violation_rows(violations: list[Violation]) -> tuple[ViolationRow, ...]:
    return tuple(ViolationRow(
        v.id, f"{fmt.humanise(v.kind)} violation by {v.agent_id}",
        f"{fmt.humanise(v.severity)} · {fmt.short_time(v.occurred_at)}", v.description,
        v.severity.lower() in ("high", "critical"))
        for v in sorted(violations, key=lambda v: v.occurred_at, reverse=True))


# --- notifications --------------------------------------------------------------------

NOTIFICATION_GROUPS = {
    "governance.approval.pending": "Pending approvals",
    "governance.approval.decided": "Decisions",
    "governance.approval.deployed": "Deployments",
    "governance.seed.auto_approved": "Auto-approvals by a seed",
    "governance.budget.threshold_exceeded": "Budget alerts",
    "governance.agent.violated": "Violations",
    "governance.veto_window.closing": "Veto windows closing",
}


@dataclass(frozen=True)
class NotificationRow:
    id: str
    title: str
    subtitle: str
    read: bool
    approval_id: str | None
    urgent: bool


def notification_title(n: Notification) -> str:
    d = n.data
    who = d.get("agent_name") or d.get("agent_id") or d.get("agent") or ""
    if n.type == "governance.approval.pending":
        return f"{d.get('approval_id', 'A request')} waits for approval" + \
            (f": {who}" if who else "")
    if n.type == "governance.approval.decided":
        return f"{d.get('approval_id', 'A request')} {d.get('action', 'decided')}"
    if n.type == "governance.seed.auto_approved":
        return f"{d.get('approval_id', 'A request')} auto-approved by " \
               f"{d.get('seed_id', 'a seed')}"
    if n.type == "governance.budget.threshold_exceeded":
        return f"{who or 'An agent'} passed {d.get('threshold', '?')} % of its budget"
    if n.type == "governance.agent.violated":
        return f"{who or 'An agent'} broke a rule ({d.get('kind', 'violation')})"
    if n.type == "governance.veto_window.closing":
        return f"Veto window of {d.get('approval_id', 'a request')} closes within an hour"
    return fmt.humanise(n.type.rsplit(".", 1)[-1])


def is_urgent(n: Notification) -> bool:
    """Breaks through quiet hours: budget at 95 % and violations."""
    if n.type == "governance.agent.violated":
        return True
    if n.type == "governance.budget.threshold_exceeded":
        try:
            return float(n.data.get("threshold", 0)) >= 95
        except (TypeError, ValueError):
            return False
    return False


def notification_groups(items: list[Notification], now: datetime
                        ) -> tuple[tuple[str, tuple[NotificationRow, ...]], ...]:
    groups: dict[str, list[NotificationRow]] = {}
    for n in sorted(items, key=lambda n: n.timestamp, reverse=True):
        group = NOTIFICATION_GROUPS.get(n.type, "Other")
        approval = n.data.get("approval_id")
        groups.setdefault(group, []).append(NotificationRow(
            n.id, notification_title(n), fmt.age(n.timestamp, now), n.read,
            str(approval) if approval else None, is_urgent(n)))
    order = [*NOTIFICATION_GROUPS.values(), "Other"]
    return tuple((g, tuple(groups[g])) for g in order if g in groups)


def unread_count(items: list[Notification]) -> int:
    return sum(1 for n in items if not n.read)


# --- outbox ---------------------------------------------------------------------------

OUTBOX_SECTIONS: tuple[tuple[str, str, frozenset[OutboxState]], ...] = (
    ("pending", "Waiting to send", frozenset({OutboxState.QUEUED})),
    ("sending", "Sending", frozenset({OutboxState.SENDING})),
    ("rejected", "Refused by the server", frozenset({OutboxState.REJECTED})),
    ("held", "Held for another account or server", frozenset({OutboxState.HELD})),
)
ERROR_WORDS = {
    "VETO_WINDOW_CLOSED": "The veto window closed before the veto reached the server.",
    "ALREADY_DECIDED": "The request was decided elsewhere first (another device or "
                       "governor).",
    "VERSION_CONFLICT": "The request changed after you decided.",
    "VALIDATION_FAILED": "The server found the decision invalid.",
    "INSUFFICIENT_SCOPE": "This account may not make that decision.",
}


@dataclass(frozen=True)
class OutboxRow:
    id: str
    title: str
    subtitle: str
    state: str
    error: str | None
    can_cancel: bool
    can_discard: bool
    can_decide_again: bool
    approval_id: str | None = None  # open the request to decide anew after a refusal
    held_reason: str | None = None  # why a held entry waits, and what to do about it


def outbox_title(e: OutboxEntry) -> str:
    if e.kind == "seed":
        return f"New seed: {e.payload.get('title', '')}"
    action = {DecisionAction.APPROVE: "Approve", DecisionAction.REQUEST_CHANGES:
              "Request changes on", DecisionAction.VETO: "Veto"}.get(
        e.action or DecisionAction.APPROVE, "Decide")
    return f"{action} {e.approval_id}"


def outbox_row(e: OutboxEntry, now: datetime, conflict: Conflict | None = None) -> OutboxRow:
    error = None
    if e.state == OutboxState.REJECTED:
        words = ERROR_WORDS.get(e.error_code or "", "")
        error = " ".join(x for x in (words, e.error_message or "") if x) or "Refused."
        if conflict and conflict.decided_by:
            error += f" Decided by {conflict.decided_by}."
        if conflict and conflict.current_status:
            error += f" Now {STATUS_LABELS.get(conflict.current_status, '')}.".replace(
                "Now .", "")
        if e.error_code == "VETO_WINDOW_CLOSED" and e.error_details.get("deadline"):
            error += f" Deadline was {e.error_details['deadline']}."
    held_reason = _held_reason(e) if e.state == OutboxState.HELD else None
    subtitle = f"Queued {fmt.age(e.created_at, now)}"
    if e.attempts:
        subtitle += f" · {e.attempts} attempt(s)"
    if e.sub:
        subtitle += f" · by {e.sub}"
    return OutboxRow(
        id=e.id, title=outbox_title(e), subtitle=subtitle, state=fmt.humanise(e.state.value),
        error=error, can_cancel=e.state in (OutboxState.QUEUED, OutboxState.HELD),
        can_discard=e.state in (OutboxState.REJECTED, OutboxState.HELD),
        can_decide_again=bool(conflict and conflict.can_decide_again),
        approval_id=e.approval_id, held_reason=held_reason)


def _held_reason(e: OutboxEntry) -> str:
    """Why a held entry is not sent. The store holds an entry when the app now talks to
    another server (its message names both) or when another account is signed in."""
    if e.error_code == "OTHER_SERVER" and e.error_message:
        return e.error_message
    who = e.sub or "another account"
    return (f"Queued by {who}, who is not signed in on this device now. Sign in as {who} "
            "to send it, or discard it.")


def outbox_sections(client: GovernorClient, now: datetime
                    ) -> tuple[tuple[str, str, tuple[OutboxRow, ...]], ...]:
    entries = client.outbox()
    out = []
    for key, title, states in OUTBOX_SECTIONS:
        rows = tuple(outbox_row(e, now, client.conflict(e.id)
                                if e.state == OutboxState.REJECTED else None)
                     for e in entries if e.state in states)
        out.append((key, title, rows))
    return tuple(out)
