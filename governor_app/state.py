"""View models: what each screen shows, computed from ``GovernorClient`` reads.

No Flet here. Each view model is a frozen dataclass built by a pure function from the
client's state and the current time, so the screens are tested with plain pytest and the
Flet views only lay them out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from governor_app import format as fmt
from governor_app.form_errors import ShownErrors
from governor_app.seed_wizard import describe_conditions
from sync import rules
from sync.facade import ApprovalFilter, GovernorClient
from sync.models import (
    BUDGET_THRESHOLD,
    PIPELINE_STAGES,
    Account,
    Agent,
    ApprovalDetail,
    ApprovalStatus,
    ApprovalSummary,
    Attachment,
    CachedDashboard,
    Compliance,
    Conflict,
    DecisionAction,
    Notification,
    OutboxEntry,
    OutboxState,
    PipelineStage,
    Receipt,
    Seed,
    SyncStatus,
    VetoCategory,
    Violation,
)

BUDGET_WARN = 0.80
BUDGET_CRITICAL = rules.URGENT_BUDGET_PERCENT / 100  # a fraction of the budget


@dataclass(frozen=True)
class Figure:
    """One number on the dashboard; ``key`` is its stable selector in tests."""

    key: str
    label: str
    value: str
    badge: bool = False
    # Where a tap on it leads: a screen, and for the approvals list the filter to show.
    route: str = "/dashboard"
    approval_filter: ApprovalFilter | None = None


@dataclass(frozen=True)
class RecentVeto:
    """One recent veto as the dashboard says it: which request, who, which agent, when."""

    approval_id: str
    text: str


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
    recent_vetoes: tuple[RecentVeto, ...] = ()
    health: tuple[tuple[str, str], ...] = ()
    # The request whose veto window closes first, when this device has it.
    nearest_request: str | None = None
    budget_fraction: float = 0.0
    budget_text: str = ""
    budget_alert: str | None = None  # None, "warning" (80 %) or "critical" (95 %)
    budget_alert_text: str | None = None
    cached_age: str = ""
    stale: bool = False
    # Per-agent budget alerts: (words, critical at 95 %).
    alerts: tuple[tuple[str, bool], ...] = field(default_factory=tuple)
    # Seed 002's targets: the window, then (label, value and target, met: None unknown).
    compliance_window: str = ""
    compliance: tuple[tuple[str, str, bool | None], ...] = ()


def dashboard_view(cached: CachedDashboard | None, now: datetime,
                   in_window: list[ApprovalSummary] | None = None) -> DashboardView:
    """``in_window``: the cached requests in a veto window, to name the nearest one."""
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
    vetoes = tuple(_recent_veto(v, now) for v in d.recent_vetoes)
    health = _health(d.health)
    agent_alerts = tuple((_budget_alert(a), _critical(a)) for a in d.budget.alerts)
    return DashboardView(
        empty=None,
        figures=(
            Figure("active-agents", "Active agents", str(d.active_agents), route="/agents"),
            Figure("pending-approvals", "Pending approvals", str(d.pending_approvals),
                   badge=d.pending_approvals > 0, route="/approvals",
                   approval_filter="pending"),
            Figure("in-veto-window", "In veto window", str(d.in_veto_window),
                   route="/approvals", approval_filter="veto_window"),
            # The agents list shows each agent's share of the budget.
            Figure("budget-utilisation", "Budget used", fmt.percent(fraction),
                   route="/agents"),
        ),
        nearest_deadline=(fmt.countdown(d.nearest_veto_deadline, now)
                          if d.nearest_veto_deadline else "No request in a veto window"),
        recent_vetoes=vetoes,
        nearest_request=_nearest(in_window or [], now),
        health=health,
        budget_fraction=max(0.0, min(1.0, fraction)),
        budget_text=budget_text,
        budget_alert=alert,
        budget_alert_text=alert_text,
        cached_age=f"Data from {fmt.age(cached.fetched_at, now)}",
        stale=cached.stale,
        alerts=agent_alerts,
        compliance_window=(f"Last {d.compliance.window_days} days" if d.compliance else
                           "Not reported by this server"),
        compliance=_compliance(d.compliance) if d.compliance else (),
    )


def _compliance(c: Compliance) -> tuple[tuple[str, str, bool | None], ...]:
    rows = []
    for label, rate in (("Precedent-seed match rate", c.seed_match_rate),
                        ("Governor veto rate", c.veto_rate)):
        value = "no requests yet" if rate.value is None else fmt.percent(rate.value)
        verdict = "" if rate.met is None else " · met" if rate.met else " · missed"
        rows.append((label, f"{value} (target {rate.direction} "
                            f"{fmt.percent(rate.target)}){verdict}", rate.met))
    return tuple(rows)


def _budget_alert(alert: dict[str, Any]) -> str:
    who = alert.get("agent_name") or alert.get("agent") or alert.get("agent_id") or "The fleet"
    text = f"{who} passed {alert.get('threshold', '?')} % of its budget"
    used = alert.get("utilisation")
    if isinstance(used, int | float):
        text += f" (at {fmt.percent(float(used))})"
    return text


def _threshold(data: dict[str, Any]) -> float:
    try:
        return float(data.get("threshold") or 0)
    except (TypeError, ValueError):
        return 0.0


def _critical(alert: dict[str, Any]) -> bool:
    return rules.urgency(BUDGET_THRESHOLD, _threshold(alert)) is rules.Urgency.HIGH


def _nearest(in_window: list[ApprovalSummary], now: datetime) -> str | None:
    open_ = [a for a in in_window if a.veto_deadline is not None and a.veto_deadline > now]
    if not open_:
        return None
    return min(open_, key=lambda a: (a.veto_deadline, a.id)).id


def _recent_veto(v: dict[str, Any], now: datetime) -> RecentVeto:
    """``REQ-16 · Pricing Bot · vetoed by governor 5 min ago, 03 Dec 18:20 UTC · Safety:
    exec import`` (a server that predates a field leaves it out)."""
    approval_id = str(v.get("approval_id") or v.get("id") or "?")
    parts = [approval_id]
    if v.get("agent_name"):
        parts.append(str(v["agent_name"]))
    who = f"vetoed by {v['decided_by']}" if v.get("decided_by") else "vetoed"
    if v.get("decided_at"):
        who += f" {fmt.moment(v['decided_at'], now)}"
    parts.append(who)
    why = fmt.humanise(str(v["category"])) if v.get("category") else ""
    if v.get("reason"):
        why = f"{why}: {v['reason']}" if why else str(v["reason"])
    if why:
        parts.append(why)
    return RecentVeto(approval_id, " · ".join(parts))


# What makes the server's overall health "degraded" (backend_stub.api.readiness.health).
DEGRADED_VIOLATIONS = 5


def _health(health: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Each health line in words; a status other than ok says why."""
    violations = health.get("violations_24h")
    rows: list[tuple[str, str]] = []
    for key, value in health.items():
        if key == "violations_24h":
            rows.append(("Violations in the last 24 hours", str(value)))
        elif key == "status":
            rows.append(("Overall", _overall(str(value), health, violations)))
        else:
            rows.append((fmt.humanise(str(key)), _check_words(value)))
    return tuple(rows)


