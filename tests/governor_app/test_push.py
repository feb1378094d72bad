"""``governor_app.push``: the app's part of push over the in-memory client (which owns the
center, as every client does): banners act through the outbox, a veto passes the same
step-up as the veto screen, an approval shows its danger flags, and every failure is said
in words. How the client's center follows sign-in is ``tests/sync/test_alert_feed.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pytest

from governor_app.preferences import Preferences, PreferenceStore
from governor_app.push import (
    ApprovePrompt,
    PushService,
    VetoAnswer,
    VetoPrompt,
    alert_preferences,
    banner_view,
    danger_flags,
    route_for,
    visible_banners,
)
from sync.alerts import NO_QUIET_HOURS, NOTIFICATIONS_OFF, Alert, Urgency, alert_for
from sync.errors import InvalidDecision, ServerUnreachable
from sync.fakes import FakeGovernorClient
from sync.models import DecisionAction, OutboxEntry, VetoCategory
from sync.notify import NotificationCenter
from sync.push import (
    AGENT_VIOLATED,
    APPROVAL_PENDING,
    BUDGET_THRESHOLD,
    PushEvent,
)

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Presenter:
    """A session's banner UI: answers veto prompts from a script, records navigation."""

    def __init__(self, *answers: VetoAnswer | None, take_back: bool = False,
                 approve_anyway: bool = True) -> None:
        self.answers = list(answers)
        self.prompts: list[VetoPrompt] = []
        self.opened: list[str] = []
        self.take_back = take_back  # what the governor does in the undo window
        self.held: list[tuple[str, float]] = []
        self.approve_anyway = approve_anyway  # the answer to the danger flags
        self.approve_prompts: list[ApprovePrompt] = []
        self.holds: list[str] = []  # what was held: "Veto", "Approval"

    async def ask_veto(self, prompt: VetoPrompt) -> VetoAnswer | None:
        self.prompts.append(prompt)
        return self.answers.pop(0)

    async def confirm_approval(self, prompt: ApprovePrompt) -> bool:
        self.approve_prompts.append(prompt)
        return self.approve_anyway

    async def hold(self, approval_id: str, what: str, seconds: float) -> bool:
        self.held.append((approval_id, seconds))
        self.holds.append(what)
        return not self.take_back

    def open(self, route: str) -> None:
        self.opened.append(route)


def event(event_id: str, type_: str = APPROVAL_PENDING, **data: Any) -> PushEvent:
    return PushEvent(id=event_id, type=type_, timestamp=NOW, source="stub", data=data,
                     metadata={}, cursor=event_id)


def pending(event_id: str = "41", approval_id: str = "REQ-0001") -> Alert:
    return alert_for(event(event_id, approval_id=approval_id, agent_name="Tutor #1"))


def run(body: Callable[[PushService, FakeGovernorClient], Awaitable[None]], *,
        client: FakeGovernorClient | None = None, step_up: bool = True,
        prefs: Preferences | None = None, undo_seconds: float = 5.0) -> None:
    async def main() -> None:
        fake = client or FakeGovernorClient(now=lambda: NOW)
        store = PreferenceStore()
        if prefs is not None:
            store.save(prefs)
        service = PushService(fake, preferences=store, step_up_for_veto=step_up,
                              undo_seconds=undo_seconds)
        await service.start()
        try:
            await body(service, fake)
        finally:
            await service.stop()
            await fake.stop()
    asyncio.run(main())


def center(client: FakeGovernorClient) -> NotificationCenter:
    """The center the in-memory client runs while signed in."""
    assert client.alert_feed.center is not None
    return client.alert_feed.center


async def show(client: FakeGovernorClient, alert: Alert) -> None:
    await center(client).dispatcher.deliver(alert)


def vetoes(client: FakeGovernorClient) -> list[OutboxEntry]:
    return [e for e in client.outbox() if e.action == DecisionAction.VETO]


