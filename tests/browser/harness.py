"""Drive the real governor app in headless Debian Chromium.

Shared by the browser tests, ``bench/cold_start.py``, ``bench/ui.py`` and
``scripts/screenshots.py``: start the app as its console script would (its own process
group, a free loopback port), open it, turn on Flutter's accessibility tree, and find
controls by accessible name or ``ft.Semantics`` identifier.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright

    from tests.support.stub_process import StubProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 800}
REPO = Path(__file__).resolve().parents[2]
# Generous: two cores shared with other work; these are waits for a condition, not asserts
# on durations.
WAIT_MS = 60_000
# Back online by itself: after repeated failures the engine's breaker waits 60 s or more
# (full jitter, capped at 300 s) before it tries the server again.
RECONNECT_MS = 240_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def chromium_missing_reason() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    return None


class AppProcess:
    """``governor app|demo ... --web`` in its own process group."""

    def __init__(self, args: Sequence[str], *, data_dir: Path, port: int | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.args = [sys.executable, "-m", "governor_app.cli", *args, "--web",
                     "--port", str(self.port), "--data-dir", str(data_dir)]
        self.env = {**os.environ, "FLET_SERVER_IP": "127.0.0.1", **(env or {})}
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self.url = f"http://127.0.0.1:{self.port}"
        self.started_at = 0.0
        self._ready = threading.Event()

    def start(self, wait: bool = True, timeout: float = 90.0) -> AppProcess:
        self.started_at = time.perf_counter()
        self._ready.clear()  # a restart waits for the new process, not the old one's line
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=self.env,
                                     cwd=REPO, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        if wait:
            self.wait_ready(timeout)
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            if line.startswith("governor app: http"):
                self._ready.set()

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.02):
            if self.proc is None or self.proc.poll() is not None \
                    or time.monotonic() > deadline:
                raise RuntimeError("the app did not start:\n" + "".join(self.output[-40:]))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                return
            proc.wait(5)

    def __enter__(self) -> AppProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def launch_chromium(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def open_app(browser: Browser, url: str, viewport: dict[str, int] | None = None,
             route: str = "") -> Page:
    """A new page on the app with Flutter's accessibility tree switched on."""
    page = browser.new_page(viewport=viewport or DESKTOP)  # type: ignore[arg-type]
    page.set_default_timeout(WAIT_MS)
    page.goto(url + route)
    enable_semantics(page)
    return page


def enable_semantics(page: Page) -> None:
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=WAIT_MS)
    placeholder.dispatch_event("click")


def by_id(page: Page, identifier: str) -> Locator:
    return page.locator(f'[flt-semantics-identifier="{identifier}"]')


def label_of(page: Page, identifier: str) -> str:
    """The accessible label of a ``labelled(...)`` value ("Active agents: 7")."""
    loc = by_id(page, identifier).first
    loc.wait_for(timeout=WAIT_MS)
    return (loc.get_attribute("aria-label") or loc.inner_text()).strip()


def button(page: Page, name: str) -> Locator:
    return page.get_by_role("button", name=name, exact=True)


def type_into(page: Page, label: str, text: str) -> None:
    """Focus a Flutter text field by its label and type (``fill`` loses the first key)."""
    field = page.get_by_label(label, exact=True)
    field.click()
    page.wait_for_timeout(250)
    page.keyboard.type(text)


def wait_for_text(page: Page, identifier: str, needle: str, timeout_ms: int = WAIT_MS
                  ) -> str:
    """Wait until the label of ``identifier`` (or, ending in ``*``, of any node whose
    identifier starts so) contains ``needle``; return that label."""
    if identifier.endswith("*"):
        selector = f'[flt-semantics-identifier^="{identifier[:-1]}"]'
        identifier = identifier[:-1]
    else:
        selector = f'[flt-semantics-identifier="{identifier}"]'
    loc = page.locator(selector).first
    try:
        page.wait_for_function(
            """([sel, needle]) => {
                 for (const el of document.querySelectorAll(sel)) {
                   let t = (el.getAttribute('aria-label') || '') + ' ' + el.innerText;
                   for (const c of el.querySelectorAll('[aria-label]'))
                     t += ' ' + c.getAttribute('aria-label');
                   if (t.includes(needle)) return true;
                 }
                 return false; }""",
            arg=[selector, needle], timeout=timeout_ms)
    except Exception as exc:
        shot = Path(os.environ.get("TMPDIR", "/tmp")) / f"governor-fail-{identifier}.png"
        page.screenshot(path=str(shot))
        raise AssertionError(f"{identifier!r} never showed {needle!r} (screenshot {shot}); "
                             f"on the page: {semantics_dump(page)}") from exc
    return (loc.get_attribute("aria-label") or "") + " " + loc.inner_text()


def sign_in(page: Page, username: str, password: str) -> None:
    button(page, "Sign in").wait_for()
    type_into(page, "User name", username)
    type_into(page, "Password", password)
    button(page, "Sign in").click()


def semantics_dump(page: Page) -> list[dict[str, Any]]:
    """For failure messages: every identified node with its label."""
    return [{"id": el.get_attribute("flt-semantics-identifier"),
             "label": el.get_attribute("aria-label"), "text": el.inner_text()[:80]}
            for el in page.locator("[flt-semantics-identifier]").all()]


def wait_port(port: int, proc: subprocess.Popen[Any] | None = None,
              timeout: float = 90.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process serving port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s")


def kill_group(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        proc.wait(5)


def nav(page: Page, label: str) -> None:
    """Open a top-level screen from the navigation rail (desktop) or bar (phone). Its name
    may carry a badge count ("6 Approvals Tab 2 of 8"). On a phone, screens that are not
    on the bar are under More."""
    import re

    viewport = page.viewport_size or DESKTOP
    on_bar = label in ("Dashboard", "Approvals", "Seeds", "Notifications", "More")
    if viewport["width"] < 720 and not on_bar:
        nav(page, "More")
        button(page, label).click()
        return
    name = re.compile(rf"(^|\s){label}(\s|$)")
    page.get_by_role("tab", name=name).or_(page.get_by_role("button", name=name)).first.click()


# --- asking the stub itself ---------------------------------------------------------

def off_thread(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on its own loop: Playwright's sync API holds this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def governor_token(stub: StubProcess) -> str:
    """An access token of the demo's governor on ``stub``."""
    from sync.auth import Authenticator
    from sync.tokens import MemoryVault

    async def sign_in_() -> str:
        auth = Authenticator(stub.url, vault=MemoryVault())
        try:
            await auth.sign_in_with_password("governor", "governor")
            return await auth.access_token()
        finally:
            await auth.aclose()
    return str(off_thread(sign_in_))


def stub_status(stub: StubProcess, approval_id: str) -> str:
    """What ``stub`` itself says of a request's status (the judge, not the app)."""
    token = governor_token(stub)
    with stub.client() as client:
        body = client.get(f"/v1/mobile/approvals/{approval_id}",
                          headers={"Authorization": f"Bearer {token}"}).json()
    return str(body["data"]["status"])


def wait_for_stub_status(stub: StubProcess, approval_id: str, wanted: str,
                         page: Page) -> None:
    """The app sends its outbox on its own schedule: wait for the stub to say so."""
    for _ in range(120):
        if stub_status(stub, approval_id) == wanted:
            return
        page.wait_for_timeout(500)
    assert stub_status(stub, approval_id) == wanted
