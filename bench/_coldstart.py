"""Cold start of the governor app versus a bare Flet app, both in headless Chromium.

Shared by ``bench/cold_start.py`` and ``bench/ui.py``. The scenario is the one that matters
offline: the dashboard is already cached on the device and the server is unreachable. Each
measurement runs from launching the process to the dashboard figures (or the hello-world
text) present in Flutter's accessibility tree, with the browser already running; the two
apps alternate so that machine load hits both alike, and the medians are compared.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from governor_app.cli import build_client  # noqa: E402
from governor_app.profile import load_profile  # noqa: E402
from sync.facade import open_cold_start  # noqa: E402
from tests.browser.harness import (  # noqa: E402
    AppProcess,
    by_id,
    enable_semantics,
    free_port,
    kill_group,
    launch_chromium,
    wait_port,
)
from tests.support.stub_process import StubProcess  # noqa: E402

SHORT = os.environ.get("BENCH_SHORT") == "1"


def installed_bytecode() -> None:
    """Compile the packages' bytecode where it is missing or stale, as installing a wheel
    does (``make bytecode``): the app is measured as installed, not compiling its sources
    on every start (an editable install compiles none, and PYTHONDONTWRITEBYTECODE stops
    Python writing it)."""
    import compileall

    for package in ("governor_app", "sync", "backend_stub"):
        if not compileall.compile_dir(REPO / package, quiet=1):
            raise RuntimeError(f"{package} did not compile: fix the syntax error above")


def fill_cache(server_url: str, data_dir: Path) -> None:
    """Sign in as the demo governor and sync once, as a first run of the app would (the
    store then holds what the next start's first screen reads)."""
    profile = load_profile(server_url=server_url, sync_interval=0)

    async def run() -> None:
        client = open_cold_start(lambda: build_client(profile, data_dir), data_dir,
                                 server_url)
        await client.start()
        try:
            await client.sign_in_with_password("governor", "governor")
            await client.sync_now()
            await client.refresh_dashboard()
        finally:
            await client.stop()

    asyncio.run(run())


def _time_to(browser: Any, url: str, identifier: str, started: float, port: int,
             proc: subprocess.Popen[Any] | None) -> float:
    wait_port(port, proc)
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    try:
        page.goto(url)
        enable_semantics(page)
        by_id(page, identifier).first.wait_for(timeout=120_000)
        return time.perf_counter() - started
    finally:
        page.close()


def measure_app(browser: Any, server_url: str, data_dir: Path) -> float:
    app = AppProcess(["app", "--server", server_url], data_dir=data_dir,
                     env={"GOVERNOR_SYNC_INTERVAL": "30"})
    app.start(wait=False)
    try:
        assert app.proc is not None
        return _time_to(browser, app.url, "figure-active-agents", app.started_at, app.port,
                        app.proc)
    finally:
        app.stop()


def measure_hello(browser: Any) -> float:
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "_hello_flet.py"), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "FLET_SERVER_IP": "127.0.0.1"},
                            start_new_session=True)
    try:
        return _time_to(browser, f"http://127.0.0.1:{port}", "hello", started, port, proc)
    finally:
        kill_group(proc)


def cold_start_figures(rounds: int | None = None) -> dict[str, float]:
    """Median seconds for each app and their ratio (the app over hello-world)."""
    from playwright.sync_api import sync_playwright

    # Nine alternating rounds at full size: with five, the ratio of the medians moved by
    # ±0.05 from one run to the next on the same commit (a tenth of a second either side
    # of the 1.3 target), more than the changes it was meant to judge.
    rounds = rounds or (2 if SHORT else 9)
    installed_bytecode()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as tmp:
        data_dir = Path(tmp) / "app"
        stub = StubProcess(Path(tmp) / "stub").start()
        try:
            fill_cache(stub.url, data_dir)
        finally:
            stub.stop()  # from here on the server is unreachable
        app_s: list[float] = []
        hello_s: list[float] = []
        with sync_playwright() as pw:
            browser = launch_chromium(pw)
            try:
                # One unmeasured round of each warms the OS file cache for both alike.
                measure_hello(browser)
                measure_app(browser, stub.url, data_dir)
                for _ in range(rounds):
                    hello_s.append(measure_hello(browser))
                    app_s.append(measure_app(browser, stub.url, data_dir))
            finally:
                browser.close()
    app_median = statistics.median(app_s)
    hello_median = statistics.median(hello_s)
    return {"app_cold_start_s": round(app_median, 3),
            "hello_cold_start_s": round(hello_median, 3),
            "cold_start_ratio": round(app_median / hello_median, 3)}