# --- push follows sign-in (the client's; the app only registers) ------------------------

def test_banners_come_while_signed_in_and_go_at_sign_out() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        assert service.running  # signed in at start
        assert [c.name for c in service.channels()] == ["in-app banner"]
        await show(client, pending("41", "REQ-0001"))
        assert [b.alert_id for b in service.banners()] == ["41"]
        await client.sign_out()
        assert service.banners() == []  # at once, before the center has stopped
        await client.alert_feed.drain()
        assert not service.running and client.alert_feed.center is None
        assert "signed in" in service.channels()[0].reason
        await client.sign_in_with_password("governor", "governor")
        await client.alert_feed.drain()
        assert service.running and service.banners() == []
    run(body)


def test_a_client_signed_out_at_start_gets_its_banners_at_sign_in() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        assert not service.running and service.banners() == []
        await client.sign_in_with_password("governor", "governor")  # the demo's auto-login
        await client.alert_feed.drain()
        assert service.running
    run(body, client=FakeGovernorClient(signed_in_as=None, now=lambda: NOW))


def test_stopped_the_app_is_asked_nothing_more() -> None:
    async def main() -> None:
        client = FakeGovernorClient(now=lambda: NOW)
        service = PushService(client, preferences=PreferenceStore())
        await service.start()
        await service.stop()
        assert not service.running and client.alert_feed.hooks is None
        outcome = await service.act("41", "approve")
        assert outcome == outcome.__class__("Notifications are not running: sign in again.",
                                            False)
    asyncio.run(main())


# --- banners ------------------------------------------------------------------------------

def test_banners_are_newest_first_and_every_change_is_announced() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        changes: list[int] = []
        service.subscribe(lambda: changes.append(len(service.banners())))
        await show(client, pending("41", "REQ-0001"))
        await show(client, pending("42", "REQ-0002"))
        assert [b.alert_id for b in service.banners()] == ["42", "41"]
        assert changes == [1, 2]
        service.dismiss("42")
        assert [b.alert_id for b in service.banners()] == ["41"]
        service.dismiss_all()
        assert service.banners() == [] and changes[-1] == 0
    run(body)


def test_a_banner_says_what_it_is_about_and_offers_its_actions() -> None:
    view = banner_view(pending("41", "REQ-0007"))
    assert view.title == "Approval needed" and view.reference == "REQ-0007"
    assert [(b.label, b.destructive) for b in view.buttons] == [("Approve", False),
                                                              ("Veto", True)]
    assert view.label == "Approval needed. Tutor #1 asks to be deployed (REQ-0007)."
    violation = banner_view(alert_for(event("50", AGENT_VIOLATED, violation_id="VIO-0009",
                                            agent_id="agent-0002", kind="safety")))
    assert violation.urgent and violation.label.startswith("Urgent: Violation. ")
    assert violation.label.endswith("[VIO-0009]")
    assert [b.label for b in violation.buttons] == ["Open"]


def test_open_goes_to_the_request_or_to_the_list_the_event_is_about() -> None:
    assert route_for(pending("41", "REQ-0003")) == "/approvals/REQ-0003"
    assert route_for(alert_for(event("1", AGENT_VIOLATED, violation_id="VIO-1"))) == \
        "/violations"
    assert route_for(alert_for(event("2", BUDGET_THRESHOLD, threshold=95))) == "/agents"
    assert route_for(alert_for(event("3", "governance.seed.changed"))) == "/notifications"


# --- acting -------------------------------------------------------------------------------

def test_approve_from_a_banner_queues_it_marks_it_read_and_removes_the_banner() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("N-1", "REQ-0001"))
        outcome = await service.act("N-1", "approve", Presenter())
        assert outcome.done and outcome.message == "Approval of REQ-0001 queued."
        [entry] = client.outbox()
        assert (entry.approval_id, entry.action) == ("REQ-0001", DecisionAction.APPROVE)
        assert [(b.title, b.buttons) for b in service.banners()] == [
            ("Approval of REQ-0001 queued.", ())]  # in its place, until it goes by itself
        assert next(n for n in client.notifications() if n.id == "N-1").read
    run(body)


