"""``governor demo|app``: the launcher.

``governor demo [--web] [--port P] [--no-auto-login] [--activity [SECONDS]]`` starts the
stub with demo data on a free loopback port, points the app at it, signs in as the demo
governor through the real sign-in flow, prints both URLs and stops both on Ctrl-C or
SIGTERM. ``--activity`` turns on the stub's live demo activity: the platform acts on its
own every SECONDS (default 20): new requests, auto-approvals, budget alerts, violations.

``governor app --server URL [--web] [--port P]`` runs the app against a server: a desktop
window where a Flet desktop client can run, else the web app on 127.0.0.1 (no CDN).

``governor receipts verify [--data-dir D]`` checks every kept decision receipt offline
against the cached key set: a line per bad receipt on stderr, exit status 1 if any.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from governor_app.errors import GovernorAppError, StubStartError
from governor_app.preferences import PreferenceStore
from governor_app.profile import AppProfile, load_profile
from sync.errors import ServerUnreachable, SyncError
from sync.facade import (
    GovernorClient,
    check_server,
    governor_settings,
    kept_receipts,
    open_cold_start,
    open_demo,
    open_engine,
)

if TYPE_CHECKING:
    from sync.facade import GovernorSettings

DEMO_USER = ("governor", "governor")


def desktop_available() -> bool:
    """A Flet desktop client can run: flet-desktop is installed (it is never downloaded
    here) and there is a display to open a window on."""
    if importlib.util.find_spec("flet_desktop") is None:
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def wants_web(profile: AppProfile, force_web: bool) -> bool:
    if force_web or profile.view == "web":
        return True
    return not desktop_available()


def build_client(profile: AppProfile, data_dir: Path | None, fake: int | None = None
                 ) -> GovernorClient:
    """The one place the real engine is constructed (``fake``: an in-memory client with
    that many requests, for screenshots and UI benchmarks)."""
    if fake is not None:
        return open_demo(fake)
    return open_engine(engine_settings(profile, data_dir))


def check_transport(profile: AppProfile, data_dir: Path | None) -> None:
    """Refuse, before any window opens, a server the engine would refuse (plain http to
    another machine, an unreadable CA bundle): as a ``GovernorAppError`` naming the fix."""
    from sync.errors import InsecureTransport

    try:
        check_server(engine_settings(profile, data_dir))
    except InsecureTransport as exc:
        raise GovernorAppError(str(exc)) from exc


def engine_settings(profile: AppProfile, data_dir: Path | None) -> GovernorSettings:
    values: dict[str, object] = {"server_url": profile.server_url,
                                 "sync_interval": profile.sync_interval}
    if data_dir is not None:
        values["data_dir"] = data_dir
    if profile.allow_insecure_http:  # the flag; else GOVERNOR_ALLOW_INSECURE_HTTP applies
        values["allow_insecure_http"] = True
    return governor_settings(**values)


# How often the demo platform acts with a bare ``governor demo --activity``.
DEMO_ACTIVITY_S = 20.0


class StubChild:
    """The demo's stub in its own process group, stopped with SIGTERM then SIGKILL."""

    def __init__(self, data_dir: Path, port: int, activity: float | None = None) -> None:
        self.data_dir = data_dir
        self.port = port
        self.activity = activity  # the stub's --demo-activity SECONDS, None: off
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "GOVSTUB_DATA_DIR": str(self.data_dir)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "backend_stub.cli", "--host", "127.0.0.1",
             "--port", str(self.port), "--demo",
             *(["--demo-activity", str(self.activity)] if self.activity else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True)
        ready = threading.Event()

        def read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if "governance stub listening on" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise StubStartError("The demo stub did not start; its output:\n"
                                     + "".join(self.output[-20:]))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            proc.wait(5)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(line: str) -> None:
    print(line, flush=True)


# The demo stub has only just said it listens: a sign-in it leaves unanswered is tried
# again (twice, a pause between), as a person would press the button again.
DEMO_SIGN_IN_TRIES = 3
DEMO_SIGN_IN_PAUSE_S = 2.0


