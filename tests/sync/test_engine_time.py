"""Time truth in the engine: a device clock an hour fast changes no window, filter or
reminder once the server has answered (its envelope or health stamp gives the offset)."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

from sync.clock import FakeClock, SkewedClock
from sync.engine import SyncEngine
from sync.models import VetoCategory
from sync.settings import GovernorSettings
from tests.sync.conftest import World, run


def hour_fast_engine(world: World) -> SyncEngine:
    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    return SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=0,
                                       device_id="dev-test"),
                      authenticator=world.auth, store=world.store, transport=world.server,
                      clock=SkewedClock(world.clock, 3600), rng=random.Random(0),
                      sleep=no_wait)


def learn_server_time(engine: SyncEngine) -> None:
    async def main() -> None:
        engine.network_lost()  # a probe: GET /v1/health answers the server's time
        for _ in range(100):
            await asyncio.sleep(0)
            if not engine.probing:
                return
    run(main())


def test_an_hour_fast_device_keeps_the_server_window_filter_and_reminders() -> None:
    world = World()
    world.server.stamps_time = True
    world.server.add_approval("APR-X", "approved",
                              veto_deadline=world.clock.now() + timedelta(minutes=30))
    engine = hour_fast_engine(world)
    run(engine.download())
    # Before any stamp the device's word is all there is: the window looks closed.
    assert "APR-X" not in [a.id for a in engine.approvals("veto_window")]

    learn_server_time(engine)
    assert abs((engine.server_now() - world.clock.now()).total_seconds()) < 0.5
    assert "APR-X" in [a.id for a in engine.approvals("veto_window")]

    world.server.offline = True
    engine.veto("APR-X", VetoCategory.SAFETY, "Unbounded budget; stop it.")
    engine.check_deadlines()
    reminders = [n for n in engine.notifications() if n.type == "governor.veto.unsent"]
    assert len(reminders) == 1
    assert "closes in 1 hour" in str(reminders[0].data["message"])


def test_a_demo_clock_jump_moves_the_engine_time_at_the_next_stamp() -> None:
    world = World()
    world.server.stamps_time = True
    engine = hour_fast_engine(world)
    learn_server_time(engine)
    world.server.clock = FakeClock(world.clock.now() + timedelta(hours=2))  # the demo jump
    learn_server_time(engine)
    drift = (engine.server_now() - world.server.clock.now()).total_seconds()
    assert abs(drift) < 0.5