def _overall(status: str, health: dict[str, Any], violations: object) -> str:
    if status == "ok":
        return "OK"
    down = [fmt.humanise(str(k)) for k, v in health.items()
            if isinstance(v, dict) and v.get("status") == "down"]
    if status == "down" and down:
        return f"Down: {', '.join(down)} not answering"
    if status == "degraded" and isinstance(violations, int):
        return (f"Degraded: {violations} violations in the last 24 hours "
                f"({DEGRADED_VIOLATIONS} or more degrade the fleet)")
    return fmt.humanise(status)


def _check_words(value: object) -> str:
    if isinstance(value, dict):
        status = str(value.get("status", "unknown"))
        word = "OK" if status == "ok" else fmt.humanise(status)
        return f"{word}: {value['error']}" if value.get("error") else word
    return "OK" if value == "ok" else fmt.humanise(str(value))


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
        f"{fmt.industry(a.industry)}", status=STATUS_LABELS.get(a.status, str(a.status)),
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
    # The stage's evidence once it passed: the Genesis certificate or the review.
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class CapabilityRow:
    capability: str
    dangerous: bool
    label: str
    reasons: tuple[str, ...] = ()  # why it is dangerous, from the server (older: none)


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
    can_write = rules.may(account, DecisionAction.APPROVE)
    can_veto = rules.may(account, DecisionAction.VETO)
    if not can_write and not can_veto:
        return Actions(False, False, False,
                       f"{account.username} has read-only access: no decisions.")
    if a.pending_decision is not None:
        return Actions(False, False, False, f"{PENDING_LABELS[a.pending_decision]}: see "
                                            "the outbox (undo or wait for delivery).")
    pending = a.status == ApprovalStatus.PENDING_APPROVAL
    window_open = rules.window_open(a.veto_deadline, now)
    vetoable = rules.can_take(DecisionAction.VETO, a.status)
    veto = can_veto and vetoable and window_open
    reason = None
    if not (pending and can_write) and not veto:
        reason = ("The veto window has closed." if vetoable and not window_open
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


def _evidence(s: PipelineStage) -> tuple[str, ...]:
    lines: list[str] = []
    if s.certificate is not None:
        c = s.certificate
        signature = c.signature or {}
        lines += [f"Certificate {c.id} from {c.issuer} for agent {c.subject_agent}",
                  f"Issued {fmt.short_time(c.issued_at)}, expires {fmt.short_time(c.expires_at)}",
                  f"Module SHA-256 {c.module_sha256}",
                  f"Signed with key {signature['kid']}" if signature.get("kid")
                  else "Not signed"]
    if s.review is not None:
        r = s.review
        lines.append(f"Reviewer {r.reviewer}: {fmt.humanise(r.verdict)} · "
                     f"{fmt.short_time(r.reviewed_at)}")
        lines += [f"{fmt.humanise(str(f.get('severity', 'note')))}: {f.get('message', '')}"
                  for f in r.findings]
    return tuple(lines)


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
            failed=status == "failed", evidence=_evidence(s) if s else ()))
    caps = []
    for c in a.capabilities:
        text = str(c.get("capability") or c)
        reasons = c.get("reasons")
        caps.append(CapabilityRow(text, bool(c.get("dangerous")),
                                  f"{text} (dangerous)" if c.get("dangerous") else text,
                                  tuple(str(r) for r in reasons or () if r)))
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
    budget = tuple(fmt.budget_item(str(k), v) for k, v in a.budget.items())
    matches = tuple(SeedMatchRow(m.seed_id, m.title, fmt.percent(m.score),
                                 tuple(m.conditions_met), tuple(m.conditions_failed))
                    for m in a.seed_matches)
    decided = None
    if a.decided_by:
        decided = f"Decided by {a.decided_by}" + (f" at {fmt.short_time(a.decided_at)}"
                                                  if a.decided_at else "")
    return ApprovalDetailView(
        id=a.id, title=agent_name(a.agent), agent_id=str(a.agent.get("id", "")),
        requester=a.requester, industry=fmt.industry(a.industry),
        status=STATUS_LABELS.get(a.status, str(a.status)),
        pending=PENDING_LABELS.get(a.pending_decision) if a.pending_decision else None,
        deadline=a.veto_deadline, version=a.version, timeline=tuple(timeline),
        capabilities=tuple(caps), dangerous_count=sum(c.dangerous for c in caps),
        wasm_summary=summary, wasm_lines=lines, wasm_issues=issues, budget=budget,
        seed_matches=matches, decided=decided, actions=allowed_actions(a, account, now))


