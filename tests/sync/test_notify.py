"""Alerts, urgency, quiet hours, the notifiers and acting from a notification."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta, timezone
from typing import Any

import pytest

from sync.alerts import (
    NO_QUIET_HOURS,
    ActionId,
    ActionResult,
    Alert,
    NotifierInfo,
    QuietHours,
    StepUp,
    Urgency,
    VetoConfirmation,
    alert_for,
    default_veto_category,
    urgency_of,
)
from sync.models import DecisionAction, OutboxEntry, OutboxState, VetoCategory
from sync.notify import (
    CompositeNotifier,
    Delivery,
    DesktopNotifier,
    InAppNotifier,
    NotificationActions,
    NotificationDispatcher,
    password_step_up,
)
from sync.push import PushEvent


def event(type_: str, event_id: str = "1", **data: Any) -> PushEvent:
    return PushEvent.parse({"id": event_id, "type": type_,
                            "timestamp": "2026-01-01T12:00:00Z", "source": "stub",
                            "data": data, "metadata": {}})


PENDING = event("governance.approval.pending", approval_id="APR-1", agent_name="Ledger Bot")


# --- urgency and alerts ----------------------------------------------------------------------

@pytest.mark.parametrize(("type_", "data", "urgency"), [
    ("governance.agent.violated", {"kind": "constitutional"}, Urgency.HIGH),
    ("governance.budget.threshold_exceeded", {"threshold": 95}, Urgency.HIGH),
    ("governance.budget.threshold_exceeded", {"threshold": 80}, Urgency.NORMAL),
    ("governance.budget.threshold_exceeded", {"threshold": "lots"}, Urgency.NORMAL),
    ("governance.approval.pending", {}, Urgency.NORMAL),
    ("governance.veto_window.closing", {}, Urgency.NORMAL),
    ("governance.approval.decided", {}, Urgency.LOW),
    ("governance.seed.auto_approved", {}, Urgency.LOW),
    ("governance.something.new", {}, Urgency.NORMAL),
])
def test_urgency_per_event_type(type_: str, data: dict[str, Any], urgency: Urgency) -> None:
    assert urgency_of(event(type_, **data)) is urgency


def test_a_pending_request_offers_approve_and_veto() -> None:
    alert = alert_for(PENDING)
    assert alert.title == "Approval needed" and "Ledger Bot" in alert.body
    assert [a.id for a in alert.actions] == [ActionId.APPROVE, ActionId.VETO]
    assert alert.approval_id == "APR-1" and alert.id == "1"
    assert alert.action("veto") is not None and alert.action("approve").destructive is False  # type: ignore[union-attr]


@pytest.mark.parametrize(("type_", "data", "title", "actions"), [
    ("governance.approval.decided", {"approval_id": "APR-1", "status": "vetoed",
                                     "decided_by": "alice"}, "Decided elsewhere", ["open"]),
    ("governance.seed.auto_approved", {"approval_id": "APR-1", "seed_id": "GEN-002"},
     "Auto-approved (FYI)", ["veto", "open"]),
    ("governance.budget.threshold_exceeded", {"agent": {"name": "A"}, "threshold": 95,
                                              "utilisation": 0.96}, "Budget 95 % reached",
     ["open"]),
    ("governance.agent.violated", {"agent_id": "AG-1", "kind": "ethics",
                                   "description": "Used a denied capability."}, "Violation",
     ["open"]),
    ("governance.veto_window.closing", {"approval_id": "APR-1"}, "Veto window closing",
     ["veto", "open"]),
    ("governance.veto_window.closing", {}, "Veto window closing", ["open"]),
    ("governance.approval.pending", {}, "Approval needed", ["open"]),
    ("governance.other", {}, "Governance event", ["open"]),
])
def test_alert_text_and_actions_per_type(type_: str, data: dict[str, Any], title: str,
                                         actions: list[str]) -> None:
    alert = alert_for(event(type_, **data))
    assert alert.title == title and alert.body
    assert [a.id.value for a in alert.actions] == actions


def test_budget_alert_shows_the_utilisation_and_decided_alert_who() -> None:
    budget = alert_for(event("governance.budget.threshold_exceeded", agent_name="A",
                             threshold=80, utilisation=0.83))
    assert "83 %" in budget.body
    decided = alert_for(event("governance.approval.decided", approval_id="APR-1",
                              status="changes_requested", decided_by="bob"))
    assert "changes requested by bob" in decided.body


def test_default_veto_category_follows_the_event() -> None:
    assert default_veto_category(alert_for(event("governance.agent.violated"))) \
        is VetoCategory.CONSTITUTIONAL
    assert default_veto_category(alert_for(event("governance.budget.threshold_exceeded"))) \
        is VetoCategory.BUDGET
    assert default_veto_category(alert_for(PENDING)) is VetoCategory.OTHER


# --- quiet hours -----------------------------------------------------------------------------

def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, 1, hour, minute, tzinfo=UTC)


def test_quiet_hours_over_midnight() -> None:
    quiet = QuietHours(time(22), time(7), UTC)
    assert quiet.is_quiet(at(23)) and quiet.is_quiet(at(3)) and quiet.is_quiet(at(22))
    assert not quiet.is_quiet(at(7)) and not quiet.is_quiet(at(12))


def test_quiet_hours_within_a_day_and_none() -> None:
    quiet = QuietHours(time(12), time(14), UTC)
    assert quiet.is_quiet(at(13)) and not quiet.is_quiet(at(14)) and not quiet.is_quiet(at(9))
    assert not NO_QUIET_HOURS.is_quiet(at(3))


def test_quiet_hours_are_read_in_the_persons_time_zone() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    quiet = QuietHours(time(22), time(7), india)
    assert quiet.is_quiet(at(18))  # 23:30 in India
    assert not quiet.is_quiet(at(6))  # 11:30 in India


class Recorder:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.withdrawn: list[str] = []
        self.handler: Any = None

    def info(self) -> list[NotifierInfo]:
        return [NotifierInfo("recorder", True, "test")]

    async def show(self, alert: Alert) -> None:
        self.shown.append(alert.id)

    async def withdraw(self, alert_id: str) -> None:
        self.withdrawn.append(alert_id)

    def set_action_handler(self, handler: Any) -> None:
        self.handler = handler


class Clock:
    def __init__(self, now: datetime) -> None:
        self.value = now

    def now(self) -> datetime:
        return self.value


def test_quiet_hours_hold_low_urgency_let_high_through_and_release_after() -> None:
    async def main() -> None:
        clock = Clock(at(23))
        recorder = Recorder()
        dispatcher = NotificationDispatcher(recorder, quiet_hours=QuietHours(
            time(22), time(7), UTC), now=clock.now)
        pending = alert_for(event("governance.approval.pending", "1", approval_id="A"))
        fyi = alert_for(event("governance.seed.auto_approved", "2"))
        budget95 = alert_for(event("governance.budget.threshold_exceeded", "3", threshold=95))
        violation = alert_for(event("governance.agent.violated", "4"))
        assert await dispatcher.deliver(pending) is Delivery.HELD
        assert await dispatcher.deliver(fyi) is Delivery.HELD
        assert await dispatcher.deliver(pending) is Delivery.HELD  # not held twice
        assert await dispatcher.deliver(budget95) is Delivery.SHOWN
        assert await dispatcher.deliver(violation) is Delivery.SHOWN
        assert recorder.shown == ["3", "4"]
        assert [a.id for a in dispatcher.held()] == ["1", "2"]
        assert await dispatcher.release_due() == []  # still quiet: nothing released
        clock.value = at(7, 1)
        released = await dispatcher.release_due()
        assert [a.id for a in released] == ["1", "2"]
        assert recorder.shown == ["3", "4", "1", "2"] and dispatcher.held() == []
        assert await dispatcher.release_due() == []

    asyncio.run(main())


def test_outside_quiet_hours_everything_is_shown_and_forget_withdraws() -> None:
    async def main() -> None:
        recorder = Recorder()
        dispatcher = NotificationDispatcher(recorder, now=lambda: at(12))
        assert await dispatcher.deliver_event(PENDING) is Delivery.SHOWN
        await dispatcher.forget("1")
        assert recorder.shown == ["1"] and recorder.withdrawn == ["1"]

    asyncio.run(main())


def test_a_held_alert_decided_elsewhere_is_never_shown() -> None:
    async def main() -> None:
        clock = Clock(at(23))
        recorder = Recorder()
        dispatcher = NotificationDispatcher(recorder, quiet_hours=QuietHours(
            time(22), time(7), UTC), now=clock.now)
        await dispatcher.deliver_event(PENDING)
        await dispatcher.forget("1")
        clock.value = at(8)
        assert await dispatcher.release_due() == []
        assert recorder.shown == []

    asyncio.run(main())


# --- in-app banners ---------------------------------------------------------------------------

class FakeClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def _entry(self, approval_id: str, action: DecisionAction) -> OutboxEntry:
        return OutboxEntry(id=f"e{len(self.calls)}", seq=len(self.calls), kind="decision",
                           approval_id=approval_id, action=action, state=OutboxState.QUEUED,
                           created_at=at(12))

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
        self.calls.append(("approve", approval_id, comment))
        return self._entry(approval_id, DecisionAction.APPROVE)

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: Any = None) -> OutboxEntry:
        self.calls.append(("veto", approval_id, (category, reason)))
        return self._entry(approval_id, DecisionAction.VETO)

    def outbox(self, states: Any = None) -> list[OutboxEntry]:
        return []

    async def sync_now(self) -> None:
        self.calls.append(("sync_now", "", None))


def confirm(category: VetoCategory = VetoCategory.SAFETY,
            reason: str = "unsafe") -> tuple[StepUp, list[str]]:
    asked: list[str] = []

    async def step_up(alert: Alert) -> VetoConfirmation | None:
        asked.append(alert.id)
        return VetoConfirmation(category, reason)

    return step_up, asked


def test_banners_are_observable_newest_first_and_bounded() -> None:
    async def main() -> None:
        inapp = InAppNotifier(limit=3)
        changes: list[int] = []
        off = inapp.subscribe(lambda: changes.append(len(inapp.banners())))
        for i in range(1, 5):
            await inapp.show(alert_for(event("governance.approval.pending", str(i))))
        assert [b.id for b in inapp.banners()] == ["4", "3", "2"]
        # Shown again, it is updated where it is: nothing moves under a finger.
        await inapp.show(alert_for(event("governance.approval.pending", "3")))
        assert [b.id for b in inapp.banners()] == ["4", "3", "2"]
        await inapp.withdraw("4")
        inapp.dismiss("nope")  # nothing changes, nobody is told
        assert [b.id for b in inapp.banners()] == ["3", "2"]
        off()
        inapp.dismiss("3")
        assert changes == [1, 2, 3, 3, 3, 2]
        assert inapp.info()[0].active

    asyncio.run(main())


def test_approve_from_a_banner_queues_through_the_outbox_and_clears_the_banner() -> None:
    async def main() -> None:
        client = FakeClient()
        step_up, asked = confirm()
        inapp = InAppNotifier()
        inapp.set_action_handler(NotificationActions(client, step_up).handle)
        await inapp.show(alert_for(PENDING))
        result = await inapp.act("1", "approve")
        assert isinstance(result, ActionResult) and result.done
        assert result.entry is not None and result.entry.state is OutboxState.QUEUED
        assert client.calls == [("approve", "APR-1", None)] and asked == []
        # In its place, what became of it: no buttons, and it goes by itself.
        [note] = inapp.banners()
        assert (note.title, note.actions) == ("Approval of APR-1 queued.", ())

    asyncio.run(main())


def test_veto_from_a_banner_needs_the_step_up_first() -> None:
    async def main() -> None:
        client = FakeClient()
        step_up, asked = confirm(VetoCategory.SAFETY, "Touches production secrets.")
        inapp = InAppNotifier()
        inapp.set_action_handler(NotificationActions(client, step_up).handle)
        await inapp.show(alert_for(PENDING))
        result = await inapp.act("1", "veto")
        assert result.done and asked == ["1"]
        assert client.calls == [("veto", "APR-1", (VetoCategory.SAFETY,
                                                   "Touches production secrets."))]

    asyncio.run(main())


def test_a_cancelled_step_up_sends_no_veto_and_keeps_the_banner() -> None:
    async def main() -> None:
        client = FakeClient()

        async def cancelled(alert: Alert) -> VetoConfirmation | None:
            return None

        inapp = InAppNotifier()
        inapp.set_action_handler(NotificationActions(client, cancelled).handle)
        await inapp.show(alert_for(PENDING))
        result = await inapp.act("1", "veto")
        assert not result.done and "cancelled" in result.message
        assert client.calls == [] and [b.id for b in inapp.banners()] == ["1"]

    asyncio.run(main())


def test_banner_errors_name_the_banner_and_say_what_to_do() -> None:
    async def main() -> None:
        inapp = InAppNotifier()
        with pytest.raises(KeyError, match="No banner '9'"):
            await inapp.act("9", "approve")
        await inapp.show(alert_for(event("governance.agent.violated", "2")))
        with pytest.raises(ValueError, match="has no action 'approve'"):
            await inapp.act("2", "approve")
        with pytest.raises(RuntimeError, match="set_action_handler"):
            await inapp.act("2", "open")

    asyncio.run(main())


def test_a_failing_banner_listener_does_not_stop_the_others() -> None:
    async def main() -> None:
        inapp = InAppNotifier()
        seen: list[int] = []

        def boom() -> None:
            raise RuntimeError("ui bug")

        inapp.subscribe(boom)
        inapp.subscribe(lambda: seen.append(1))
        await inapp.show(alert_for(PENDING))
        assert seen == [1]

    asyncio.run(main())


def test_actions_refuse_what_cannot_apply_and_open_navigates() -> None:
    async def main() -> None:
        opened: list[str] = []

        async def open_it(alert: Alert) -> None:
            opened.append(alert.id)

        step_up, _ = confirm()
        actions = NotificationActions(FakeClient(), step_up, open_approval=open_it)
        no_request = alert_for(event("governance.agent.violated", "5"))
        with pytest.raises(ValueError, match="names no approval request"):
            await actions.handle(no_request, "approve")
        with pytest.raises(ValueError, match="Unknown notification action"):
            await actions.handle(no_request, "snooze")
        assert (await actions.handle(no_request, "open")).done and opened == ["5"]
        plain = NotificationActions(FakeClient(), step_up)
        assert (await plain.handle(no_request, "open")).done

    asyncio.run(main())


def test_password_step_up_checks_the_identity_before_confirming() -> None:
    async def main() -> None:
        checked: list[str] = []

        async def confirm_identity(password: str) -> bool:
            checked.append(password)
            return password == "governor"

        async def ask_right(alert: Alert) -> tuple[str, VetoCategory, str] | None:
            return ("governor", VetoCategory.BUDGET, "Over budget.")

        async def ask_wrong(alert: Alert) -> tuple[str, VetoCategory, str] | None:
            return ("guess", VetoCategory.BUDGET, "Over budget.")

        async def ask_cancel(alert: Alert) -> tuple[str, VetoCategory, str] | None:
            return None

        alert = alert_for(PENDING)
        assert await password_step_up(ask_right, confirm_identity)(alert) == \
            VetoConfirmation(VetoCategory.BUDGET, "Over budget.")
        assert await password_step_up(ask_wrong, confirm_identity)(alert) is None
        assert await password_step_up(ask_cancel, confirm_identity)(alert) is None
        assert checked == ["governor", "guess"]

    asyncio.run(main())


# --- desktop and composite ------------------------------------------------------------------

class Capability:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeBackend:
    def __init__(self, capabilities: list[str], fail_send: bool = False) -> None:
        self.capabilities = [Capability(c) for c in capabilities]
        self.fail_send = fail_send
        self.sent: list[dict[str, Any]] = []
        self.cleared: list[str] = []

    async def get_capabilities(self) -> Any:
        return frozenset(self.capabilities)

    async def send(self, title: str, message: str, **kwargs: Any) -> str:
        if self.fail_send:
            raise OSError("notification server went away")
        self.sent.append({"title": title, "message": message, **kwargs})
        return f"os-{len(self.sent)}"

    async def clear(self, identifier: str) -> None:
        self.cleared.append(identifier)


def test_desktop_notifier_here_is_a_no_op_that_says_why() -> None:
    """This machine has no D-Bus session: the real library must degrade, not fail."""
    async def main() -> None:
        desktop = DesktopNotifier()
        assert desktop.info()[0].reason == "not probed yet"
        assert await desktop.probe() is False
        await desktop.show(alert_for(PENDING))  # a no-op, no exception
        await desktop.withdraw("1")
        info = desktop.info()[0]
        assert not info.active and "in-app banners only" in info.reason

    asyncio.run(main())


def test_desktop_notifier_posts_buttons_and_a_press_runs_the_action() -> None:
    async def main() -> None:
        backend = FakeBackend(["TITLE", "BUTTONS", "ON_CLICKED"])
        desktop = DesktopNotifier(backend_factory=lambda name: backend)
        pressed: list[tuple[str, str]] = []
        done = asyncio.Event()

        async def handler(alert: Alert, action_id: str) -> ActionResult:
            pressed.append((alert.id, action_id))
            done.set()
            return ActionResult(action_id, True)

        desktop.set_action_handler(handler)
        assert await desktop.probe() and "Approve / Veto" in desktop.info()[0].reason
        await desktop.show(alert_for(PENDING))
        sent = backend.sent[0]
        assert sent["title"] == "Approval needed"
        assert [b.title for b in sent["buttons"]] == ["Approve", "Veto"]
        sent["buttons"][1].on_pressed()
        await asyncio.wait_for(done.wait(), 5)
        assert pressed == [("1", "veto")]
        await desktop.withdraw("1")
        assert backend.cleared == ["os-1"]

    asyncio.run(main())


def test_desktop_notifier_without_buttons_still_opens_the_app_on_click() -> None:
    async def main() -> None:
        backend = FakeBackend(["TITLE", "ON_CLICKED"])
        desktop = DesktopNotifier(backend_factory=lambda name: backend)
        assert await desktop.probe() and "without buttons" in desktop.info()[0].reason
        await desktop.show(alert_for(PENDING))
        assert "buttons" not in backend.sent[0]
        backend.sent[0]["on_clicked"]()  # no handler set: logged, nothing raised

    asyncio.run(main())


def test_desktop_notifier_that_fails_to_send_turns_itself_off() -> None:
    async def main() -> None:
        desktop = DesktopNotifier(backend_factory=lambda name: FakeBackend(["TITLE"], True))
        assert await desktop.probe()
        await desktop.show(alert_for(PENDING))
        assert not desktop.info()[0].active and "failed" in desktop.info()[0].reason

    asyncio.run(main())


class SilentBackend(FakeBackend):
    """A service that takes each call and never answers (``silent``: which calls)."""

    def __init__(self, silent: set[str]) -> None:
        super().__init__(["TITLE", "BUTTONS"])
        self.silent = silent

    async def _maybe_hang(self, call: str) -> None:
        if call in self.silent:
            await asyncio.Event().wait()

    async def get_capabilities(self) -> Any:
        await self._maybe_hang("get_capabilities")
        return await super().get_capabilities()

    async def send(self, title: str, message: str, **kwargs: Any) -> str:
        await self._maybe_hang("send")
        return await super().send(title, message, **kwargs)

    async def clear(self, identifier: str) -> None:
        await self._maybe_hang("clear")
        await super().clear(identifier)


def test_a_notification_service_that_never_answers_does_not_hold_the_app() -> None:
    """Push starts before the first screen: a silent D-Bus service must not hold it."""
    async def main() -> None:
        desktop = DesktopNotifier(backend_factory=lambda name: SilentBackend(
            {"get_capabilities"}), timeout=0.05)
        assert await asyncio.wait_for(desktop.probe(), 5) is False
        info = desktop.info()[0]
        assert not info.active
        assert info.reason == ("the OS notification service did not answer in 0.05 s; "
                               "in-app banners only")

    asyncio.run(main())


def test_a_notification_service_silent_on_send_turns_itself_off_and_clear_returns() -> None:
    async def main() -> None:
        backend = SilentBackend({"send"})
        desktop = DesktopNotifier(backend_factory=lambda name: backend, timeout=0.05)
        assert await desktop.probe()
        await asyncio.wait_for(desktop.show(alert_for(PENDING)), 5)
        info = desktop.info()[0]
        assert not info.active
        assert info.reason == "the OS notification service failed (TimeoutError)"

        backend = SilentBackend({"clear"})
        desktop = DesktopNotifier(backend_factory=lambda name: backend, timeout=0.05)
        assert await desktop.probe()
        await desktop.show(alert_for(PENDING))
        assert backend.sent and desktop.info()[0].active
        await asyncio.wait_for(desktop.withdraw("1"), 5)  # the OS may keep it; we go on
        assert backend.cleared == []

    asyncio.run(main())


def test_desktop_notifier_with_an_empty_service_is_inactive() -> None:
    async def main() -> None:
        desktop = DesktopNotifier(backend_factory=lambda name: FakeBackend([]))
        assert await desktop.probe() is False
        assert "offers nothing" in desktop.info()[0].reason

    asyncio.run(main())


def test_composite_delivers_to_all_even_when_one_fails() -> None:
    class Broken(Recorder):
        async def show(self, alert: Alert) -> None:
            raise RuntimeError("broken channel")

        async def withdraw(self, alert_id: str) -> None:
            raise RuntimeError("broken channel")

    async def main() -> None:
        good = Recorder()
        composite = CompositeNotifier([Broken(), good])
        await composite.show(alert_for(PENDING))
        await composite.withdraw("1")
        assert good.shown == ["1"] and good.withdrawn == ["1"]
        assert [i.name for i in composite.info()] == ["recorder", "recorder"]

    asyncio.run(main())


# --- wiring the listener to the dispatcher ---------------------------------------------------

def test_a_decision_elsewhere_withdraws_the_pending_alert_and_says_so() -> None:
    from sync.notify import PushNotifications

    async def main() -> None:
        inapp = InAppNotifier()
        dispatcher = NotificationDispatcher(inapp, now=lambda: at(12))
        wiring = PushNotifications(dispatcher)
        wiring(PENDING)
        await wiring.drain()
        assert [b.id for b in inapp.banners()] == ["1"]
        decided = event("governance.approval.decided", "2", approval_id="APR-1",
                        status="approved", decided_by="alice", version=2)
        wiring(decided)
        await wiring.drain()
        assert [(b.id, b.title) for b in inapp.banners()] == [("2", "Decided elsewhere")]

    asyncio.run(main())


def test_this_devices_own_decision_withdraws_but_does_not_announce() -> None:
    from sync.notify import PushNotifications

    async def main() -> None:
        inapp = InAppNotifier()
        dispatcher = NotificationDispatcher(inapp, now=lambda: at(12))
        read: list[str] = []
        wiring = PushNotifications(dispatcher, is_own_decision=lambda key: key == "entry-1",
                                   mark_read=read.append)
        await wiring.handle(PENDING)
        own = PushEvent.parse({"id": "2", "type": "governance.approval.decided",
                               "timestamp": "2026-01-01T12:00:00Z", "source": "stub",
                               "data": {"approval_id": "APR-1", "status": "approved"},
                               "metadata": {"causation_id": "entry-1"}})
        assert await wiring.handle(own) is None
        assert inapp.banners() == []
        assert read == ["2"]  # stored, but it does not raise the unread badge

        def broken(_id: str) -> None:
            raise RuntimeError("store closed")

        # A failure to mark it read is logged; the event is still handled without a banner.
        failing = PushNotifications(dispatcher, is_own_decision=lambda key: True,
                                    mark_read=broken)
        assert await failing.handle(own) is None

    asyncio.run(main())


def test_a_decision_also_drops_alerts_held_in_quiet_hours() -> None:
    from sync.notify import PushNotifications

    async def main() -> None:
        clock = Clock(at(23))
        inapp = InAppNotifier()
        dispatcher = NotificationDispatcher(inapp, quiet_hours=QuietHours(
            time(22), time(7), UTC), now=clock.now)
        wiring = PushNotifications(dispatcher)
        await wiring.handle(PENDING)
        await wiring.handle(event("governance.approval.deployed", "3", approval_id="APR-1"))
        clock.value = at(8)
        released = await dispatcher.release_due()
        assert [a.id for a in released] == ["3"]  # the deployed FYI, not the stale request

    asyncio.run(main())


def test_deployed_and_seed_changed_are_low_urgency() -> None:
    assert urgency_of(event("governance.approval.deployed")) is Urgency.LOW
    seed = alert_for(event("governance.seed.changed", seed_id="GEN-002"))
    assert seed.urgency is Urgency.LOW and "GEN-002" in seed.body


def test_the_person_may_hold_even_high_urgency_through_quiet_hours() -> None:
    async def main() -> None:
        recorder = Recorder()
        dispatcher = NotificationDispatcher(recorder, quiet_hours=QuietHours(
            time(22), time(7), UTC), now=lambda: at(23), urgent_override=False)
        violation = alert_for(event("governance.agent.violated", "4"))
        assert await dispatcher.deliver(violation) is Delivery.HELD
        assert recorder.shown == []

    asyncio.run(main())


def test_old_events_are_stored_but_alert_nobody() -> None:
    from sync.notify import PushNotifications

    async def main() -> None:
        recorder = Recorder()
        clock = Clock(at(12) + timedelta(days=2))
        wiring = PushNotifications(NotificationDispatcher(recorder, now=clock.now))
        assert await wiring.handle(PENDING) is None  # two days old: history, not news
        clock.value = at(13)
        assert await wiring.handle(PENDING) is Delivery.SHOWN
        always = PushNotifications(NotificationDispatcher(recorder, now=clock.now),
                                   max_age=None, now=lambda: at(12) + timedelta(days=9))
        assert await always.handle(PENDING) is Delivery.SHOWN
        assert recorder.shown == ["1", "1"]

    asyncio.run(main())


def test_a_step_up_that_cannot_reach_the_server_sends_nothing_and_says_why() -> None:
    from sync.errors import ServerUnreachable

    async def main() -> None:
        client = FakeClient()

        async def offline(alert: Alert) -> VetoConfirmation | None:
            raise ServerUnreachable("Confirming your identity needs the server; connect.")

        result = await NotificationActions(client, offline).handle(alert_for(PENDING), "veto")
        assert not result.done and "needs the server" in result.message
        assert client.calls == []

    asyncio.run(main())


def test_a_decision_the_client_refuses_keeps_the_banner_and_says_why() -> None:
    from sync.errors import InvalidDecision

    class Refusing(FakeClient):
        def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
            raise InvalidDecision(f"A approve of {approval_id!r} is already queued.")

        def veto(self, approval_id: str, category: VetoCategory, reason: str,
                 attachments: Any = None) -> OutboxEntry:
            raise InvalidDecision(f"Approval {approval_id!r} is deployed.")

    async def main() -> None:
        step_up, _ = confirm()
        inapp = InAppNotifier()
        inapp.set_action_handler(NotificationActions(Refusing(), step_up).handle)
        await inapp.show(alert_for(PENDING))
        approved = await inapp.act("1", "approve")
        assert not approved.done and "already queued" in approved.message
        vetoed = await inapp.act("1", "veto")
        assert not vetoed.done and "deployed" in vetoed.message
        assert [b.id for b in inapp.banners()] == ["1"]

    asyncio.run(main())


@pytest.mark.parametrize(("scopes", "offered"), [
    (frozenset({"governance:read"}), ["open"]),
    # Open stays whenever an action is taken away: the request can still be looked at.
    (frozenset({"governance:read", "governance:write"}), ["approve", "open"]),
    (frozenset({"governance:read", "veto:execute"}), ["veto", "open"]),
    (frozenset({"governance:read", "governance:write", "veto:execute"}), ["approve", "veto"])])
def test_an_alert_offers_only_the_actions_the_account_may_take(
        scopes: frozenset[str], offered: list[str]) -> None:
    from sync.alerts import permitted
    from sync.models import Account

    alert = alert_for(PENDING)
    who = Account(sub="s", username="someone", scopes=scopes)
    assert [a.id.value for a in permitted(alert, who).actions] == offered
    assert [a.id.value for a in permitted(alert, None).actions] == ["open"]
    opened = alert_for(event("governance.agent.violated", agent_name="Scout"))
    assert permitted(opened, None) is opened  # Open only: nothing to take away


def test_every_channel_of_a_composite_gets_the_action_handler() -> None:
    first, second = Recorder(), Recorder()

    async def handler(alert: Alert, action_id: str) -> ActionResult:
        return ActionResult(action_id, True)

    CompositeNotifier([first, second]).set_action_handler(handler)
    assert first.handler is handler and second.handler is handler