async def demo_sign_in(client: GovernorClient, *, say: Callable[[str], None] = _say,
                       stub_output: Callable[[], Sequence[str]] = tuple,
                       tries: int = DEMO_SIGN_IN_TRIES,
                       pause: float = DEMO_SIGN_IN_PAUSE_S) -> bool:
    """Sign in as the demo governor and sync once; True when signed in.

    A failed sign-in never stops the demo: the app opens on its sign-in screen (a
    blank page was all a failure left before, the client having failed to start), and the
    console says why, with the stub's last lines. A sync that fails is shown by the app."""
    for attempt in range(1, tries + 1):
        try:
            await client.sign_in_with_password(*DEMO_USER)
            break
        except ServerUnreachable as exc:
            if attempt == tries:
                return _demo_sign_in_failed(exc, say, stub_output())
            say(f"demo sign-in: the stub did not answer ({exc}); trying again "
                f"({attempt + 1} of {tries})")
            await asyncio.sleep(pause)
        except SyncError as exc:  # refused: asking again would be refused again
            return _demo_sign_in_failed(exc, say, stub_output())
    try:
        await client.sync_now()
    except Exception as exc:  # the app shows sync errors itself
        say(f"first sync failed: {exc}")
    return True


def _demo_sign_in_failed(failure: SyncError, say: Callable[[str], None],
                         stub_lines: Sequence[str]) -> bool:
    say(f"demo sign-in failed: {failure}\nThe app opens on its sign-in screen: sign in "
        f"there as {DEMO_USER[0]!r} with the password {DEMO_USER[1]!r}. The stub's last "
        "lines:\n" + "".join(f"  {line.rstrip()}\n" for line in stub_lines[-15:]))
    return False


def run_app(profile: AppProfile, *, web: bool, data_dir: Path | None,
            auto_login: bool = False, fake: int | None = None,
            stub_output: Callable[[], Sequence[str]] = tuple) -> None:
    from governor_app.app import serve
    from governor_app.startup import prewarm

    async def before_serve(client: GovernorClient) -> None:
        if auto_login and client.account() is None:
            await demo_sign_in(client, stub_output=stub_output)

    @functools.cache
    def step_up() -> bool:
        return fake is None and engine_settings(profile, data_dir).step_up_for_veto

    def listening(url: str) -> None:
        _say(f"governor app: {url}")
        # While the browser loads Flutter, import what the first screen needs.
        threading.Thread(target=prewarm, name="prewarm", daemon=True).start()

    def make_client() -> GovernorClient:
        if fake is not None:
            return build_client(profile, data_dir, fake)
        # The first screen comes from the engine's store; the engine is built after it.
        return open_cold_start(lambda: build_client(profile, data_dir),
                               data_dir or app_data_dir(), profile.server_url)

    if not web:
        _say("governor app: opening a desktop window")
    asyncio.run(serve(make_client, profile, web=web, before_serve=before_serve,
                      on_listening=listening, step_up_for_veto=step_up,
                      preferences=preference_store(data_dir)))


def app_data_dir() -> Path:
    """Where the engine keeps its data when no ``--data-dir`` is given: as
    ``sync.settings.GovernorSettings.data_dir`` resolves it, without paying for importing
    the settings before the web server starts."""
    explicit = os.environ.get("GOVERNOR_DATA_DIR")
    if explicit:
        return Path(explicit)
    from platformdirs import user_data_dir

    return Path(user_data_dir("waooaw-governor", appauthor=False))


def preference_store(data_dir: Path | None) -> PreferenceStore:
    if data_dir is None:
        from platformdirs import user_data_dir

        data_dir = Path(user_data_dir("waooaw-governor", appauthor=False))
    return PreferenceStore(data_dir / "app-preferences.json")