def test_an_action_refused_by_the_client_is_said_and_the_banner_stays() -> None:
    class Decided(FakeGovernorClient):
        def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
            raise InvalidDecision(f"Approval {approval_id!r} is vetoed; it can no longer "
                                  "take a approve.")

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act("41", "approve", Presenter())
        assert not outcome.done
        assert outcome.message == ("Approval not queued: Approval 'REQ-0001' is vetoed; it "
                                   "can no longer take a approve.")
        assert len(service.banners()) == 1
    run(body, client=Decided(now=lambda: NOW))


def test_an_action_on_a_banner_that_is_gone_is_said() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        await center(client).dispatcher.forget_approval("REQ-0001")  # decided elsewhere
        outcome = await service.act("41", "approve", Presenter())
        assert not outcome.done and "That notification is gone" in outcome.message
        assert client.outbox() == []
        await show(client, pending("42", "REQ-0002"))
        outcome = await service.act("42", "open-sesame", Presenter())
        assert not outcome.done and "has no action 'open-sesame'" in outcome.message
    run(body)


def test_open_navigates_the_session_that_pressed_it() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        first, second = Presenter(), Presenter()
        service.register(first)
        service.register(second)
        await show(client, alert_for(event("N-2", AGENT_VIOLATED, violation_id="VIO-3")))
        outcome = await service.act("N-2", "open", first)
        assert outcome.done and outcome.message == ""
        assert first.opened == ["/violations"] and second.opened == []
        assert next(n for n in client.notifications() if n.id == "N-2").read
    run(body)


# --- veto and its step-up -----------------------------------------------------------------

def test_veto_asks_for_the_password_and_queues_only_once_it_is_right() -> None:
    presenter = Presenter(VetoAnswer(VetoCategory.SAFETY, "Unsafe exec.", "nope"),
                          VetoAnswer(VetoCategory.SAFETY, "Unsafe exec.", "governor"))

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act("41", "veto", presenter)
        assert outcome.done and outcome.message == "Veto of REQ-0001 queued."
        first, second = presenter.prompts
        assert first.password and first.error == "" and first.approval_id == "REQ-0001"
        assert second.error == "That password is not right; type it again."
        assert second.category == VetoCategory.SAFETY and second.reason == "Unsafe exec."
        [entry] = vetoes(client)
        assert entry.payload["category"] == "safety"
        assert entry.payload["reason"] == "Unsafe exec."
        assert [b.title for b in service.banners()] == ["Veto of REQ-0001 queued."]
        # Held for the undo window only once confirmed (not after the wrong password).
        assert presenter.held == [("REQ-0001", 5.0)]
    run(body)


def test_a_veto_taken_back_in_the_undo_window_queues_nothing_and_keeps_the_banner() -> None:
    presenter = Presenter(VetoAnswer(VetoCategory.SAFETY, "Unsafe exec.", "governor"),
                          take_back=True)

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act("41", "veto", presenter)
        assert not outcome.done
        assert outcome.message == ("Veto not sent: you took it back within the 5 s undo "
                                   "window; nothing was queued.")
        assert presenter.held == [("REQ-0001", 5.0)]
        assert vetoes(client) == [] and len(service.banners()) == 1
        # The banner still acts: this time the window runs out and the veto is queued.
        presenter.answers.append(VetoAnswer(VetoCategory.SAFETY, "Unsafe exec.",
                                            "governor"))
        presenter.take_back = False
        outcome = await service.act("41", "veto", presenter)
        assert outcome.done and len(vetoes(client)) == 1
    run(body)


