"""Cold start: the first screen from the engine's own store, the engine built after it."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from governor_app.startup import flet_names_used
from sync import store_reads
from sync.cold_start import STALE_SNAPSHOT_NAME, FirstScreen, StartingClient
from sync.errors import ClientStopped
from sync.fakes import FakeGovernorClient
from sync.models import ApprovalSummary, DecisionAction
from sync.sealing import OutboxSealer, new_device_key
from sync.store import MIGRATIONS, LocalStore, iso
from sync.store_reads import DATABASE_NAME, server_identity

SERVER = "http://127.0.0.1:8000"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
REASON = "exec import outside the sandbox"  # sealed in the store


class Engine(FakeGovernorClient):
    """The fake client as the engine: counts its builds and starts."""

    started = 0

    async def start(self) -> None:
        self.started += 1


def keep_store(path: Path, engine: FakeGovernorClient, server: str = SERVER) -> Path:
    """The store as the engine leaves it: what ``engine`` shows, for ``server``, the
    recent veto's reason sealed with the device key (which the cold start has not)."""
    store = LocalStore(path, sealer=OutboxSealer(new_device_key))
    try:
        store.bind_server(server_identity(server))
        account = engine.account()
        store.keep_account(account.model_dump() if account else None)
        store.serve(account.sub if account else None)
        cached = engine.dashboard()
        if cached is not None:
            body = cached.dashboard.model_dump(mode="json")
            for veto in body["recent_vetoes"]:
                veto["reason"] = REASON
            store.save_dashboard(body, None, cached.fetched_at)
        store.add_notifications([n.model_dump(mode="json", exclude={"read"})
                                 for n in engine.notifications()])
        store.upsert_approvals(a.model_dump(mode="json") for a in engine.approvals())
        store.set_meta("last_synced_at", iso(NOW))
    finally:
        store.close()
    return path


def builder(engine: FakeGovernorClient) -> tuple[Callable[[], Any], list[str]]:
    threads: list[str] = []

    def build() -> FakeGovernorClient:
        threads.append(threading.current_thread().name)
        return engine

    return build, threads


async def handed_over(client: StartingClient) -> None:
    for _ in range(1000):
        if not client.starting:
            return
        await asyncio.sleep(0.01)


def test_first_screen_reads_the_store_then_the_engine_takes_over(tmp_path: Path) -> None:
    path = keep_store(tmp_path / DATABASE_NAME, engine := Engine(now=lambda: NOW))
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER, clock=lambda: NOW + timedelta(minutes=10),
                            after_first_screen=0.05)
    topics: list[str] = []

    async def main() -> None:
        await client.start()
        client.subscribe(topics.append)
        assert threads == [] and client.starting
        assert client.why_no_push() == "starts with the app, in a moment"
        account = client.account()
        assert account is not None and account.username == "governor"
        status = client.status()
        assert status.signed_in and not status.online  # offline until the engine syncs
        assert status.last_synced_at == NOW
        assert client.approval_count("pending") == engine.approval_count("pending")
        cached = client.dashboard()
        assert cached is not None and cached.stale  # 10 minutes old: past the 5-minute TTL
        assert cached.dashboard.active_agents == engine.dashboard().dashboard.active_agents  # type: ignore[union-attr]
        # The reason is sealed and the key is in the vault: left out until the hand-over.
        assert "reason" not in cached.dashboard.recent_vetoes[0] \
            or cached.dashboard.recent_vetoes[0]["reason"] is None
        assert [n.id for n in client.notifications()] == ["N-1", "N-2"]
        # The first screen read the dashboard: the engine is built once the loop is free.
        await handed_over(client)
        assert not client.starting
        assert threads == ["engine-build"] and engine.started == 1
        assert {"auth", "status", "dashboard"} <= set(topics)  # the veto redrawn
        assert client.status().online  # the engine answers now
        assert client.why_no_push() == engine.why_no_push()  # the engine's answer now
        await client.stop()

    asyncio.run(main())


