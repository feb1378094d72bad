"""Accounts apart on one device: the auditor signing in after the governor sees none of
the governor's outbox, cannot discard it, inherits no badge, and sign-out said what stays.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    WAIT_MS,
    AppProcess,
    button,
    by_id,
    nav,
    open_app,
    sign_in,
    wait_for_text,
)
from tests.browser.test_push import wait_for_words
from tests.support.stub_process import StubProcess


def wait_for_outbox_badge(page: Page, count: int) -> None:
    """Wait until the Outbox destination carries ``count`` ("1 Outbox ..."; none for 0)."""
    page.wait_for_function(
        """(count) => {
             const tabs = [...document.querySelectorAll('[role="tab"], [role="button"]')]
               .map((el) => (el.getAttribute('aria-label') || '') + ' ' + el.innerText)
               .filter((t) => /(^|\\s)Outbox(\\s|$)/.test(t));
             if (!tabs.length) return false;
             const m = tabs[0].match(/(\\d+)\\s+Outbox/);
             return (m ? Number(m[1]) : 0) === count; }""",
        arg=count, timeout=WAIT_MS)


@pytest.mark.timeout(300)
def test_the_auditor_after_the_governor_sees_none_of_the_governors_outbox(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()  # signed in: its dashboard is drawn
    nav(page, "Approvals")
    button(page, "Pending").click()
    rows = page.locator('[flt-semantics-identifier^="approval-REQ"]')
    rows.first.wait_for()
    approval_id = (rows.first.get_attribute("flt-semantics-identifier") or "").removeprefix(
        "approval-")

    # The governor approves offline: the decision waits in the governor's outbox.
    demo_stub.stop()
    wait_for_text(page, "connection-state", "Offline")
    by_id(page, f"approval-{approval_id}").click()
    button(page, "Approve").click()
    button(page, "Confirm approval").click()
    nav(page, "Outbox")
    wait_for_text(page, "outbox-pending", f"Approve {approval_id}")
    wait_for_outbox_badge(page, 1)

    # Sign-out says what stays on the device.
    nav(page, "Settings")
    button(page, "Sign out").click()
    wait_for_words(page, "Signed out of governor. 1 outbox entry of governor stay on this "
                         "device, held: no other account can see, send or discard it")

    # The auditor signs in on the same device.
    demo_stub.start()
    sign_in(page, "auditor", "auditor")
    by_id(page, "figure-active-agents").wait_for()  # signed in: its dashboard is drawn
    wait_for_text(page, "connection-state", "Online")
    nav(page, "Outbox")
    wait_for_text(page, "outbox-others", "1 outbox entry of other accounts waits on this "
                                         "device for its author to sign in")
    assert by_id(page, "outbox-pending").count() == 0
    assert by_id(page, "outbox-held").count() == 0
    assert by_id(page, f"outbox-{approval_id}").count() == 0
    assert button(page, "Discard").count() == 0 and button(page, "Take back").count() == 0
    wait_for_outbox_badge(page, 0)
