"""``governor demo|app``: arguments, the view chosen, and the demo's start and clean stop."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from governor_app import cli
from governor_app.profile import AppProfile, load_profile
from sync.errors import AuthFlowError, ServerUnreachable, SyncError
from sync.fakes import FakeGovernorClient
from sync.models import Account

REPO = Path(__file__).resolve().parents[2]


def test_web_is_chosen_when_no_desktop_client_can_run(monkeypatch: pytest.MonkeyPatch
                                                     ) -> None:
    monkeypatch.setattr(cli, "desktop_available", lambda: False)
    assert cli.wants_web(AppProfile(view="auto"), force_web=False)
    monkeypatch.setattr(cli, "desktop_available", lambda: True)
    assert not cli.wants_web(AppProfile(view="auto"), force_web=False)
    assert cli.wants_web(AppProfile(view="auto"), force_web=True)
    assert cli.wants_web(AppProfile(view="web"), force_web=False)


def test_no_display_means_no_desktop_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert not cli.desktop_available()


def test_unknown_command_is_refused() -> None:
    with pytest.raises(SystemExit):
        cli.main(["dance"])


def test_demo_prints_both_urls_serves_offline_assets_and_stops_both_on_sigterm(
        tmp_path: Path) -> None:
    env = {**os.environ, "FLET_SERVER_IP": "127.0.0.1", "HOME": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "governor_app.cli", "demo", "--web",
         "--data-dir", str(tmp_path / "app")], cwd=REPO, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("governor app: http"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(120), "".join(lines)
        text = "".join(lines)
        stub_url = re.search(r"governance stub: (http://127\.0\.0\.1:\d+)", text)
        app_url = re.search(r"governor app: (http://127\.0\.0\.1:\d+)", text)
        assert stub_url and app_url, text
        assert httpx.get(stub_url.group(1) + "/v1/health", timeout=10).status_code == 200
        page = httpx.get(app_url.group(1), timeout=10)
        assert page.status_code == 200
        assert "gstatic" not in page.text  # no-CDN mode: everything from 127.0.0.1
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(60) == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "governance stub stopped" not in "".join(lines):
            time.sleep(0.05)
        assert "governance stub stopped" in "".join(lines)
        with pytest.raises(httpx.TransportError):
            httpx.get(stub_url.group(1) + "/v1/health", timeout=2)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_saved_settings_apply_unless_a_flag_or_variable_names_them(tmp_path: Path) -> None:
    from governor_app.preferences import Preferences, PreferenceStore

    no_file = tmp_path / "no-profile.toml"
    store = PreferenceStore(tmp_path / "app-preferences.json")
    # Nothing saved: the profile's defaults.
    assert cli.app_profile(no_file, store, env={}).sync_interval == \
        load_profile(no_file, {}).sync_interval
    store.save(Preferences(sync_interval=120))  # the interval alone, no server saved
    assert cli.app_profile(no_file, store, env={}).sync_interval == 120
    assert cli.app_profile(no_file, store, env={"GOVERNOR_SYNC_INTERVAL": "7"}
                           ).sync_interval == 7
    store.save(Preferences(server_url="http://127.0.0.1:9/", sync_interval=60))
    assert cli.app_profile(no_file, store, env={}).server_url == "http://127.0.0.1:9/"
    flagged = cli.app_profile(no_file, store, server="http://127.0.0.1:8/", env={})
    assert (flagged.server_url, flagged.sync_interval) == ("http://127.0.0.1:8/", 60)
    assert cli.app_profile(no_file, store, env={"GOVERNOR_SERVER_URL": "http://127.0.0.1:7"}
                           ).server_url == "http://127.0.0.1:7"


class _RecordingStub:
    made: list[tuple[Path, int, float | None]] = []

    def __init__(self, data_dir: Path, port: int, activity: float | None = None) -> None:
        self.made.append((data_dir, port, activity))
        self.url = f"http://127.0.0.1:{port}"
        self.output: list[str] = []

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.mark.parametrize(("argv", "activity"), [
    ([], None), (["--activity"], cli.DEMO_ACTIVITY_S), (["--activity", "2.5"], 2.5)])
def test_demo_activity_reaches_the_stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        argv: list[str], activity: float | None) -> None:
    _RecordingStub.made = []
    monkeypatch.setattr(cli, "StubChild", _RecordingStub)
    monkeypatch.setattr(cli, "run_app", lambda *a, **k: None)
    assert cli.main(["demo", "--web", "--data-dir", str(tmp_path), *argv]) == 0
    assert [made[2] for made in _RecordingStub.made] == [activity]


@pytest.mark.parametrize("bad", ["0", "-1", "soon"])
def test_demo_activity_needs_a_positive_number(bad: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["demo", "--activity", bad])
    assert "is not a number of seconds above 0" in capsys.readouterr().err


def test_a_stub_started_with_activity_acts_on_its_own(tmp_path: Path) -> None:
    stub = cli.StubChild(tmp_path, cli._free_port(), activity=0.2)
    stub.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                "demo activity:" in line for line in stub.output):
            time.sleep(0.05)
        assert any("demo activity:" in line for line in stub.output), "".join(stub.output)
    finally:
        stub.stop()


def test_receipts_verify_checks_what_the_local_database_keeps(tmp_path: Path) -> None:
    from governor_app.cli import verify_receipts
    from sync.store import LocalStore

    out: list[str] = []
    err: list[str] = []
    assert verify_receipts(tmp_path / "none", out.append, err.append) == 2
    assert "no local database" in err[0] and "--data-dir" in err[0]
    LocalStore(tmp_path / "governor.db").close()  # a device that decided nothing yet
    assert verify_receipts(tmp_path, out.append, err.append) == 0
    assert out == ["0 receipt(s) verified, 0 invalid, 0 awaiting the server, against 0 "
                   "cached signing key(s)."]


class _SilentAtFirst(FakeGovernorClient):
    """A stub that has just started: the first ``silent`` sign-ins go unanswered."""

    def __init__(self, silent: int, refusal: SyncError | None = None) -> None:
        super().__init__(signed_in_as=None)
        self.silent = silent
        self.refusal = refusal
        self.tries = 0
        self.synced = 0

    async def sign_in_with_password(self, username: str, password: str) -> Account:
        self.tries += 1
        if self.refusal is not None:
            raise self.refusal
        if self.tries <= self.silent:
            raise ServerUnreachable("Cannot reach http://127.0.0.1:9 to finish signing in "
                                    "(ReadTimeout)")
        return await super().sign_in_with_password(username, password)

    async def sync_now(self) -> None:
        self.synced += 1
        await super().sync_now()


def test_the_demo_sign_in_unanswered_at_first_is_tried_again() -> None:
    client, said = _SilentAtFirst(silent=2), list[str]()
    assert asyncio.run(cli.demo_sign_in(client, say=said.append, pause=0))
    account = client.account()
    assert account is not None and account.sub == "governor"
    assert client.tries == 3 and client.synced == 1
    assert said == [
        "demo sign-in: the stub did not answer (Cannot reach http://127.0.0.1:9 to finish "
        "signing in (ReadTimeout)); trying again (2 of 3)",
        "demo sign-in: the stub did not answer (Cannot reach http://127.0.0.1:9 to finish "
        "signing in (ReadTimeout)); trying again (3 of 3)"]


def test_a_stub_that_never_answers_leaves_the_demo_on_its_sign_in_screen() -> None:
    """Not a client that failed to start (every page blank): signed out, the app shows its
    sign-in screen, and the console says why with the stub's last lines."""
    client, said = _SilentAtFirst(silent=99), list[str]()
    signed_in = asyncio.run(cli.demo_sign_in(
        client, say=said.append, pause=0,
        stub_output=lambda: ["starting\n", "governance stub listening on http://x\n"]))
    assert not signed_in and client.account() is None and client.synced == 0
    assert client.tries == cli.DEMO_SIGN_IN_TRIES
    assert said[-1] == (
        "demo sign-in failed: Cannot reach http://127.0.0.1:9 to finish signing in "
        "(ReadTimeout)\nThe app opens on its sign-in screen: sign in there as 'governor' "
        "with the password 'governor'. The stub's last lines:\n"
        "  starting\n  governance stub listening on http://x\n")


def test_a_refused_demo_sign_in_is_not_tried_again() -> None:
    client, said = _SilentAtFirst(0, AuthFlowError("The server refused the password for "
                                                   "'governor'")), list[str]()
    assert not asyncio.run(cli.demo_sign_in(client, say=said.append, pause=0))
    assert client.tries == 1 and len(said) == 1
    assert said[0].startswith("demo sign-in failed: The server refused the password")


def test_a_failed_first_sync_is_said_and_the_demo_stays_signed_in() -> None:
    class Offline(_SilentAtFirst):
        async def sync_now(self) -> None:
            raise ServerUnreachable("The server is unreachable; decisions stay queued.")

    client, said = Offline(silent=0), list[str]()
    assert asyncio.run(cli.demo_sign_in(client, say=said.append, pause=0))
    assert client.account() is not None
    assert said == ["first sync failed: The server is unreachable; decisions stay queued."]
