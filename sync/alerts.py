"""What the app is told about and how it answers: alerts, their actions, quiet hours.

The vocabulary the push side (``sync.notify``) and the app share, light enough for the
app to import on its first screen (no HTTP, no store): ``Alert`` and its actions,
``alert_for`` (an event as an alert), ``QuietHours``, ``NotifierInfo`` (a channel on the
settings screen), the step-up's ``VetoConfirmation`` and an action's ``ActionResult``.
The rules they apply (urgency, quiet hours, the category a veto starts with) are
``sync.rules``'.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, time, tzinfo
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from sync import rules
from sync.models import (
    AGENT_VIOLATED,
    APPROVAL_DECIDED,
    APPROVAL_DEPLOYED,
    APPROVAL_PENDING,
    BANNER_OUTCOME,
    BUDGET_THRESHOLD,
    DECISION_REFUSED,
    SEED_AUTO_APPROVED,
    SEED_CHANGED,
    VETO_UNSENT,
    VETO_WINDOW_CLOSING,
    Account,
    DecisionAction,
    Notification,
    OutboxEntry,
    VetoCategory,
)
from sync.rules import Urgency

if TYPE_CHECKING:
    from sync.push import PushEvent


class ActionId(StrEnum):
    APPROVE = "approve"
    VETO = "veto"
    OPEN = "open"
    SEND_NOW = "send_now"  # try the outbox now (a reminder of an unsent veto)


@dataclass(frozen=True)
class AlertAction:
    id: ActionId
    label: str
    destructive: bool = False


APPROVE = AlertAction(ActionId.APPROVE, "Approve")
VETO = AlertAction(ActionId.VETO, "Veto", destructive=True)
OPEN = AlertAction(ActionId.OPEN, "Open")
OPEN_REQUEST = AlertAction(ActionId.OPEN, "Open request")
SEND_NOW = AlertAction(ActionId.SEND_NOW, "Send now")


@dataclass(frozen=True)
class Alert:
    """What the person is shown for one event."""

    id: str  # the event id: one alert per event
    event_type: str
    title: str
    body: str
    urgency: Urgency
    created_at: datetime
    approval_id: str | None = None
    actions: tuple[AlertAction, ...] = (OPEN,)
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    def action(self, action_id: str) -> AlertAction | None:
        return next((a for a in self.actions if a.id == action_id), None)


def urgency_of(event: PushEvent) -> Urgency:
    """The event's urgency under ``sync.rules.urgency``."""
    return rules.urgency(event.type, _threshold(event))


def _threshold(event: PushEvent) -> float:
    try:
        return float(event.data.get("threshold") or 0)
    except (TypeError, ValueError):
        return 0.0


