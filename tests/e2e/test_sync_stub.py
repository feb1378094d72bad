"""The sync engine against the real stub process, with the stub's audit trail (its
``decisions`` table) as the judge of what was applied."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.models import Attachment, DecisionAction, OutboxState, SeedDraft, VetoCategory
from sync.settings import GovernorSettings
from sync.store import LocalStore
from sync.tokens import EncryptedFileVault, MemoryVault
from tests.support.stub_process import StubProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fast_stub(tmp_path: Path) -> Iterator[StubProcess]:
    """The demo stub without its per-client rate limit (these tests send many requests)."""
    proc = StubProcess(tmp_path / "stub",
                       env={"GOVSTUB_DISABLE_RATE_LIMIT": "true"}).start()
    try:
        yield proc
    finally:
        proc.stop()


def audit(stub: StubProcess) -> dict[str, int]:
    """How many times the stub applied each idempotency key."""
    with sqlite3.connect(stub.data_dir / "governance.db") as db:
        rows = db.execute("SELECT idempotency_key, count(*) FROM decisions "
                          "WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key"
                          ).fetchall()
    return {str(k): int(n) for k, n in rows}


async def engine_for(stub: StubProcess, data_dir: Path, *, vault: Any = None,
                     batch_size: int = 500) -> SyncEngine:
    auth = Authenticator(stub.url, vault=vault or MemoryVault())
    if auth.account() is None:
        await auth.sign_in_with_password("governor", "governor")
    settings = GovernorSettings(server_url=stub.url, data_dir=data_dir, sync_interval=0,
                                batch_size=batch_size)
    return SyncEngine(settings, authenticator=auth)


def test_decide_offline_then_upload_exactly_once(fast_stub: StubProcess,
                                                 tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await engine_for(fast_stub, tmp_path / "client")
        await engine.sync_now()
        pending = engine.approvals("pending")
        window = engine.approvals("veto_window")
        assert pending and window
        approve = engine.approve(pending[0].id, comment="looks right")
        changes = engine.request_changes(pending[1].id, "cap the budget")
        veto = engine.veto(window[0].id, VetoCategory.SAFETY, "outbound to an unknown host")
        assert engine.approval(pending[0].id).pending_decision == DecisionAction.APPROVE  # type: ignore[union-attr]
        await engine.upload()
        applied = audit(fast_stub)
        for entry in (approve, changes, veto):
            assert engine.store.entry(entry.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
            assert applied[entry.id] == 1
        assert engine.approval(window[0].id).status.value == "vetoed"  # type: ignore[union-attr]
        # The batch answers with a compact approval; the cached detail keeps the rest.
        approved = engine.approval(pending[0].id)
        assert approved is not None and approved.capabilities and approved.version == 2
        # Replaying the same batch (a lost acknowledgement) changes nothing on the server.
        with engine.store.transaction() as conn:
            conn.exec_driver_sql("UPDATE outbox SET state = 'queued'")
        await engine.upload()
        assert audit(fast_stub) == applied
        assert all(e.state == OutboxState.APPLIED for e in engine.outbox())
        await engine.stop()

    asyncio.run(scenario())


def test_no_reason_comment_or_evidence_is_in_the_device_database_in_clear(
        fast_stub: StubProcess, tmp_path: Path) -> None:
    """Decide with a distinctive reason, comment and attachment, let the real stub apply
    them, sync the requests, dashboard and notifications back, then read the database,
    its WAL and shared memory as bytes: none of it is there."""
    reason = "routes payroll exports to paste-bin-e2e-51c7"
    comment = "cleared with the auditor Ms Varga-e2e-0b9d"
    name = "varga-evidence-e2e-77a1.pdf"
    evidence = b"%PDF-1.7 evidence for the e2e seal test 3f08"

    async def scenario() -> None:
        engine = await engine_for(fast_stub, tmp_path / "client")
        await engine.sync_now()
        pending = engine.approvals("pending")[0].id
        window = engine.approvals("veto_window")[0].id
        engine.approve(pending, comment=comment)
        engine.veto(window, VetoCategory.SAFETY, reason, [Attachment(
            name=name, content_type="application/pdf",
            data_base64=base64.b64encode(evidence).decode())])
        await engine.sync_now()  # sent and applied, then everything downloaded again
        assert not engine.outbox({OutboxState.QUEUED, OutboxState.SENDING})
        # The secrets came back in the server's data, and the app reads them.
        vetoed = engine.approval(window)
        assert vetoed is not None and vetoed.status.value == "vetoed"
        assert any(reason in (stage.notes or "") for stage in vetoed.pipeline)
        approved = engine.approval(pending)
        assert approved is not None
        assert any(comment in (stage.notes or "") for stage in approved.pipeline)
        dashboard = engine.dashboard()
        assert dashboard is not None
        assert reason in [v.get("reason") for v in dashboard.dashboard.recent_vetoes]
        assert engine.notifications()
        raw = b"".join(p.read_bytes()
                       for p in (tmp_path / "client").glob("governor.db*"))
        assert (tmp_path / "client" / "governor.db-wal").exists()
        for secret in (reason, comment, name, reason[:20], comment[:20]):
            assert secret.encode() not in raw, secret
        assert evidence not in raw and base64.b64encode(evidence) not in raw
        await engine.stop()

    asyncio.run(scenario())


def test_an_unchanged_resync_is_cheap(fast_stub: StubProcess, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await engine_for(fast_stub, tmp_path / "client")
        await engine.sync_now()
        await engine.sync_now()
        costs = engine.downloader.bytes_by_collection
        for name in ("dashboard", "seeds", "violations", "notifications"):
            assert costs[name] < 500, costs
        await engine.stop()

    asyncio.run(scenario())


def test_a_conflict_comes_back_with_who_decided(fast_stub: StubProcess,
                                                tmp_path: Path) -> None:
    async def scenario() -> None:
        mine = await engine_for(fast_stub, tmp_path / "mine")
        other = await engine_for(fast_stub, tmp_path / "other")
        await mine.sync_now()
        await other.sync_now()
        target = mine.approvals("pending")[0].id
        other.approve(target)
        await other.upload()
        entry = mine.request_changes(target, "too broad")
        await mine.upload()
        conflict = mine.conflict(entry.id)
        assert conflict is not None and conflict.code == "ALREADY_DECIDED"
        assert conflict.decided_by and conflict.current_status is not None
        assert conflict.current_status.value == "approved"
        # The request is now in its veto window: a veto is the one decision left.
        veto = mine.veto(target, VetoCategory.OTHER, "approved too fast")
        await mine.upload()
        assert mine.store.entry(veto.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
        await mine.stop()
        await other.stop()

    asyncio.run(scenario())


def test_a_veto_sent_after_its_deadline_comes_back_window_closed(
        fast_stub: StubProcess, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await engine_for(fast_stub, tmp_path / "client")
        await engine.sync_now()
        target = engine.approvals("veto_window")[0]
        veto = engine.veto(target.id, VetoCategory.BUDGET, "over budget")
        assert veto.veto_deadline == target.veto_deadline
        with fast_stub.client() as http:
            http.post("/v1/demo/clock", json={"advance_seconds": 25 * 3600}).raise_for_status()
        await engine.upload()
        entry = engine.store.entry(veto.id)
        assert entry is not None and entry.state == OutboxState.REJECTED
        assert entry.error_code == "VETO_WINDOW_CLOSED"
        assert veto.id not in audit(fast_stub)
        await engine.stop()

    asyncio.run(scenario())


def test_a_stub_outage_keeps_the_queue_and_a_reconnect_drains_it(
        fast_stub: StubProcess, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await engine_for(fast_stub, tmp_path / "client")
        await engine.sync_now()
        fast_stub.stop(kill=True)
        entries = [engine.approve(a.id) for a in engine.approvals("pending")[:3]]
        await engine.upload()
        assert not engine.status().online and engine.status().pending_count == 3
        fast_stub.start()
        await engine.refresh_dashboard()  # the first request that succeeds again
        assert engine._flush_task is not None
        await engine._flush_task
        applied = audit(fast_stub)
        assert all(applied.get(e.id) == 1 for e in entries)
        await engine.stop()

    asyncio.run(scenario())


def test_a_new_seed_is_created_once_and_a_bad_one_comes_back(
        fast_stub: StubProcess, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await engine_for(fast_stub, tmp_path / "client")
        await engine.sync_now()
        template = engine.seeds()[0]
        good = engine.create_seed(SeedDraft(title="Offline precedent for tutors",
                                            description="made on a plane",
                                            conditions=template.conditions))
        bad = engine.create_seed(SeedDraft(title="Broken", description="",
                                           conditions={"no_such_rule": 1}))
        await engine.upload()
        await engine.upload()  # a replay must not create it twice
        assert engine.store.entry(good.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
        rejected = engine.store.entry(bad.id)
        assert rejected is not None and rejected.state == OutboxState.REJECTED
        assert rejected.error_code == "VALIDATION_FAILED"
        await engine.sync_now()
        assert [s.title for s in engine.seeds("offline precedent")] == [
            "Offline precedent for tutors"]
        await engine.stop()

    asyncio.run(scenario())


def test_an_access_token_expired_on_the_server_is_refreshed_once(
        fast_stub: StubProcess, tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = await engine_for(fast_stub, tmp_path / "client")
        await engine.sync_now()
        entry = engine.approve(engine.approvals("pending")[0].id)
        with fast_stub.client() as http:  # the server's clock runs past the token's life
            http.post("/v1/demo/clock", json={"advance_seconds": 20 * 60}).raise_for_status()
        await engine.upload()
        assert engine.store.entry(entry.id).state == OutboxState.APPLIED  # type: ignore[union-attr]
        assert not engine.status().needs_sign_in
        await engine.stop()

    asyncio.run(scenario())


CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from sync.auth import Authenticator
    from sync.engine import SyncEngine
    from sync.settings import GovernorSettings
    from sync.tokens import EncryptedFileVault

    url, data = sys.argv[1], Path(sys.argv[2])

    async def main() -> None:
        auth = Authenticator(url, vault=EncryptedFileVault(data / "tokens", data / "key"))
        engine = SyncEngine(GovernorSettings(server_url=url, data_dir=data, sync_interval=0,
                                             batch_size=3), authenticator=auth)
        print("uploading", flush=True)
        while engine.status().pending_count:
            await engine.upload()
        print("drained", flush=True)

    asyncio.run(main())
""")


