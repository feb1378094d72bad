"""Telling the governor: alerts, quiet hours, and acting from a notification.

When to use what:

- ``alert_for(event)`` turns a verified ``PushEvent`` into an ``Alert``: a title, a body,
  an ``Urgency`` and the actions that make sense (Approve / Veto on a pending request,
  Veto on an auto-approval or a closing window, Open on the rest).
- ``Notifier`` is the one delivery interface. ``InAppNotifier`` is an observable list of
  banners the UI renders; ``DesktopNotifier`` posts OS notifications with buttons through
  desktop-notifier and turns itself into a no-op (with the reason) where no notification
  server answers; ``CompositeNotifier`` fans out to several. On built phone apps the UI
  adds a notifier over the flet-notifications extension (see ``docs/push.md``).
- ``NotificationDispatcher`` decides *when*: during ``QuietHours`` it holds everything but
  high urgency (budget 95 % and violations), and ``release_due`` hands the held alerts
  over when the quiet period ends.
- ``NotificationActions`` carries out a pressed action: Approve and Veto are queued in the
  same outbox as anywhere else (so they work offline), and a veto first passes the
  step-up check.

Nothing here does I/O of its own except ``DesktopNotifier``, whose backend is injectable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Protocol, cast

from sync.errors import SyncError
from sync.models import OutboxEntry, VetoCategory
from sync.observable import Listeners
from sync.push import (
    AGENT_VIOLATED,
    APPROVAL_DECIDED,
    APPROVAL_PENDING,
    BUDGET_THRESHOLD,
    SEED_AUTO_APPROVED,
    VETO_WINDOW_CLOSING,
    PushEvent,
)

log = logging.getLogger("sync.notify")

# Types the stub emits beyond the contract's list (informational only).
APPROVAL_DEPLOYED = "governance.approval.deployed"
SEED_CHANGED = "governance.seed.changed"


class Urgency(StrEnum):
    HIGH = "high"  # goes through quiet hours
    NORMAL = "normal"
    LOW = "low"  # for information: the person need not act


class ActionId(StrEnum):
    APPROVE = "approve"
    VETO = "veto"
    OPEN = "open"


@dataclass(frozen=True)
class AlertAction:
    id: ActionId
    label: str
    destructive: bool = False


APPROVE = AlertAction(ActionId.APPROVE, "Approve")
VETO = AlertAction(ActionId.VETO, "Veto", destructive=True)
OPEN = AlertAction(ActionId.OPEN, "Open")


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
    """High: budget at 95 % or more, and every violation. Low: information only."""
    if event.type == AGENT_VIOLATED:
        return Urgency.HIGH
    if event.type == BUDGET_THRESHOLD:
        return Urgency.HIGH if _threshold(event) >= 95 else Urgency.NORMAL
    if event.type in (APPROVAL_DECIDED, SEED_AUTO_APPROVED, APPROVAL_DEPLOYED, SEED_CHANGED):
        return Urgency.LOW
    return Urgency.NORMAL


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


# --- delivery ----------------------------------------------------------------------------

@dataclass(frozen=True)
class NotifierInfo:
    """For the settings screen: which channel, whether it works, and why (not)."""

    name: str
    active: bool
    reason: str


class Notifier(Protocol):
    def info(self) -> list[NotifierInfo]: ...

    async def show(self, alert: Alert) -> None: ...

    async def withdraw(self, alert_id: str) -> None:
        """Take the alert away (acted on elsewhere, or read)."""
        ...


ActionHandler = Callable[[Alert, str], Awaitable[Any]]


class InAppNotifier:
    """Banners for the UI: an observable, newest-first list with actions.

    The UI subscribes, renders ``banners()`` and calls ``act`` or ``dismiss``; ``act``
    runs the handler set with ``set_action_handler`` (``NotificationActions.handle``).
    """

    name = "in-app banner"

    def __init__(self, limit: int = 20) -> None:
        self._banners: list[Alert] = []
        self._limit = limit
        self._listeners: Listeners[[]] = Listeners(log, "notify: a banner listener")
        self._handler: ActionHandler | None = None

    def info(self) -> list[NotifierInfo]:
        return [NotifierInfo(self.name, True, "shown inside the app while it is open")]

    def set_action_handler(self, handler: ActionHandler) -> None:
        self._handler = handler

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.subscribe(listener)

    def banners(self) -> list[Alert]:
        return list(self._banners)

    async def show(self, alert: Alert) -> None:
        self._banners = [alert] + [b for b in self._banners if b.id != alert.id]
        del self._banners[self._limit:]
        self._changed()

    async def withdraw(self, alert_id: str) -> None:
        self.dismiss(alert_id)

    def dismiss(self, alert_id: str) -> None:
        before = len(self._banners)
        self._banners = [b for b in self._banners if b.id != alert_id]
        if len(self._banners) != before:
            self._changed()

    async def act(self, alert_id: str, action_id: str) -> Any:
        """Run an action of a banner; the banner goes when the action went through."""
        alert = next((b for b in self._banners if b.id == alert_id), None)
        if alert is None:
            raise KeyError(f"No banner {alert_id!r} is shown; it was dismissed or acted on.")
        if alert.action(action_id) is None:
            raise ValueError(f"Banner {alert_id!r} has no action {action_id!r}; "
                             f"use one of {[a.id.value for a in alert.actions]}.")
        if self._handler is None:
            raise RuntimeError("No action handler is set on the in-app notifier; call "
                               "set_action_handler(NotificationActions(...).handle).")
        result = await self._handler(alert, action_id)
        if getattr(result, "done", True):
            self.dismiss(alert_id)
        return result

    def _changed(self) -> None:
        self._listeners.emit()


class DesktopBackend(Protocol):
    """The part of ``desktop_notifier.DesktopNotifier`` this module uses."""

    async def get_capabilities(self) -> Any: ...

    async def send(self, title: str, message: str, **kwargs: Any) -> str: ...

    async def clear(self, identifier: str) -> None: ...


class DesktopNotifier:
    """OS notifications with action buttons, or a no-op saying why not.

    ``probe()`` must run once (``start``) before ``show``: it opens the platform's
    notification service (D-Bus on Linux, Notification Center on macOS, WinRT on
    Windows) and records whether it answered. Pressing a button calls the action handler,
    exactly as a banner button does.
    """

    name = "desktop notification"

    def __init__(self, app_name: str = "WAOOAW Governor",
                 backend_factory: Callable[[str], DesktopBackend] | None = None) -> None:
        self._app_name = app_name
        self._factory = backend_factory
        self._backend: DesktopBackend | None = None
        self._buttons = False
        self.active = False
        self.reason = "not probed yet"
        self._handler: ActionHandler | None = None
        self._shown: dict[str, str] = {}  # alert id -> OS notification id
        self._tasks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def info(self) -> list[NotifierInfo]:
        return [NotifierInfo(self.name, self.active, self.reason)]

    def set_action_handler(self, handler: ActionHandler) -> None:
        self._handler = handler

    async def probe(self) -> bool:
        self._loop = asyncio.get_running_loop()
        try:
            factory = self._factory or _default_desktop_backend
            backend = factory(self._app_name)
            capabilities = await backend.get_capabilities()
        except Exception as exc:
            self.active = False
            self.reason = (f"no OS notification service answered ({exc.__class__.__name__}: "
                           f"{str(exc)[:120]}); in-app banners only")
            return False
        names = {getattr(c, "name", str(c)).upper() for c in capabilities or ()}
        if not names:
            self.active = False
            self.reason = "the OS notification service offers nothing here; in-app banners only"
            return False
        self._backend = backend
        self._buttons = "BUTTONS" in names
        self.active = True
        self.reason = ("OS notifications with Approve / Veto buttons" if self._buttons else
                       "OS notifications without buttons (this notification server has "
                       "none): click opens the app")
        return True

    async def show(self, alert: Alert) -> None:
        if not self.active or self._backend is None:
            return
        kwargs: dict[str, Any] = {"urgency": _desktop_urgency(alert.urgency),
                                  "on_clicked": self._callback(alert, ActionId.OPEN)}
        if self._buttons:
            kwargs["buttons"] = _desktop_buttons(
                [(a.label, self._callback(alert, a.id)) for a in alert.actions
                 if a.id != ActionId.OPEN])
        try:
            self._shown[alert.id] = await self._backend.send(alert.title, alert.body, **kwargs)
        except Exception as exc:
            # A notification server that vanished must not stop the banners.
            self.active = False
            self.reason = f"the OS notification service failed ({exc.__class__.__name__})"
            log.warning("notify: desktop notification failed: %s", exc)

    async def withdraw(self, alert_id: str) -> None:
        identifier = self._shown.pop(alert_id, None)
        if identifier is not None and self._backend is not None:
            with contextlib.suppress(Exception):
                await self._backend.clear(identifier)

    def _callback(self, alert: Alert, action_id: str) -> Callable[[], None]:
        def pressed() -> None:
            if self._handler is None:
                log.warning("notify: %s pressed on %r but no handler is set", action_id,
                            alert.id)
                return
            handler = self._handler
            loop = self._loop

            def start() -> None:
                task = asyncio.ensure_future(handler(alert, action_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

            # The backend may call from its own thread; the handler belongs to our loop.
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(start)
            else:
                start()
        return pressed


def _default_desktop_backend(app_name: str) -> DesktopBackend:
    from desktop_notifier import DesktopNotifier as _Backend

    return cast(DesktopBackend, _Backend(app_name=app_name))


def _desktop_urgency(urgency: Urgency) -> Any:
    try:
        from desktop_notifier import Urgency as DnUrgency
    except ImportError:  # pragma: no cover - a pinned dependency
        return None
    return {Urgency.HIGH: DnUrgency.Critical, Urgency.NORMAL: DnUrgency.Normal,
            Urgency.LOW: DnUrgency.Low}[urgency]


def _desktop_buttons(specs: Sequence[tuple[str, Callable[[], None]]]) -> list[Any]:
    from desktop_notifier import Button

    return [Button(title=label, on_pressed=callback) for label, callback in specs]


class CompositeNotifier:
    """Delivers to every notifier it holds; one failing never stops the others."""

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = list(notifiers)

    def info(self) -> list[NotifierInfo]:
        return [i for n in self.notifiers for i in n.info()]

    async def show(self, alert: Alert) -> None:
        for notifier in self.notifiers:
            try:
                await notifier.show(alert)
            except Exception:
                log.exception("notify: %r failed to show %r", notifier, alert.id)

    async def withdraw(self, alert_id: str) -> None:
        for notifier in self.notifiers:
            try:
                await notifier.withdraw(alert_id)
            except Exception:
                log.exception("notify: %r failed to withdraw %r", notifier, alert_id)


# --- when -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class QuietHours:
    """A daily quiet period in the person's time zone; ``start == end`` means none.

    It may run over midnight (22:00 to 07:00).
    """

    start: time
    end: time
    tz: tzinfo | None = None  # None: the device's local zone

    def is_quiet(self, now: datetime) -> bool:
        if self.start == self.end:
            return False
        local = now.astimezone(self.tz).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end


NO_QUIET_HOURS = QuietHours(time(0), time(0))


class Delivery(StrEnum):
    SHOWN = "shown"
    HELD = "held"


class NotificationDispatcher:
    """Routes alerts to the notifier now, or holds them through quiet hours.

    ``now`` is the device clock: quiet hours are the person's, not the server's.
    """

    def __init__(self, notifier: Notifier, *, quiet_hours: QuietHours = NO_QUIET_HOURS,
                 now: Callable[[], datetime], urgent_override: bool = True) -> None:
        self.notifier = notifier
        self.quiet_hours = quiet_hours
        # The person may choose to hold even high urgency through quiet hours.
        self.urgent_override = urgent_override
        self._now = now
        self._held: list[Alert] = []
        self._by_approval: dict[str, set[str]] = {}

    def held(self) -> list[Alert]:
        return list(self._held)

    def now(self) -> datetime:
        return self._now()

    async def deliver(self, alert: Alert) -> Delivery:
        if alert.approval_id is not None:
            self._by_approval.setdefault(alert.approval_id, set()).add(alert.id)
        breaks_through = alert.urgency is Urgency.HIGH and self.urgent_override
        if not breaks_through and self.quiet_hours.is_quiet(self._now()):
            if all(a.id != alert.id for a in self._held):
                self._held.append(alert)
            return Delivery.HELD
        await self.notifier.show(alert)
        return Delivery.SHOWN

    async def forget_approval(self, approval_id: str) -> None:
        """Every alert about this request is out of date (it was decided)."""
        for alert_id in sorted(self._by_approval.pop(approval_id, set())):
            await self.forget(alert_id)

    async def deliver_event(self, event: PushEvent) -> Delivery:
        return await self.deliver(alert_for(event))

    async def release_due(self) -> list[Alert]:
        """Show what was held, once quiet hours are over; call it on a timer or on resume."""
        if not self._held or self.quiet_hours.is_quiet(self._now()):
            return []
        released, self._held = self._held, []
        for alert in released:
            await self.notifier.show(alert)
        return released

    async def forget(self, alert_id: str) -> None:
        """The event was dealt with elsewhere: neither hold nor show it any more."""
        self._held = [a for a in self._held if a.id != alert_id]
        await self.notifier.withdraw(alert_id)


# --- wiring ---------------------------------------------------------------------------------

class PushNotifications:
    """Connects the push listener's accepted events to the dispatcher.

    A decision on a request withdraws the alerts still asking about it (shown or held);
    the "decided elsewhere" alert is skipped when the decision was this device's own
    (its ``causation_id`` is one of this device's outbox entry ids).
    """

    def __init__(self, dispatcher: NotificationDispatcher,
                 is_own_decision: Callable[[str], bool] = lambda _key: False, *,
                 max_age: timedelta | None = timedelta(hours=24),
                 now: Callable[[], datetime] | None = None,
                 mark_read: Callable[[str], None] | None = None) -> None:
        self.dispatcher = dispatcher
        self._is_own = is_own_decision
        # This device's own decision comes back as an event too: it is stored (history)
        # but already known to the governor, so it must not raise the unread badge.
        self._mark_read = mark_read
        # Older events are stored (the notification list has them) but alert nobody: the
        # history a new device downloads, or a long time offline, must not ring 200 times.
        self.max_age = max_age
        self._now = now or dispatcher.now
        self._tasks: set[asyncio.Task[Any]] = set()

    def __call__(self, event: PushEvent) -> None:
        """An ``on_event`` callback: call it from the listener's event loop."""
        task = asyncio.get_running_loop().create_task(self.handle(event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every event handed over so far is delivered (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def handle(self, event: PushEvent) -> Delivery | None:
        if event.type in (APPROVAL_DECIDED, APPROVAL_DEPLOYED) and event.approval_id:
            await self.dispatcher.forget_approval(event.approval_id)
            causation = event.metadata.get("causation_id")
            if isinstance(causation, str) and self._is_own(causation):
                if self._mark_read is not None:
                    try:
                        self._mark_read(event.id)
                    except Exception:  # the badge is cosmetic; the event is stored
                        log.exception("notify: marking own decision %s read failed", event.id)
                return None
        if self.max_age is not None and self._now() - event.timestamp > self.max_age:
            return None
        return await self.dispatcher.deliver_event(event)


# --- acting ---------------------------------------------------------------------------------

class DecisionClient(Protocol):
    """The part of ``GovernorClient`` that acting from a notification needs."""

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry: ...

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: Any = None) -> OutboxEntry: ...


@dataclass(frozen=True)
class VetoConfirmation:
    """What the step-up prompt returns once the person proved who they are."""

    category: VetoCategory
    reason: str


# Shows the step-up prompt (password or biometric, plus category and reason) and returns
# the confirmation, or None when the person cancelled or failed the check.
StepUp = Callable[[Alert], Awaitable[VetoConfirmation | None]]


@dataclass(frozen=True)
class ActionResult:
    action: str
    done: bool
    entry: OutboxEntry | None = None
    message: str = ""


def default_veto_category(alert: Alert) -> VetoCategory:
    if alert.event_type == AGENT_VIOLATED:
        return VetoCategory.CONSTITUTIONAL
    if alert.event_type == BUDGET_THRESHOLD:
        return VetoCategory.BUDGET
    return VetoCategory.OTHER


class NotificationActions:
    """Carries out Approve / Veto / Open pressed on a banner or an OS notification.

    Approve and Veto are queued in the outbox through the client (offline-safe, sent
    when the connection returns). Veto always passes ``step_up`` first.
    """

    def __init__(self, client: DecisionClient, step_up: StepUp,
                 open_approval: Callable[[Alert], Any] | None = None) -> None:
        self.client = client
        self.step_up = step_up
        self.open_approval = open_approval

    async def handle(self, alert: Alert, action_id: str) -> ActionResult:
        if action_id == ActionId.APPROVE:
            approval_id = self._approval(alert, action_id)
            try:
                entry = self.client.approve(approval_id)
            except SyncError as exc:  # already decided here, not on this device, ...
                return ActionResult(action_id, False, None, f"Approval not queued: {exc}")
            return ActionResult(action_id, True, entry, f"Approval of {approval_id} queued.")
        if action_id == ActionId.VETO:
            approval_id = self._approval(alert, action_id)
            try:
                confirmation = await self.step_up(alert)
            except SyncError as exc:
                # The identity check could not be made (offline with no verifier kept,
                # signed out): say why, and keep the banner.
                return ActionResult(action_id, False, None, f"Veto not sent: {exc}")
            if confirmation is None:
                return ActionResult(action_id, False, None,
                                    "Veto not sent: the identity check was cancelled.")
            try:
                entry = self.client.veto(approval_id, confirmation.category,
                                         confirmation.reason)
            except SyncError as exc:
                return ActionResult(action_id, False, None, f"Veto not queued: {exc}")
            return ActionResult(action_id, True, entry, f"Veto of {approval_id} queued.")
        if action_id == ActionId.OPEN:
            if self.open_approval is not None:
                result = self.open_approval(alert)
                if asyncio.iscoroutine(result):
                    await result
            return ActionResult(action_id, True)
        raise ValueError(f"Unknown notification action {action_id!r}; use approve, veto "
                         "or open.")

    @staticmethod
    def _approval(alert: Alert, action_id: str) -> str:
        if alert.approval_id is None:
            raise ValueError(f"Notification {alert.id!r} names no approval request, so "
                             f"{action_id!r} cannot apply; open it instead.")
        return alert.approval_id


def password_step_up(ask: Callable[[Alert], Awaitable[tuple[str, VetoCategory, str] | None]],
                     confirm_identity: Callable[[str], Awaitable[bool]]) -> StepUp:
    """A ``StepUp`` from a UI prompt (password, category, reason) and the client's check.

    ``confirm_identity`` is ``GovernorClient.confirm_identity``.
    """

    async def step_up(alert: Alert) -> VetoConfirmation | None:
        answer = await ask(alert)
        if answer is None:
            return None
        password, category, reason = answer
        if not await confirm_identity(password):
            return None
        return VetoConfirmation(category=category, reason=reason)

    return step_up


# --- one object for the app -------------------------------------------------------------------

class OutboxClient(DecisionClient, Protocol):
    def outbox(self, states: Any = None) -> list[OutboxEntry]: ...


class NotificationCenter:
    """Push for one signed-in session, assembled: the listener, the dispatcher with quiet
    hours, the notifiers (in-app banners, desktop, any extra such as the phone's) and the
    actions. The app makes one after sign-in, ``await start()``, renders
    ``center.inapp`` and shows ``center.channels()`` on the settings screen.

    ``sink`` is the sync engine (``EventSink``); when it has ``event_stream_opened`` it is
    told of every (re)connection, which makes it flush the outbox at once.
    """

    def __init__(self, listener: Any, client: OutboxClient, step_up: StepUp, *,
                 open_approval: Callable[[Alert], Any] | None = None,
                 quiet_hours: QuietHours = NO_QUIET_HOURS,
                 desktop: DesktopNotifier | None = None,
                 extra_notifiers: Sequence[Notifier] = (),
                 now: Callable[[], datetime] | None = None,
                 release_every: float = 30.0,
                 close_on_stop: Sequence[Callable[[], Awaitable[Any]]] = ()) -> None:
        from datetime import UTC

        self.listener = listener
        self.inapp = InAppNotifier()
        self.desktop = desktop
        notifiers: list[Notifier] = [self.inapp]
        if desktop is not None:
            notifiers.append(desktop)
        notifiers.extend(extra_notifiers)
        self.notifier = CompositeNotifier(notifiers)
        self.dispatcher = NotificationDispatcher(
            self.notifier, quiet_hours=quiet_hours, now=now or (lambda: datetime.now(UTC)))
        self.actions = NotificationActions(client, step_up, open_approval)
        for notifier in notifiers:
            setter = getattr(notifier, "set_action_handler", None)
            if setter is not None:
                setter(self.actions.handle)
        self.wiring = PushNotifications(
            self.dispatcher,
            is_own_decision=lambda key: any(e.id == key for e in client.outbox()),
            mark_read=getattr(client, "mark_read", None))
        # Resources the center was given to own (the stream's HTTP client), closed at stop.
        self._owned: list[Callable[[], Awaitable[Any]]] = list(close_on_stop)
        listener.on_event(self.wiring)
        self._connects = 0
        opened = getattr(listener.sink, "event_stream_opened", None)

        def status_changed(status: Any) -> None:
            if status.connected and status.connects != self._connects:
                self._connects = status.connects
                if opened is not None:
                    opened()

        listener.on_status(status_changed)
        self._release_every = release_every
        self._tasks: list[asyncio.Task[Any]] = []

    def channels(self) -> list[NotifierInfo]:
        """For the settings screen: each channel, whether it is active, and why."""
        return self.notifier.info()

    def set_quiet_hours(self, quiet_hours: QuietHours, urgent_override: bool = True) -> None:
        """Apply the person's preference (from the settings screen) at once."""
        self.dispatcher.quiet_hours = quiet_hours
        self.dispatcher.urgent_override = urgent_override

    async def start(self) -> None:
        if self.desktop is not None:
            await self.desktop.probe()
        self._tasks = [asyncio.create_task(self.listener.run()),
                       asyncio.create_task(self._release_loop())]

    async def _release_loop(self) -> None:
        while True:
            await asyncio.sleep(self._release_every)
            try:
                await self.dispatcher.release_due()
            except Exception:
                log.exception("notify: releasing held alerts failed")

    async def stop(self) -> None:
        self.listener.stop()
        for task in self._tasks:
            if task is not self._tasks[0]:
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.wiring.drain()
        owned, self._owned = self._owned, []
        for close in owned:
            with contextlib.suppress(Exception):
                await close()


def center_for_engine(engine: Any, step_up: StepUp, *,
                      open_approval: Callable[[Alert], Any] | None = None,
                      quiet_hours: QuietHours = NO_QUIET_HOURS,
                      desktop: bool = True,
                      extra_notifiers: Sequence[Notifier] = (),
                      transport: Any = None) -> NotificationCenter:
    """A ``NotificationCenter`` for a ``sync.engine.SyncEngine``: the engine is the event
    sink and the decision client, its authenticator gives (and refreshes) the tokens, and
    its settings name the server. ``transport`` is for tests (an ``httpx`` transport)."""
    import httpx

    from sync.push import EngineEventSink, PushListener

    http = httpx.AsyncClient(base_url=engine.settings.server_url, transport=transport)
    listener = PushListener(http, engine.auth.access_token, EngineEventSink(engine),
                            refresh=engine.auth.refresh_after_401)
    return NotificationCenter(listener, engine, step_up, open_approval=open_approval,
                              quiet_hours=quiet_hours,
                              desktop=DesktopNotifier() if desktop else None,
                              extra_notifiers=extra_notifiers, close_on_stop=[http.aclose])
