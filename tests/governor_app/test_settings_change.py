"""Saving the settings: what applies at once (notifications, sync interval), what waits for
a restart (the server), and when a server change is refused."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from governor_app.preferences import Preferences
from governor_app.settings_change import (
    SettingsChange,
    apply_sync_interval,
    running_interval,
)
from sync.engine import SYNC_JOB_ID, SyncEngine
from sync.fakes import FakeGovernorClient
from sync.settings import GovernorSettings
from tests.sync.conftest import GOVERNOR, FakeAuthenticator

RUNNING = "http://127.0.0.1:8000"


def change(after: Preferences, before: Preferences | None = None, queued: int = 0
           ) -> SettingsChange:
    return SettingsChange(before or Preferences(), after, RUNNING, queued)


def test_a_server_change_waits_for_a_restart_and_says_to_sign_in_there() -> None:
    c = change(Preferences(server_url="https://governance.example.com"))
    assert c.server_changed and c.problems() == {}
    assert c.message(interval_applied=False) == (
        "Settings saved. Restart the app to use https://governance.example.com; you will "
        "sign in there. Until then it stays on http://127.0.0.1:8000.")


def test_a_server_change_is_refused_while_decisions_wait_for_the_current_one() -> None:
    c = change(Preferences(server_url="https://governance.example.com"), queued=2)
    assert c.problems() == {"server_url": (
        "2 decision(s) still wait to be sent to http://127.0.0.1:8000. They were made for "
        "that server: let them go (Outbox) or discard them before moving to another "
        "server.")}


def test_the_same_server_written_differently_is_no_change() -> None:
    for same in ("http://127.0.0.1:8000/", " HTTP://127.0.0.1:8000", ""):
        c = change(Preferences(server_url=same), queued=3)
        assert not c.server_changed and c.problems() == {}
    assert "server_url" in change(Preferences(server_url="ftp://x")).problems()


def test_a_saved_server_overridden_at_start_is_not_a_change() -> None:
    # `governor app --server RUNNING` over a saved server: the screen shows the saved one;
    # saving quiet hours must neither be refused for the queue nor promise a switch.
    saved = Preferences(server_url="https://governance.example.com")
    c = change(saved.with_(quiet_hours=True), before=saved, queued=2)
    assert not c.server_changed and c.problems() == {}
    assert "Restart" not in c.message(interval_applied=False)
    # Edited to a third server, it is a change again.
    assert change(saved.with_(server_url="https://other.example.com"), before=saved,
                  queued=2).problems()


def test_the_message_says_what_applied_now() -> None:
    c = change(Preferences(sync_interval=10, quiet_hours=True))
    assert c.interval_changed and c.notifications_changed
    assert c.message(interval_applied=True) == (
        "Settings saved. Notification settings apply now. Syncing every 10 s from now.")
    assert c.message(interval_applied=False).endswith("Syncing every 10 s from the next "
                                                      "start.")
    assert change(Preferences()).message(False) == "Settings saved."
    assert not change(Preferences(theme="dark")).notifications_changed


def engine(tmp_path: Path, interval: float) -> SyncEngine:
    return SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", data_dir=tmp_path,
                                       sync_interval=interval),
                      authenticator=FakeAuthenticator(GOVERNOR),
                      transport=httpx.MockTransport(lambda r: httpx.Response(503)))


def test_the_sync_interval_reschedules_the_running_engine(tmp_path: Path) -> None:
    async def main() -> None:
        e = engine(tmp_path, 30)
        await e.start()
        try:
            assert running_interval(e, 99) == 30
            assert apply_sync_interval(e, 7)
            job: Any = e._scheduler.get_job(SYNC_JOB_ID)
            assert job.trigger.interval == timedelta(seconds=7)
            assert e.settings.sync_interval == 7 and running_interval(e, 99) == 7
        finally:
            await e.stop()
    asyncio.run(main())


def test_a_client_without_periodic_sync_keeps_the_interval_for_the_next_start(
        tmp_path: Path) -> None:
    async def main() -> None:
        e = engine(tmp_path, 0)  # periodic sync off: nothing to reschedule
        await e.start()
        try:
            assert not apply_sync_interval(e, 7)
            assert running_interval(e, 45) == 45
        finally:
            await e.stop()
    asyncio.run(main())
    fake = FakeGovernorClient()
    assert not apply_sync_interval(fake, 7) and running_interval(fake, 30) == 30


def test_the_interval_goes_through_the_clients_own_setter() -> None:
    class Client(FakeGovernorClient):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: float = 0

        def sync_interval(self) -> float:
            return self.seconds

        def set_sync_interval(self, seconds: float) -> bool:
            self.seconds = seconds
            return True

    client = Client()
    assert apply_sync_interval(client, 12) and client.seconds == 12
    assert running_interval(client, 99) == 12


def test_the_engine_behind_the_cold_start_client_is_rescheduled(tmp_path: Path) -> None:
    from sync.cold_start import StartingClient

    async def main() -> None:
        client = StartingClient(lambda: engine(tmp_path, 30), None, "http://127.0.0.1:9")
        await client.start()  # no store given: the engine is built and started at once
        try:
            assert apply_sync_interval(client, 9)
            assert running_interval(client, 99) == 9
        finally:
            await client.stop()
    asyncio.run(main())


def test_a_setter_that_fails_leaves_the_interval_for_the_next_start() -> None:
    class Client(FakeGovernorClient):
        def set_sync_interval(self, seconds: float) -> bool:
            raise RuntimeError("scheduler gone")

    assert not apply_sync_interval(Client(), 12)
