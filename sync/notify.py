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
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, cast

from sync.alerts import (
    NO_QUIET_HOURS,
    ActionId,
    ActionResult,
    Alert,
    BeforeApprove,
    NotifierInfo,
    QuietHours,
    StepUp,
    Urgency,
    VetoConfirmation,
    alert_for,
    approve_at_once,
    outcome_alert,
    permitted,
    refusal_alert,
    reminder_alert,
)
from sync.errors import SyncError
from sync.models import (
    APPROVAL_DECIDED,
    APPROVAL_DEPLOYED,
    DECISION_REFUSED,
    VETO_UNSENT,
    Account,
    Notification,
    OutboxEntry,
    OutboxState,
    VetoCategory,
)
from sync.observable import Listeners, spawn_on
from sync.push import PushEvent

if TYPE_CHECKING:
    from sync.engine import SyncEngine

log = logging.getLogger("sync.notify")

# An informational banner (low urgency, or the outcome of an action) goes by itself after
# this long; one that asks for a decision stays until acted on or dismissed.
INFO_SECONDS = 8.0


# --- delivery ----------------------------------------------------------------------------

ActionHandler = Callable[[Alert, str], Awaitable[ActionResult]]


class Notifier(Protocol):
    def info(self) -> list[NotifierInfo]: ...

    async def show(self, alert: Alert) -> None: ...

    async def withdraw(self, alert_id: str) -> None:
        """Take the alert away (acted on elsewhere, or read)."""
        ...

    def set_action_handler(self, handler: ActionHandler) -> None:
        """What a pressed button calls (a channel without buttons ignores it)."""
        ...


Later = Callable[[float, Callable[[], None]], Any]


def informational(alert: Alert) -> bool:
    """Low urgency and nothing to decide on it (an auto-approval's Veto is a decision):
    such a banner goes by itself."""
    return alert.urgency is Urgency.LOW and all(a.id == ActionId.OPEN for a in alert.actions)


def _call_later(delay: float, callback: Callable[[], None]) -> Any:
    return asyncio.get_running_loop().call_later(delay, callback)