def _name(data: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = data.get(key)
        if isinstance(value, dict):
            value = value.get("name") or value.get("id")
        if isinstance(value, str) and value:
            return value
    return "an agent"


def alert_for(event: PushEvent) -> Alert:
    """The alert for a verified event; unknown types get a plain "Open" alert."""
    data = event.data
    approval_id = event.approval_id
    agent = _name(data, "agent_name", "agent", "agent_id")
    urgency = urgency_of(event)
    ref = f" ({approval_id})" if approval_id else ""
    actions: tuple[AlertAction, ...] = (OPEN,)
    if event.type == APPROVAL_PENDING:
        title = "Approval needed"
        body = f"{agent} asks to be deployed{ref}."
        actions = (APPROVE, VETO) if approval_id else (OPEN,)
    elif event.type == APPROVAL_DECIDED:
        status = str(data.get("status") or data.get("decision") or "decided").replace("_", " ")
        who = data.get("decided_by")
        title = "Decided elsewhere"
        body = f"{agent}{ref} was {status}" + (f" by {who}." if who else ".")
    elif event.type == SEED_AUTO_APPROVED:
        seed = data.get("seed_id") or "a precedent seed"
        title = "Auto-approved (FYI)"
        body = f"{agent}{ref} was auto-approved by {seed}; you may veto within the window."
        actions = (VETO, OPEN) if approval_id else (OPEN,)
    elif event.type == BUDGET_THRESHOLD:
        threshold = _threshold(event)
        utilisation = data.get("utilisation")
        used = f" (now {float(utilisation) * 100:.0f} %)" if isinstance(
            utilisation, int | float) and utilisation <= 1.5 else ""
        title = f"Budget {threshold:.0f} % reached"
        body = f"{agent} crossed {threshold:.0f} % of its budget{used}."
    elif event.type == AGENT_VIOLATED:
        kind = str(data.get("kind") or "constitutional")
        title = "Violation"
        body = f"{agent}: {kind} violation. {data.get('description') or ''}".strip()
    elif event.type == VETO_WINDOW_CLOSING:
        title = "Veto window closing"
        body = f"The veto window for {agent}{ref} closes within the hour."
        actions = (VETO, OPEN) if approval_id else (OPEN,)
    elif event.type == APPROVAL_DEPLOYED:
        title = "Deployed"
        body = f"{agent}{ref} left the veto window and is deployed."
    elif event.type == SEED_CHANGED:
        title = "Precedent seed changed"
        body = f"Seed {data.get('seed_id') or data.get('id') or ''} changed.".replace("  ", " ")
    else:
        title = "Governance event"
        body = event.type
    return Alert(id=event.id, event_type=event.type, title=title, body=body, urgency=urgency,
                 created_at=event.timestamp, approval_id=approval_id, actions=actions,
                 data=data)


def reminder_alert(notification: Notification) -> Alert:
    """The engine's reminder of a queued veto nearing its deadline, as an urgent alert: the
    veto is lost if it is not sent in time, so it goes through quiet hours."""
    data = notification.data
    approval_id = str(data.get("approval_id") or "") or None
    body = str(data.get("message") or f"Your veto of {approval_id} is not sent yet.")
    return Alert(id=notification.id, event_type=VETO_UNSENT, title="Veto not sent yet",
                 body=body, urgency=rules.urgency(VETO_UNSENT),
                 created_at=notification.timestamp, approval_id=approval_id,
                 actions=(SEND_NOW, OPEN_REQUEST) if approval_id else (SEND_NOW,),
                 data=dict(data))


# The server's refusal codes in a few words, for the alert's title.
REFUSAL_WORDS = {
    "VETO_WINDOW_CLOSED": "the veto window closed",
    "ALREADY_DECIDED": "it was already decided",
    "VERSION_CONFLICT": "the request changed",
}


def refusal_alert(entry: OutboxEntry, now: datetime) -> Alert:
    """A decision of this device that the server refused, as an urgent alert naming the
    request and the reason; Open shows the request and what became of the decision."""
    action = (entry.action.value if entry.action else "decision").replace("_", " ")
    what = {"approve": "approval", "request changes": "request for changes"}.get(
        action, action)
    reason = REFUSAL_WORDS.get(entry.error_code or "", "the server refused it")
    message = (entry.error_message or "").strip()
    body = f"Your {what} of {entry.approval_id} was not applied: {reason}." + \
        (f" {message}" if message else "")
    return Alert(id=f"refused-{entry.id}", event_type=DECISION_REFUSED,
                 title=f"{what.capitalize()} refused", body=body,
                 urgency=rules.urgency(DECISION_REFUSED), created_at=now,
                 approval_id=entry.approval_id,
                 actions=(OPEN_REQUEST,) if entry.approval_id else (),
                 data={"entry_id": entry.id, "code": entry.error_code or ""})


def outcome_alert(alert: Alert, message: str, now: datetime) -> Alert:
    """What became of a banner acted on, shown in its place for a moment (so the banners
    below do not slide up under the finger) and gone by itself."""
    return Alert(id=f"{alert.id}#done", event_type=BANNER_OUTCOME, title=message or "Done",
                 body="", urgency=rules.urgency(BANNER_OUTCOME), created_at=now, actions=())


@dataclass(frozen=True)
class NotifierInfo:
    """For the settings screen: which channel, whether it works, and why (not)."""

    name: str
    active: bool
    reason: str


@dataclass(frozen=True)
class QuietHours:
    """A daily quiet period in the person's time zone; ``start == end`` means none.

    It may run over midnight (22:00 to 07:00).
    """

    start: time
    end: time
    tz: tzinfo | None = None  # None: the device's local zone

    def is_quiet(self, now: datetime) -> bool:
        local = now.astimezone(self.tz).time().replace(tzinfo=None)
        return rules.is_quiet(self.start, self.end, local)


NO_QUIET_HOURS = QuietHours(time(0), time(0))


@dataclass(frozen=True)
class VetoConfirmation:
    """What the step-up prompt returns once the person proved who they are."""

    category: VetoCategory
    reason: str


# Shows the step-up prompt (password or biometric, plus category and reason) and returns
# the confirmation, or None when the person cancelled or failed the check.
StepUp = Callable[[Alert], Awaitable[VetoConfirmation | None]]

# Runs before an approval from a notification is queued: shows the request's danger flags
# and asks for confirmation when there are any, then holds it for the undo window. Raises
# ``SyncError`` (saying why) when the approval must not be queued.
BeforeApprove = Callable[[Alert], Awaitable[None]]


async def approve_at_once(alert: Alert) -> None:
    """The ``BeforeApprove`` of a client with no screen to ask on (tests, headless)."""
    return None


class AlertHooks(Protocol):
    """What acting on an alert needs of a human, registered by the app with
    ``GovernorClient.listen_for_alerts``; the client runs everything else (the event
    stream, quiet hours, the notifiers, queueing the decision)."""

    async def confirm_veto(self, alert: Alert) -> VetoConfirmation | None:
        """The step-up before a veto: category, reason and (when step-up is on) the
        password, checked; None when the person cancelled. Raises ``SyncError`` (saying
        why) when the veto must not be queued (no window open to ask in, the password
        refused too often, taken back in the undo window)."""
        ...

    async def before_approve(self, alert: Alert) -> None:
        """Before an approval is queued: the request's danger flags (confirmed when there
        are any), then the undo window. Raises ``SyncError`` (saying why) when it must not
        be queued."""
        ...

    def open(self, alert: Alert) -> None:
        """Show what the alert is about (the "Open" action)."""
        ...


@dataclass(frozen=True)
class NotificationsOff(QuietHours):
    """The "Show notifications" switch is off: nothing interrupts, not even high urgency."""

    def is_quiet(self, now: datetime) -> bool:
        return True


NOTIFICATIONS_OFF = NotificationsOff(time(0), time(0))


@dataclass(frozen=True)
class AlertPreferences:
    """The person's notification settings as the client applies them."""

    notifications: bool = True  # False: nothing interrupts; what arrives is only listed
    quiet_hours: QuietHours = NO_QUIET_HOURS
    urgent_override: bool = True  # high urgency breaks through quiet hours

    def dispatch(self) -> tuple[QuietHours, bool]:
        """The dispatcher's quiet hours and high-urgency override."""
        if not self.notifications:
            return NOTIFICATIONS_OFF, False
        return self.quiet_hours, self.urgent_override


@dataclass(frozen=True)
class PushState:
    """Push as the settings screen tells it: whether alerts are listened for, the event
    stream, and each channel with whether it is active and why (not)."""

    running: bool
    connected: bool
    stream: str  # the event stream in words ("Connected: ...", "Not listening.")
    channels: tuple[NotifierInfo, ...]


@dataclass(frozen=True)
class ActionResult:
    action: str
    done: bool
    entry: OutboxEntry | None = None
    message: str = ""


# The decision each action of an alert queues (Open queues nothing: anyone may open).
ACTION_DECISIONS: dict[ActionId, DecisionAction] = {ActionId.APPROVE: DecisionAction.APPROVE,
                                                    ActionId.VETO: DecisionAction.VETO}


def may_act(account: Account | None, action: ActionId) -> bool:
    """Whether ``account`` may press ``action`` (Open and Send now need no scope)."""
    decision = ACTION_DECISIONS.get(action)
    return decision is None or rules.may(account, decision)


def permitted(alert: Alert, account: Account | None) -> Alert:
    """The alert offering only what ``account`` may do (``sync.rules.may``): a read-only
    auditor is shown Open, never Approve or Veto, on a banner or an OS notification."""
    actions = tuple(a for a in alert.actions if may_act(account, a.id))
    if actions == alert.actions:
        return alert
    if not any(a.id == ActionId.OPEN for a in actions):  # Open always stays
        actions += (OPEN,)
    return replace(alert, actions=actions)


def default_veto_category(alert: Alert) -> VetoCategory:
    if alert.event_type == AGENT_VIOLATED:
        return VetoCategory.CONSTITUTIONAL
    if alert.event_type == BUDGET_THRESHOLD:
        return VetoCategory.BUDGET
    return VetoCategory.OTHER


__all__ = [
    "ACTION_DECISIONS",
    "APPROVE",
    "NOTIFICATIONS_OFF",
    "NO_QUIET_HOURS",
    "OPEN",
    "OPEN_REQUEST",
    "SEND_NOW",
    "VETO",
    "ActionId",
    "ActionResult",
    "Alert",
    "AlertAction",
    "AlertHooks",
    "AlertPreferences",
    "BeforeApprove",
    "NotificationsOff",
    "NotifierInfo",
    "PushState",
    "QuietHours",
    "StepUp",
    "Urgency",
    "VetoConfirmation",
    "alert_for",
    "approve_at_once",
    "default_veto_category",
    "may_act",
    "outcome_alert",
    "permitted",
    "refusal_alert",
    "reminder_alert",
    "urgency_of",
]
