"""Answering from a notification, end to end: the real stub, the real ``SyncEngine`` and
``center_for_engine``. A demo event becomes a banner; its Approve is queued in the outbox and
applied; its Veto passes the step-up and is queued while the stub is down, then applied."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.alerts import (
    Alert,
    VetoConfirmation,
)
from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.models import ApprovalStatus, DecisionAction, OutboxState, VetoCategory
from sync.notify import (
    center_for_engine,
    password_step_up,
)
from sync.push import PushListener
from sync.settings import GovernorSettings
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess
from tests.sync.push_fixtures import wait_until


@pytest.fixture
def push_stub(tmp_path: Path) -> Iterator[StubProcess]:
    proc = StubProcess(tmp_path / "stub").start()
    try:
        yield proc
    finally:
        proc.stop()


def new_request(stub: StubProcess) -> str:
    with stub.client() as client:
        body = client.post("/v1/demo/scenario", json={"event": "new_pending_approval"}).json()
    return str(body["data"]["result"]["approval_id"])


def server_status(stub: StubProcess, engine: SyncEngine, approval_id: str, token: str) -> str:
    with stub.client() as client:
        return str(client.get(f"/v1/mobile/approvals/{approval_id}", headers={
            "Authorization": f"Bearer {token}"}).json()["data"]["status"])


def test_approve_and_veto_from_banners_go_through_the_outbox(push_stub: StubProcess,
                                                             tmp_path: Path) -> None:
    async def main() -> None:
        settings = GovernorSettings(server_url=push_stub.url, data_dir=tmp_path / "client",
                                    sync_interval=0)
        auth = Authenticator(push_stub.url, vault=MemoryVault())
        engine = SyncEngine(settings, authenticator=auth)
        await engine.start()
        await engine.sign_in_with_password("governor", "governor")
        asked: list[str] = []
        typed = ["governor"]

        async def ask(alert: Alert) -> tuple[str, VetoCategory, str] | None:
            asked.append(alert.id)
            return (typed[0], VetoCategory.SAFETY, "Vetoed from the notification.")

        center = center_for_engine(engine, password_step_up(ask, engine.confirm_identity),
                                   desktop=False)
        await center.start()
        try:
            await wait_until(lambda: center.listener.status.connected, 30, "connection")

            def banner_for(approval_id: str) -> Alert | None:
                return next((b for b in center.inapp.banners()
                             if b.approval_id == approval_id), None)

            first = new_request(push_stub)
            await wait_until(lambda: banner_for(first) is not None, 30, "a banner")
            # The pending request is cached from the event itself: Approve needs no sync.
            assert engine.approval(first) is not None
            alert = banner_for(first)
            assert alert is not None and alert.title == "Approval needed"
            result = await center.inapp.act(alert.id, "approve")
            assert result.done and result.entry is not None
            assert result.entry.action is DecisionAction.APPROVE
            await engine.sync_now()
            token = await auth.access_token()
            assert server_status(push_stub, engine, first, token) == "approved"

            # Offline: the veto is queued behind the step-up and sent when the stub is back.
            second = new_request(push_stub)
            await wait_until(lambda: banner_for(second) is not None, 30, "a second banner")
            push_stub.stop()
            veto_alert = banner_for(second)
            assert veto_alert is not None
            # Offline the password is checked against the verifier kept at sign-in: a wrong
            # one refuses and queues nothing, the right one queues the veto.
            typed[0] = "not-the-password"
            refused = await center.inapp.act(veto_alert.id, "veto")
            assert not refused.done and "Veto not sent" in refused.message
            assert asked == [veto_alert.id] and banner_for(second) is not None
            assert not [e for e in engine.outbox() if e.approval_id == second]
            typed[0] = "governor"
            result = await center.inapp.act(veto_alert.id, "veto")
            assert result.done and asked == [veto_alert.id, veto_alert.id]
            queued = [e for e in engine.outbox({OutboxState.QUEUED})
                      if e.approval_id == second]
            assert [e.action for e in queued] == [DecisionAction.VETO]
            push_stub.start()
            await wait_until(lambda: center.listener.status.connected, 30, "reconnection")
            await engine.sync_now()
            token = await auth.access_token()
            assert server_status(push_stub, engine, second, token) == ApprovalStatus.VETOED
        finally:
            await center.stop()
            assert isinstance(center.listener, PushListener)
            assert center.listener._client.is_closed  # no HTTP client left per sign-in
            await engine.stop()
            await auth.aclose()

    asyncio.run(main())


def test_a_failed_step_up_queues_no_veto(push_stub: StubProcess, tmp_path: Path) -> None:
    async def main() -> None:
        settings = GovernorSettings(server_url=push_stub.url, data_dir=tmp_path / "client",
                                    sync_interval=0)
        auth = Authenticator(push_stub.url, vault=MemoryVault())
        engine = SyncEngine(settings, authenticator=auth)
        await engine.start()
        await engine.sign_in_with_password("governor", "governor")

        async def wrong_password(alert: Alert) -> tuple[str, VetoCategory, str] | None:
            return ("not-the-password", VetoCategory.OTHER, "No.")

        center = center_for_engine(
            engine, password_step_up(wrong_password, engine.confirm_identity), desktop=False)
        await center.start()
        try:
            await wait_until(lambda: center.listener.status.connected, 30, "connection")
            approval_id = new_request(push_stub)
            await wait_until(lambda: any(b.approval_id == approval_id
                                         for b in center.inapp.banners()), 30, "a banner")
            alert = next(b for b in center.inapp.banners() if b.approval_id == approval_id)
            result = await center.inapp.act(alert.id, "veto")
            assert not result.done
            assert [e for e in engine.outbox() if e.approval_id == approval_id] == []
            # Still there to try again (under any urgent banner the stream brought).
            assert alert.id in [b.id for b in center.inapp.banners()]
        finally:
            await center.stop()
            await engine.stop()
            await auth.aclose()

    asyncio.run(main())


def test_confirmations_are_plain_values() -> None:
    assert VetoConfirmation(VetoCategory.BUDGET, "x") == VetoConfirmation(VetoCategory.BUDGET,
                                                                          "x")