# --- veto -----------------------------------------------------------------------------

# The limits are the client's rules (``sync.rules``), shown here before anything is queued.
MAX_REASON = rules.MAX_REASON
MAX_ATTACHMENTS = rules.MAX_ATTACHMENTS
MAX_ATTACHMENT_BYTES = rules.MAX_ATTACHMENT_BYTES
CATEGORIES: tuple[tuple[VetoCategory, str], ...] = (
    (VetoCategory.CONSTITUTIONAL, "Constitutional"), (VetoCategory.SAFETY, "Safety"),
    (VetoCategory.BUDGET, "Budget"), (VetoCategory.OTHER, "Other"))
ATTACHMENT_LIMITS = (f"Up to {MAX_ATTACHMENTS} files, "
                     f"{fmt.size(MAX_ATTACHMENT_BYTES)} in all.")


def veto_reason_problem(reason: str) -> str:
    """Why the server would refuse this veto reason ("" when it would not)."""
    if not reason.strip():
        return "Explain the veto: the requester reads this reason."
    return rules.reason_problem(reason, "veto") or ""


@dataclass
class VetoForm:
    """The veto being written; validates as the server does before anything is queued."""

    approval_id: str
    category: VetoCategory | None = None
    reason: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    shown: ShownErrors = field(default_factory=ShownErrors)

    @property
    def counter(self) -> str:
        return f"{len(self.reason)} / {MAX_REASON}"

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes)

    def add_attachment(self, name: str, content_type: str, data: bytes) -> str | None:
        """Add a file; returns why it was refused (None when added)."""
        problem = rules.attachments_problem([*self.sizes, len(data)])
        if problem is not None:
            return f"{name!r} not added: {problem}"
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

    def visible_errors(self) -> dict[str, str]:
        return self.shown.visible(self.errors())


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