def _queue_decisions(store: LocalStore, approvals: list[dict[str, Any]], sub: str,
                     device_id: str, n: int, rng: random.Random) -> list[str]:
    """Queue ``n`` decisions straight into the outbox (many on the same requests, so some
    apply and the rest are rejected: both outcomes must be judged)."""
    from datetime import UTC, datetime
    ids = []
    for i in range(n):
        approval = rng.choice(approvals)
        action = rng.choice(["approve", "request_changes", "veto"])
        entry_id = f"kill-{i}-{rng.randrange(10**9)}"
        payload: dict[str, Any] = {"id": entry_id, "approval_id": approval["id"],
                                   "action": action, "device_id": device_id,
                                   "decided_at": datetime.now(UTC).isoformat()}
        if action == "veto":
            payload.update(category="safety", reason="kill test")
        else:
            payload["expected_version"] = approval["version"]
            payload["reason" if action == "request_changes" else "comment"] = "kill test"
        store.enqueue(entry_id=entry_id, kind="decision", payload=payload,
                      created_at=datetime.now(UTC), approval_id=approval["id"],
                      action=DecisionAction(action), expected_version=approval["version"],
                      sub=sub)
        ids.append(entry_id)
    return ids


@pytest.mark.slow
def test_kill_9_during_upload_never_loses_or_doubles_a_decision(
        fast_stub: StubProcess, tmp_path: Path) -> None:
    data = tmp_path / "client"
    data.mkdir()
    with fast_stub.client() as http:
        for _ in range(40):
            http.post("/v1/demo/scenario", json={"event": "new_pending_approval"})

    async def prepare() -> tuple[list[dict[str, Any]], str, str]:
        vault = EncryptedFileVault(data / "tokens", data / "key")
        engine = await engine_for(fast_stub, data, vault=vault)
        await engine.sync_now()
        approvals = engine.store.approval_summaries()
        account = engine.account()
        assert account is not None
        device = engine.device_id
        await engine.stop()
        return approvals, account.sub, device

    approvals, sub, device = asyncio.run(prepare())
    rng = random.Random(int(os.environ.get("SYNC_KILL_SEED", "6")))
    store = LocalStore(data / "governor.db")
    ids = _queue_decisions(store, approvals, sub, device, 400, rng)
    store.close()

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kills = 0
    attempts = 0
    while kills < 50 and attempts < 200:
        attempts += 1
        child = subprocess.Popen([sys.executable, "-c", CHILD, fast_stub.url, str(data)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env=env)
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "uploading", child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0, 0.08))
        if child.poll() is None:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(30)
    assert kills >= 50, f"only {kills} kills landed before the queue drained"

    finished = subprocess.run([sys.executable, "-c", CHILD, fast_stub.url, str(data)],
                              capture_output=True, text=True, env=env, timeout=300)
    assert "drained" in finished.stdout, finished.stderr

    applied = audit(fast_stub)
    store = LocalStore(data / "governor.db")
    entries = {e.id: e for e in store.entries()}
    outcomes = {"applied": 0, "rejected": 0}
    for entry_id in ids:
        entry = entries[entry_id]
        if entry.state == OutboxState.APPLIED:
            assert applied.get(entry_id) == 1, entry_id
            outcomes["applied"] += 1
        else:
            assert entry.state == OutboxState.REJECTED, entry
            assert entry.error_code and entry_id not in applied
            outcomes["rejected"] += 1
    assert all(n == 1 for n in applied.values())
    assert outcomes["applied"] > 0 and outcomes["rejected"] > 0
    store.close()