def app_profile(profile_path: Path | None, preferences: PreferenceStore, *,
                server: str | None = None, port: int | None = None,
                env: Mapping[str, str] | None = None) -> AppProfile:
    """The run profile of ``governor app``: what the Settings screen saved applies unless a
    flag or a ``GOVERNOR_*`` variable names it (the server and the sync interval each on
    its own; the interval once settings were saved at all)."""
    env = os.environ if env is None else env
    saved = preferences.value
    if server is None and not env.get("GOVERNOR_SERVER_URL") and saved.server_url:
        server = saved.server_url
    interval = saved.sync_interval if preferences.saved and not env.get(
        "GOVERNOR_SYNC_INTERVAL") else None
    return load_profile(profile_path, env, port=port, server_url=server,
                        sync_interval=interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="governor", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--web", action="store_true", help="serve the web app, never a window")
    common.add_argument("--port", type=int, default=None, help="the app's port (web mode)")
    common.add_argument("--data-dir", type=Path, default=None,
                        help="the app's local data (cache, outbox); GOVERNOR_DATA_DIR")
    common.add_argument("--profile", type=Path, default=None, help="run profile (flet.toml)")
    common.add_argument("--fake-client", type=int, default=None, help=argparse.SUPPRESS)
    demo = sub.add_parser("demo", parents=[common],
                          help="the stub with demo data and the app, signed in")
    demo.add_argument("--no-auto-login", action="store_true",
                      help="open on the sign-in screen instead of the dashboard")
    demo.add_argument("--stub-port", type=int, default=None, help="the stub's port")
    demo.add_argument("--activity", type=_positive_seconds, nargs="?", default=None,
                      const=DEMO_ACTIVITY_S, metavar="SECONDS",
                      help="the platform acts on its own every SECONDS (default "
                           f"{DEMO_ACTIVITY_S:g}): new requests, alerts, violations")
    app = sub.add_parser("app", parents=[common], help="the app against a server")
    app.add_argument("--server", default=None, help="the governance server's URL")
    app.add_argument("--allow-insecure-http", action="store_true",
                     help="development only: allow plain http:// to a server that is not "
                          "this machine (GOVERNOR_ALLOW_INSECURE_HTTP)")
    receipts = sub.add_parser("receipts", help="decision receipts kept on this device")
    receipts.add_argument("action", choices=["verify"],
                          help="verify: check every receipt offline, exit 1 if any is bad")
    receipts.add_argument("--data-dir", type=Path, default=None,
                          help="the app's local data; GOVERNOR_DATA_DIR")
    args = parser.parse_args(argv)
    if args.command == "receipts":
        return verify_receipts(args.data_dir or app_data_dir())

    # SIGTERM before the app runs must still stop the stub: make it an interrupt.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    stub: StubChild | None = None
    try:
        profile_path = args.profile
        if args.command == "demo":
            stub_port = args.stub_port or _free_port()
            stub_dir = Path(tempfile.mkdtemp(prefix="governor-demo-stub-"))
            data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="governor-demo-app-"))
            stub = StubChild(stub_dir, stub_port, activity=args.activity)
            stub.start()
            _say(f"governance stub: {stub.url}")
            profile = load_profile(profile_path, server_url=stub.url, port=args.port)
            run_app(profile, web=wants_web(profile, args.web), data_dir=data_dir,
                    auto_login=not args.no_auto_login, fake=args.fake_client,
                    stub_output=functools.partial(list, stub.output))
        else:
            profile = app_profile(profile_path, preference_store(args.data_dir),
                                  server=args.server, port=args.port)
            if args.allow_insecure_http:
                profile = replace(profile, allow_insecure_http=True)
            check_transport(profile, args.data_dir)
            run_app(profile, web=wants_web(profile, args.web), data_dir=args.data_dir,
                    fake=args.fake_client)
    except KeyboardInterrupt:
        pass
    except GovernorAppError as exc:
        print(f"governor: {exc}", file=sys.stderr)
        return 2
    finally:
        if stub is not None:
            stub.stop()
            _say("governance stub stopped")
    return 0


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds above 0; "
                                         "give e.g. --activity 10")
    return seconds


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def verify_receipts(data_dir: Path, out: Callable[[str], None] = print,
                    err: Callable[[str], None] = _stderr) -> int:
    """``governor receipts verify``: 0 when every receipt checks, 1 when any does not,
    2 when there is no local database to check."""
    path = data_dir / "governor.db"
    if not path.exists():
        err(f"governor: no local database at {str(path)!r}; pass --data-dir (or "
            "GOVERNOR_DATA_DIR) of the app whose receipts to check.")
        return 2
    checked, keys = kept_receipts(path)
    bad = [r for r in checked if r.status == "invalid"]
    for r in bad:
        err(f"INVALID {r.decision_id} ({r.action} of {r.approval_id}): {r.problem}")
    verified = sum(r.status == "verified" for r in checked)
    awaiting = sum(r.status == "awaiting" for r in checked)
    out(f"{verified} receipt(s) verified, {len(bad)} invalid, {awaiting} awaiting the "
        f"server, against {keys} cached signing key(s).")
    return 1 if bad else 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    raise SystemExit(main())