class InAppNotifier:
    """Banners for the UI: an observable, newest-first list with actions.

    The UI subscribes, renders ``banners()`` and calls ``act`` or ``dismiss``; ``act``
    runs the handler set with ``set_action_handler`` (``NotificationActions.handle``).

    Urgent banners come first (newest first), then the others (newest first). Nothing
    moves under a pending tap: while a banner is being acted on, new banners go
    below it instead of on top, and a banner acted on is replaced in its place by a short
    note of what became of it. Informational banners (``informational``, and those notes)
    go by themselves after ``info_seconds``, but never while a tap is pending above them.
    """

    name = "in-app banner"

    def __init__(self, limit: int = 20, *, info_seconds: float = INFO_SECONDS,
                 later: Later = _call_later, now: Callable[[], datetime] | None = None
                 ) -> None:
        from datetime import UTC

        self._banners: list[Alert] = []
        self._limit = limit
        self._listeners: Listeners[[]] = Listeners(log, "notify: a banner listener")
        self._handler: ActionHandler | None = None
        self._busy: set[str] = set()  # banners whose action is underway
        self._info_seconds = info_seconds
        self._later = later
        self._now = now or (lambda: datetime.now(UTC))

    def info(self) -> list[NotifierInfo]:
        return [NotifierInfo(self.name, True, "shown inside the app while it is open")]

    def set_action_handler(self, handler: ActionHandler) -> None:
        self._handler = handler

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        return self._listeners.subscribe(listener)

    def banners(self) -> list[Alert]:
        return list(self._banners)

    def busy(self, alert_id: str) -> bool:
        """Whether this banner's action is underway (a dialog, an undo window)."""
        return alert_id in self._busy

    async def show(self, alert: Alert) -> None:
        self._place(alert)

    def _place(self, alert: Alert) -> None:
        at = next((i for i, b in enumerate(self._banners) if b.id == alert.id), None)
        if at is not None:
            self._banners[at] = alert  # updated where it is
        elif self._busy:
            self._banners.append(alert)  # below: the tap underway stays where it is
        elif alert.urgency is Urgency.HIGH:
            self._banners.insert(0, alert)
        else:  # newest first, but under the urgent ones: those must stay in sight
            self._banners.insert(next((i for i, b in enumerate(self._banners)
                                       if b.urgency is not Urgency.HIGH),
                                      len(self._banners)), alert)
        while len(self._banners) > self._limit:
            # The oldest banner no tap is pending on makes room.
            drop = next((i for i in range(len(self._banners) - 1, -1, -1)
                         if self._banners[i].id not in self._busy), None)
            if drop is None:
                break
            del self._banners[drop]
        if informational(alert):
            self._expire_later(alert.id)
        self._changed()

    def _expire_later(self, alert_id: str) -> None:
        def expire() -> None:
            if self._busy:  # removing it could move a banner under the finger
                self._expire_later(alert_id)
            else:
                self.dismiss(alert_id)
        self._later(self._info_seconds, expire)

    async def withdraw(self, alert_id: str) -> None:
        self.dismiss(alert_id)

    def dismiss(self, alert_id: str) -> None:
        before = len(self._banners)
        self._banners = [b for b in self._banners if b.id != alert_id]
        if len(self._banners) != before:
            self._changed()

    async def act(self, alert_id: str, action_id: str) -> ActionResult:
        """Run an action of a banner; when it went through, the banner is replaced in its
        place by what became of it (which goes by itself)."""
        alert = next((b for b in self._banners if b.id == alert_id), None)
        if alert is None:
            raise KeyError(f"No banner {alert_id!r} is shown; it was dismissed or acted on.")
        if alert.action(action_id) is None:
            raise ValueError(f"Banner {alert_id!r} has no action {action_id!r}; "
                             f"use one of {[a.id.value for a in alert.actions]}.")
        if self._handler is None:
            raise RuntimeError("No action handler is set on the in-app notifier; call "
                               "set_action_handler(NotificationActions(...).handle).")
        if alert_id in self._busy:
            raise ValueError(f"Banner {alert_id!r} is already being acted on; finish or "
                             "cancel that first.")
        self._busy.add(alert_id)
        try:
            result = await self._handler(alert, action_id)
        finally:
            self._busy.discard(alert_id)
        if result.done:
            self._settle(alert, result.message)
        return result

    def _settle(self, alert: Alert, message: str) -> None:
        at = next((i for i, b in enumerate(self._banners) if b.id == alert.id), None)
        if at is None:
            return
        if not message:
            self.dismiss(alert.id)
            return
        outcome = outcome_alert(alert, message, self._now())
        self._banners[at] = outcome
        self._expire_later(outcome.id)
        self._changed()

    def _changed(self) -> None:
        self._listeners.emit()


class DesktopBackend(Protocol):
    """The part of ``desktop_notifier.DesktopNotifier`` this module uses."""

    async def get_capabilities(self) -> Any: ...

    async def send(self, title: str, message: str, **kwargs: Any) -> str: ...

    async def clear(self, identifier: str) -> None: ...


# How long the OS notification service may take to answer one call. A D-Bus service that
# takes the call and never answers would otherwise hold the app's start (push starts
# before the first screen) and every alert after it, for ever.
OS_SERVICE_TIMEOUT_S = 3.0


class DesktopNotifier:
    """OS notifications with action buttons, or a no-op saying why not.

    ``probe()`` must run once (``start``) before ``show``: it opens the platform's
    notification service (D-Bus on Linux, Notification Center on macOS, WinRT on
    Windows) and records whether it answered. Pressing a button calls the action handler,
    exactly as a banner button does. A service silent for ``timeout`` seconds counts as
    failed: in-app banners only.
    """

    name = "desktop notification"

    def __init__(self, app_name: str = "WAOOAW Governor",
                 backend_factory: Callable[[str], DesktopBackend] | None = None,
                 timeout: float = OS_SERVICE_TIMEOUT_S) -> None:
        self._app_name = app_name
        self._factory = backend_factory
        self._timeout = timeout
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
            capabilities = await asyncio.wait_for(backend.get_capabilities(), self._timeout)
        except TimeoutError:
            self.active = False
            self.reason = (f"the OS notification service did not answer in "
                           f"{self._timeout:g} s; in-app banners only")
            return False
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
            self._shown[alert.id] = await asyncio.wait_for(
                self._backend.send(alert.title, alert.body, **kwargs), self._timeout)
        except Exception as exc:
            # A notification server that vanished must not stop the banners.
            self.active = False
            self.reason = f"the OS notification service failed ({exc.__class__.__name__})"
            log.warning("notify: desktop notification failed: %s", exc)

    async def withdraw(self, alert_id: str) -> None:
        identifier = self._shown.pop(alert_id, None)
        if identifier is not None and self._backend is not None:
            with contextlib.suppress(Exception):  # a timeout too: the OS may keep it
                await asyncio.wait_for(self._backend.clear(identifier), self._timeout)

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

    def set_action_handler(self, handler: ActionHandler) -> None:
        for notifier in self.notifiers:
            notifier.set_action_handler(handler)

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

