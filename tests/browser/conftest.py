"""Browser tests: the real app in web mode, driven in headless Debian Chromium.

They skip with a reason when /usr/bin/chromium is missing, except in CI (``CI=true``),
where a missing browser is a failure.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.harness import AppProcess, chromium_missing_reason, launch_chromium
from tests.support.services import in_ci
from tests.support.stub_process import StubProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            # No reruns: a test that fails once under load has a wait that is wrong, and a
            # rerun would hide it (issue 15). Waits are on the app's state, not on time.
            item.add_marker(pytest.mark.browser)


# Package scope, not session: Playwright's sync API keeps an asyncio loop running in this
# thread while it is open, and every later test calling asyncio.run() would fail.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    reason = chromium_missing_reason()
    if reason:
        if in_ci():
            pytest.fail(f"browser tests are mandatory in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(autouse=True)
def _close_pages(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test's pages close with it (the browser is shared by the session)."""
    yield
    chromium = request.node.funcargs.get("browser")
    if chromium is not None:
        for context in list(chromium.contexts):
            context.close()


@pytest.fixture
def demo_stub(tmp_path: Path) -> Iterator[StubProcess]:
    stub = StubProcess(tmp_path / "stub").start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def app_against(tmp_path: Path) -> Iterator[object]:
    """``app_against(stub_url, **env)``: the app on a free port with its own data dir,
    syncing every second so offline and back online show up quickly."""
    started: list[AppProcess] = []

    def start(server_url: str, **env: str) -> AppProcess:
        proc = AppProcess(["app", "--server", server_url], data_dir=tmp_path / "app",
                          env={"GOVERNOR_SYNC_INTERVAL": "1", **env})
        started.append(proc.start())
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(autouse=True)
def _app_output() -> Iterator[None]:
    """The output of every app a test started, printed after it (pytest shows it only when
    the test failed): why a screen never came is often said there (a refused sign-in, a
    traceback), and without it a failure in CI says only what the test waited for."""
    AppProcess.forget_made()
    yield
    for proc in AppProcess.forget_made():
        print(f"--- app output ({proc.url}, {' '.join(proc.args[3:])}) ---\n"
              + "".join(proc.output[-80:]))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed browser test leaves a screenshot of every open page, taken before the
    fixtures stop the app, in ``$TMPDIR/governor-browser-failures/``."""
    report = yield
    chromium = getattr(item, "funcargs", {}).get("browser")
    if report.when == "call" and report.failed and chromium is not None:
        folder = Path(os.environ.get("TMPDIR", "/tmp")) / "governor-browser-failures"
        folder.mkdir(parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() else "-" for c in item.name)
        for i, context in enumerate(chromium.contexts):
            for j, page in enumerate(context.pages):
                shot = folder / f"{name}-{i}-{j}.png"
                try:
                    page.screenshot(path=str(shot))
                except Exception:  # a closed page has nothing to show
                    continue
                report.sections.append(("screenshot", str(shot)))
                print(f"screenshot of the failure: {shot}")
    return report