def test_the_engine_is_built_when_the_ui_says_the_first_screen_is_drawn(
        tmp_path: Path) -> None:
    """Not while the browser draws it: the build's imports took the CPU from the drawing.
    The dashboard read only arms a fallback (an hour here: it must not be what builds)."""
    path = keep_store(tmp_path / DATABASE_NAME, engine := Engine(now=lambda: NOW))
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER, clock=lambda: NOW, after_first_screen=3600)

    async def main() -> None:
        await client.start()
        client.dashboard()  # the first screen is being built
        await asyncio.sleep(0.05)
        assert threads == [] and client.starting  # held back while it is drawn
        # A handler may run in a worker thread: the build still starts once, on the loop.
        await asyncio.gather(*(asyncio.to_thread(client.screen_drawn) for _ in range(4)))
        await handed_over(client)
        assert threads == ["engine-build"] and engine.started == 1
        client.screen_drawn()  # later layouts (a resize) change nothing
        assert threads == ["engine-build"]
        await client.stop()

    asyncio.run(main())


def test_the_engine_is_built_anyway_when_the_ui_never_says_it_drew(tmp_path: Path) -> None:
    path = keep_store(tmp_path / DATABASE_NAME, engine := Engine(now=lambda: NOW))
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER, clock=lambda: NOW, after_first_screen=0.05)

    async def main() -> None:
        await client.start()
        client.dashboard()
        await handed_over(client)
        assert threads == ["engine-build"] and not client.starting
        await client.stop()

    asyncio.run(main())


def test_the_store_holds_the_reason_sealed_and_no_snapshot_is_left(tmp_path: Path) -> None:
    path = keep_store(tmp_path / DATABASE_NAME, engine := Engine(now=lambda: NOW))
    stale = tmp_path / STALE_SNAPSHOT_NAME
    stale.write_text('{"dashboard": "in clear"}', encoding="utf-8")
    client = StartingClient(builder(engine)[0], path, SERVER, build_at_latest=60)

    async def main() -> None:
        await client.start()
        assert client.starting  # answered from the store
        await client.stop()

    asyncio.run(main())
    assert not stale.exists()  # the old copy in clear is gone
    assert [p.name for p in tmp_path.iterdir() if "snapshot" in p.name] == []
    assert REASON.encode() not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_a_read_after_stop_with_no_engine_built_is_refused_not_hung(tmp_path: Path) -> None:
    """A screen drawn during shutdown asks for a list: the engine was never built and
    stop() will not build it, so the read says so instead of waiting for ever."""
    path = keep_store(tmp_path / DATABASE_NAME, engine := Engine(now=lambda: NOW))
    client = StartingClient(builder(engine)[0], path, SERVER, build_at_latest=60)

    async def main() -> None:
        await client.start()
        assert client.starting
        await client.stop()

    asyncio.run(main())
    with pytest.raises(ClientStopped, match="shutting down"):
        client.approvals()


def _queue_approve(path: Path, engine: FakeGovernorClient, approval_id: str) -> None:
    """A decision the server has not answered yet, as the engine leaves it in the store."""
    account = engine.account()
    assert account is not None
    store = LocalStore(path, sealer=OutboxSealer(new_device_key))
    try:
        store.enqueue(entry_id="e-1", kind="decision", created_at=NOW,
                      payload={"id": "e-1", "approval_id": approval_id, "action": "approve",
                               "expected_version": 1}, approval_id=approval_id,
                      action=DecisionAction.APPROVE, expected_version=1, sub=account.sub)
    finally:
        store.close()


def _engine_list(path: Path, sub: str, filter: str, needle: str, limit: int = 200,
                 offset: int = 0) -> list[ApprovalSummary]:
    """The list as the engine reads it from its store (``SyncEngine.approvals``)."""
    store = LocalStore(path, sealer=OutboxSealer(new_device_key))
    try:
        store.serve(sub)
        return [store_reads.shown(ApprovalSummary, fields, pending) for fields, pending
                in store.approval_page(filter, needle, NOW, limit, offset)]
    finally:
        store.close()


