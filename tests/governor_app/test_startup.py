"""Cold start: the first screen from the app's snapshot, the engine built after it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from governor_app.startup import flet_names_used
from sync.cold_start import SNAPSHOT_NAME, WRITE_DELAY_S, Snapshot, StartingClient
from sync.fakes import FakeGovernorClient

SERVER = "http://127.0.0.1:8000"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


class Engine(FakeGovernorClient):
    """The fake client as the engine: counts its builds and starts."""

    started = 0

    async def start(self) -> None:
        self.started += 1


def keep_snapshot(path: Path, engine: FakeGovernorClient, server: str = SERVER) -> None:
    Snapshot.of(engine, server, NOW).write(path)


def builder(engine: FakeGovernorClient) -> tuple[Callable[[], Any], list[str]]:
    threads: list[str] = []

    def build() -> FakeGovernorClient:
        threads.append(threading.current_thread().name)
        return engine

    return build, threads


def test_snapshot_round_trip_and_refusals(tmp_path: Path) -> None:
    engine = FakeGovernorClient(now=lambda: NOW)
    path = tmp_path / SNAPSHOT_NAME
    keep_snapshot(path, engine)
    snap = Snapshot.read(path, SERVER)
    assert snap is not None
    assert snap.account == engine.account()
    assert snap.dashboard == engine.dashboard()
    assert [n.id for n in snap.notifications] == [n.id for n in engine.notifications()]
    assert path.stat().st_mode & 0o777 == 0o600
    # Another server's snapshot, none, or a damaged one: no snapshot.
    assert Snapshot.read(path, "http://elsewhere:8000") is None
    assert Snapshot.read(tmp_path / "missing.json", SERVER) is None
    path.write_text("{not json", encoding="utf-8")
    assert Snapshot.read(path, SERVER) is None


def test_first_screen_reads_the_snapshot_then_the_engine_takes_over(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_NAME
    engine = Engine(now=lambda: NOW)
    keep_snapshot(path, engine)
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
        cached = client.dashboard()
        assert cached is not None and cached.stale  # 10 minutes old: past the 5-minute TTL
        assert len(client.notifications()) == 2
        # The first screen read the dashboard: the engine is built once the loop is free.
        for _ in range(1000):
            if not client.starting:
                break
            await asyncio.sleep(0.01)
        assert not client.starting
        assert threads == ["engine-build"] and engine.started == 1
        assert {"auth", "status"} <= set(topics)
        assert client.status().online  # the engine answers now
        assert client.why_no_push() == engine.why_no_push()  # the engine's answer now
        await client.stop()

    asyncio.run(main())


def test_a_list_read_before_the_hand_over_waits_for_the_build(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_NAME
    engine = Engine(approvals=3, now=lambda: NOW)
    keep_snapshot(path, engine)
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER, build_at_latest=60)

    async def main() -> None:
        await client.start()
        assert [a.id for a in client.approvals("all")] == [a.id for a in engine.approvals()]
        assert threads == ["engine-build"]
        entry = client.approve(engine.approvals("pending")[0].id)
        assert entry.approval_id
        await client.sync_now()  # async calls wait for the started engine
        assert engine.started == 1
        await client.stop()

    asyncio.run(main())


def test_without_a_snapshot_the_engine_is_built_at_start_and_the_snapshot_kept(
        tmp_path: Path) -> None:
    path = tmp_path / "data" / SNAPSHOT_NAME
    engine = Engine(now=lambda: NOW)
    build, threads = builder(engine)
    client = StartingClient(build, path, SERVER)

    async def main() -> None:
        await client.start()
        assert threads == ["engine-build"] and not client.starting
        await client.stop()  # keeps the snapshot for the next start

    asyncio.run(main())
    snap = Snapshot.read(path, SERVER)
    assert snap is not None and snap.dashboard == engine.dashboard()


def test_a_snapshot_write_due_when_the_app_stops_is_made_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data" / SNAPSHOT_NAME
    engine = Engine(now=lambda: NOW)
    client = StartingClient(builder(engine)[0], path, SERVER)
    writes: list[Path] = []
    write = Snapshot.write

    def counted(self: Snapshot, to: Path) -> None:
        writes.append(to)
        write(self, to)

    monkeypatch.setattr(Snapshot, "write", counted)

    async def main() -> None:
        await client.start()
        await asyncio.sleep(WRITE_DELAY_S + 0.1)  # whatever the start had due is written
        writes.clear()
        engine._emit("status")  # a sync: a write is due shortly
        await asyncio.sleep(0.01)
        await client.stop()  # writes it now
        await asyncio.sleep(WRITE_DELAY_S + 0.2)  # and not again after the engine stopped

    asyncio.run(main())
    assert writes == [path]


def test_a_signed_out_snapshot_and_a_failed_build(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_NAME
    keep_snapshot(path, FakeGovernorClient(signed_in_as=None, now=lambda: NOW))

    def broken() -> FakeGovernorClient:
        raise RuntimeError("the store is locked")

    client = StartingClient(broken, path, SERVER, build_at_latest=0.01)

    async def main() -> None:
        await client.start()
        assert client.account() is None  # the sign-in screen, from the snapshot
        with pytest.raises(RuntimeError, match="store is locked"):
            await client.sign_in_with_password("governor", "governor")
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


def test_server_time_is_the_device_clock_until_the_engine_answers_it(tmp_path: Path) -> None:
    path = tmp_path / SNAPSHOT_NAME
    server_now = NOW + timedelta(hours=1)  # the engine knows the server is an hour ahead
    engine = Engine(now=lambda: server_now)
    keep_snapshot(path, engine)
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