class Delivery(StrEnum):
    SHOWN = "shown"
    HELD = "held"


class NotificationDispatcher:
    """Routes alerts to the notifier now, or holds them through quiet hours.

    ``now`` is the device clock: quiet hours are the person's, not the server's.
    """

    def __init__(self, notifier: Notifier, *, quiet_hours: QuietHours = NO_QUIET_HOURS,
                 now: Callable[[], datetime], urgent_override: bool = True,
                 account: Callable[[], Account | None] | None = None) -> None:
        self.notifier = notifier
        # Whose alerts these are: each offers only what that account may do (None: the
        # alerts are shown as made, for a caller that filtered them already).
        self._account = account
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
        if self._account is not None:
            alert = permitted(alert, self._account())
        # A refusal stays when the request is decided: that decision is what it is about.
        if alert.approval_id is not None and alert.event_type != DECISION_REFUSED:
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

    def outbox(self, states: Any = None) -> list[OutboxEntry]: ...

    async def sync_now(self) -> None: ...


class NotificationActions:
    """Carries out Approve / Veto / Open pressed on a banner or an OS notification.

    Approve and Veto are queued in the outbox through the client (offline-safe, sent
    when the connection returns). Veto always passes ``step_up`` first.
    """

    def __init__(self, client: DecisionClient, step_up: StepUp,
                 open_approval: Callable[[Alert], Any] | None = None,
                 before_approve: BeforeApprove = approve_at_once) -> None:
        self.client = client
        self.step_up = step_up
        self.open_approval = open_approval
        self.before_approve = before_approve

    async def handle(self, alert: Alert, action_id: str) -> ActionResult:
        if action_id == ActionId.APPROVE:
            approval_id = self._approval(alert, action_id)
            try:
                await self.before_approve(alert)
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
        if action_id == ActionId.SEND_NOW:
            return await self._send_now(alert)
        if action_id == ActionId.OPEN:
            if self.open_approval is not None:
                result = self.open_approval(alert)
                if asyncio.iscoroutine(result):
                    await result
            return ActionResult(action_id, True)
        raise ValueError(f"Unknown notification action {action_id!r}; use approve, veto "
                         "or open.")

    async def _send_now(self, alert: Alert) -> ActionResult:
        entry_id = alert.data.get("entry_id")
        try:
            await self.client.sync_now()
        except SyncError as exc:
            return ActionResult(ActionId.SEND_NOW, False, None,
                                f"Not sent: {exc} It stays in the outbox; try again.")
        waiting = next((e for e in self.client.outbox({OutboxState.QUEUED,
                                                        OutboxState.SENDING})
                        if e.id == entry_id), None)
        if waiting is not None:
            return ActionResult(ActionId.SEND_NOW, False, waiting,
                                f"Still not sent: the server does not answer. The veto of "
                                f"{alert.approval_id} waits in the outbox; connect and "
                                "press Send now again.")
        return ActionResult(ActionId.SEND_NOW, True, None,
                            f"The veto of {alert.approval_id} left this device.")

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
    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]: ...

    def account(self) -> Account | None: ...

    def notifications(self) -> list[Notification]: ...

    def mark_read(self, notification_id: str) -> None: ...


