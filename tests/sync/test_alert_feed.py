"""``sync.alert_feed.AlertFeed``: the client's center follows sign-in once hooks are set,
a center that cannot start is said (and retried at the next sign-in), and what needs a
person is asked through the hooks or refused in words."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time
from typing import Any

from sync.alert_feed import AlertFeed
from sync.alerts import (
    NO_QUIET_HOURS,
    Alert,
    AlertPreferences,
    BeforeApprove,
    QuietHours,
    StepUp,
    alert_for,
)
from sync.errors import ServerUnreachable
from sync.fakes import FakeGovernorClient
from sync.models import APPROVAL_PENDING
from sync.notify import NotificationCenter
from sync.push import PushEvent
from tests.sync.push_fixtures import AnsweringHooks, IdleListener

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Factory:
    """Makes centers over an idle listener, as the engine makes real ones."""

    def __init__(self, client: FakeGovernorClient, fail: BaseException | None = None,
                 start_fails: BaseException | None = None) -> None:
        self.client = client
        self.made: list[NotificationCenter] = []
        self.fail = fail
        self.start_fails = start_fails

    def __call__(self, step_up: StepUp, *, open_approval: Callable[[Alert], object],
                 quiet_hours: QuietHours, before_approve: BeforeApprove
                 ) -> NotificationCenter:
        if self.fail is not None:
            raise self.fail
        start_fails = self.start_fails

        class Center(NotificationCenter):
            async def start(self) -> None:
                if start_fails is not None:
                    raise start_fails
                await super().start()

        center = Center(IdleListener(), self.client, step_up, open_approval=open_approval,
                        quiet_hours=quiet_hours, now=lambda: NOW,
                        before_approve=before_approve)
        self.made.append(center)
        return center


def pending(event_id: str = "41", approval_id: str = "REQ-0001") -> PushEvent:
    return PushEvent(id=event_id, type=APPROVAL_PENDING, timestamp=NOW, source="stub",
                     data={"approval_id": approval_id}, metadata={}, cursor=event_id)


def run(body: Callable[[AlertFeed, FakeGovernorClient, Factory], Awaitable[None]], *,
        client: FakeGovernorClient | None = None, fail: BaseException | None = None,
        start_fails: BaseException | None = None,
        preferences: AlertPreferences = AlertPreferences()) -> list[int]:
    changes: list[int] = []

    async def main() -> None:
        fake = client or FakeGovernorClient(now=lambda: NOW)
        made = Factory(fake, fail, start_fails)
        feed = AlertFeed(fake, made, lambda: changes.append(len(feed.alerts())))
        await feed.listen(AnsweringHooks("Unsafe."), preferences)
        try:
            await body(feed, fake, made)
        finally:
            await feed.close()
    asyncio.run(main())
    return changes


def test_without_hooks_nothing_listens() -> None:
    async def main() -> None:
        client = FakeGovernorClient(now=lambda: NOW)
        made = Factory(client)
        feed = AlertFeed(client, made, lambda: None)
        client.subscribe(lambda topic: None)
        await client.sign_out()
        await client.sign_in_with_password("governor", "governor")
        await feed.drain()
        assert made.made == [] and feed.alerts() == []
        state = feed.state()
        assert not state.running and state.stream == "Not listening."
        assert state.channels[0].reason == "starts in a moment"
    asyncio.run(main())


def test_the_center_runs_while_signed_in_and_every_change_is_told() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        assert feed.state().running and len(made.made) == 1
        await feed.deliver(pending("41"))
        assert [a.id for a in feed.alerts()] == ["41"]
        await client.sign_out()
        await feed.drain()
        assert feed.center is None and made.made[0].listener.stopped.is_set()  # type: ignore[attr-defined]
        assert feed.state().channels[0].reason == "starts once you are signed in"
        await feed.deliver(pending("42"))  # signed out: nobody to tell
        assert feed.alerts() == []
    changes = run(body)
    assert changes[:2] == [0, 1] and changes[-1] == 0


def test_a_refused_refresh_restarts_the_center_once_signed_in_again() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        client._status = client._status.model_copy(update={"needs_sign_in": True})
        client._emit("auth")
        await feed.drain()
        assert len(made.made) == 1  # kept until the person signs in again
        await client.sign_in_with_password("governor", "governor")
        await feed.drain()
        assert len(made.made) == 2 and feed.center is made.made[1]
    run(body)


def test_a_center_that_cannot_be_made_is_said_and_retried_at_the_next_sign_in() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        state = feed.state()
        assert not state.running
        [channel] = state.channels
        assert not channel.active
        assert "Notifications did not start (ServerUnreachable" in channel.reason
        assert "Sign out and in again" in channel.reason
        made.fail = None
        await client.sign_out()
        await client.sign_in_with_password("governor", "governor")
        await feed.drain()
        assert feed.state().running and feed.error is None
    run(body, fail=ServerUnreachable("http://127.0.0.1:9 refused the connection"))


def test_a_center_failing_to_start_offline_leaves_the_client_working() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        assert not feed.state().running
        assert "OSError: Network is unreachable" in (feed.error or "")
        result = await feed.act("41", "approve")
        assert not result.done
        assert result.message == "Notifications are not running: sign in again."
        assert client.outbox() == []
    run(body, start_fails=OSError("Network is unreachable"))


def test_acting_queues_through_the_client_and_marks_it_read() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        await client.announce(pending("N-9", "REQ-0001"))  # kept as the engine keeps it
        await feed.deliver(pending("N-9", "REQ-0001"))
        result = await feed.act("N-9", "veto")
        assert result.done and result.message == "Veto of REQ-0001 queued."
        [entry] = client.outbox()
        assert entry.payload["reason"] == "Unsafe."
        assert next(n for n in client.notifications() if n.id == "N-9").read
        gone = await feed.act("N-9", "veto")
        assert not gone.done and gone.message.startswith("That notification is gone")
    run(body)


def test_open_asks_the_hooks_and_marks_it_read() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        await client.announce(pending("N-8", "REQ-0001"))
        await feed.deliver(pending("N-8", "REQ-0001"))
        hooks: Any = feed.hooks
        await made.made[0].actions.handle(alert_for(pending("N-8")), "open")
        assert hooks.opened == ["N-8"]
        assert next(n for n in client.notifications() if n.id == "N-8").read
    run(body)


def test_an_os_notification_pressed_after_the_app_stopped_asking_is_refused() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        await feed.deliver(pending("41"))
        center = made.made[0]
        await feed.close()  # the app went; an OS notification stays on screen
        alert = alert_for(pending("41"))
        veto = await center.actions.handle(alert, "veto")
        approve = await center.actions.handle(alert, "approve")
        assert not veto.done and not approve.done and client.outbox() == []
        assert veto.message == ("Veto not sent: A veto needs the app open to ask you; open "
                                "it and press it again.")
        assert approve.message.startswith("Approval not queued: An approval needs the app")
        await center.actions.handle(alert, "open")  # nothing to show it in: no error
    run(body)


def test_preferences_given_before_a_center_apply_when_it_starts() -> None:
    quiet = AlertPreferences(True, QuietHours(time(11), time(13)), urgent_override=False)

    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        dispatcher = made.made[0].dispatcher
        assert dispatcher.quiet_hours.start == time(11) and not dispatcher.urgent_override
        await client.sign_out()
        await feed.drain()
        await feed.set_preferences(AlertPreferences())  # no center: kept for the next
        await client.sign_in_with_password("governor", "governor")
        await feed.drain()
        assert made.made[1].dispatcher.quiet_hours == NO_QUIET_HOURS
    run(body, preferences=quiet)


def test_the_auditor_is_offered_no_write_action() -> None:
    async def body(feed: AlertFeed, client: FakeGovernorClient, made: Factory) -> None:
        await feed.deliver(pending("41"))
        [alert] = feed.alerts()
        assert [a.id.value for a in alert.actions] == ["open"]
        result = await feed.act("41", "approve")
        assert not result.done and "no action 'approve'" in result.message
        assert client.outbox() == []
    run(body, client=FakeGovernorClient(signed_in_as="auditor", now=lambda: NOW))
