"""``NotificationCenter``: from an event on a real SSE server to a banner, and from the
banner's button to the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, time
from typing import Any

import httpx
import pytest

from sync.alerts import (
    Alert,
    QuietHours,
    VetoConfirmation,
)
from sync.models import (
    Account,
    DecisionAction,
    Notification,
    OutboxEntry,
    OutboxState,
    VetoCategory,
)
from sync.notify import (
    DesktopNotifier,
    NotificationCenter,
)
from sync.push import Backoff, InMemoryEventSink, PushListener
from tests.sync.push_fixtures import PushServer, wait_until


class EngineSink(InMemoryEventSink):
    """The engine's push hooks, in memory: counts (re)connections."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = 0

    def event_stream_opened(self) -> None:
        self.opened += 1


GOVERNOR = Account(sub="sub-governor", username="governor",
                   scopes=frozenset({"governance:read", "governance:write", "veto:execute"}))


class Client:
    def __init__(self) -> None:
        self.entries: list[OutboxEntry] = []
        self.read: list[str] = []

    def _add(self, approval_id: str, action: DecisionAction) -> OutboxEntry:
        entry = OutboxEntry(id=f"entry-{len(self.entries) + 1}", seq=len(self.entries) + 1,
                            kind="decision", approval_id=approval_id, action=action,
                            state=OutboxState.QUEUED, created_at=datetime.now(UTC))
        self.entries.append(entry)
        return entry

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
        return self._add(approval_id, DecisionAction.APPROVE)

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: Any = None) -> OutboxEntry:
        return self._add(approval_id, DecisionAction.VETO)

    def outbox(self, states: Any = None) -> list[OutboxEntry]:
        return [e for e in self.entries if states is None or e.state in states]

    async def sync_now(self) -> None:
        return None

    def subscribe(self, listener: Any) -> Any:
        return lambda: None

    def notifications(self) -> list[Notification]:
        return []

    def mark_read(self, notification_id: str) -> None:
        self.read.append(notification_id)

    def account(self) -> Account | None:
        return GOVERNOR


@pytest.fixture
def server() -> Iterator[PushServer]:
    srv = PushServer().start()
    try:
        yield srv
    finally:
        srv.stop()


async def token() -> str:
    return "governor"


async def step_up(alert: Alert) -> VetoConfirmation | None:
    return VetoConfirmation(VetoCategory.SAFETY, "Unsafe capability set.")


def center_for(server: PushServer, client: Client, **kwargs: Any
               ) -> tuple[NotificationCenter, EngineSink, httpx.AsyncClient]:
    http = httpx.AsyncClient(base_url=server.url)
    sink = EngineSink()
    listener = PushListener(http, token, sink, backoff=Backoff(base=0.01, cap=0.05))
    return NotificationCenter(listener, client, step_up, stream_opened=sink.event_stream_opened,
                              **kwargs), sink, http


def test_an_event_becomes_a_banner_whose_buttons_queue_decisions(server: PushServer) -> None:
    async def main() -> None:
        client = Client()
        center, sink, http = center_for(server, client, desktop=DesktopNotifier())
        await center.start()
        await wait_until(lambda: center.listener.status.connected, what="connection")
        assert sink.opened == 1
        names = {c.name: c for c in center.channels()}
        assert names["in-app banner"].active
        assert not names["desktop notification"].active  # no D-Bus here: says why
        assert "in-app banners only" in names["desktop notification"].reason

        server.emit(1, agent_name="Ledger Bot")
        server.emit(2, agent_name="Scout")
        await wait_until(lambda: len(center.inapp.banners()) == 2, what="two banners")
        newest = center.inapp.banners()[0]
        assert newest.title == "Approval needed" and newest.approval_id == "APR-2"
        result = await center.inapp.act(newest.id, "veto")
        assert result.done and client.entries[0].action is DecisionAction.VETO
        # The banner acted on gives its place to what became of it: nothing slides up.
        assert [(b.title, b.approval_id) for b in center.inapp.banners()] == \
            [("Veto of APR-2 queued.", None), ("Approval needed", "APR-1")]

        # This device's own veto comes back as "decided": no "decided elsewhere" banner.
        server.emit(3, "governance.approval.decided", causation_id="entry-1",
                    approval_id="APR-2", status="vetoed", version=2)
        # Another device approves APR-1: its banner goes, replaced by the FYI.
        server.emit(4, "governance.approval.decided", approval_id="APR-1", status="approved",
                    decided_by="alice", version=2)
        await wait_until(lambda: len(sink.events) == 4, what="four events stored")
        await center.wiring.drain()
        assert [(b.title, b.approval_id) for b in center.inapp.banners()] == \
            [("Decided elsewhere", "APR-1"), ("Veto of APR-2 queued.", None)]
        await center.stop()
        await http.aclose()

    asyncio.run(main())


def test_quiet_hours_can_change_and_held_alerts_are_released_on_the_timer(
        server: PushServer) -> None:
    async def main() -> None:
        now = {"value": datetime(2026, 1, 1, 23, 0, tzinfo=UTC)}
        center, _, http = center_for(server, Client(), now=lambda: now["value"],
                                     quiet_hours=QuietHours(time(22), time(7), UTC),
                                     release_every=0.02)
        await center.start()
        await wait_until(lambda: center.listener.status.connected, what="connection")
        server.emit(1)
        server.emit(2, "governance.agent.violated", kind="constitutional")
        await wait_until(lambda: len(center.inapp.banners()) == 1, what="the violation")
        assert center.inapp.banners()[0].title == "Violation"
        assert [a.id for a in center.dispatcher.held()] == ["1"]
        now["value"] = datetime(2026, 1, 2, 7, 30, tzinfo=UTC)
        await wait_until(lambda: len(center.inapp.banners()) == 2, what="the release")
        center.set_quiet_hours(QuietHours(time(7), time(8), UTC))
        server.emit(3)
        await wait_until(lambda: len(center.dispatcher.held()) == 1, what="held again")
        await center.stop()
        await http.aclose()

    asyncio.run(main())


def test_stop_closes_what_the_center_was_given_to_own(server: PushServer) -> None:
    async def main() -> None:
        closed: list[str] = []

        async def close_http() -> None:
            closed.append("http")

        async def broken() -> None:
            raise RuntimeError("already closed")

        center, _sink, http = center_for(server, Client(), close_on_stop=[broken, close_http])
        await center.start()
        await center.stop()
        assert closed == ["http"]  # one failing closer does not keep the next open
        await center.stop()  # twice is harmless: nothing is closed again
        assert closed == ["http"]
        await http.aclose()

    asyncio.run(main())