def test_with_no_undo_window_a_confirmed_veto_is_queued_at_once() -> None:
    presenter = Presenter(VetoAnswer(VetoCategory.OTHER, "No.", "governor"), take_back=True)

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act("41", "veto", presenter)
        assert outcome.done and presenter.held == [] and len(vetoes(client)) == 1
    run(body, undo_seconds=0)


def test_a_cancelled_step_up_queues_nothing_and_keeps_the_banner() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act("41", "veto", Presenter(None))
        assert not outcome.done
        assert outcome.message == "Veto not sent: the identity check was cancelled."
        assert vetoes(client) == [] and len(service.banners()) == 1
    run(body)


def test_a_password_refused_three_times_ends_the_step_up() -> None:
    wrong = VetoAnswer(VetoCategory.OTHER, "No.", "wrong")

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        presenter = Presenter(wrong, wrong, wrong)
        outcome = await service.act("41", "veto", presenter)
        assert not outcome.done
        assert outcome.message == ("Veto not sent: the password was refused 3 times; "
                                   "nothing was queued.")
        assert len(presenter.prompts) == 3 and vetoes(client) == []
        assert len(service.banners()) == 1
    run(body)


def test_a_step_up_that_cannot_be_checked_offline_is_said() -> None:
    class NoVerifier(FakeGovernorClient):
        async def confirm_identity(self, password: str) -> bool:
            raise ServerUnreachable("The password cannot be checked offline on this device "
                                    "yet: connect once, then try again.")

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act(
            "41", "veto", Presenter(VetoAnswer(VetoCategory.OTHER, "No.", "governor")))
        assert not outcome.done
        assert outcome.message.startswith("Veto not sent: The password cannot be checked "
                                          "offline")
        assert vetoes(client) == []
    run(body, client=NoVerifier(now=lambda: NOW))


def test_an_empty_reason_is_asked_again_before_any_password_check() -> None:
    checked: list[str] = []

    class Counting(FakeGovernorClient):
        async def confirm_identity(self, password: str) -> bool:
            checked.append(password)
            return await super().confirm_identity(password)

    presenter = Presenter(VetoAnswer(VetoCategory.BUDGET, "   ", "governor"),
                          VetoAnswer(VetoCategory.BUDGET, "Over budget.", "governor"))

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act("41", "veto", presenter)
        assert outcome.done
        assert presenter.prompts[1].error == ("Explain the veto: the requester reads this "
                                              "reason.")
        assert checked == ["governor"]
    run(body, client=Counting(now=lambda: NOW))


def test_without_step_up_the_veto_dialog_asks_no_password() -> None:
    presenter = Presenter(VetoAnswer(VetoCategory.OTHER, "Not now."))

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        outcome = await service.act("41", "veto", presenter)
        assert outcome.done and not presenter.prompts[0].password
        assert len(vetoes(client)) == 1
    run(body, step_up=False)


def test_a_veto_pressed_on_an_os_notification_uses_the_session_used_last() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        alert = pending("41", "REQ-0001")
        await show(client, alert)
        # No session open: the identity check has nowhere to be shown.
        result = await center(client).actions.handle(alert, "veto")
        assert not result.done
        assert result.message == ("Veto not sent: open the app to veto: the identity check "
                                  "is shown there.")
        older = Presenter()
        newer = Presenter(VetoAnswer(VetoCategory.OTHER, "From the desktop.", "governor"))
        service.register(newer)
        service.register(older)
        await service.act("99", "approve", newer)  # pressed something last: it answers
        result = await center(client).actions.handle(alert, "veto")
        assert result.done and len(newer.prompts) == 1 and older.prompts == []
    run(body)


# --- preferences --------------------------------------------------------------------------

