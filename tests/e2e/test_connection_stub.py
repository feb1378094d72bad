"""Connection and time truth end to end: the real stub process, the real ``SyncEngine``
and its push listener (``center_for_engine``). Stopping the stub makes the engine report
offline; starting it again on the same port makes it report online, send what was queued
meanwhile and reopen the event stream without waiting out the listener's backoff. The
stub's clock, jumped through the demo control, reaches the engine through the event
stream's heartbeat, with no request from the client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync.alerts import (
    Alert,
    VetoConfirmation,
)
from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.models import OutboxState
from sync.notify import (
    center_for_engine,
)
from sync.settings import GovernorSettings
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess
from tests.sync.push_fixtures import wait_until


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[StubProcess]:
    proc = StubProcess(tmp_path / "stub", env={"GOVSTUB_SSE_HEARTBEAT_SECONDS": "0.5",
                                               "GOVSTUB_DISABLE_RATE_LIMIT": "true"}).start()
    try:
        yield proc
    finally:
        proc.stop()


async def refuse_step_up(alert: Alert) -> VetoConfirmation | None:
    return None


async def signed_in_engine(stub: StubProcess, data_dir: Path, **settings: float
                           ) -> tuple[SyncEngine, Authenticator]:
    """A started engine, signed in as the demo's governor and synced once."""
    auth = Authenticator(stub.url, vault=MemoryVault())
    engine = SyncEngine(GovernorSettings(server_url=stub.url, data_dir=data_dir,
                                         sync_interval=0, **settings),  # type: ignore[arg-type]
                        authenticator=auth)
    await engine.start()
    await engine.sign_in_with_password("governor", "governor")
    await engine.sync_now()
    return engine, auth


def test_stub_down_is_offline_and_back_is_online_with_the_queue_applied(
        stub: StubProcess, tmp_path: Path) -> None:
    async def main() -> None:
        engine, auth = await signed_in_engine(stub, tmp_path / "client")
        center = center_for_engine(engine, refuse_step_up, desktop=False)
        await center.start()
        try:
            await wait_until(lambda: center.listener.status.connected, 30, "the stream")
            assert engine.status().online
            pending = engine.approvals("pending")[0]

            stub.stop(kill=True)
            await wait_until(lambda: not engine.status().online, 30, "offline")
            assert engine.probing
            entry = engine.approve(pending.id, "Approved while the stub was down.")
            connects = center.listener.status.connects

            stub.start()
            await wait_until(lambda: engine.status().online, 30, "online again")
            await wait_until(lambda: not engine.outbox({OutboxState.QUEUED,
                                                        OutboxState.SENDING}), 30, "drained")
            assert [e.id for e in engine.outbox({OutboxState.APPLIED})] == [entry.id]
            token = await auth.access_token()
            with stub.client() as client:
                body = client.get(f"/v1/mobile/approvals/{pending.id}",
                                  headers={"Authorization": f"Bearer {token}"}).json()
            assert body["data"]["status"] == "approved"
            await wait_until(lambda: center.listener.status.connects > connects, 30,
                             "the stream reopened")
            assert not engine.probing
        finally:
            await center.stop()
            await engine.stop()
            await auth.aclose()

    asyncio.run(main())


def test_a_jump_of_the_demo_clock_reaches_the_engine_through_the_heartbeat(
        stub: StubProcess, tmp_path: Path) -> None:
    async def main() -> None:
        engine, auth = await signed_in_engine(stub, tmp_path / "client", clock_skew_s=-3600)

        def off_by() -> float:
            return (engine.server_now() - datetime.now(UTC)).total_seconds()

        # The device is an hour slow; the server's answers put it right.
        assert abs(off_by()) < 2
        center = center_for_engine(engine, refuse_step_up, desktop=False)
        await center.start()
        try:
            await wait_until(lambda: center.listener.status.connected, 30, "the stream")
            with stub.client() as client:
                client.post("/v1/demo/clock", json={"advance_seconds": 7200}).raise_for_status()
            await wait_until(lambda: abs(off_by() - 7200) < 2, 30, "the jump seen")
        finally:
            await center.stop()
            await engine.stop()
            await auth.aclose()

    asyncio.run(main())
