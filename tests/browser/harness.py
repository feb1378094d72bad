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
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page, Playwright

    from tests.support.stub_process import StubProcess

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PHONE = {"width": 390, "height": 844}
SMALL_PHONE = {"width": 360, "height": 640}  # the narrowest phone the layout must fit
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
    """``governor app|demo ... --web`` in its own process group.

    Every instance is kept in ``AppProcess.made`` until ``forget_made()``: the browser
    tests' conftest prints each one's output when a test fails, whoever started it."""

    made: ClassVar[list[AppProcess]] = []

    @classmethod
    def forget_made(cls) -> list[AppProcess]:
        made, cls.made = cls.made, []
        return made

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
        AppProcess.made.append(self)

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
    watch(page)
    page.set_default_timeout(WAIT_MS)
    page.goto(url + route)
    enable_semantics(page)
    return page


def watch(page: Page) -> None:
    """Say on stderr (shown with a failed test) when the page's renderer crashes or its
    connection to the app's server closes: a screen that vanishes for a minute in a
    failure is then told apart from a dropped tap."""
    started = time.monotonic()

    def said(what: str) -> None:
        print(f"[page +{time.monotonic() - started:.1f} s] {what}", file=sys.stderr)

    page.on("crash", lambda _: said("the page's renderer crashed"))

    def on_socket(ws: Any) -> None:
        said(f"websocket opened: {ws.url}")
        ws.on("close", lambda _: said(f"websocket closed: {ws.url}"))
        ws.on("socketerror", lambda error: said(f"websocket error: {error}"))

    page.on("websocket", on_socket)


def open_touch_app(browser: Browser, url: str, viewport: dict[str, int]) -> Page:
    """``open_app`` on a phone with a touch screen (a finger's drags reach the lists)."""
    context = browser.new_context(viewport=viewport, has_touch=True)  # type: ignore[arg-type]
    page = context.new_page()
    watch(page)
    page.set_default_timeout(WAIT_MS)
    page.goto(url)
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


def choose(page: Page, name: str) -> None:
    """Tap the radio button ``name`` until it is checked: Flutter's web engine drops a tap
    that lands while the form is being rebuilt (found in CI: the veto's category tap lost,
    then "Choose a category" and a 60 s wait), and a governor would tap again."""
    radio = page.get_by_role("radio", name=name)
    for _ in range(6):
        radio.click()
        deadline = time.monotonic() + FOCUS_MS / 1000
        while time.monotonic() < deadline:
            if radio.is_checked():
                return
            page.wait_for_timeout(50)
        print(f"the tap on the radio {name!r} was dropped; tapping again", file=sys.stderr)
    raise AssertionError(f"the radio {name!r} is not checked after 6 taps")


# How long typed text may take to show in the focused field before it is typed again.
TYPED_MS = 5_000
# Flutter's web engine edits text in one hidden element of its own (``flt-text-editing``),
# not in the field's semantics node, and lays it over the field being edited. So "this
# field has the focus" is: the editing element is focused and its centre lies inside the
# field's box. Checking only "some input has the focus" let a tap that was dropped while
# the previous field kept the focus type into that previous field (found: a seed's
# description typed over its title, then "Describe when this precedent applies").
_FIELD_FOCUSED = """(field) => { const a = document.activeElement;
    if (!field || !field.isConnected || !a
        || (a.tagName !== 'INPUT' && a.tagName !== 'TEXTAREA')) return false;
    const r = field.getBoundingClientRect(), q = a.getBoundingClientRect();
    const x = q.left + q.width / 2, y = q.top + q.height / 2;
    return r.width > 0 && x >= r.left && x <= r.right && y >= r.top && y <= r.bottom; }"""
_FIELD_HOLDS = """([field, text]) => { const a = document.activeElement;
    return !!a && a.value === text && (""" + _FIELD_FOCUSED + """)(field); }"""


# How long a tap on a text field may take to give it the focus before it is tapped again.
FOCUS_MS = 5_000


def _focus(page: Page, field: Locator, label: str) -> None:
    """Tap ``field`` until it has the focus (not merely some field: see _FIELD_FOCUSED).

    Flutter's web engine turns a tap on a text field's semantics node into a focus a frame
    or more later; a tap that lands while that node is being rebuilt (a list refreshed
    under it by a sync, which a loaded machine makes slow) is dropped, as a finger's would
    be, and the governor taps again. Found in CI: one lost tap then a 60 s wait."""
    for _ in range(6):
        field.click()
        try:
            page.wait_for_function(_FIELD_FOCUSED, arg=field.element_handle(),
                                   timeout=FOCUS_MS)
            return
        except Exception:  # Playwright's TimeoutError: the tap was dropped
            print(f"the tap on {label!r} was dropped; tapping again", file=sys.stderr)
            continue
    raise AssertionError(f"the field {label!r} did not take the focus after 6 taps")


