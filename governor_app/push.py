"""Push notifications in the app: one ``NotificationCenter`` per process, started while
someone is signed in, rendered as banners by every Flet session.

When to use what:

- ``PushService`` owns the center. ``GovernorApp`` makes one per process and calls
  ``start()``: it follows the client's ``auth`` changes (sign-in, the demo's auto-login,
  a session resumed at start, sign-out, a refused refresh) and starts or stops the center
  to match; ``stop()`` at shutdown.
- A session registers a ``BannerPresenter`` (``governor_app.views.banners``) and renders
  ``banners()`` on every ``subscribe`` call; a pressed button calls ``act()``, whose
  answer goes in a snack bar.
- A veto asks the presenter of the session it was pressed in (or, for an OS notification,
  the session used last) for category, reason and, when step-up is on, the password,
  checked with ``GovernorClient.confirm_identity`` as the veto screen does. It is then
  queued in the outbox by ``sync.notify.NotificationActions``, so it works offline.
- ``quiet_hours_from(prefs)`` turns the settings into what the dispatcher takes;
  ``apply_preferences`` applies a change at once.

Nothing here imports Flet: the logic is tested with plain pytest.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from typing import TYPE_CHECKING, Any, Protocol

from governor_app import addresses
from governor_app.preferences import Preferences, PreferenceStore, parse_time
from governor_app.state import veto_reason_problem
from sync import rules
from sync.alerts import (
    NO_QUIET_HOURS,
    Alert,
    BeforeApprove,
    NotifierInfo,
    QuietHours,
    StepUp,
    Urgency,
    VetoConfirmation,
    default_veto_category,
)
from sync.errors import SyncError
from sync.facade import GovernorClient, Listeners, Topic, spawn_on
from sync.models import AGENT_VIOLATED, BUDGET_THRESHOLD, ApprovalDetail, VetoCategory

if TYPE_CHECKING:
    from sync.facade import NotificationCenter

log = logging.getLogger(__name__)

PASSWORD_ATTEMPTS = 3
# More would cover the screen; the notification centre lists the rest. On a phone one
# banner and the "more" line stay within a third of the screen (360x640 included).
VISIBLE_BANNERS = 3
VISIBLE_BANNERS_PHONE = 1
DEFAULT_REASON = "Vetoed from a notification."


# --- preferences ------------------------------------------------------------------------

@dataclass(frozen=True)
class NotificationsOff(QuietHours):
    """The "Show notifications" switch is off: nothing interrupts, not even high urgency."""

    def is_quiet(self, now: Any) -> bool:
        return True


NOTIFICATIONS_OFF = NotificationsOff(time(0), time(0))


def quiet_hours_from(prefs: Preferences) -> tuple[QuietHours, bool]:
    """The dispatcher's quiet hours and high-urgency override for these preferences (in
    the device's local time zone: quiet hours are the person's)."""
    if not prefs.notifications:
        return NOTIFICATIONS_OFF, False
    start, end = parse_time(prefs.quiet_start), parse_time(prefs.quiet_end)
    if not prefs.quiet_hours or start is None or end is None:
        return NO_QUIET_HOURS, prefs.urgent_override
    return QuietHours(start, end), prefs.urgent_override


# --- what a banner shows ------------------------------------------------------------------

@dataclass(frozen=True)
class BannerButton:
    action_id: str
    label: str  # the visible text and the accessible name
    destructive: bool


@dataclass(frozen=True)
class BannerView:
    alert_id: str
    title: str
    body: str
    reference: str  # the request or violation it is about ("" when none)
    urgent: bool
    buttons: tuple[BannerButton, ...]

    @property
    def label(self) -> str:
        """What a screen reader says for the banner (and what tests read)."""
        urgency = "Urgent: " if self.urgent else ""
        ref = f" [{self.reference}]" if self.reference and self.reference not in self.body \
            else ""
        title = self.title if self.title.endswith(".") else f"{self.title}."
        return " ".join(x for x in (f"{urgency}{title}", f"{self.body}{ref}") if x)


def visible_banners(phone: bool) -> int:
    """How many banners are drawn at once (the rest are behind "N more")."""
    return VISIBLE_BANNERS_PHONE if phone else VISIBLE_BANNERS


def banner_view(alert: Alert) -> BannerView:
    reference = alert.approval_id or str(alert.data.get("violation_id") or "")
    return BannerView(alert.id, alert.title, alert.body, reference,
                      alert.urgency is Urgency.HIGH,
                      tuple(BannerButton(a.id.value, a.label, a.destructive)
                            for a in alert.actions))


def route_for(alert: Alert) -> str:
    """Where "Open" goes: the request, else the screen that lists what the event is about."""
    if alert.approval_id:
        return addresses.approval(alert.approval_id)
    if alert.event_type == AGENT_VIOLATED:
        return "/violations"
    if alert.event_type == BUDGET_THRESHOLD:
        return "/agents"
    return "/notifications"


# --- the approve prompt ----------------------------------------------------------------------

def danger_flags(approval: ApprovalDetail | None) -> tuple[str, ...]:
    """What should make a governor look before approving, from the server's own judgments
    in the request's data: dangerous grants, an invalid module, no precedent seed."""
    if approval is None or not approval.pipeline:
        # Not cached, or cached only from its notification (no pipeline, no checks):
        # nothing says it is safe, so the governor is asked.
        return ("Its checks are not on this device yet (it came by notification); open it "
                "once online to see them.",)
    flags = [f"Dangerous grant: {c.get('capability') or c}"
             for c in approval.capabilities if c.get("dangerous")]
    if not approval.wasm_report.valid:
        flags.append("The WASM module is invalid.")
    if not approval.seed_matches:
        flags.append("No precedent seed matches it.")
    return tuple(flags)