def test_quiet_hours_come_from_the_preferences() -> None:
    assert alert_preferences(Preferences()).dispatch() == (NO_QUIET_HOURS, True)
    quiet, override = alert_preferences(Preferences(quiet_hours=True, quiet_start="22:30",
                                                    quiet_end="06:00",
                                                    urgent_override=False)).dispatch()
    assert (quiet.start, quiet.end, override) == (time(22, 30), time(6, 0), False)
    assert alert_preferences(Preferences(quiet_hours=True, quiet_start="late")).dispatch() \
        == (NO_QUIET_HOURS, True)
    off, override = alert_preferences(Preferences(notifications=False)).dispatch()
    assert off is NOTIFICATIONS_OFF and not override and off.is_quiet(NOW)


def test_quiet_hours_apply_at_once_and_release_what_they_held() -> None:
    hour = NOW.astimezone().hour  # quiet hours are in the device's own time zone
    quiet_now = Preferences(quiet_hours=True, quiet_start=f"{hour:02d}:00",
                            quiet_end=f"{(hour + 1) % 24:02d}:00")

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await service.apply_preferences(quiet_now)
        await show(client, pending("41", "REQ-0001"))
        urgent = alert_for(event("50", AGENT_VIOLATED, violation_id="VIO-1"))
        await show(client, urgent)
        assert [b.alert_id for b in service.banners()] == ["50"]  # breaks through
        await service.apply_preferences(quiet_now.with_(quiet_hours=False))
        # Released, it goes under the urgent one: that stays in sight.
        assert [b.alert_id for b in service.banners()] == ["50", "41"]
    run(body)


def test_notifications_off_clears_the_banners_and_nothing_pops_up_when_back_on() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("41", "REQ-0001"))
        off = Preferences(notifications=False)
        await service.apply_preferences(off)
        assert service.banners() == []
        await show(client, alert_for(event("50", AGENT_VIOLATED, violation_id="VIO-1")))
        assert service.banners() == []  # not even urgent ones
        await service.apply_preferences(off.with_(notifications=True))
        assert service.banners() == []
        await show(client, pending("42", "REQ-0002"))
        assert [b.alert_id for b in service.banners()] == ["42"]
    run(body)


def test_a_center_started_later_takes_the_saved_quiet_hours() -> None:
    prefs = Preferences(quiet_hours=True, quiet_start="11:00", quiet_end="13:00",
                        urgent_override=False)

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        dispatcher = center(client).dispatcher
        assert dispatcher.quiet_hours.start == time(11) and not dispatcher.urgent_override
    run(body, prefs=prefs)


@pytest.mark.parametrize("reason, problem", [
    ("ok", ""), ("", "Explain the veto"), ("x" * 2001, "shorten it to 2000")])
def test_a_veto_answer_is_checked_as_the_server_would(reason: str, problem: str) -> None:
    message = VetoAnswer(VetoCategory.OTHER, reason).problem()
    assert (problem in message) if problem else message == ""


def test_the_settings_screen_lists_every_channel_and_why() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        assert service.channel_lines(web=True, phone_os=False) == [
            "In-app banner: active (shown inside the app while it is open)",
            "Phone notification: inactive (only in the Android / iOS app (flet build); this "
            "is the web app)"]
        assert service.channel_lines(web=False, phone_os=True)[-1].startswith(
            "Phone notification: inactive (not in this build yet")
        status: Any = center(client).stream_status()
        assert service.stream_state() == "Connected: events arrive within seconds."
        status.connected = False
        assert service.stream_state() == "Connecting."
        status.last_error = "the server closed the event stream"
        assert service.stream_state() == "Reconnecting (the server closed the event stream)."
        await client.sign_out()
        assert service.stream_state() == "Not listening."
    run(body)


