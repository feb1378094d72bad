"""Connection truth in the engine: losing the server starts a cheap probe (GET /v1/health,
at once, then every 0.5 s doubling to 1 s, one at a time); the engine is offline while it
fails and online, with the outbox sent, as soon as it answers. While the event stream is
live the periodic sync asks nothing of the server but a safety sync every 15 minutes.

A fake clock and a fake server; the probe's waits are recorded, not slept."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from datetime import timedelta

from sync.api import FakeAuthenticator
from sync.clock import FakeClock
from sync.engine import SyncEngine
from sync.fake_server import FakeServer
from sync.models import OutboxState
from sync.settings import GovernorSettings
from sync.store import LocalStore
from tests.sync.conftest import GOVERNOR, World, run

HEALTH = "GET /v1/health"


class Waits:
    """The probe's sleep: records each wait and moves the fake clock; ``then`` runs after
    the n-th wait (the server coming back, say)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.delays: list[float] = []
        self.after: dict[int, Callable[[], None]] = {}

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(seconds)
        action = self.after.get(len(self.delays))
        if action is not None:
            action()
        await asyncio.sleep(0)


def engine_for(world: World, waits: Callable[[float], Awaitable[None]],
               **settings: float) -> SyncEngine:
    return SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=0,
                                       device_id="dev-test", **settings),  # type: ignore[arg-type]
                      authenticator=world.auth, store=world.store, transport=world.server,
                      clock=world.clock, rng=random.Random(0), sleep=waits)


async def settle(engine: SyncEngine) -> None:
    """Let the probe and the flush it starts finish (they run on this loop)."""
    for _ in range(200):
        await asyncio.sleep(0)
        flush = engine._flush_task
        if not engine.probing and (flush is None or flush.done()):
            return
    raise AssertionError("the probe or the flush did not finish")


def test_a_lost_server_is_probed_offline_and_the_outbox_drains_when_it_answers(
        world: World) -> None:
    waits = Waits(world.clock)
    engine = engine_for(world, waits)
    statuses: list[bool] = []
    engine.subscribe(lambda topic: statuses.append(engine.status().online)
                     if topic == "status" else None)

    async def main() -> str:
        await engine.sync()
        assert engine.status().online
        world.server.offline = True
        waits.after[5] = lambda: setattr(world.server, "offline", False)
        entry = engine.approve("APR-0")  # sending fails: the server is gone
        await settle(engine)
        return entry.id

    entry_id = run(main())
    assert waits.delays == [0.5, 1.0, 1.0, 1.0, 1.0]
    assert False in statuses and engine.status().online
    assert world.server.applied_count(entry_id) == 1
    assert engine.outbox({OutboxState.QUEUED, OutboxState.SENDING}) == []
    # The failed send was the first ask: the probe waits before each of its own.
    assert world.server.requests.count(HEALTH) == 5


def test_a_dropped_stream_with_the_server_still_there_costs_one_probe_and_no_offline(
        world: World) -> None:
    waits = Waits(world.clock)
    engine = engine_for(world, waits)
    shown: list[bool] = []

    async def main() -> None:
        await engine.sync()
        engine.event_stream_opened()
        engine.subscribe(lambda t: shown.append(engine.status().online) if t == "status"
                         else None)
        engine.event_stream_closed()
        engine.event_stream_closed()  # told twice: still one probe in flight
        await settle(engine)

    run(main())
    assert world.server.requests.count(HEALTH) == 1 and waits.delays == []
    assert False not in shown and engine.status().online


def test_only_one_probe_is_in_flight_however_often_the_loss_is_reported(
        world: World) -> None:
    waits = Waits(world.clock)
    engine = engine_for(world, waits)

    async def main() -> None:
        world.server.offline = True
        engine.event_stream_closed()
        first = engine._probe_task
        for _ in range(5):
            engine.network_lost()
            engine.event_stream_closed()
        assert engine._probe_task is first
        waits.after[2] = lambda: setattr(world.server, "offline", False)
        await settle(engine)

    run(main())
    assert world.server.requests.count(HEALTH) == 3 and not engine.status().last_error


def test_an_engine_stopped_while_its_probe_sleeps_leaves_no_task_and_starts_none(
        world: World) -> None:
    """``stop()`` ends the probe asleep between two asks, and nothing the engine is told
    afterwards (the stream dropping or reconnecting, the network back, an event) starts a
    probe, flush or catch-up: such a task would outlive the engine, pending on a loop
    that closes ("Task was destroyed but it is pending")."""
    asleep = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        asleep.set()
        await asyncio.Event().wait()

    engine = engine_for(world, sleep_forever)

    async def main() -> set[asyncio.Task[object]]:
        world.server.offline = True
        engine.approve("APR-0")  # sending fails: the probe waits before asking
        await asyncio.wait_for(asleep.wait(), 5)
        probe = engine._probe_task
        assert probe is not None and not probe.done()
        await engine.stop()
        assert probe.cancelled() and not engine.probing
        engine.network_lost()
        engine.event_stream_closed()
        engine.event_stream_opened()
        engine.network_available()
        engine.apply_event({"id": "EVT-after-stop", "type": "governance.approval.updated",
                            "data": {"id": "APR-0", "status": "approved", "version": 2}})
        await asyncio.sleep(0)
        return asyncio.all_tasks() - {asyncio.current_task()}

    assert run(main()) == set()
    assert not engine.probing