def test_a_list_read_before_the_hand_over_comes_from_the_store(tmp_path: Path) -> None:
    """The dashboard names the nearest request in a veto window: the first screen's list
    reads are the engine's own query on its store, and wait for no build."""
    engine = Engine(approvals=12, now=lambda: NOW)
    path = keep_store(tmp_path / DATABASE_NAME, engine)
    _queue_approve(path, engine, "REQ-0001")  # pending, shown as approved until answered
    account = engine.account()
    assert account is not None
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER, clock=lambda: NOW, build_at_latest=60)

    async def main() -> None:
        await client.start()
        for filter, needle in (("all", ""), ("pending", ""), ("veto_window", ""),
                               ("decided", ""), ("all", "Finance")):
            listed = client.approvals(filter, needle)  # type: ignore[arg-type]
            assert listed == _engine_list(path, account.sub, filter, needle.lower())
            assert listed, filter
        assert client.approvals("all", limit=2, offset=3) == \
            _engine_list(path, account.sub, "all", "", 2, 3)
        shown = {a.id: a for a in client.approvals("decided")}["REQ-0001"]
        assert (shown.status, shown.pending_decision) == ("approved", DecisionAction.APPROVE)
        assert "REQ-0001" not in {a.id for a in client.approvals("pending")}
        assert threads == [] and client.starting  # the engine was not needed
        await client.stop()

    asyncio.run(main())


def _gone(path: Path) -> None:
    for file in path.parent.iterdir():
        file.unlink()


def _overwritten(path: Path) -> None:
    _gone(path)
    path.write_bytes(b"this is not a database" * 200)


@pytest.mark.parametrize("spoil", [_gone, _overwritten], ids=["deleted", "damaged"])
def test_a_list_the_store_cannot_answer_comes_from_the_engine(
        tmp_path: Path, spoil: Callable[[Path], None]) -> None:
    engine = Engine(approvals=3, now=lambda: NOW)
    path = keep_store(tmp_path / "data" / DATABASE_NAME, engine)
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER, build_at_latest=60)

    async def main() -> None:
        await client.start()
        spoil(path)  # after the first screen was read
        assert client.approvals("all") == engine.approvals("all")
        assert threads == ["engine-build"]
        await client.stop()

    asyncio.run(main())


def test_a_detail_read_before_the_hand_over_waits_for_the_build(tmp_path: Path) -> None:
    engine = Engine(approvals=3, now=lambda: NOW)
    path = keep_store(tmp_path / DATABASE_NAME, engine)
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER, build_at_latest=60)

    async def main() -> None:
        await client.start()
        first = engine.approvals()[0].id
        assert client.approval(first) == engine.approval(first)
        assert threads == ["engine-build"]
        entry = client.approve(engine.approvals("pending")[0].id)
        assert entry.approval_id
        await client.sync_now()  # async calls wait for the started engine
        assert engine.started == 1
        await client.stop()

    asyncio.run(main())


def _older_schema(path: Path) -> None:
    LocalStore(path, migrations=MIGRATIONS[:-1]).close()


def _another_server(path: Path) -> None:
    keep_store(path, Engine(now=lambda: NOW), server="http://elsewhere:8000")


def _no_account_recorded(path: Path) -> None:
    keep_store(path, Engine(now=lambda: NOW))
    db = sqlite3.connect(path)
    db.execute("DELETE FROM meta WHERE key = 'account'")  # as an earlier version left it
    db.commit()
    db.close()


def _damaged(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 200)


def _unreadable_rows(path: Path) -> None:
    keep_store(path, Engine(now=lambda: NOW))
    db = sqlite3.connect(path)
    db.execute("UPDATE dashboard SET body = '{not json'")
    db.commit()
    db.close()


@pytest.mark.parametrize("make", [None, _older_schema, _another_server, _no_account_recorded,
                                  _damaged, _unreadable_rows],
                         ids=["no store", "older schema", "another server", "no account",
                              "damaged file", "unreadable rows"])
def test_a_store_that_cannot_answer_builds_the_engine_at_start(
        tmp_path: Path, make: Callable[[Path], None] | None) -> None:
    path = tmp_path / "data" / DATABASE_NAME
    if make is not None:
        path.parent.mkdir()
        make(path)
    before = path.read_bytes() if path.exists() else None
    assert FirstScreen.read(path, SERVER, NOW) is None
    engine = Engine(now=lambda: NOW)
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER)

    async def main() -> None:
        await client.start()
        assert threads == ["engine-build"] and not client.starting
        await client.stop()

    asyncio.run(main())
    # Read-only: the cold start neither created, migrated nor repaired the file.
    assert (path.read_bytes() if path.exists() else None) == before