def auto_approves(s: Seed) -> bool:
    """Whether the seed approves a full match by itself now: only an active seed with
    ``auto_approve`` does (the server's rule); a proposed or retired one never does."""
    return s.auto_approve and s.status == "active"


def auto_approve_words(s: Seed) -> str:
    if s.status == "retired":
        return "Retired: matches and auto-approves nothing"
    if auto_approves(s):
        return "Auto-approves a full match"
    if s.auto_approve:
        return "Will auto-approve full matches once active"
    return "Suggests only: the governor decides"


def may_retire(s: Seed, account: Account | None) -> bool:
    """Whether to offer "Retire seed": a seed not retired yet, to an account with
    governance:write (the server's scope for it)."""
    return s.status != "retired" and rules.may(account, None)


@dataclass(frozen=True)
class SeedFigures:
    """A seed's effectiveness, every figure from its metrics (the server's record): the
    list, the detail and the chart all show these, so they cannot disagree."""

    matches: int
    vetoes: int
    match_rate: float  # of all requests, 0..1
    veto_rate: float  # of its matches, 0..1

    @classmethod
    def of(cls, s: Seed) -> SeedFigures:
        m = s.metrics
        matches, vetoes = max(0, m.matches), max(0, min(m.vetoes, m.matches))
        return cls(matches, vetoes, max(0.0, min(1.0, m.match_rate)),
                   vetoes / matches if matches else 0.0)


@dataclass(frozen=True)
class SeedRow:
    id: str
    title: str
    subtitle: str
    status: str
    auto_approves: bool  # now, by itself (never when proposed or retired)


def seed_rows(seeds: list[Seed]) -> tuple[SeedRow, ...]:
    rows = []
    for s in seeds:
        f = SeedFigures.of(s)
        rows.append(SeedRow(s.id, s.title, f"{s.id} · {f.matches:,} "
                            f"{'match' if f.matches == 1 else 'matches'} "
                            f"({fmt.percent(f.match_rate)}) · {f.vetoes:,} vetoed "
                            f"({fmt.percent(f.veto_rate)})",
                            fmt.humanise(s.status), auto_approves(s)))
    return tuple(rows)


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
    f = SeedFigures.of(s)
    return SeedDetailView(
        id=s.id, title=s.title, description=s.description, status=fmt.humanise(s.status),
        auto_approve=auto_approve_words(s),
        conditions=tuple(describe_conditions(s.conditions)),
        metrics=(("Matches", f"{f.matches:,}"), ("Vetoes", f"{f.vetoes:,}"),
                 ("Match rate", fmt.percent(f.match_rate)),
                 ("Veto rate", fmt.percent(f.veto_rate))),
        chart=(("Match rate", f.match_rate), ("Veto rate", f.veto_rate)),
        created=f"Created by {s.created_by} on {fmt.short_time(s.created_at)}, "
                f"version {s.version}")


