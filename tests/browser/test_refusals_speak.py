"""Failures that speak, in the real app against the real stub: a veto the server refused
(its window closed while it waited offline) raises an urgent banner naming the request and
the reason; Open shows the request with what became of the governor's own veto and only
the steps the app can take; the outbox badge counts the refusal until it is discarded."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    FOCUS_MS,
    RECONNECT_MS,
    AppProcess,
    by_id,
    open_app,
    sign_in,
    wait_for_text,
)
from tests.browser.test_banner_safe_actions import wait_for_no_banner
from tests.browser.test_conflicts import veto_offline_in_window
from tests.browser.test_push import banner_button
from tests.support.stub_process import StubProcess


def outbox_badge(page: Page) -> int:
    """The count on the Outbox destination ("1 Outbox ..."); 0 when it has none."""
    found = page.evaluate(
        """() => [...document.querySelectorAll('[role="tab"], [role="button"]')]
             .map((el) => (el.getAttribute('aria-label') || '') + ' ' + el.innerText)
             .find((t) => /(^|\\s)Outbox(\\s|$)/.test(t)) || ''""")
    counted = re.search(r"(\d+)\s+Outbox", str(found))
    return int(counted.group(1)) if counted else 0


# The reconnection waits for the engine's breaker (up to minutes), by design.
@pytest.mark.timeout(600)
def test_a_refused_veto_raises_an_urgent_banner_and_the_request_says_what_happened(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_STEP_UP_FOR_VETO="false")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    # Vetoed offline; the window closes before the device is back.
    approval_id = veto_offline_in_window(page, demo_stub)
    demo_stub.start()
    with demo_stub.client() as http:
        http.post("/v1/demo/clock", json={"advance_seconds": 25 * 3600}).raise_for_status()

    # The refusal interrupts: urgent, naming the request and the reason.
    banner = wait_for_text(page, "push-banner-*", "Veto refused", RECONNECT_MS)
    assert "Urgent" in banner and approval_id in banner
    assert "the veto window closed" in banner
    # The outbox badge counts it (nothing is waiting to send any more).
    page.wait_for_function(
        """() => [...document.querySelectorAll('[role="tab"], [role="button"]')]
             .some((el) => /1\\s+Outbox/.test((el.getAttribute('aria-label') || '')
                                               + ' ' + el.innerText))""")
    assert outbox_badge(page) == 1

    # Open goes to the request, which says what became of the governor's own veto, and
    # offers only what the app can do: the window is closed, so no "Decide again".
    wait_for_text(page, "push-banner-0", "Veto refused")  # urgent: on top of the rest
    banner_button(page, "Open request").click()
    wait_for_text(page, "approval-detail", f"Request {approval_id}")
    wait_for_text(page, "approval-refused", f"Veto {approval_id}")
    wait_for_text(page, "approval-refused", "veto window closed before the veto reached")
    refused = by_id(page, "approval-refused")
    assert refused.get_by_role("button", name="Decide again", exact=True).count() == 0
    # Tapped again if the tap is lost while a sync redraws the card (seen once under load).
    for _ in range(6):
        if refused.count() == 0:
            break
        refused.get_by_role("button", name="Discard", exact=True).click()
        try:
            refused.wait_for(state="detached", timeout=FOCUS_MS)
            break
        except Exception:  # Playwright's TimeoutError: the tap was dropped
            print("the tap on 'Discard' was dropped; tapping again", file=sys.stderr)
    by_id(page, "approval-refused").wait_for(state="detached")
    wait_for_no_banner(page, "Veto refused")  # discarded: it no longer holds
    page.wait_for_function(
        """() => ![...document.querySelectorAll('[role="tab"], [role="button"]')]
             .some((el) => /\\d+\\s+Outbox/.test((el.getAttribute('aria-label') || '')
                                                 + ' ' + el.innerText))""")