def test_after_a_cold_start_the_center_starts_once_the_engine_takes_over(
        tmp_path: Path) -> None:
    from sync.api import FakeAuthenticator
    from sync.cold_start import StartingClient
    from sync.engine import SyncEngine
    from sync.settings import GovernorSettings
    from sync.store import LocalStore
    from sync.store_reads import DATABASE_NAME, server_identity
    from tests.sync.conftest import GOVERNOR

    server = "http://127.0.0.1:9"  # nothing listens: the stream keeps retrying
    database = tmp_path / "engine" / DATABASE_NAME
    store = LocalStore(database)  # as the engine left it: signed in, no dashboard yet
    store.bind_server(server_identity(server))
    store.keep_account(GOVERNOR.model_dump())
    store.close()

    built: list[SyncEngine] = []

    def build() -> SyncEngine:
        built.append(SyncEngine(GovernorSettings(server_url=server,
                                                 data_dir=tmp_path / "engine",
                                                 sync_interval=0),
                                authenticator=FakeAuthenticator(GOVERNOR)))
        return built[-1]

    async def until_running(service: PushService) -> None:
        while not service.running:  # the hand-over starts it right after the engine
            await asyncio.sleep(0.01)

    async def main() -> None:
        client = StartingClient(build, database, server, build_at_latest=3600)
        await client.start()  # the first screen comes from the store
        service = PushService(client, preferences=PreferenceStore())
        await service.start()
        try:
            assert not service.running and service.banners() == []  # no engine yet
            assert service.channels()[0].reason == "starts with the app, in a moment"
            assert service.stream_state() == "Not listening."
            outcome = await service.act("41", "approve")
            assert not outcome.done and "start with the app" in outcome.message
            service.dismiss("41")  # nothing shown yet: nothing to take away
            quiet = Preferences(quiet_hours=True, quiet_start="11:00", quiet_end="13:00")
            await service.apply_preferences(quiet)  # kept for the engine
            await client.sync_now()  # needs the engine: built and handed over
            await asyncio.wait_for(until_running(service), timeout=60)
            [engine] = built
            assert engine.alert_feed.hooks is service  # the app's hooks went over
            assert engine.alert_feed.center is not None
            listener: Any = engine.alert_feed.center.listener
            assert listener.sink is engine  # the engine takes the events
            assert engine.alert_feed.center.dispatcher.quiet_hours.start == time(11)
            await service.stop()
            assert engine.alert_feed.hooks is None and not service.running
        finally:
            await service.stop()
            await client.stop()
    asyncio.run(main())


# --- one-tap actions that are safe ----------------------------------------------------------

def test_danger_flags_come_from_the_servers_judgments_in_the_request() -> None:
    fake = FakeGovernorClient(now=lambda: NOW)
    risky = fake.approval("REQ-0001")
    assert risky is not None
    assert danger_flags(risky) == ("Dangerous grant: system_call:exec",)
    broken = risky.model_copy(update={
        "wasm_report": risky.wasm_report.model_copy(update={"valid": False}),
        "seed_matches": []})
    assert danger_flags(broken) == ("Dangerous grant: system_call:exec",
                                    "The WASM module is invalid.",
                                    "No precedent seed matches it.")
    safe = risky.model_copy(update={"capabilities": [
        {"capability": "file_read:/data/customers", "dangerous": False}]})
    assert danger_flags(safe) == ()
    [unknown] = danger_flags(None)
    assert "not on this device" in unknown
    # Cached from its notification only: no checks known, so it is not called safe.
    assert danger_flags(safe.model_copy(update={"pipeline": []})) == (unknown,)


def test_a_banner_approve_shows_the_flags_then_holds_it_for_the_undo_window() -> None:
    presenter = Presenter()

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("N-1", "REQ-0001"))
        outcome = await service.act("N-1", "approve", presenter)
        assert outcome.done and outcome.message == "Approval of REQ-0001 queued."
        [prompt] = presenter.approve_prompts
        assert (prompt.approval_id, prompt.flags) == (
            "REQ-0001", ("Dangerous grant: system_call:exec",))
        assert presenter.holds == ["Approval"] and presenter.held == [("REQ-0001", 5.0)]
        assert [e.action for e in client.outbox()] == [DecisionAction.APPROVE]
    run(body)