def matches_over_time(seed_id: str, requests: list[ApprovalDetail], now: datetime,
                      days: int = 7) -> tuple[tuple[str, int], ...]:
    """Requests per day (oldest first) among the cached ones that ``seed_id`` matched
    fully: what the seed's "Matches" counts (a partial match is a suggestion, not a
    match), so the chart never shows more than that figure."""
    counts = {i: 0 for i in range(days)}
    for r in requests:
        if r.created_at is None or not any(m.seed_id == seed_id and not m.conditions_failed
                                           and m.score >= 1.0 for m in r.seed_matches):
            continue
        age = (now.date() - r.created_at.astimezone(now.tzinfo).date()).days
        if 0 <= age < days:
            counts[age] += 1
    return tuple(((now - timedelta(days=age)).strftime("%d %b"), counts[age])
                 for age in reversed(range(days)))


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
            used, int | float) else ", ".join(
                "{}: {}".format(*fmt.budget_item(str(k), v)) for k, v in a.budget.items())
        rows.append(AgentRow(a.id, a.name, f"{fmt.industry(a.industry)} · "
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
        return f"{d.get('approval_id', 'A request')} {fmt.decision(d.get('action'))}"
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
    """Breaks through quiet hours (``sync.rules.urgency``)."""
    return rules.urgency(n.type, _threshold(n.data)) is rules.Urgency.HIGH


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
    ("held", "Held for another server", frozenset({OutboxState.HELD})),
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
    # A version conflict: each field that changed, "Field: was X, now Y".
    changed: tuple[str, ...] = ()


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
            error += f" Deadline was {fmt.moment(e.error_details['deadline'], now)}."
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
        approval_id=e.approval_id, held_reason=held_reason,
        changed=tuple(f"{fmt.humanise(c.field)}: was {c.seen}, now {c.now}"
                      for c in (conflict.changed if conflict else ())))


def _held_reason(e: OutboxEntry) -> str:
    """Why a held entry is not sent. The store holds an entry when the app now talks to
    another server (its message names both) or when another account is signed in."""
    if e.error_code == "OTHER_SERVER" and e.error_message:
        return e.error_message
    who = e.sub or "another account"
    return (f"Queued by {who}, who is not signed in on this device now. Sign in as {who} "
            "to send it, or discard it.")


def refused_decisions(client: GovernorClient, approval_id: str, now: datetime
                      ) -> tuple[OutboxRow, ...]:
    """What became of the signed-in governor's own decisions on this request that the
    server refused (with why, and what can be done), for the request's screen."""
    account = client.account()
    return tuple(outbox_row(e, now, client.conflict(e.id))
                 for e in client.outbox({OutboxState.REJECTED})
                 if e.approval_id == approval_id and e.kind == "decision"
                 and account is not None and e.sub in (None, account.sub))


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


def others_line(status: SyncStatus) -> str | None:
    """What the outbox says of entries other accounts left on this device (never shown)."""
    n = status.other_accounts_count
    if not n:
        return None
    return (f"{n} outbox {'entry' if n == 1 else 'entries'} of other accounts "
            f"{'waits' if n == 1 else 'wait'} on this device for {'its' if n == 1 else 'their'}"
            " author to sign in; only the author can see, send or discard them.")


def badges(client: GovernorClient) -> dict[str, int]:
    """The navigation badges, each counting what its list shows for the signed-in account:
    the requests the "Pending" filter lists (a decision queued on this device takes its
    request out, as it does from the list), the unread notifications of this account, and
    every entry its outbox lists (waiting, sending, refused, held)."""
    unread = sum(1 for n in client.notifications() if not n.read)
    outbox = client.status().outbox_count
    return {"/approvals": client.approval_count("pending"), "/notifications": unread,
            "/outbox": outbox, "/more": outbox}


def sign_out_words(username: str, status: SyncStatus) -> str:
    """What sign-out says stays on this device, and who can see it."""
    mine = status.outbox_count
    kept = (f"{mine} outbox {'entry' if mine == 1 else 'entries'} of {username} stay on "
            f"this device, held: no other account can see, send or discard "
            f"{'it' if mine == 1 else 'them'}; {'it is' if mine == 1 else 'they are'} sent "
            f"when {username} signs in here again."
            if mine else f"Nothing of {username} waits to be sent.")
    return (f"Signed out of {username}. {kept} The requests and seeds cached on this device "
            "stay, sealed with its key; notifications stay with the account they came for.")


def receipt_line(receipt: Receipt | None) -> tuple[str, str] | None:
    """What the detail screen says of this device's decision's receipt: (text, tone),
    tone ``ok`` | ``bad`` | ``wait``; None when this device made no decision on it."""
    if receipt is None:
        return None
    action = fmt.humanise(receipt.action)
    if receipt.status == "verified":
        where = f", audit entry {receipt.audit_seq}" if receipt.audit_seq is not None else ""
        return f"Receipt verified: {action} signed by the server{where}.", "ok"
    if receipt.status == "invalid":
        return f"Receipt invalid: {receipt.problem}", "bad"
    return f"Receipt awaited: the {action} has not been applied by the server yet.", "wait"