def test_a_server_error_does_not_start_the_probe(world: World) -> None:
    """A server that answers 5xx is there: backoff and the breaker handle it, and a probe
    that succeeds at once would only make the engine hammer it."""
    waits = Waits(world.clock)
    engine = engine_for(world, waits)
    world.server.faults.append("server_error")
    run(engine.sync())
    assert not engine.probing and HEALTH not in world.server.requests
    assert "Next attempt" in (engine.status().last_error or "")


def test_the_return_wakes_whoever_waits_for_it(world: World) -> None:
    waits = Waits(world.clock)
    engine = engine_for(world, waits)
    woken: list[str] = []
    unhook = engine.when_back(lambda: woken.append("push"))

    async def main() -> None:
        world.server.offline = True
        engine.network_lost()
        waits.after[1] = lambda: setattr(world.server, "offline", False)
        await settle(engine)
        unhook()
        world.server.offline = True
        engine.network_lost()
        waits.after[2] = lambda: setattr(world.server, "offline", False)
        await settle(engine)

    run(main())
    assert woken == ["push"]


def test_the_probe_does_not_wait_for_the_breaker(world: World) -> None:
    waits = Waits(world.clock)
    engine = engine_for(world, waits)
    world.server.offline = True
    for _ in range(6):
        engine.retry.failed()
    assert engine.retry.state == "open"

    async def main() -> None:
        engine.network_lost()
        waits.after[1] = lambda: setattr(world.server, "offline", False)
        await settle(engine)

    run(main())
    assert waits.delays == [0.5] and engine.status().online
    assert engine.retry.state == "closed"


def test_while_the_stream_is_live_the_tick_asks_nothing_until_the_safety_sync(
        world: World) -> None:
    waits = Waits(world.clock)
    engine = engine_for(world, waits)

    async def main() -> None:
        await engine.sync()
        engine.event_stream_opened()
        await settle(engine)
        before = len(world.server.requests)
        for _ in range(29):  # 29 ticks of 30 s: 14.5 minutes
            world.clock.advance(30)
            await engine.tick()
        assert len(world.server.requests) == before
        world.clock.advance(31)  # past 15 minutes since the last full sync
        await engine.tick()
        assert len(world.server.requests) > before
        engine.event_stream_closed()
        await settle(engine)
        quiet = len(world.server.requests)
        world.clock.advance(30)
        await engine.tick()  # the stream is gone: the periodic sync is back
        assert len(world.server.requests) > quiet + 1

    run(main())


def test_a_decision_made_while_the_stream_is_live_is_still_sent_by_the_tick(
        world: World) -> None:
    waits = Waits(world.clock)
    engine = engine_for(world, waits)

    async def main() -> str:
        await engine.sync()
        engine.event_stream_opened()
        await settle(engine)
        entry = engine.approve("APR-1")
        await settle(engine)
        return entry.id

    entry_id = run(main())
    assert world.server.applied_count(entry_id) == 1


def test_the_probe_learns_the_server_time_from_the_health_answer() -> None:
    device = FakeClock()
    server = FakeServer(clock=FakeClock(device.now() + timedelta(hours=1)),
                        stamps_time=True, offline=True)
    waits = Waits(device)
    waits.after[1] = lambda: setattr(server, "offline", False)
    engine = SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=0),
                        authenticator=FakeAuthenticator(GOVERNOR), store=LocalStore(),
                        transport=server, clock=device, sleep=waits)

    async def main() -> None:
        engine.network_lost()
        await settle(engine)

    run(main())
    drift = (engine.server_now() - server.clock.now()).total_seconds()
    assert abs(drift) < 1.0  # the probe's real round trip, halved


def test_an_event_about_a_request_not_held_here_is_the_cue_to_catch_up(world: World) -> None:
    # With the stream live there is no polling: a request the server auto-approved and this
    # device never cached would stay unknown (its banner's Open found nothing) until the
    # 15-minute safety sync. The event itself makes the engine download, once.
    engine = engine_for(world, Waits(world.clock))

    async def main() -> None:
        await engine.sync()
        engine.event_stream_opened()
        world.server.add_approval("APR-NEW", "auto_approved")
        assert engine.approval("APR-NEW") is None
        requests_before = len(world.server.requests)
        engine.apply_event({"id": "evt-1", "type": "governance.seed.auto_approved",
                            "timestamp": "2026-12-03T10:00:00Z", "source": "stub",
                            "data": {"approval_id": "APR-NEW", "seed_id": "GEN-001"}})
        engine.apply_event({"id": "evt-2", "type": "governance.seed.auto_approved",
                            "timestamp": "2026-12-03T10:00:01Z", "source": "stub",
                            "data": {"approval_id": "APR-NEW", "seed_id": "GEN-001"}})
        task = engine._catch_up_task
        assert task is not None
        await task
        assert len(world.server.requests) > requests_before

    run(main())
    found = engine.approval("APR-NEW")
    assert found is not None and found.status.value == "auto_approved"
    run(engine.stop())