class DeviceAlerts:
    """Alerts the device raises itself, from what the client keeps: the engine's reminders
    before a queued veto's deadline, and the decisions the server refused. Each is raised
    once (per center), through the same dispatcher as pushed events, as high urgency, and
    withdrawn once it no longer holds.

    Only the signed-in account's own entries speak: another account's refusal is theirs.
    """

    def __init__(self, client: OutboxClient, dispatcher: NotificationDispatcher) -> None:
        self.client = client
        self.dispatcher = dispatcher
        self._raised: set[str] = set()

    async def check(self) -> list[Alert]:
        """Raise what is new; returns the alerts raised."""
        account = self.client.account()
        if account is None:
            return []
        queued = {e.id for e in self.client.outbox({OutboxState.QUEUED})}
        alerts = [reminder_alert(n) for n in self.client.notifications()
                  if n.type == VETO_UNSENT and not n.read
                  and n.data.get("entry_id") in queued]
        now = self.dispatcher.now()
        alerts += [refusal_alert(e, now) for e in self.client.outbox({OutboxState.REJECTED})
                   if e.kind == "decision" and e.sub in (None, account.sub)]
        fresh = [a for a in alerts if a.id not in self._raised]
        # What no longer holds goes: a veto sent since its reminder, a refusal discarded
        # or decided again.
        current = {a.id for a in alerts}
        for gone in sorted(self._raised - current):
            self._raised.discard(gone)
            await self.dispatcher.forget(gone)
        for alert in fresh:
            self._raised.add(alert.id)
            await self.dispatcher.deliver(alert)
        return fresh

    def account(self) -> Account | None: ...

    def mark_read(self, notification_id: str) -> None: ...


class StreamStatus(Protocol):
    """What the settings screen says of the event stream (``sync.push.PushStatus``)."""

    connected: bool
    connects: int
    last_error: str | None


class EventListener(Protocol):
    """The part of ``sync.push.PushListener`` the center drives."""

    @property
    def status(self) -> StreamStatus: ...

    def on_event(self, callback: Callable[[PushEvent], None]) -> Any: ...

    def on_status(self, callback: Callable[[Any], None]) -> Any: ...

    async def run(self) -> None: ...

    def stop(self) -> None: ...


