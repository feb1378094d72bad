"""The guard against engines left running: a task pending on a closed loop is named
once; one cancelled (``stop()``, ``asyncio.run``) or on a loop still open is not."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest

from sync.api import FakeAuthenticator
from sync.clock import FakeClock
from sync.engine import SyncEngine
from sync.fake_server import FakeServer
from sync.settings import GovernorSettings
from sync.store import LocalStore
from tests.support.engine_leaks import EngineLeaks, failure


class StandIn:
    """What the guard reads of an engine: its tasks and its server."""

    def __init__(self, **tasks: asyncio.Task[None]) -> None:
        self.settings = SimpleNamespace(server_url="http://127.0.0.1:9")
        self._probe_task = tasks.get("_probe_task")
        self._flush_task = tasks.get("_flush_task")
        self._catch_up_task = tasks.get("_catch_up_task")


def stand_in(**tasks: asyncio.Task[None]) -> SyncEngine:
    return cast(SyncEngine, StandIn(**tasks))


def sleeping_task(loop: asyncio.AbstractEventLoop) -> asyncio.Task[None]:
    task = loop.create_task(asyncio.sleep(3600))
    loop.run_until_complete(asyncio.sleep(0))  # it starts, and sleeps
    return task


def test_a_probe_pending_on_a_closed_loop_is_named_once() -> None:
    loop = asyncio.new_event_loop()
    probe = sleeping_task(loop)
    leaks = EngineLeaks()
    engine = stand_in(_probe_task=probe)
    leaks.track(engine)
    assert leaks.leaked() == []  # the loop still runs it
    loop.close()
    found = leaks.leaked()
    assert found == ["http://127.0.0.1:9: _probe_task"]
    assert "engine.stop()" in failure(found)
    assert leaks.leaked() == []  # named once, then forgotten
    probe._log_destroy_pending = False  # type: ignore[attr-defined]  # shown above


def test_tasks_cancelled_before_the_loop_closes_are_no_leak() -> None:
    loop = asyncio.new_event_loop()
    flush, catch_up = sleeping_task(loop), sleeping_task(loop)
    leaks = EngineLeaks()
    leaks.track(stand_in(_flush_task=flush, _catch_up_task=catch_up))
    flush.cancel()
    catch_up.cancel()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    assert leaks.leaked() == []


def test_installed_it_tracks_the_engines_built() -> None:
    leaks = EngineLeaks()
    with pytest.MonkeyPatch.context() as patch:
        leaks.install(patch)
        engine = SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9",
                                             sync_interval=0, device_id="dev-test"),
                            authenticator=FakeAuthenticator(None), store=LocalStore(),
                            transport=FakeServer(clock=FakeClock()))
    assert list(leaks._engines) == [engine]
    asyncio.run(engine.stop())