@dataclass(frozen=True)
class ApprovePrompt:
    """What the session's approve dialog shows before an approval from a banner."""

    alert: Alert
    approval_id: str
    flags: tuple[str, ...]  # never empty: without flags nothing is asked


# --- the veto prompt ------------------------------------------------------------------------

@dataclass(frozen=True)
class VetoPrompt:
    """What the session's veto dialog asks for."""

    alert: Alert
    approval_id: str
    password: bool  # step-up is on: ask for the password
    error: str = ""  # why the previous answer was not accepted
    category: VetoCategory = VetoCategory.OTHER
    reason: str = DEFAULT_REASON


@dataclass(frozen=True)
class VetoAnswer:
    category: VetoCategory
    reason: str
    password: str = ""

    def problem(self) -> str:
        return veto_reason_problem(self.reason.strip())


class BannerPresenter(Protocol):
    """One session's banner UI, as the push service needs it."""

    async def ask_veto(self, prompt: VetoPrompt) -> VetoAnswer | None:
        """Show the veto dialog; ``None`` when the person cancels."""
        ...

    async def confirm_approval(self, prompt: ApprovePrompt) -> bool:
        """Show the request's danger flags and ask; False when the person cancels."""
        ...

    async def hold(self, approval_id: str, what: str, seconds: float) -> bool:
        """Keep a confirmed decision (``what``: "Veto", "Approval") on the device for
        ``seconds`` with a way to take it back, exactly as the request screen does; True
        when it may be queued, False when taken back."""
        ...

    def open(self, route: str) -> None: ...


class StepUpFailed(SyncError):
    """The password was refused too many times; nothing was queued."""


class NoSessionOpen(SyncError):
    """A veto was pressed on an OS notification while no app window is open."""


class VetoTakenBack(SyncError):
    """The governor took a confirmed veto back within the undo window; nothing was
    queued."""


class ApprovalCancelled(SyncError):
    """The governor saw the request's danger flags and did not approve, or took the
    approval back within the undo window; nothing was queued."""


# The presenter of the session whose banner button is being handled (set by ``act``).
_acting: contextvars.ContextVar[BannerPresenter | None] = contextvars.ContextVar(
    "governor_app_push_presenter", default=None)


