"""Alerts that reach the governor and banners that hold still: reminders before a queued
veto's deadline and refused decisions are urgent alerts with their actions (through quiet
hours), Send now tries the outbox, a banner acted on keeps its place, new ones go below a
pending tap, and informational banners go by themselves."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, time
from typing import Any

from sync.errors import ServerUnreachable
from sync.models import (
    Account,
    DecisionAction,
    Notification,
    OutboxEntry,
    OutboxState,
    VetoCategory,
)
from sync.notify import (
    DECISION_REFUSED,
    VETO_UNSENT,
    ActionHandler,
    ActionId,
    ActionResult,
    Alert,
    DeviceAlerts,
    InAppNotifier,
    NotificationActions,
    NotificationCenter,
    NotificationDispatcher,
    NotifierInfo,
    QuietHours,
    Urgency,
    VetoConfirmation,
    alert_for,
)
from sync.push import PushEvent
from tests.sync.push_fixtures import IdleListener

NOW = datetime(2026, 11, 21, 23, 30, tzinfo=UTC)  # within 22:00-07:00 quiet hours (UTC)
QUIET = QuietHours(time(22), time(7), tz=UTC)


def entry(entry_id: str, approval_id: str, action: DecisionAction = DecisionAction.VETO,
          state: OutboxState = OutboxState.QUEUED, sub: str | None = "governor",
          **fields: Any) -> OutboxEntry:
    return OutboxEntry(id=entry_id, seq=int(entry_id.removeprefix("e")), kind="decision",
                       approval_id=approval_id, action=action, state=state,
                       created_at=NOW, sub=sub, **fields)


def reminder(entry_id: str, approval_id: str, *, read: bool = False) -> Notification:
    return Notification(
        id=f"reminder-{entry_id}-1", type=VETO_UNSENT, timestamp=NOW, source="device",
        read=read, data={"entry_id": entry_id, "approval_id": approval_id,
                         "message": f"Your veto of {approval_id} is not sent yet and the "
                                    "window closes in 1 hour. Connect to send it."})


class Client:
    """What the center reads: the outbox, stored notifications, the account."""

    def __init__(self) -> None:
        self.entries: list[OutboxEntry] = []
        self.stored: list[Notification] = []
        self.signed_in = True
        self.reachable = True
        self.listeners: list[Callable[[Any], None]] = []
        self.syncs = 0

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
        made = entry(f"e{len(self.entries) + 1}", approval_id, DecisionAction.APPROVE)
        self.entries.append(made)
        return made

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: Any = None) -> OutboxEntry:
        made = entry(f"e{len(self.entries) + 1}", approval_id)
        self.entries.append(made)
        return made

    def outbox(self, states: Any = None) -> list[OutboxEntry]:
        return [e for e in self.entries if states is None or e.state in states]

    def mark_read(self, notification_id: str) -> None:
        self.stored = [n.model_copy(update={"read": True}) if n.id == notification_id
                       else n for n in self.stored]

    async def sync_now(self) -> None:
        self.syncs += 1
        if self.reachable:
            self.entries = [e.model_copy(update={"state": OutboxState.APPLIED})
                            if e.state == OutboxState.QUEUED else e for e in self.entries]

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def emit(self, topic: str) -> None:
        for listener in list(self.listeners):
            listener(topic)

    def account(self) -> Account | None:
        return Account(sub="governor", username="governor",
                       scopes=frozenset()) if self.signed_in else None

    def notifications(self) -> list[Notification]:
        return list(self.stored)


class Recorder:
    def __init__(self) -> None:
        self.shown: list[Alert] = []

    def info(self) -> list[NotifierInfo]:
        return [NotifierInfo("recorder", True, "test")]

    async def show(self, alert: Alert) -> None:
        self.shown.append(alert)

    async def withdraw(self, alert_id: str) -> None:
        self.shown = [a for a in self.shown if a.id != alert_id]

    def set_action_handler(self, handler: ActionHandler) -> None:
        pass  # the tests press the actions through NotificationActions


def dispatcher(notifier: Recorder) -> NotificationDispatcher:
    return NotificationDispatcher(notifier, quiet_hours=QUIET, now=lambda: NOW)


# --- reminders and refusals ---------------------------------------------------------------

def test_a_reminder_of_an_unsent_veto_is_urgent_breaks_quiet_hours_and_offers_send_now(
        ) -> None:
    async def main() -> None:
        client, shown = Client(), Recorder()
        client.entries = [entry("e1", "REQ-7")]
        client.stored = [reminder("e1", "REQ-7")]
        alerts = DeviceAlerts(client, dispatcher(shown))
        [alert] = await alerts.check()
        assert alert.urgency is Urgency.HIGH and alert.title == "Veto not sent yet"
        assert "REQ-7" in alert.body and "1 hour" in alert.body
        assert [(a.id, a.label) for a in alert.actions] == [
            (ActionId.SEND_NOW, "Send now"), (ActionId.OPEN, "Open request")]
        assert [a.id for a in shown.shown] == [alert.id]  # shown at 23:30, quiet hours
        assert await alerts.check() == []  # once
        # Another reminder (10 minutes) is a new alert.
        client.stored.append(reminder("e1", "REQ-7").model_copy(
            update={"id": "reminder-e1-3"}))
        assert [a.id for a in await alerts.check()] == ["reminder-e1-3"]
        # Sent since: both reminders go.
        client.entries = [entry("e1", "REQ-7", state=OutboxState.APPLIED)]
        assert await alerts.check() == [] and shown.shown == []

    asyncio.run(main())


def test_a_reminder_already_read_or_of_a_veto_sent_since_raises_nothing() -> None:
    async def main() -> None:
        client, shown = Client(), Recorder()
        client.entries = [entry("e1", "REQ-7", state=OutboxState.APPLIED)]
        client.stored = [reminder("e1", "REQ-7"), reminder("e2", "REQ-8", read=True)]
        assert await DeviceAlerts(client, dispatcher(shown)).check() == []
        client.signed_in = False
        client.entries = [entry("e1", "REQ-7")]
        assert await DeviceAlerts(client, dispatcher(shown)).check() == []
        assert shown.shown == []

    asyncio.run(main())


def test_a_refused_decision_is_an_urgent_alert_naming_the_request_and_the_reason() -> None:
    async def main() -> None:
        client, shown = Client(), Recorder()
        client.entries = [
            entry("e1", "REQ-7", state=OutboxState.REJECTED, error_code="VETO_WINDOW_CLOSED",
                  error_message="The veto window of REQ-7 closed at 12:00."),
            entry("e2", "REQ-8", DecisionAction.APPROVE, state=OutboxState.REJECTED,
                  error_code="ALREADY_DECIDED"),
            # Another account's refusal is theirs: it does not speak here.
            entry("e3", "REQ-9", state=OutboxState.REJECTED, sub="auditor",
                  error_code="VERSION_CONFLICT")]
        sink = dispatcher(shown)
        device = DeviceAlerts(client, sink)
        veto, approval = await device.check()
        assert (veto.title, veto.urgency, veto.approval_id) == (
            "Veto refused", Urgency.HIGH, "REQ-7")
        assert veto.body == ("Your veto of REQ-7 was not applied: the veto window closed. "
                             "The veto window of REQ-7 closed at 12:00.")
        assert approval.title == "Approval refused"
        assert approval.body == "Your approval of REQ-8 was not applied: it was already " \
                                "decided."
        assert [a.label for a in veto.actions] == ["Open request"]
        # The request's deployment does not take the refusal away: it is about that.
        await sink.forget_approval("REQ-7")
        assert {a.id for a in shown.shown} == {"refused-e1", "refused-e2"}
        assert all(a.event_type == DECISION_REFUSED for a in shown.shown)
        # Discarded (or decided again): its refusal goes.
        client.entries = [e for e in client.entries if e.id != "e2"]
        assert await device.check() == []
        assert [a.id for a in shown.shown] == ["refused-e1"]

    asyncio.run(main())


# --- send now -------------------------------------------------------------------------------

async def no_step_up(alert: Alert) -> VetoConfirmation | None:
    return None


def test_send_now_tries_the_outbox_and_says_when_the_veto_still_waits() -> None:
    async def main() -> None:
        client = Client()
        client.entries = [entry("e1", "REQ-7")]
        client.stored = [reminder("e1", "REQ-7")]
        [alert] = await DeviceAlerts(client, dispatcher(Recorder())).check()
        actions = NotificationActions(client, no_step_up)
        client.reachable = False
        waiting = await actions.handle(alert, ActionId.SEND_NOW)
        assert not waiting.done and client.syncs == 1
        assert "still not sent" in waiting.message.lower() and "REQ-7" in waiting.message
        client.reachable = True
        sent = await actions.handle(alert, ActionId.SEND_NOW)
        assert sent.done and sent.message == "The veto of REQ-7 left this device."

        class Failing(Client):
            async def sync_now(self) -> None:
                raise ServerUnreachable("The server at https://gov.example does not answer.")

        failing = Failing()
        failing.entries = [entry("e1", "REQ-7")]
        refused = await NotificationActions(failing, no_step_up).handle(alert,
                                                                         ActionId.SEND_NOW)
        assert not refused.done
        assert refused.message.startswith("Not sent: The server at https://gov.example")

    asyncio.run(main())


# --- the center raises them as they happen ------------------------------------------------------

def test_the_center_raises_a_refusal_when_the_outbox_changes_and_stops_listening() -> None:
    async def main() -> None:
        client = Client()
        center = NotificationCenter(IdleListener(), client, no_step_up, quiet_hours=QUIET,
                                    now=lambda: NOW)
        await center.start()
        assert center.inapp.banners() == []
        client.entries = [entry("e1", "REQ-7", state=OutboxState.REJECTED,
                                error_code="ALREADY_DECIDED")]
        client.emit("outbox")
        await center.drain()
        assert [b.title for b in center.inapp.banners()] == ["Veto refused"]
        await center.stop()
        assert client.listeners == []

    asyncio.run(main())


# --- banners that hold still ----------------------------------------------------------------------

def pending(event_id: str, approval_id: str) -> Alert:
    return alert_for(PushEvent.parse({
        "id": event_id, "type": "governance.approval.pending",
        "timestamp": "2026-01-01T12:00:00Z", "source": "stub",
        "data": {"approval_id": approval_id}, "metadata": {}}))


def gated(done: bool, message: str = "") -> tuple[asyncio.Event, Any]:
    """An action handler that waits (a dialog, the undo window) until the gate opens."""
    gate = asyncio.Event()

    async def handler(alert: Alert, action_id: str) -> ActionResult:
        await gate.wait()
        return ActionResult(action_id, done, None,
                            message.format(approval_id=alert.approval_id))

    return gate, handler


class Timers:
    """Stands in for ``loop.call_later``: fires only when the test says."""

    def __init__(self) -> None:
        self.due: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.due.append((delay, callback))

    def fire(self) -> None:
        due, self.due = self.due, []
        for _, callback in due:
            callback()


def test_a_banner_being_acted_on_keeps_its_place_and_new_ones_go_below() -> None:
    async def main() -> None:
        timers = Timers()
        inapp = InAppNotifier(later=timers, now=lambda: NOW)
        gate, handler = gated(True, "Approval of {approval_id} queued.")
        inapp.set_action_handler(handler)
        await inapp.show(pending("1", "REQ-1"))
        await inapp.show(pending("2", "REQ-2"))
        assert [b.id for b in inapp.banners()] == ["2", "1"]  # newest first when idle
        acting = asyncio.create_task(inapp.act("2", "approve"))
        await asyncio.sleep(0)
        assert inapp.busy("2")
        await inapp.show(pending("3", "REQ-3"))
        assert [b.id for b in inapp.banners()] == ["2", "1", "3"]  # below, not on top
        gate.set()
        result = await acting
        assert result.done and not inapp.busy("2")
        # In its place: what became of it, without buttons; nothing slid up.
        assert [(b.id, b.title, b.actions) for b in inapp.banners()] == [
            ("2#done", "Approval of REQ-2 queued.", ()),
            ("1", "Approval needed", pending("1", "REQ-1").actions),
            ("3", "Approval needed", pending("3", "REQ-3").actions)]
        [(delay, _)] = timers.due
        assert delay == 8.0
        timers.fire()  # the note goes by itself
        assert [b.id for b in inapp.banners()] == ["1", "3"]
        # Pressed twice, the second press does not run the action again.
        second, slow = gated(False, "kept")
        inapp.set_action_handler(slow)
        first = asyncio.create_task(inapp.act("1", "approve"))
        await asyncio.sleep(0)
        try:
            await inapp.act("1", "approve")
        except ValueError as exc:
            assert "already being acted on" in str(exc)
        else:
            raise AssertionError("a second press ran the action again")
        second.set()
        assert not (await first).done and [b.id for b in inapp.banners()] == ["1", "3"]

    asyncio.run(main())


def test_urgent_banners_stay_on_top_of_newer_ordinary_ones() -> None:
    async def main() -> None:
        inapp = InAppNotifier(later=Timers(), now=lambda: NOW)
        client = Client()
        client.entries = [entry("e1", "REQ-7", state=OutboxState.REJECTED,
                                error_code="VETO_WINDOW_CLOSED")]
        [refused] = await DeviceAlerts(client, dispatcher(Recorder())).check()
        await inapp.show(pending("1", "REQ-1"))
        await inapp.show(refused)
        await inapp.show(pending("2", "REQ-2"))
        assert [b.id for b in inapp.banners()] == ["refused-e1", "2", "1"]

    asyncio.run(main())


def test_informational_banners_go_by_themselves_but_not_while_a_tap_is_pending() -> None:
    async def main() -> None:
        timers = Timers()
        inapp = InAppNotifier(later=timers, now=lambda: NOW)
        decided = alert_for(PushEvent.parse({
            "id": "9", "type": "governance.approval.decided",
            "timestamp": "2026-01-01T12:00:00Z", "source": "stub",
            "data": {"approval_id": "REQ-9", "status": "approved"}, "metadata": {}}))
        assert decided.urgency is Urgency.LOW
        await inapp.show(decided)
        await inapp.show(pending("1", "REQ-1"))  # asks for a decision: stays
        gate, handler = gated(False)
        inapp.set_action_handler(handler)
        acting = asyncio.create_task(inapp.act("1", "approve"))
        await asyncio.sleep(0)
        timers.fire()  # due while the tap is pending: it waits, so nothing moves
        assert [b.id for b in inapp.banners()] == ["1", "9"]
        gate.set()
        await acting
        timers.fire()
        assert [b.id for b in inapp.banners()] == ["1"]
        assert timers.due == []  # the one asking for a decision has no timer
        # An auto-approval is for information, but its Veto is a decision: it stays.
        await inapp.show(alert_for(PushEvent.parse({
            "id": "10", "type": "governance.seed.auto_approved",
            "timestamp": "2026-01-01T12:00:00Z", "source": "stub",
            "data": {"approval_id": "REQ-10"}, "metadata": {}})))
        assert timers.due == []

    asyncio.run(main())


def test_a_refused_approval_hook_queues_nothing_and_keeps_the_banner() -> None:
    async def main() -> None:
        client = Client()

        async def cancelled(alert: Alert) -> None:
            raise ServerUnreachable("you cancelled after seeing its warnings; nothing was "
                                    "queued.")

        inapp = InAppNotifier(later=Timers())
        inapp.set_action_handler(NotificationActions(client, no_step_up,
                                                     before_approve=cancelled).handle)
        await inapp.show(pending("1", "REQ-1"))
        result = await inapp.act("1", "approve")
        assert not result.done and client.entries == []
        assert result.message == ("Approval not queued: you cancelled after seeing its "
                                  "warnings; nothing was queued.")
        assert [b.id for b in inapp.banners()] == ["1"]

    asyncio.run(main())