def test_a_store_locked_by_another_process_builds_the_engine_at_start(
        tmp_path: Path) -> None:
    path = keep_store(tmp_path / DATABASE_NAME, Engine(now=lambda: NOW))
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")  # another app instance migrating it, say
        assert FirstScreen.read(path, SERVER, NOW, lock_wait=0.01) is None
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert FirstScreen.read(path, SERVER, NOW) is not None  # free again: it answers


def test_a_signed_out_store_and_a_failed_build(tmp_path: Path) -> None:
    path = keep_store(tmp_path / DATABASE_NAME,
                      FakeGovernorClient(signed_in_as=None, now=lambda: NOW))

    def broken() -> FakeGovernorClient:
        raise RuntimeError("the store is locked")

    client = StartingClient(broken, path, SERVER, build_at_latest=0.01)

    async def main() -> None:
        await client.start()
        assert client.account() is None  # the sign-in screen, from the store
        assert not client.status().signed_in
        with pytest.raises(RuntimeError, match="store is locked"):
            await client.sign_in_with_password("governor", "governor")
        await client.stop()

    asyncio.run(main())


def test_the_status_counts_the_accounts_own_outbox(tmp_path: Path) -> None:
    engine = Engine(approvals=3, now=lambda: NOW)
    path = keep_store(tmp_path / DATABASE_NAME, engine)
    store = LocalStore(path, sealer=OutboxSealer(new_device_key))
    account = engine.account()
    assert account is not None
    for entry_id, sub in (("e-1", account.sub), ("e-2", "sub-someone-else")):
        store.enqueue(entry_id=entry_id, kind="decision", created_at=NOW - timedelta(minutes=3),
                      payload={"id": entry_id, "approval_id": "REQ-0001", "action": "approve",
                               "expected_version": 1}, approval_id="REQ-0001",
                      action=DecisionAction.APPROVE, expected_version=1, sub=sub)
    store.close()
    client = StartingClient(builder(engine)[0], path, SERVER, clock=lambda: NOW,
                            build_at_latest=60)

    async def main() -> None:
        await client.start()
        status = client.status()
        assert (status.pending_count, status.other_accounts_count) == (1, 1)
        assert status.oldest_pending_age_s == 180.0
        await client.stop()

    asyncio.run(main())


def test_an_engine_whose_start_fails_is_stopped(tmp_path: Path) -> None:
    """Built, then its start refused: the error reaches the caller and the engine is
    stopped all the same (a probe it began before the hand-over must not outlive it)."""

    class Refusing(Engine):
        stopped = 0

        async def start(self) -> None:
            raise RuntimeError("the store is read-only")

        async def stop(self) -> None:
            self.stopped += 1

    engine = Refusing(now=lambda: NOW)
    build, _ = builder(engine)
    client = StartingClient(build, None, SERVER)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="read-only"):
            await client.start()
        await client.stop()

    asyncio.run(main())
    assert engine.stopped == 1


def test_prewarm_names_come_from_the_first_screen() -> None:
    names = flet_names_used()
    assert {"NavigationRail", "Card", "ResponsiveRow", "Semantics", "TextField"} <= names
    assert "SegmentedButton" not in names  # the approvals list: imported when opened


def test_what_prewarm_imports_leaves_the_wizards_validator_for_the_wizard() -> None:
    """jsonschema (~40 ms of imports) is the seed wizard's alone: the frame and the first
    screen, which prewarm imports while the browser loads, must not pull it in."""
    code = ("import sys; from governor_app.startup import prewarm; prewarm(); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'jsonschema'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_server_time_is_the_device_clock_until_the_engine_answers_it(tmp_path: Path) -> None:
    server_now = NOW + timedelta(hours=1)  # the engine knows the server is an hour ahead
    engine = Engine(now=lambda: server_now)
    path = keep_store(tmp_path / DATABASE_NAME, engine)
    build, _ = builder(engine)
    client = StartingClient(build, path, SERVER, clock=lambda: NOW, after_first_screen=0.01)

    async def main() -> None:
        await client.start()
        assert client.server_now() == NOW  # nothing measured before the engine exists
        client.dashboard()  # the first screen: the engine is built after it
        for _ in range(1000):
            if not client.starting:
                break
            await asyncio.sleep(0.01)
        assert client.server_now() == server_now
        await client.stop()

    asyncio.run(main())