# --- the service -------------------------------------------------------------------------------

CenterFactory = Callable[..., "NotificationCenter | None"]


def engine_center(client: GovernorClient, step_up: StepUp, *,
                  open_approval: Callable[[Alert], Any],
                  quiet_hours: QuietHours,
                  before_approve: BeforeApprove) -> NotificationCenter | None:
    """The client's own center; ``None`` for clients with no server (the in-memory client
    of screenshots and UI benchmarks) or none yet (a cold start)."""
    return client.notification_center(step_up, open_approval=open_approval,
                                      quiet_hours=quiet_hours, before_approve=before_approve)


@dataclass(frozen=True)
class Outcome:
    message: str  # for the snack bar ("" : nothing to say)
    done: bool


class PushService:
    """Push for the process: starts the center while an account is signed in."""

    def __init__(self, client: GovernorClient, *, preferences: PreferenceStore,
                 step_up_for_veto: bool | Callable[[], bool] = rules.STEP_UP_FOR_VETO,
                 undo_seconds: float = rules.UNDO_SECONDS,
                 make_center: CenterFactory = engine_center) -> None:
        self.client = client
        self.preferences = preferences
        self._step_up_for_veto = step_up_for_veto
        # A veto from a banner is as final as one from the veto screen, so it gets the
        # same few seconds on the device to be taken back (0: queued at once).
        self.undo_seconds = undo_seconds
        self._make_center = make_center
        self.center: NotificationCenter | None = None
        self.error: str | None = None  # why the center could not start
        self._sub: str | None = None  # whose center it is
        self._stale = False  # the session ended under it (refresh refused)
        self._listeners: Listeners[[]] = Listeners(log, "push: a banner listener")
        self._presenters: list[BannerPresenter] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_banners: Callable[[], None] | None = None
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._notifications_on = preferences.value.notifications
        self._closed = False

    @property
    def step_up_for_veto(self) -> bool:
        value = self._step_up_for_veto
        return value() if callable(value) else value

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Follow the client's sign-in state from now on, and start the center if someone
        is signed in already (a resumed session, the demo's auto-login)."""
        if self._unsubscribe is None:
            self._loop = asyncio.get_running_loop()
            self._unsubscribe = self.client.subscribe(self._on_client_change)
        await self.reconcile()

    async def stop(self) -> None:
        """At shutdown: stop the center and stop following the client."""
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in list(self._tasks):
            task.cancel()
        async with self._lock:
            await self._stop_center()

    async def drain(self) -> None:
        """Wait for the reactions to sign-in changes handed over so far (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _on_client_change(self, topic: Topic) -> None:
        if topic != "auth" or self._closed:
            return
        if self.client.status().needs_sign_in:
            self._stale = True
        spawn_on(self._loop, self.reconcile, self._tasks)

    async def reconcile(self) -> None:
        """Make the center match the account: one while signed in, none otherwise."""
        async with self._lock:
            if self._closed:
                return
            account = self.client.account()
            status = self.client.status()
            if account is None:
                await self._stop_center()
            elif status.needs_sign_in:
                self._stale = True  # the stream ends by itself; restart once signed in
            elif self.center is None or account.sub != self._sub or self._stale:
                await self._stop_center()
                await self._start_center(account.sub)
        self._changed()

    async def _start_center(self, sub: str) -> None:
        quiet, override = quiet_hours_from(self.preferences.value)
        self._stale = False
        try:
            center = self._make_center(self.client, self._step_up,
                                       open_approval=self._open, quiet_hours=quiet,
                                       before_approve=self._before_approve)
            if center is None:
                self.error = None
                return
            center.set_quiet_hours(quiet, override)
            await center.start()
        except Exception as exc:  # shown on the settings screen; the app works without
            log.exception("push: the notification center did not start")
            self.error = (f"Notifications did not start ({exc.__class__.__name__}: {exc}). "
                          "Sign out and in again to retry.")
            return
        self.error = None
        self.center = center
        self._sub = sub
        self._unsubscribe_banners = center.inapp.subscribe(self._changed)

    async def _stop_center(self) -> None:
        center, self.center = self.center, None
        self._sub = None
        if self._unsubscribe_banners is not None:
            self._unsubscribe_banners()
            self._unsubscribe_banners = None
        if center is not None:
            try:
                await center.stop()
            except Exception:  # stopping must never block a sign-out
                log.exception("push: the notification center did not stop cleanly")

    # --- sessions ----------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """``listener()`` on every change of the banners or of the center itself."""
        return self._listeners.subscribe(listener)

    def _changed(self) -> None:
        self._listeners.emit()

    def register(self, presenter: BannerPresenter) -> Callable[[], None]:
        """A session shows banners; the last registered (or used) one answers OS
        notifications."""
        self._presenters.append(presenter)

        def unregister() -> None:
            with contextlib.suppress(ValueError):
                self._presenters.remove(presenter)
        return unregister

    def _presenter(self) -> BannerPresenter | None:
        return _acting.get() or (self._presenters[-1] if self._presenters else None)

    @property
    def running(self) -> bool:
        return self.center is not None

    def banners(self) -> list[BannerView]:
        if self.center is None:
            return []
        return [banner_view(a) for a in self.center.inapp.banners()]

    def dismiss(self, alert_id: str) -> None:
        if self.center is not None:
            self.center.inapp.dismiss(alert_id)

    def dismiss_all(self) -> None:
        for banner in self.banners():
            self.dismiss(banner.alert_id)

    async def act(self, alert_id: str, action_id: str,
                  presenter: BannerPresenter | None = None) -> Outcome:
        """Carry out a banner's button; the answer is for a snack bar."""
        center = self.center
        if center is None:
            return Outcome("Notifications are not running: sign in again.", False)
        if presenter is not None:
            with contextlib.suppress(ValueError):  # the session used last answers OS ones
                self._presenters.remove(presenter)
            self._presenters.append(presenter)
        token = _acting.set(presenter)
        try:
            result = await center.inapp.act(alert_id, action_id)
        except KeyError:
            return Outcome("That notification is gone: it was dismissed, acted on, or the "
                           "request was decided meanwhile.", False)
        except (SyncError, ValueError, RuntimeError) as exc:
            return Outcome(str(exc), False)
        finally:
            _acting.reset(token)
        if result.done:
            with contextlib.suppress(Exception):  # acted on: it has been read
                self.client.mark_read(alert_id)
        return Outcome(result.message, result.done)

    # --- what NotificationActions calls back -------------------------------------------------
    async def _step_up(self, alert: Alert) -> VetoConfirmation | None:
        presenter = self._presenter()
        if presenter is None:
            raise NoSessionOpen("open the app to veto: the identity check is shown there.")
        approval_id = alert.approval_id or ""
        prompt = VetoPrompt(alert, approval_id, password=self.step_up_for_veto,
                            category=default_veto_category(alert))
        wrong = 0
        while True:
            answer = await presenter.ask_veto(prompt)
            if answer is None:
                return None
            problem = answer.problem()
            if problem:
                prompt = _retry(prompt, answer, problem)
                continue
            # confirm_identity raises SyncError when it cannot check (offline with no
            # verifier kept, signed out); NotificationActions says so and keeps the banner.
            if prompt.password and not await self.client.confirm_identity(answer.password):
                wrong += 1
                if wrong >= PASSWORD_ATTEMPTS:
                    raise StepUpFailed(f"the password was refused {wrong} times; nothing "
                                       "was queued.")
                prompt = _retry(prompt, answer, "That password is not right; type it again.")
                continue
            if self.undo_seconds > 0 and not await presenter.hold(approval_id, "Veto",
                                                                   self.undo_seconds):
                raise VetoTakenBack(f"you took it back within the {self.undo_seconds:.0f} s "
                                    "undo window; nothing was queued.")
            return VetoConfirmation(answer.category, answer.reason.strip())

    async def _before_approve(self, alert: Alert) -> None:
        """A banner's Approve: the request's danger flags first (confirmed when there are
        any), then the same undo window as on the request screen."""
        approval_id = alert.approval_id or ""
        flags = danger_flags(self.client.approval(approval_id))
        presenter = self._presenter()
        if presenter is None:
            if flags:
                raise NoSessionOpen("open the app to approve: this request has warnings "
                                    "to look at first.")
            return  # an OS notification with no window open: nothing to show it in
        if flags and not await presenter.confirm_approval(
                ApprovePrompt(alert, approval_id, flags)):
            raise ApprovalCancelled("you cancelled after seeing its warnings; nothing was "
                                    "queued.")
        if self.undo_seconds > 0 and not await presenter.hold(approval_id, "Approval",
                                                               self.undo_seconds):
            raise ApprovalCancelled(f"you took it back within the {self.undo_seconds:.0f} s "
                                    "undo window; nothing was queued.")

    def _open(self, alert: Alert) -> None:
        presenter = self._presenter()
        with contextlib.suppress(Exception):
            self.client.mark_read(alert.id)
        if presenter is not None:
            presenter.open(route_for(alert))

    # --- settings --------------------------------------------------------------------------
    def channels(self) -> list[NotifierInfo]:
        """Each way of telling the person, whether it is active, and why (not)."""
        if self.center is not None:
            return self.center.channels()
        if self.error:
            return [NotifierInfo("in-app banner", False, self.error)]
        if self.client.account() is None:
            return [NotifierInfo("in-app banner", False, "starts once you are signed in")]
        return [NotifierInfo("in-app banner", False,
                             self.client.why_no_push() or "starts in a moment")]

    def channel_lines(self, *, web: bool, phone_os: bool) -> list[str]:
        """The settings screen's list: each channel, active or not, and why; the phone's
        OS notifications come only with an app built for Android or iOS."""
        lines = [f"{c.name.capitalize()}: {'active' if c.active else 'inactive'} ({c.reason})"
                 for c in self.channels()]
        if web:
            phone = "only in the Android / iOS app (flet build); this is the web app"
        elif phone_os:
            phone = "not in this build yet: banners inside the app only (docs/push.md)"
        else:
            phone = "only in the Android / iOS app (flet build)"
        return [*lines, f"Phone notification: inactive ({phone})"]

    def stream_state(self) -> str:
        """The event stream in words, for the settings screen."""
        if self.center is None:
            return "Not listening."
        status = self.center.stream_status()
        if status.connected:
            return "Connected: events arrive within seconds."
        if status.last_error:
            return f"Reconnecting ({status.last_error})."
        return "Connecting."

    async def apply_preferences(self, prefs: Preferences) -> None:
        """Apply notification settings at once (called after they are saved)."""
        was_on, self._notifications_on = self._notifications_on, prefs.notifications
        center = self.center
        if center is None:
            return
        if was_on != prefs.notifications:
            # Neither what was held while off nor the banners shown before switching off
            # should pop up later: what they said is in the notification centre.
            for alert in center.dispatcher.held():
                await center.dispatcher.forget(alert.id)
            if not prefs.notifications:
                self.dismiss_all()
        quiet, override = quiet_hours_from(prefs)
        center.set_quiet_hours(quiet, override)
        await center.dispatcher.release_due()  # quiet hours just ended: show what waited




def _retry(prompt: VetoPrompt, answer: VetoAnswer, error: str) -> VetoPrompt:
    return VetoPrompt(prompt.alert, prompt.approval_id, prompt.password, error,
                      answer.category, answer.reason)


__all__ = ["NOTIFICATIONS_OFF", "VISIBLE_BANNERS", "VISIBLE_BANNERS_PHONE",
           "ApprovalCancelled", "ApprovePrompt", "BannerButton", "BannerPresenter", "BannerView",
           "NoSessionOpen", "Outcome", "PushService", "StepUpFailed", "VetoAnswer",
           "VetoPrompt", "VetoTakenBack", "banner_view", "danger_flags",
           "engine_center", "quiet_hours_from", "route_for", "visible_banners"]
