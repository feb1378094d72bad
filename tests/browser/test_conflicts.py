"""Refusals the governor must see: a decision that lost a race (decided again), and a veto
that reached the server after its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from governor_app.cli import build_client
from governor_app.profile import load_profile
from tests.browser.harness import (
    DESKTOP,
    RECONNECT_MS,
    AppProcess,
    button,
    by_id,
    choose,
    nav,
    open_app,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

NO_PERIODIC_SYNC = {"GOVERNOR_SYNC_INTERVAL": "3600"}  # the cache stays as first synced


def first_id(page: Page, kind: str, starts: str, *, every_says: str | None = None) -> str:
    """The first row's id; with ``every_says``, once every row shown says it (a filter
    just chosen has reached the list: rows of the list before it are not picked)."""
    selector = f'[flt-semantics-identifier^="{kind}-{starts}"]'
    rows = page.locator(selector)
    rows.first.wait_for()
    if every_says is not None:
        page.wait_for_function(
            """([sel, text]) => { const rows = [...document.querySelectorAll(sel)];
                 return rows.length > 0 && rows.every(r =>
                   ((r.getAttribute('aria-label') || '') + ' ' + r.innerText).includes(text));
               }""", arg=[selector, every_says])
    return (rows.first.get_attribute("flt-semantics-identifier") or "").removeprefix(
        f"{kind}-")


def approve_on_another_device(server_url: str, data_dir: Path, approval_id: str) -> None:
    async def run() -> None:
        other = build_client(load_profile(server_url=server_url, sync_interval=0), data_dir)
        await other.start()
        try:
            await other.sign_in_with_password("governor", "governor")
            await other.sync_now()
            other.approve(approval_id, "approved from the desktop")
            await other.sync_now()
        finally:
            await other.stop()

    # Playwright's sync API owns this thread's event loop: run the other device in its own.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def veto(page: Page, reason: str) -> None:
    button(page, "Veto").click()
    choose(page, "Constitutional")
    type_into(page, "Reason for the veto", reason)
    type_into(page, "Your password (step-up check)", "governor")
    button(page, "Veto this request").click()
    button(page, "Confirm veto").click()


def test_a_lost_race_is_shown_and_decided_again(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        tmp_path: Path) -> None:
    app = app_against(demo_stub.url, **NO_PERIODIC_SYNC)
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    nav(page, "Approvals")
    approval_id = first_id(page, "approval", "REQ")
    page.close()
    # While this device is closed, another one approves; then this device starts with no
    # network (the stub is down), so neither push nor a sync can tell it: the race is real.
    app.stop()
    approve_on_another_device(demo_stub.url, tmp_path / "other-device", approval_id)
    demo_stub.stop()
    app.start()
    page = open_app(browser, app.url, DESKTOP)
    wait_for_text(page, "connection-state", "Offline")
    nav(page, "Approvals")

    by_id(page, f"approval-{approval_id}").click()  # still pending in this device's cache
    button(page, "Approve").click()
    button(page, "Confirm approval").click()
    demo_stub.start()
    nav(page, "Outbox")
    wait_for_text(page, "outbox-rejected", "decided elsewhere first", RECONNECT_MS)

    # The refusal's urgent banner offers "Open request" too: this is the outbox's.
    by_id(page, "outbox-rejected").get_by_role("button", name="Open request",
                                               exact=True).click()
    wait_for_text(page, "approval-detail", approval_id)
    veto(page, "Approved elsewhere too fast: the budget is unbounded.")
    by_id(page, "veto-undo-bar").wait_for()
    wait_for_text(page, "approval-status", "Vetoed")

    nav(page, "Outbox")
    button(page, "Discard").click()
    by_id(page, "outbox-rejected").wait_for(state="detached")  # the refusal is gone


def veto_offline_in_window(page: Page, stub: StubProcess) -> str:
    """Veto a request in its veto window with the stub stopped; returns its id once the
    veto is queued (past the undo window). Offline, because online push would tell the
    device of the deployment within a fraction of a second, and the race between that and
    the veto made the tests that close the window flaky."""
    nav(page, "Approvals")
    button(page, "In veto window").click()
    approval_id = first_id(page, "approval", "REQ", every_says="veto window")
    stub.stop()
    wait_for_text(page, "connection-state", "Offline")
    by_id(page, f"approval-{approval_id}").click()
    button(page, "Veto").click()
    choose(page, "Constitutional")
    type_into(page, "Reason for the veto", "Too late, but on record.")
    button(page, "Veto this request").click()
    button(page, "Confirm veto").click()
    wait_for_text(page, "approval-pending", "Veto queued")
    return approval_id


# The reconnection waits for the engine's breaker (up to minutes), by design.
@pytest.mark.timeout(600)
def test_a_veto_past_its_deadline_is_shown_as_refused(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    # The step-up is covered elsewhere (tests/e2e/test_push_engine.py, offline too).
    app = app_against(demo_stub.url, GOVERNOR_STEP_UP_FOR_VETO="false")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    approval_id = veto_offline_in_window(page, demo_stub)
    demo_stub.start()
    # The server's time passes every veto window (the device waits out its backoff).
    with demo_stub.client() as http:
        http.post("/v1/demo/clock", json={"advance_seconds": 25 * 3600}).raise_for_status()

    nav(page, "Outbox")
    wait_for_text(page, "outbox-rejected", "veto window closed before the veto reached",
                  RECONNECT_MS)
    wait_for_text(page, "outbox-rejected", f"Veto {approval_id}")