def focus(page: Page, label: str) -> None:
    """Tap the text field ``label`` until it has the focus (see ``_focus``)."""
    _focus(page, page.get_by_label(label, exact=True), label)


def type_into(page: Page, label: str, text: str, *, replace: bool = False) -> None:
    """Focus a Flutter text field by its label and type ``text`` (replacing what it holds
    with ``replace``) until that field holds exactly ``text``.

    Flutter connects its editing state to the focused element a frame or more after the
    tap; keys typed before that are lost (``fill`` loses the first one), and a fixed pause
    before typing ran out under load. So: wait for this field's focus, type, check the
    value there, and type again over it if keys were lost."""
    field = page.get_by_label(label, exact=True)
    _focus(page, field, label)
    for attempt in range(4):
        if replace or attempt:
            page.keyboard.press("Control+a")
        page.keyboard.type(text)
        try:
            page.wait_for_function(_FIELD_HOLDS, arg=[field.element_handle(), text],
                                   timeout=TYPED_MS)
            return
        except Exception:  # Playwright's TimeoutError: keys were lost, type again
            _focus(page, field, label)
    value = page.evaluate("() => document.activeElement && document.activeElement.value")
    raise AssertionError(f"the field {label!r} holds {value!r} after typing {text!r} 4 "
                         "times")


def field_holds(page: Page, label: str, text: str) -> None:
    """Tap the text field ``label`` until it has the focus (see ``_focus``); it holds
    exactly ``text``. Failing, says what the focused field holds instead."""
    field = page.get_by_label(label, exact=True)
    for _ in range(3):
        _focus(page, field, label)
        try:
            page.wait_for_function(_FIELD_HOLDS, arg=[field.element_handle(), text],
                                   timeout=TYPED_MS)
            return
        except Exception:  # Playwright's TimeoutError
            value = page.evaluate(
                "() => document.activeElement && document.activeElement.value")
            if value is not None:  # a field has the focus: it holds something else
                break
            # The focus went out of every field after it arrived (seen in CI once, on a
            # form just drawn again by an undo): the governor taps again.
            print(f"the field {label!r} lost the focus; tapping again", file=sys.stderr)
    raise AssertionError(f"the field {label!r} holds {value!r}, not {text!r}")


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


def wait_label_empty(page: Page, identifier: str, timeout_ms: int = WAIT_MS) -> None:
    """Wait until no node ``identifier`` carries a label (a field's error that went)."""
    page.wait_for_function(
        """(sel) => [...document.querySelectorAll(sel)].every(
               el => !(el.getAttribute('aria-label') || ''))""",
        arg=f'[flt-semantics-identifier="{identifier}"]', timeout=timeout_ms)


def attach_file(page: Page, path: Path, text: str) -> None:
    """Write ``text`` to ``path`` and attach it to the veto form through its file chooser."""
    path.write_text(text, encoding="utf-8")
    with page.expect_file_chooser() as chooser:
        button(page, "Add attachment").click()
    chooser.value.set_files(str(path))


def scroll_to_id(page: Page, identifier: str, *, within: str | None = None,
                 tries: int = 40) -> None:
    """Scroll the screen (over the node ``within``, else the middle of the page) until a
    node ``identifier`` is in the semantics tree: Flutter leaves nodes far off screen out
    of it, and a long request detail (pipeline evidence, grants, receipts) runs past the
    fold. Fails naming what never appeared."""
    target = page.locator(f'[flt-semantics-identifier="{identifier}"]')
    viewport = page.viewport_size or {"width": 390, "height": 844}
    x, y = viewport["width"] / 2, viewport["height"] / 2
    if within is not None:
        box = page.locator(f'[flt-semantics-identifier="{within}"]').first.bounding_box()
        if box is not None:
            x, y = box["x"] + box["width"] / 2, min(box["y"] + box["height"] / 2, y)
    page.mouse.move(x, y)
    for _ in range(tries):
        try:
            target.first.wait_for(timeout=1_000)
            return
        except Exception:  # Playwright's TimeoutError: not in the tree yet, scroll on
            page.mouse.wheel(0, 300)
    raise AssertionError(f"{identifier!r} never appeared after {tries} scrolls; on the "
                         f"page: {semantics_dump(page)}")


# The sign-in form's words for a field the app received empty.
# Its answer to a tap on "Sign in": "empty" (a field it got was empty), "gone" (the form
# went: signed in, or waiting), or nothing yet.
_SIGN_IN_ANSWER = """() => {
  const said = (w) => document.body.innerText.includes(w) || [...document.querySelectorAll(
      '[aria-label]')].some((el) => el.getAttribute('aria-label').includes(w));
  if (said('Enter your user name.') || said('Enter your password.')) return 'empty';
  const form = [...document.querySelectorAll('[role="button"]')].some(
      (el) => ((el.getAttribute('aria-label') || el.innerText) || '').trim() === 'Sign in');
  return form ? '' : 'gone'; }"""


