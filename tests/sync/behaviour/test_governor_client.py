"""What every ``GovernorClient`` does, as the app relies on it (see ``conftest.World``)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import datetime

import pytest

from sync import rules
from sync.errors import InvalidDecision, SignInRequired
from sync.facade import ActionId, Alert, GovernorClient, Topic
from sync.models import ApprovalStatus, Attachment, DecisionAction, OutboxState, VetoCategory
from tests.sync.behaviour.conftest import World, caught
from tests.sync.push_fixtures import AnsweringHooks


def test_the_signed_in_governor_may_decide_and_veto(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        account = client.account()
        assert account is not None and account.username == "governor"
        assert rules.may(account, DecisionAction.APPROVE)
        assert rules.may(account, DecisionAction.VETO)
        assert client.status().signed_in
    world.run(scenario)


def test_lists_counts_and_details_agree(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        await world.fresh_pending(client)
        pending = client.approvals("pending", limit=1000)
        assert pending and client.approval_count("pending") == len(pending)
        assert all(a.status == ApprovalStatus.PENDING_APPROVAL for a in pending)
        assert client.approval_count() >= len(pending)
        first = client.approval(pending[0].id)
        assert first is not None and first.id == pending[0].id
        assert client.approval("APR-NO-SUCH-REQUEST") is None
    world.run(scenario)


def test_a_decision_is_queued_at_once_and_shown_on_the_request(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        approval_id = await world.fresh_pending(client)
        topics: list[Topic] = []
        unsubscribe = client.subscribe(topics.append)
        entry = client.approve(approval_id, comment="looks right")
        assert entry.approval_id == approval_id and entry.action == DecisionAction.APPROVE
        assert entry.state == OutboxState.QUEUED
        shown = client.approval(approval_id)
        assert shown is not None and shown.pending_decision == DecisionAction.APPROVE
        assert entry.id in {e.id for e in client.outbox()}
        assert "outbox" in topics
        unsubscribe()
        topics.clear()
        client.cancel(entry.id)
        assert topics == []  # no longer told
    world.run(scenario)


def test_a_second_decision_is_refused_but_a_veto_may_follow(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        approval_id = await world.fresh_pending(client)
        client.approve(approval_id)
        assert isinstance(caught(lambda: client.approve(approval_id)), InvalidDecision)
        assert isinstance(caught(lambda: client.request_changes(approval_id, "cap it")),
                          InvalidDecision)
        veto = client.veto(approval_id, VetoCategory.SAFETY, "outbound to an unknown host")
        assert veto.action == DecisionAction.VETO
        assert isinstance(caught(lambda: client.veto(approval_id, VetoCategory.SAFETY,
                                                     "again")), InvalidDecision)
    world.run(scenario)


def test_a_queued_decision_can_be_taken_back_before_it_is_sent(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        approval_id = await world.fresh_pending(client)
        entry = client.approve(approval_id)
        client.cancel(entry.id)  # before anything awaits: nothing was sent
        assert entry.id not in {e.id for e in client.outbox()}
        shown = client.approval(approval_id)
        assert shown is not None and shown.pending_decision is None
        assert isinstance(caught(lambda: client.cancel(entry.id)), InvalidDecision)
    world.run(scenario)


def test_what_the_server_would_refuse_is_refused_before_queueing(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        approval_id = await world.fresh_pending(client)
        before = [e.id for e in client.outbox()]
        one = Attachment(name="a.txt", content_type="text/plain",
                         data_base64=base64.b64encode(b"abc").decode())
        big = Attachment(name="big.bin", content_type="application/octet-stream",
                         data_base64=base64.b64encode(b"x" * (rules.MAX_ATTACHMENT_BYTES
                                                              + 1)).decode())
        calls = {
            "no such request": lambda: client.approve("APR-NO-SUCH-REQUEST"),
            "blank reason": lambda: client.request_changes(approval_id, "   "),
            "long reason": lambda: client.veto(approval_id, VetoCategory.OTHER,
                                               "x" * (rules.MAX_REASON + 1)),
            "long comment": lambda: client.approve(approval_id,
                                                   comment="x" * (rules.MAX_REASON + 1)),
            "six files": lambda: client.veto(approval_id, VetoCategory.OTHER, "why",
                                             [one] * (rules.MAX_ATTACHMENTS + 1)),
            "too big": lambda: client.veto(approval_id, VetoCategory.OTHER, "why", [big]),
            "not base64": lambda: client.veto(approval_id, VetoCategory.OTHER, "why", [
                Attachment(name="bad", content_type="a/b", data_base64="***")]),
        }
        refused = {what: caught(call) for what, call in calls.items()}
        assert {w: type(e).__name__ for w, e in refused.items()} == {
            w: "InvalidDecision" for w in calls}
        assert [e.id for e in client.outbox()] == before
    world.run(scenario)


def test_a_sync_applies_the_queue_and_the_request_moves_on(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        approval_id = await world.fresh_pending(client)
        entry = client.approve(approval_id)
        await client.sync_now()
        sent = {e.id: e for e in client.outbox()}.get(entry.id)
        assert sent is not None and sent.state == OutboxState.APPLIED
        shown = client.approval(approval_id)
        assert shown is not None and shown.status == ApprovalStatus.APPROVED
        assert shown.pending_decision is None
        # Approved: no second approval, but still in its veto window.
        assert isinstance(caught(lambda: client.approve(approval_id)), InvalidDecision)
        assert rules.can_take(DecisionAction.VETO, shown.status)
    world.run(scenario)


def test_signed_out_nothing_is_decided(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        approval_id = await world.fresh_pending(client)
        await client.sign_out()
        assert client.account() is None
        assert isinstance(caught(lambda: client.approve(approval_id)), SignInRequired)
    world.run(scenario)


def test_a_read_only_account_decides_nothing(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        account = client.account()
        assert account is not None and rules.read_only(account)
        pending = client.approvals("pending", limit=1)
        assert pending  # the auditor reads everything
        for call in (lambda: client.approve(pending[0].id),
                     lambda: client.veto(pending[0].id, VetoCategory.OTHER, "no")):
            refused = caught(call)
            assert isinstance(refused, InvalidDecision) and "scope" in str(refused)
        assert client.outbox() == []
    world.run(scenario, username="auditor")


def test_the_sync_interval_is_a_positive_number_of_seconds(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        assert client.sync_interval() >= 0
        with pytest.raises(ValueError, match="positive number of seconds"):
            client.set_sync_interval(0)
    world.run(scenario)


def test_saying_a_screen_is_drawn_changes_nothing_the_client_says(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        approval_id = await world.fresh_pending(client)
        before = (client.account(), client.approval_count("pending"),
                  client.approval(approval_id), client.status().signed_in)
        for _ in range(3):  # every layout of the frame says it again
            client.screen_drawn()
        await asyncio.sleep(0)
        assert (client.account(), client.approval_count("pending"),
                client.approval(approval_id), client.status().signed_in) == before
    world.run(scenario)


def test_server_time_is_an_aware_datetime(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        now = client.server_now()
        assert isinstance(now, datetime) and now.tzinfo is not None
    world.run(scenario)


# --- push: the client's own (the app only registers its hooks) ------------------------------

async def until(check: Callable[[], bool]) -> None:
    """Wait for what the event stream brings (generous: a wait, not a speed check)."""
    async def wait() -> None:
        while not check():
            await asyncio.sleep(0.05)
    await asyncio.wait_for(wait(), timeout=60)


async def listening(client: GovernorClient) -> None:
    await client.listen_for_alerts(AnsweringHooks())
    await until(lambda: client.push_state().connected)  # what comes now is announced


async def announced(world: World, client: GovernorClient) -> Alert:
    approval_id = await world.announce_pending(client)
    await until(lambda: any(a.approval_id == approval_id for a in client.alerts()))
    return next(a for a in client.alerts() if a.approval_id == approval_id)


def test_an_event_becomes_an_alert_and_approve_from_it_queues_the_decision(
        world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        topics: list[Topic] = []
        client.subscribe(topics.append)
        await listening(client)
        state = client.push_state()
        assert state.running and state.stream.startswith("Connected")
        assert state.channels[0].name == "in-app banner"
        alert = await announced(world, client)
        assert "alerts" in topics
        assert [a.id for a in alert.actions] == [ActionId.APPROVE, ActionId.VETO]
        result = await client.act_on_alert(alert.id, ActionId.APPROVE)
        assert result.done and result.message == f"Approval of {alert.approval_id} queued."
        [entry] = [e for e in client.outbox() if e.approval_id == alert.approval_id]
        assert entry.action == DecisionAction.APPROVE and entry.state == OutboxState.QUEUED
        assert all(a.id != alert.id for a in client.alerts())  # replaced by its outcome
        again = await client.act_on_alert(alert.id, ActionId.APPROVE)
        assert not again.done and again.message.startswith("That notification is gone")
    world.run(scenario)


def test_the_auditor_is_offered_no_write_action_on_an_alert(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        await listening(client)
        alert = await announced(world, client)
        assert [a.id for a in alert.actions] == [ActionId.OPEN]
        for action in (ActionId.APPROVE, ActionId.VETO):
            result = await client.act_on_alert(alert.id, action)
            assert not result.done and f"no action {action.value!r}" in result.message
        assert client.outbox() == []
    world.run(scenario, username="auditor")


def test_sign_out_stops_the_alerts(world: World) -> None:
    async def scenario(client: GovernorClient) -> None:
        await listening(client)
        alert = await announced(world, client)
        client.dismiss_alert(alert.id)
        assert all(a.id != alert.id for a in client.alerts())
        await announced(world, client)
        await client.sign_out()
        assert client.alerts() == []
        state = client.push_state()
        assert not state.running and state.stream == "Not listening."
        assert state.channels[0].reason == "starts once you are signed in"
        result = await client.act_on_alert(alert.id, ActionId.OPEN)
        assert not result.done and "sign in again" in result.message
    world.run(scenario)