def test_a_banner_approve_cancelled_at_the_flags_queues_nothing_and_keeps_the_banner(
        ) -> None:
    presenter = Presenter(approve_anyway=False)

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("N-1", "REQ-0001"))
        outcome = await service.act("N-1", "approve", presenter)
        assert not outcome.done and client.outbox() == []
        assert outcome.message == ("Approval not queued: you cancelled after seeing its "
                                   "warnings; nothing was queued.")
        assert presenter.holds == []  # never held: nothing to undo
        assert [b.alert_id for b in service.banners()] == ["N-1"]
    run(body)


def test_a_banner_approve_without_flags_asks_nothing_but_can_be_taken_back() -> None:
    fake = FakeGovernorClient(now=lambda: NOW)
    detail = fake.approval("REQ-0001")
    assert detail is not None
    fake._approvals["REQ-0001"] = detail.model_copy(update={"capabilities": []})
    presenter = Presenter(take_back=True)

    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("N-1", "REQ-0001"))
        outcome = await service.act("N-1", "approve", presenter)
        assert presenter.approve_prompts == [] and presenter.holds == ["Approval"]
        assert not outcome.done and client.outbox() == []
        assert outcome.message == ("Approval not queued: you took it back within the 5 s "
                                   "undo window; nothing was queued.")
    run(body, client=fake)


def test_an_os_notification_approve_of_a_flagged_request_needs_the_app_open() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending("N-1", "REQ-0001"))
        outcome = await service.act("N-1", "approve")  # no session: an OS notification
        assert not outcome.done and client.outbox() == []
        assert outcome.message == ("Approval not queued: open the app to approve: this "
                                   "request has warnings to look at first.")
    run(body)


def test_on_a_phone_one_banner_is_drawn_and_the_rest_are_behind_more() -> None:
    assert visible_banners(phone=True) == 1
    assert visible_banners(phone=False) == 3


def test_a_banner_that_only_reports_reads_as_one_sentence() -> None:
    view = banner_view(Alert(id="1#done", event_type="governor.banner.outcome",
                             title="Approval of REQ-0001 queued.", body="",
                             urgency=Urgency.LOW, created_at=NOW, actions=()))
    assert view.label == "Approval of REQ-0001 queued." and view.buttons == ()


# --- failures that speak ---------------------------------------------------------------------

def test_a_refusal_of_the_governors_own_decision_becomes_an_urgent_banner() -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        veto = client.veto("REQ-0002", VetoCategory.SAFETY, "Unsafe.")
        client.reject(veto.id, "VETO_WINDOW_CLOSED", "The veto window closed at 11:00.")
        await center(client).drain()
        [banner] = service.banners()
        assert banner.urgent and banner.title == "Veto refused"
        assert banner.body == ("Your veto of REQ-0002 was not applied: the veto window "
                               "closed. The veto window closed at 11:00.")
        assert [b.label for b in banner.buttons] == ["Open request"]
        presenter = Presenter()
        outcome = await service.act(banner.alert_id, "open", presenter)
        assert outcome.done and presenter.opened == ["/approvals/REQ-0002"]
    run(body)


# --- what the account may do ----------------------------------------------------------------

@pytest.mark.parametrize(("who", "buttons"), [
    ("governor", ["approve", "veto"]), ("auditor", ["open"])])
def test_a_banner_offers_only_what_the_signed_in_account_may_do(who: str,
                                                                buttons: list[str]) -> None:
    async def body(service: PushService, client: FakeGovernorClient) -> None:
        await show(client, pending())
        [banner] = service.banners()
        assert [b.action_id for b in banner.buttons] == buttons
        if who == "auditor":  # nothing to press that would ask a password, then refuse
            outcome = await service.act(banner.alert_id, "veto")
            assert not outcome.done and "no action 'veto'" in outcome.message
            assert client.outbox() == []
    run(body, client=FakeGovernorClient(signed_in_as=who, now=lambda: NOW))
