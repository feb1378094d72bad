"""A governor's day without surprises (issue 18), walked whole on a 390x844 phone against
the real stub: sign in, triage a new request from its banner, veto offline, the refusal
coming back (the veto's window closed while it was queued), sign out, and the auditor on
the same device, who sees none of the governor's outbox and is offered no write action.

A screenshot of each step goes to ``$GOVERNOR_SCREENSHOTS_DIR/day/`` (default: this
test's pytest tmp dir), named in order, so a run leaves the day to look at."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    PHONE,
    RECONNECT_MS,
    AppProcess,
    button,
    by_id,
    nav,
    open_app,
    sign_in,
    type_into,
    wait_for_stub_status,
    wait_for_text,
)
from tests.browser.test_banner_safe_actions import dismiss_banners_of
from tests.browser.test_conflicts import veto_offline_in_window
from tests.browser.test_push import (
    approve_from_banner,
    banner_button,
    new_pending_request,
    wait_for_words,
)
from tests.support.stub_process import StubProcess

WRITE_ACTIONS = ("Approve", "Request changes", "Veto", "Discard", "Take back",
                 "Decide again", "New seed")


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Page, str], Path]:
    """``shots(page, name)``: a screenshot of the step, numbered in the day's order."""
    folder = Path(os.environ.get("GOVERNOR_SCREENSHOTS_DIR") or tmp_path) / "day"
    folder.mkdir(parents=True, exist_ok=True)
    taken: list[Path] = []

    def shot(page: Page, name: str) -> Path:
        page.wait_for_timeout(300)  # the last frame drawn, for a clean picture only
        path = folder / f"{len(taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path))
        taken.append(path)
        return path

    return shot


def offered(page: Page, names: tuple[str, ...]) -> list[str]:
    """Which of these buttons the screen offers (enabled)."""
    return [name for name in names
            for b in [button(page, name)] if b.count() and b.first.is_enabled()]


# The refusal waits for the engine's breaker once the stub is back (minutes), by design.
@pytest.mark.timeout(900)
def test_a_governors_day_then_the_auditor_on_the_same_phone(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        shots: Callable[[Page, str], Path]) -> None:
    # The step-up check is walked in tests/browser/test_push.py; here the day's flow.
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="5",
                      GOVERNOR_STEP_UP_FOR_VETO="false")
    page = open_app(browser, app.url, PHONE)

    # Morning: sign in.
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()
    shots(page, "signed-in")

    # A new request arrives as a banner; it is triaged from there: approved (past its
    # warnings, if it has any), held in the undo window, then sent.
    approval_id = new_pending_request(demo_stub)
    wait_for_text(page, "push-banner-0", approval_id)
    shots(page, "banner")
    approve_from_banner(page)
    shots(page, "approval-held")
    wait_for_words(page, f"Approval of {approval_id} queued.")
    wait_for_stub_status(demo_stub, approval_id, "approved", page)
    dismiss_banners_of(page, [approval_id])

    # Out of reach of the network: a veto is queued on the phone.
    vetoed = veto_offline_in_window(page, demo_stub)
    wait_for_text(page, "connection-banner", "1 decision(s) wait")
    shots(page, "veto-queued-offline")

    # Back online, too late: the veto's window closed while it waited. The refusal
    # interrupts, names the request and says why; the request says what happened.
    demo_stub.start()
    with demo_stub.client() as http:
        http.post("/v1/demo/clock", json={"advance_seconds": 25 * 3600}).raise_for_status()
    banner = wait_for_text(page, "push-banner-*", "Veto refused", RECONNECT_MS)
    assert vetoed in banner and "the veto window closed" in banner
    wait_for_text(page, "push-banner-0", "Veto refused")  # urgent: on top of the rest
    shots(page, "veto-refused")
    banner_button(page, "Open request").click()
    wait_for_text(page, "approval-detail", f"Request {vetoed}")
    wait_for_text(page, "approval-refused", "veto window closed before the veto reached")
    shots(page, "refused-veto-on-the-request")

    # Evening: the governor signs out; the phone says what stays on it.
    nav(page, "Settings")
    button(page, "Sign out").click()
    wait_for_words(page, "Signed out of governor.")
    shots(page, "signed-out")

    # The auditor signs in on the same phone: none of the governor's outbox, no badge,
    # and nothing to decide with.
    sign_in(page, "auditor", "auditor")
    by_id(page, "figure-active-agents").wait_for()
    nav(page, "Outbox")
    by_id(page, "sync-summary").wait_for()
    for entries in ("outbox-pending", "outbox-held", "outbox-rejected"):
        assert by_id(page, entries).count() == 0, entries
    assert by_id(page, f"outbox-{vetoed}").count() == 0
    assert offered(page, WRITE_ACTIONS) == []
    shots(page, "auditor-outbox")
    nav(page, "Approvals")
    button(page, "All").click()
    type_into(page, "Search requests", vetoed)
    by_id(page, f"approval-{vetoed}").click()
    wait_for_text(page, "approval-detail", f"Request {vetoed}")
    assert by_id(page, "approval-refused").count() == 0  # the governor's, not the auditor's
    assert offered(page, WRITE_ACTIONS) == []
    shots(page, "auditor-request")
    # A request that waits for a decision: the auditor is told why there is none to make.
    waiting = new_pending_request(demo_stub)
    nav(page, "Approvals")
    type_into(page, "Search requests", waiting, replace=True)
    by_id(page, f"approval-{waiting}").click()
    wait_for_text(page, "approval-detail", f"Request {waiting}")
    wait_for_text(page, "actions-unavailable", "auditor has read-only access")
    assert offered(page, WRITE_ACTIONS) == []
    shots(page, "auditor-pending-request")
