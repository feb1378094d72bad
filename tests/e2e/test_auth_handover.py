"""A refused session keeps the queue; queued decisions go out only as the person who made
them (the real stub, the real engine, the real Authenticator)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.models import OutboxState
from sync.settings import GovernorSettings
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess


@pytest.fixture
def fast_stub(tmp_path: Path) -> Iterator[StubProcess]:
    proc = StubProcess(tmp_path / "stub", env={"GOVSTUB_DISABLE_RATE_LIMIT": "true"}).start()
    try:
        yield proc
    finally:
        proc.stop()


def applied_keys(stub: StubProcess) -> set[str]:
    with sqlite3.connect(stub.data_dir / "governance.db") as db:
        rows = db.execute("SELECT idempotency_key FROM decisions "
                          "WHERE idempotency_key IS NOT NULL").fetchall()
    return {str(r[0]) for r in rows}


def revoke_on_server(stub: StubProcess, refresh_token: str) -> None:
    """What an administrator, a reuse elsewhere or an expiry does to the session."""
    with stub.client() as client:
        response = client.post("/oauth/revoke", data={
            "token": refresh_token, "token_type_hint": "refresh_token",
            "client_id": "governor-app"})
        assert response.status_code == 200


def test_refused_session_holds_the_queue_until_the_same_person_returns(
        fast_stub: StubProcess, tmp_path: Path) -> None:
    vault = MemoryVault()

    async def scenario() -> str:
        auth = Authenticator(fast_stub.url, vault=vault)
        await auth.sign_in_with_password("governor", "governor")
        engine = SyncEngine(GovernorSettings(server_url=fast_stub.url, data_dir=tmp_path / "c",
                                             sync_interval=0), authenticator=auth)
        await engine.sync_now()
        pending = engine.approvals("pending")
        assert pending

        # The server ends the session; the app does not know yet.
        stored = vault.load()
        assert stored is not None and stored.refresh_token
        revoke_on_server(fast_stub, stored.refresh_token)

        entry = engine.approve(pending[0].id, comment="queued before the refusal")
        await engine.upload()  # 401 -> one refresh -> invalid_grant
        assert engine.status().needs_sign_in
        assert auth.account() is None
        previous = auth.previous_account()
        assert previous is not None and previous.sub == "governor"
        kept = engine.store.entry(entry.id)
        assert kept is not None and kept.state in (OutboxState.QUEUED, OutboxState.HELD)
        assert engine.approvals("pending"), "the cache is kept"
        assert entry.id not in applied_keys(fast_stub)

        # Someone else signs in on this device: the governor's decision is held, not sent.
        await engine.sign_in_with_password("auditor", "auditor")
        await engine.upload()
        held = engine.store.entry(entry.id)
        assert held is not None and held.state == OutboxState.HELD
        assert entry.id not in applied_keys(fast_stub)

        # The governor returns: the same sub, so it is released and sent once.
        await engine.sign_in_with_password("governor", "governor")
        await engine.upload()
        sent = engine.store.entry(entry.id)
        assert sent is None or sent.state == OutboxState.APPLIED
        await auth.aclose()
        return entry.id

    entry_id = asyncio.run(scenario())
    with sqlite3.connect(fast_stub.data_dir / "governance.db") as db:
        rows = db.execute("SELECT sub, client_id FROM decisions WHERE idempotency_key = ?",
                          (entry_id,)).fetchall()
    assert rows == [("governor", "governor-app")]  # applied once, as the governor


def test_sign_out_revokes_the_session_on_the_server(fast_stub: StubProcess,
                                                    tmp_path: Path) -> None:
    vault = MemoryVault()

    async def scenario() -> str:
        auth = Authenticator(fast_stub.url, vault=vault)
        await auth.sign_in_with_password("governor", "governor")
        token = await auth.access_token()
        engine = SyncEngine(GovernorSettings(server_url=fast_stub.url, data_dir=tmp_path / "c",
                                             sync_interval=0), authenticator=auth)
        await engine.sign_out()
        assert engine.account() is None
        await auth.aclose()
        return token

    token = asyncio.run(scenario())
    with httpx.Client(base_url=fast_stub.url) as client:
        response = client.get("/v1/mobile/dashboard",
                              headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
