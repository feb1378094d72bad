"""Connection and time truth on screen, in the app's own words.

- The stub killed: the app says "Offline" by itself (no reload), takes a decision, and
  says "Online" again once the stub is back, with the decision applied there. The periodic
  sync is set to an hour, so only the event stream's drop and the health probe can tell
  the app (the figures, 2 s each way, are measured by ``bench/connection.py``).
- A device clock an hour fast (``GOVERNOR_CLOCK_SKEW_S``, test-only): the veto countdown
  still matches the server's deadline; a jump of the demo clock shows in it too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    AppProcess,
    button,
    by_id,
    governor_token,
    nav,
    open_app,
    sign_in,
    stub_status,
    wait_for_stub_status,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

COUNTDOWN = re.compile(r"(\d+):(\d\d):(\d\d) left")
TEXT_OF = """(id) => {
  const el = document.querySelector(`[flt-semantics-identifier="${id}"]`);
  if (!el) return '';
  let t = (el.getAttribute('aria-label') || '') + ' ' + el.innerText;
  for (const c of el.querySelectorAll('[aria-label]')) t += ' ' + c.getAttribute('aria-label');
  return t; }"""


FIRST_ROW_SAYS = """(needle) => {
  const row = document.querySelector('[flt-semantics-identifier^="approval-REQ"]');
  if (!row) return false;
  let t = row.innerText + ' ' + (row.getAttribute('aria-label') || '');
  for (const c of row.querySelectorAll('[aria-label]')) t += ' ' + c.getAttribute('aria-label');
  return t.includes(needle); }"""


def first_row(page: Page, filter_name: str, says: str) -> str:
    """The first request once the filter has applied (its row ``says`` so)."""
    nav(page, "Approvals")
    button(page, filter_name).click()
    page.wait_for_function(FIRST_ROW_SAYS, arg=says)
    rows = page.locator('[flt-semantics-identifier^="approval-REQ"]')
    return (rows.first.get_attribute("flt-semantics-identifier") or "").removeprefix(
        "approval-")


@pytest.mark.timeout(300)
def test_offline_and_back_are_shown_without_a_reload_and_the_queue_drains(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="3600",
                      GOVERNOR_STEP_UP_FOR_VETO="false")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    wait_for_text(page, "connection-state", "Online")
    approval_id = first_row(page, "Pending", "Pending approval")
    page.evaluate("() => { window.__sameDocument = true; }")  # gone if the page reloads

    demo_stub.stop(kill=True)
    wait_for_text(page, "connection-state", "Offline")
    by_id(page, f"approval-{approval_id}").click()
    button(page, "Approve").click()
    button(page, "Confirm approval").click()
    wait_for_text(page, "connection-banner", "1 decision(s) wait")

    demo_stub.start()
    wait_for_text(page, "connection-state", "Online")
    wait_for_stub_status(demo_stub, approval_id, "approved", page)
    wait_for_text(page, "approval-status", "Approved")
    assert page.evaluate("() => window.__sameDocument === true")


def countdown_left(page: Page) -> int | None:
    found = COUNTDOWN.search(page.evaluate(TEXT_OF, "veto-countdown"))
    if found is None:
        return None
    h, m, s = (int(g) for g in found.groups())
    return h * 3600 + m * 60 + s


def server_left(stub: StubProcess, token: str, approval_id: str) -> float:
    """What the stub itself says is left of the window: its deadline less its clock."""
    with stub.client() as client:
        detail = client.get(f"/v1/mobile/approvals/{approval_id}",
                            headers={"Authorization": f"Bearer {token}"}).json()["data"]
        now = client.get("/v1/health").json()["meta"]["timestamp"]
    deadline = datetime.fromisoformat(detail["veto_deadline"])
    return (deadline - datetime.fromisoformat(now)).total_seconds()


def wait_for_countdown(page: Page, stub: StubProcess, token: str, approval_id: str,
                       what: str) -> None:
    """Until the countdown on screen is within 5 s of the server's (a condition waited
    for, up to 60 s: the heartbeat that carries a clock jump comes every 15 s)."""
    shown: int | None = None
    expected = 0.0
    for _ in range(120):
        shown, expected = countdown_left(page), server_left(stub, token, approval_id)
        if shown is not None and abs(shown - expected) <= 5:
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"{what}: the countdown shows {shown} s left, the server "
                         f"says {expected:.0f} s")


@pytest.mark.timeout(300)
def test_a_device_clock_an_hour_fast_changes_no_countdown(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_CLOCK_SKEW_S="3600")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    wait_for_text(page, "connection-state", "Online")
    approval_id = first_row(page, "In veto window", "(veto window)")
    by_id(page, f"approval-{approval_id}").click()
    by_id(page, "veto-countdown").wait_for()
    token = governor_token(demo_stub)
    assert stub_status(demo_stub, approval_id) in ("approved", "auto_approved")
    wait_for_countdown(page, demo_stub, token, approval_id, "an hour-fast device")

    # The demo's clock control moves the server 10 minutes on: the countdown follows.
    before = server_left(demo_stub, token, approval_id)
    httpx.post(f"{demo_stub.url}/v1/demo/clock", json={"advance_seconds": 600},
               timeout=10).raise_for_status()
    assert server_left(demo_stub, token, approval_id) < before - 590
    started = time.monotonic()
    wait_for_countdown(page, demo_stub, token, approval_id, "after the demo clock jump")
    print(f"the jump showed after {time.monotonic() - started:.1f} s")
