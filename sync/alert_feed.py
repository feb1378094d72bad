"""The signed-in account's alerts, owned by the client: ``AlertFeed``.

Every ``GovernorClient`` holds one. Once the app has registered its ``AlertHooks``
(``listen_for_alerts``), the feed follows the client's sign-in: it starts a
``sync.notify.NotificationCenter`` (the event stream, the dispatcher with quiet hours,
the notifiers, the actions) while an account is signed in and stops it on sign-out, on a
refused refresh (started again once signed in) and at ``close()``. The app reads
``alerts()``, acts through ``act()`` and is told of every change through the client's
``"alerts"`` topic; what needs a person (the step-up, the danger flags and undo window,
where "Open" goes) is asked through the hooks.

How a center is made is the client's: the engine's listens to its server
(``sync.notify.center_for_engine``), the in-memory client's to ``sync.fakes.MemoryStream``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from sync.alerts import (
    ActionResult,
    Alert,
    AlertHooks,
    AlertPreferences,
    BeforeApprove,
    NotifierInfo,
    PushState,
    QuietHours,
    StepUp,
    VetoConfirmation,
)
from sync.errors import NoOneToAsk, SyncError
from sync.models import Account, SyncStatus
from sync.observable import spawn_on

if TYPE_CHECKING:
    from sync.notify import NotificationCenter
    from sync.push import PushEvent

log = logging.getLogger("sync.alert_feed")

CHANNEL = "in-app banner"
GONE = ("That notification is gone: it was dismissed, acted on, or the request was "
        "decided meanwhile.")
NOT_RUNNING = "Notifications are not running: sign in again."


def not_listening(reason: str) -> PushState:
    """Push as shown while no center runs: its one channel off, and why."""
    return PushState(False, False, "Not listening.", (NotifierInfo(CHANNEL, False, reason),))


class CenterFactory(Protocol):
    """Makes the signed-in account's center, not started; None when the client has no
    stream to listen to now (``why_no_push``)."""

    def __call__(self, step_up: StepUp, *, open_approval: Callable[[Alert], object],
                 quiet_hours: QuietHours, before_approve: BeforeApprove
                 ) -> NotificationCenter | None: ...


class FeedClient(Protocol):
    """The part of ``GovernorClient`` the feed follows."""

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]: ...

    def account(self) -> Account | None: ...

    def status(self) -> SyncStatus: ...

    def mark_read(self, notification_id: str) -> None: ...

    def why_no_push(self) -> str | None: ...


class AlertFeed:
    """One client's alerts: a center while an account is signed in and hooks are set."""

    def __init__(self, client: FeedClient, make_center: CenterFactory,
                 changed: Callable[[], None]) -> None:
        self.client = client
        self._make_center = make_center
        self._changed = changed  # the client emits its "alerts" topic
        self.center: NotificationCenter | None = None
        self.error: str | None = None  # why the center could not start
        self.hooks: AlertHooks | None = None
        self.preferences = AlertPreferences()
        self._sub: str | None = None  # whose center it is
        self._stale = False  # the session ended under it (refresh refused)
        self._unsubscribe: Callable[[], None] | None = None
        self._unsubscribe_banners: Callable[[], None] | None = None
        self._lock = asyncio.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ---------------------------------------------------------------------
    async def listen(self, hooks: AlertHooks, preferences: AlertPreferences) -> None:
        """Follow the client's sign-in from now on, asking ``hooks`` what needs a person;
        the center starts at once if someone is signed in."""
        self.hooks, self.preferences = hooks, preferences
        if self._unsubscribe is None:
            self._loop = asyncio.get_running_loop()
            self._unsubscribe = self.client.subscribe(self._on_client_change)
        await self.reconcile()

    async def close(self) -> None:
        """Stop the center and stop following the client (the app's shutdown, the
        client's ``stop``); ``listen`` starts again."""
        self.hooks = None
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        for task in list(self._tasks):
            task.cancel()
        await self.drain()
        async with self._lock:
            await self._stop_center()
        self._changed()

    async def drain(self) -> None:
        """Wait for the reactions to sign-in changes handed over so far."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _on_client_change(self, topic: object) -> None:
        if topic != "auth" or self.hooks is None:
            return
        if self.client.status().needs_sign_in:
            self._stale = True
        spawn_on(self._loop, self.reconcile, self._tasks)

    async def reconcile(self) -> None:
        """Make the center match the account: one while signed in, none otherwise."""
        async with self._lock:
            account = self.client.account()
            if self.hooks is None or account is None:
                await self._stop_center()
            elif self.client.status().needs_sign_in:
                self._stale = True  # the stream ends by itself; restart once signed in
            elif self.center is None or account.sub != self._sub or self._stale:
                await self._stop_center()
                await self._start_center(account.sub)
        self._changed()

    async def _start_center(self, sub: str) -> None:
        quiet, override = self.preferences.dispatch()
        self._stale = False
        try:
            center = self._make_center(self._confirm_veto, open_approval=self._open,
                                       quiet_hours=quiet, before_approve=self._before_approve)
            if center is None:
                self.error = None
                return
            center.set_quiet_hours(quiet, override)
            await center.start()
        except Exception as exc:  # said on the settings screen; the app works without
            log.exception("alerts: the notification center did not start")
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
                log.exception("alerts: the notification center did not stop cleanly")

    def _running(self) -> NotificationCenter | None:
        # Signed out, nothing is shown even before the center has stopped.
        return self.center if self.client.account() is not None else None

    # --- what the app reads and does -----------------------------------------------------
    def alerts(self) -> list[Alert]:
        center = self._running()
        return center.inapp.banners() if center is not None else []

    def dismiss(self, alert_id: str) -> None:
        center = self._running()
        if center is not None:
            center.inapp.dismiss(alert_id)

    async def act(self, alert_id: str, action_id: str) -> ActionResult:
        """Carry out an alert's action; a refusal is said in the result's message."""
        action_id = str(action_id)  # an ``ActionId`` is said by its value
        center = self._running()
        if center is None:
            return ActionResult(action_id, False, None, NOT_RUNNING)
        try:
            result = await center.inapp.act(alert_id, action_id)
        except KeyError:
            return ActionResult(action_id, False, None, GONE)
        except (SyncError, ValueError, RuntimeError) as exc:
            return ActionResult(action_id, False, None, str(exc))
        if result.done:
            with contextlib.suppress(Exception):  # acted on: it has been read
                self.client.mark_read(alert_id)
        return result

    async def set_preferences(self, preferences: AlertPreferences) -> None:
        """Apply notification settings at once (and to every center started later)."""
        was_on = self.preferences.notifications
        self.preferences = preferences
        center = self.center
        if center is None:
            return
        if was_on != preferences.notifications:
            # Neither what was held while off nor the banners shown before switching off
            # should pop up later: what they said is in the notification list.
            for alert in center.dispatcher.held():
                await center.dispatcher.forget(alert.id)
            if not preferences.notifications:
                for alert in center.inapp.banners():
                    center.inapp.dismiss(alert.id)
        quiet, override = preferences.dispatch()
        center.set_quiet_hours(quiet, override)
        await center.dispatcher.release_due()  # quiet hours just ended: show what waited

    def state(self) -> PushState:
        center = self._running()
        if center is not None:
            status = center.stream_status()
            if status.connected:
                stream = "Connected: events arrive within seconds."
            elif status.last_error:
                stream = f"Reconnecting ({status.last_error})."
            else:
                stream = "Connecting."
            return PushState(True, status.connected, stream, tuple(center.channels()))
        if self.error:
            reason = self.error
        elif self.client.account() is None:
            reason = "starts once you are signed in"
        else:
            reason = self.client.why_no_push() or "starts in a moment"
        return not_listening(reason)

    async def deliver(self, event: PushEvent) -> None:
        """Hand an event to the running center as its stream would (the in-memory
        client's stream)."""
        center = self._running()
        if center is not None:
            await center.wiring.handle(event)

    # --- what the center asks of a person -------------------------------------------------
    def _hooks(self, what: str) -> AlertHooks:
        if self.hooks is None:
            raise NoOneToAsk(f"{what} needs the app open to ask you; open it and press "
                             "it again.")
        return self.hooks

    async def _confirm_veto(self, alert: Alert) -> VetoConfirmation | None:
        return await self._hooks("A veto").confirm_veto(alert)

    async def _before_approve(self, alert: Alert) -> None:
        await self._hooks("An approval").before_approve(alert)

    def _open(self, alert: Alert) -> None:
        with contextlib.suppress(Exception):
            self.client.mark_read(alert.id)
        if self.hooks is not None:
            self.hooks.open(alert)


class AlertsThroughFeed:
    """The ``GovernorClient`` push methods of a client that keeps an ``AlertFeed`` as
    ``alert_feed`` (the engine, the in-memory client): documented on the facade."""

    alert_feed: AlertFeed

    async def listen_for_alerts(self, hooks: AlertHooks,
                                preferences: AlertPreferences = AlertPreferences()) -> None:
        await self.alert_feed.listen(hooks, preferences)

    async def stop_alerts(self) -> None:
        await self.alert_feed.close()

    def alerts(self) -> list[Alert]:
        return self.alert_feed.alerts()

    async def act_on_alert(self, alert_id: str, action: str) -> ActionResult:
        return await self.alert_feed.act(alert_id, action)

    def dismiss_alert(self, alert_id: str) -> None:
        self.alert_feed.dismiss(alert_id)

    async def set_alert_preferences(self, preferences: AlertPreferences) -> None:
        await self.alert_feed.set_preferences(preferences)

    def push_state(self) -> PushState:
        return self.alert_feed.state()
