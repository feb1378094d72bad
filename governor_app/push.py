"""Push notifications in the app: the banners every Flet session draws, and the prompts
acting on them needs. The client owns push itself (the event stream, quiet hours, the
notifiers, queueing the decision: ``GovernorClient.listen_for_alerts``); this is the
human's part of it.

When to use what:

- ``PushService`` is the process's ``sync.facade.AlertHooks``. ``GovernorApp`` makes one
  and calls ``start()``, which registers it with the client together with the saved
  notification settings (``alert_preferences``); ``stop()`` at shutdown.
- A session registers a ``BannerPresenter`` (``governor_app.views.banners``) and renders
  ``banners()`` whenever ``subscribe`` calls it (the client's ``"alerts"`` topic); a
  pressed button calls ``act()``, whose answer goes in a snack bar.
- A veto asks the presenter of the session it was pressed in (or, for an OS notification,
  the session used last) for category, reason and, when step-up is on, the password,
  checked with ``GovernorClient.confirm_identity`` as the veto screen does; an approval
  shows the request's danger flags first. Both then get the same undo window as on the
  request screen; the client queues them in the outbox, so they work offline.
- ``apply_preferences`` applies changed notification settings at once.

Nothing here imports Flet: the logic is tested with plain pytest.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from governor_app import addresses
from governor_app.errors import (
    ApprovalCancelled,
    NoSessionOpen,
    StepUpFailed,
    VetoTakenBack,
)
from governor_app.preferences import Preferences, PreferenceStore, parse_time
from governor_app.state import veto_reason_problem
from sync import rules
from sync.facade import (
    NO_QUIET_HOURS,
    Alert,
    AlertPreferences,
    GovernorClient,
    NotifierInfo,
    QuietHours,
    Topic,
    Urgency,
    VetoConfirmation,
    default_veto_category,
)
from sync.models import AGENT_VIOLATED, BUDGET_THRESHOLD, ApprovalDetail, VetoCategory

PASSWORD_ATTEMPTS = 3
# More would cover the screen; the notification centre lists the rest. On a phone one
# banner and the "more" line stay within a third of the screen (360x640 included).
VISIBLE_BANNERS = 3
VISIBLE_BANNERS_PHONE = 1
DEFAULT_REASON = "Vetoed from a notification."


# --- preferences ------------------------------------------------------------------------

def alert_preferences(prefs: Preferences) -> AlertPreferences:
    """The client's notification settings for these preferences (quiet hours in the
    device's local time zone: they are the person's)."""
    start, end = parse_time(prefs.quiet_start), parse_time(prefs.quiet_end)
    quiet = QuietHours(start, end) if prefs.quiet_hours and start is not None \
        and end is not None else NO_QUIET_HOURS
    return AlertPreferences(prefs.notifications, quiet, prefs.urgent_override)


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


# The presenter of the session whose banner button is being handled (set by ``act``).
_acting: contextvars.ContextVar[BannerPresenter | None] = contextvars.ContextVar(
    "governor_app_push_presenter", default=None)


# --- the service -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    message: str  # for the snack bar ("" : nothing to say)
    done: bool


class PushService:
    """The process's answers to what push asks of a person (``sync.facade.AlertHooks``),
    and the sessions' way to the client's alerts."""

    def __init__(self, client: GovernorClient, *, preferences: PreferenceStore,
                 step_up_for_veto: bool | Callable[[], bool] = rules.STEP_UP_FOR_VETO,
                 undo_seconds: float = rules.UNDO_SECONDS) -> None:
        self.client = client
        self.preferences = preferences
        self._step_up_for_veto = step_up_for_veto
        # A veto from a banner is as final as one from the veto screen, so it gets the
        # same few seconds on the device to be taken back (0: queued at once).
        self.undo_seconds = undo_seconds
        self._presenters: list[BannerPresenter] = []

    @property
    def step_up_for_veto(self) -> bool:
        value = self._step_up_for_veto
        return value() if callable(value) else value

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Push from now on, with the saved notification settings."""
        await self.client.listen_for_alerts(self, alert_preferences(self.preferences.value))

    async def stop(self) -> None:
        """At shutdown."""
        await self.client.stop_alerts()

    # --- sessions ----------------------------------------------------------------------------
    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """``listener()`` on every change of the alerts or of push itself."""
        def on_change(topic: Topic) -> None:
            if topic == "alerts":
                listener()
        return self.client.subscribe(on_change)

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
        return self.client.push_state().running

    def banners(self) -> list[BannerView]:
        return [banner_view(a) for a in self.client.alerts()]

    def dismiss(self, alert_id: str) -> None:
        self.client.dismiss_alert(alert_id)

    def dismiss_all(self) -> None:
        for banner in self.banners():
            self.dismiss(banner.alert_id)

    async def act(self, alert_id: str, action_id: str,
                  presenter: BannerPresenter | None = None) -> Outcome:
        """Carry out a banner's button; the answer is for a snack bar."""
        if presenter is not None:
            with contextlib.suppress(ValueError):  # the session used last answers OS ones
                self._presenters.remove(presenter)
            self._presenters.append(presenter)
        token = _acting.set(presenter)
        try:
            result = await self.client.act_on_alert(alert_id, action_id)
        finally:
            _acting.reset(token)
        return Outcome(result.message, result.done)

    # --- sync.facade.AlertHooks: what the client asks ------------------------------------------
    async def confirm_veto(self, alert: Alert) -> VetoConfirmation | None:
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
            # verifier kept, signed out); the client says so and keeps the banner.
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

    async def before_approve(self, alert: Alert) -> None:
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

    def open(self, alert: Alert) -> None:
        presenter = self._presenter()
        if presenter is not None:
            presenter.open(route_for(alert))

    # --- settings --------------------------------------------------------------------------
    def channels(self) -> list[NotifierInfo]:
        """Each way of telling the person, whether it is active, and why (not)."""
        return list(self.client.push_state().channels)

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
        return self.client.push_state().stream

    async def apply_preferences(self, prefs: Preferences) -> None:
        """Apply notification settings at once (called after they are saved)."""
        await self.client.set_alert_preferences(alert_preferences(prefs))


def _retry(prompt: VetoPrompt, answer: VetoAnswer, error: str) -> VetoPrompt:
    return VetoPrompt(prompt.alert, prompt.approval_id, prompt.password, error,
                      answer.category, answer.reason)


__all__ = ["VISIBLE_BANNERS", "VISIBLE_BANNERS_PHONE",
           "ApprovePrompt", "BannerButton", "BannerPresenter", "BannerView",
           "Outcome", "PushService", "VetoAnswer",
           "VetoPrompt", "alert_preferences", "banner_view", "danger_flags",
           "route_for", "visible_banners"]