class NotificationCenter:
    """Push for one signed-in session, assembled: the listener, the dispatcher with quiet
    hours, the notifiers (in-app banners, desktop, any extra such as the phone's) and the
    actions. The client's ``sync.alert_feed.AlertFeed`` makes one while an account is
    signed in, ``await start()``, and answers the app's ``alerts()`` from ``center.inapp``
    and its ``push_state()`` from ``center.channels()`` and the stream's status.

    ``stream_opened`` is called on every (re)connection of the event stream (the engine
    then flushes the outbox at once), ``stream_closed`` when it drops (the engine asks
    whether the server is gone).
    """

    def __init__(self, listener: EventListener, client: OutboxClient, step_up: StepUp, *,
                 stream_opened: Callable[[], None] | None = None,
                 stream_closed: Callable[[], None] | None = None,
                 open_approval: Callable[[Alert], Any] | None = None,
                 quiet_hours: QuietHours = NO_QUIET_HOURS,
                 desktop: DesktopNotifier | None = None,
                 extra_notifiers: Sequence[Notifier] = (),
                 now: Callable[[], datetime] | None = None,
                 release_every: float = 30.0,
                 close_on_stop: Sequence[Callable[[], Awaitable[Any]]] = (),
                 before_approve: BeforeApprove = approve_at_once,
                 later: Later = _call_later,
                 account: Callable[[], Account | None] | None = None) -> None:
        from datetime import UTC

        self.listener = listener
        self.client = client
        clock = now or (lambda: datetime.now(UTC))
        self.inapp = InAppNotifier(later=later, now=clock)
        self.desktop = desktop
        notifiers: list[Notifier] = [self.inapp]
        if desktop is not None:
            notifiers.append(desktop)
        notifiers.extend(extra_notifiers)
        self.notifier = CompositeNotifier(notifiers)
        self.dispatcher = NotificationDispatcher(
            self.notifier, quiet_hours=quiet_hours, now=clock, account=account or client.account)
        self.actions = NotificationActions(client, step_up, open_approval, before_approve)
        self.device = DeviceAlerts(client, self.dispatcher)
        self._unsubscribe: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._checks: set[asyncio.Task[Any]] = set()
        self.notifier.set_action_handler(self.actions.handle)
        self.wiring = PushNotifications(
            self.dispatcher,
            is_own_decision=lambda key: any(e.id == key for e in client.outbox()),
            mark_read=client.mark_read)
        # Resources the center was given to own (the stream's HTTP client), closed at stop.
        self._owned: list[Callable[[], Awaitable[Any]]] = list(close_on_stop)
        listener.on_event(self.wiring)
        self._connects = 0

        def status_changed(status: StreamStatus) -> None:
            if status.connected and status.connects != self._connects:
                self._connects = status.connects
                if stream_opened is not None:
                    stream_opened()
            elif not status.connected and stream_closed is not None:
                stream_closed()  # is the server gone, or only the stream? The engine probes.

        listener.on_status(status_changed)
        self._release_every = release_every
        self._tasks: list[asyncio.Task[Any]] = []

    def channels(self) -> list[NotifierInfo]:
        """For the settings screen: each channel, whether it is active, and why."""
        return self.notifier.info()

    def stream_status(self) -> StreamStatus:
        """The event stream now (connected, or why not), for the settings screen."""
        return self.listener.status

    def set_quiet_hours(self, quiet_hours: QuietHours, urgent_override: bool = True) -> None:
        """Apply the person's preference (from the settings screen) at once."""
        self.dispatcher.quiet_hours = quiet_hours
        self.dispatcher.urgent_override = urgent_override

    async def start(self) -> None:
        if self.desktop is not None:
            await self.desktop.probe()
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = self.client.subscribe(self._on_client_change)
        self._tasks = [asyncio.create_task(self.listener.run()),
                       asyncio.create_task(self._release_loop())]
        await self.device.check()  # what was left unsent or refused before this start

    def _on_client_change(self, topic: Any) -> None:
        if topic not in ("outbox", "notifications"):
            return
        spawn_on(self._loop, self._check_device, self._checks)

    async def _check_device(self) -> None:
        try:
            await self.device.check()
        except Exception:  # one bad entry must not stop the next check
            log.exception("notify: raising reminders and refusals failed")

    async def drain(self) -> None:
        """Wait for the reminder and refusal checks handed over so far (tests)."""
        while self._checks:
            await asyncio.gather(*list(self._checks), return_exceptions=True)

    async def _release_loop(self) -> None:
        while True:
            await asyncio.sleep(self._release_every)
            try:
                await self.dispatcher.release_due()
            except Exception:
                log.exception("notify: releasing held alerts failed")

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.listener.stop()
        for task in self._tasks:
            if task is not self._tasks[0]:
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        await self.wiring.drain()
        await self.drain()
        owned, self._owned = self._owned, []
        for close in owned:
            with contextlib.suppress(Exception):
                await close()


def center_for_engine(engine: SyncEngine, step_up: StepUp, *,
                      open_approval: Callable[[Alert], Any] | None = None,
                      quiet_hours: QuietHours = NO_QUIET_HOURS,
                      desktop: bool = True,
                      extra_notifiers: Sequence[Notifier] = (),
                      transport: Any = None,
                      before_approve: BeforeApprove = approve_at_once) -> NotificationCenter:
    """A ``NotificationCenter`` for a ``sync.engine.SyncEngine``: the engine is the event
    sink and the decision client, its authenticator gives (and refreshes) the tokens, and
    its settings name the server. ``transport`` is for tests (an ``httpx`` transport)."""
    import httpx

    from sync.push import PushListener
    from sync.transport import tls_context

    http = httpx.AsyncClient(base_url=engine.settings.server_url, transport=transport,
                             verify=tls_context(engine.settings.ca_bundle))
    listener = PushListener(http, engine.auth.access_token, engine,
                            refresh=engine.auth.refresh_after_401,
                            server_time=engine.observe_server_time)
    unhook = engine.when_back(listener.wake)

    async def unhook_on_stop() -> None:
        unhook()
    return NotificationCenter(listener, engine, step_up, open_approval=open_approval,
                              stream_opened=engine.event_stream_opened,
                              stream_closed=engine.event_stream_closed,
                              quiet_hours=quiet_hours,
                              desktop=DesktopNotifier() if desktop else None,
                              extra_notifiers=extra_notifiers,
                              close_on_stop=[http.aclose, unhook_on_stop],
                              before_approve=before_approve,
                              account=engine.account)