def sign_in(page: Page, username: str, password: str) -> None:
    """Fill the password form and sign in; typed again when the app says a field it got
    was empty, as a governor would (said on stderr). Seen under load: "Enter your
    password." after the tap. Two causes were found and mended: the form re-rendered on
    the cold start's "auth" change (it re-renders on no topic now), and a dropped tap on
    Password let the password be typed over the user name, which kept the focus (a
    field's focus is now checked for that field, ``_FIELD_FOCUSED``)."""
    for _ in range(3):
        button(page, "Sign in").wait_for()
        type_into(page, "User name", username, replace=True)
        type_into(page, "Password", password, replace=True)
        button(page, "Sign in").click()
        try:
            answer = page.wait_for_function(_SIGN_IN_ANSWER, timeout=10_000).json_value()
        except Exception:  # Playwright's TimeoutError: still on the form (a wrong password
            return         # is said there; the caller looks)
        if answer != "empty":
            return
        print("the app got an empty sign-in field; typing again", file=sys.stderr)
    raise AssertionError("the sign-in form said a field was empty 3 times")


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
    on the bar are under More.

    A tap Flutter's web engine drops (seen on a busy machine: the bar's tooltip shown
    instead, or nothing, then a 60 s wait for the next screen) is tapped again until the
    address bar shows the destination's path, as a governor taps again until the screen
    changes."""
    import re

    viewport = page.viewport_size or DESKTOP
    on_bar = label in ("Dashboard", "Approvals", "Seeds", "Notifications", "More")
    if viewport["width"] < 720 and not on_bar:
        nav(page, "More")
        tap_until_at(page, button(page, label), label)
        return
    name = re.compile(rf"(^|\s){label}(\s|$)")
    target = page.get_by_role("tab", name=name).or_(page.get_by_role("button", name=name)).first
    tap_until_at(page, target, label)


def tap_until_at(page: Page, target: Locator, label: str,
                 paths: Sequence[str] | None = None) -> None:
    """Tap ``target`` until the address bar shows one of ``paths`` (by default the
    destination ``label``'s): a tap Flutter drops while it redraws the control (a sync
    refreshing the screen under the finger) is tapped again, as a governor would."""
    paths = paths or _NAV_PATHS[label]
    for _ in range(6):
        try:
            target.click()
        except Exception as exc:  # Playwright's TimeoutError: no such control any more
            raise AssertionError(
                f"the destination {label!r} is not on the screen (the address is "
                f"{page.url}; the screen shows {screen_words(page)!r})") from exc
        try:
            page.wait_for_function(_AT_PATH, arg=list(paths), timeout=FOCUS_MS)
            return
        except Exception:  # Playwright's TimeoutError: the tap was dropped
            print(f"the tap on the destination {label!r} was dropped; tapping again "
                  f"(the address is {page.url})", file=sys.stderr)
    raise AssertionError(f"the destination {label!r} did not open after 6 taps "
                         f"(the address is {page.url})")


def screen_words(page: Page, limit: int = 400) -> str:
    """For failure messages: the labels and texts of the accessibility tree, in order."""
    try:
        words: str = page.evaluate("""() => [...document.querySelectorAll(
            'flt-semantics[aria-label], flt-semantics[role]')].map(
            (el) => el.getAttribute('aria-label') || el.innerText || '').filter(
            (t) => t.trim()).join(' | ')""")
    except Exception as exc:  # a crashed or closed page
        return f"(unreadable: {exc})"
    return words[:limit]


# Where each destination's tap leads (governor_app.views.screen.DESTINATIONS); the app
# keeps the address bar on the screen shown (issue #18's addresses).
_NAV_PATHS: dict[str, tuple[str, ...]] = {
    "Dashboard": ("/dashboard", "/"), "Approvals": ("/approvals",), "Seeds": ("/seeds",),
    "Notifications": ("/notifications",), "Agents": ("/agents",),
    "Violations": ("/violations",), "Outbox": ("/outbox",), "Settings": ("/settings",),
    "More": ("/more",)}
_AT_PATH = """(paths) => paths.includes(window.location.pathname)"""


# --- asking the stub itself ---------------------------------------------------------

def off_thread(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine on its own loop: Playwright's sync API holds this thread's loop."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def governor_token(stub: StubProcess) -> str:
    """An access token of the demo's governor on ``stub``."""
    from tests.support.stub_process import access_token

    return str(off_thread(lambda: access_token(stub.url)))


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
