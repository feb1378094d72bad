"""Push in the real app, in headless Chromium: a demo scenario event on the stub becomes a
banner at the top of the window; its Veto passes the password step-up (a wrong password is
refused and nothing is queued) and reaches the stub; its Approve, pressed while the stub is
down, waits in the outbox and is applied once the stub is back; the demo launcher's own
sign-in starts the banners too, and Open goes to the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    PHONE,
    RECONNECT_MS,
    WAIT_MS,
    AppProcess,
    by_id,
    choose,
    nav,
    open_app,
    sign_in,
    stub_status,
    type_into,
    wait_for_stub_status,
    wait_for_text,
)
from tests.support.stub_process import StubProcess


def new_pending_request(stub: StubProcess) -> str:
    with stub.client() as demo:
        body = demo.post("/v1/demo/scenario", json={"event": "new_pending_approval"}).json()
    return str(body["data"]["result"]["approval_id"])


def unread_badge(page: Page) -> int:
    """The count on the Notifications destination ("28 Notifications ...")."""
    name = page.get_by_role("tab", name=re.compile(r"Notifications")).or_(
        page.get_by_role("button", name=re.compile(r"Notifications"))).first
    found = re.search(r"(\d+)\s+Notifications", name.inner_text() + " "
                      + (name.get_attribute("aria-label") or ""))
    return int(found.group(1)) if found else 0


def wait_for_words(page: Page, needle: str) -> None:
    """Words anywhere in the accessibility tree (a snack bar's text is a label there)."""
    page.wait_for_function(
        """(needle) => document.body.innerText.includes(needle) ||
             [...document.querySelectorAll('[aria-label]')].some(
               (el) => el.getAttribute('aria-label').includes(needle))""",
        arg=needle, timeout=WAIT_MS)


def banner_button(page: Page, name: str, index: int = 0) -> Any:
    return by_id(page, f"push-banner-{index}").get_by_role("button", name=name, exact=True)


def approve_from_banner(page: Page, index: int = 0) -> None:
    """Approve on a banner: past the request's warnings when it has any (which depend on
    the scenario's random template), into the undo window."""
    banner_button(page, "Approve", index).click()
    anyway = page.get_by_role("button", name="Approve anyway", exact=True)
    anyway.or_(by_id(page, "veto-undo-bar")).first.wait_for()
    if anyway.count():
        anyway.click()
    wait_for_text(page, "veto-undo-bar", "Approval held on this device")


@pytest.mark.timeout(300)
def test_a_scenario_event_is_a_banner_whose_veto_passes_step_up_and_reaches_the_stub(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="5")  # step-up on (default)
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()
    nav(page, "Notifications")
    wait_for_text(page, "notifications-unread", "unread")
    unread = unread_badge(page)

    approval_id = new_pending_request(demo_stub)
    wait_for_text(page, "push-banner-0", approval_id)
    wait_for_text(page, "push-banner-0", "Approval needed")
    # The notification centre shows the stored event without a refresh, badge included.
    wait_for_text(page, "notifications-unread", f"{unread + 1} unread")
    assert unread_badge(page) == unread + 1

    banner_button(page, "Veto").click()
    # The step-up: a wrong password is refused and nothing is queued.
    type_into(page, "Your password (step-up check)", "not-the-password")
    page.get_by_role("button", name="Confirm veto", exact=True).click()
    wait_for_text(page, "veto-dialog-error", "That password is not right")
    assert stub_status(demo_stub, approval_id) == "pending_approval"
    choose(page, "Safety")
    type_into(page, "Your password (step-up check)", "governor")
    page.get_by_role("button", name="Confirm veto", exact=True).click()
    # Confirmed, the veto waits on the device for the undo window (the request screen's
    # own); taken back, nothing is queued and the banner stays.
    wait_for_text(page, "veto-undo-bar", "Veto held on this device")
    page.get_by_role("button", name="Undo veto", exact=True).click()
    wait_for_words(page, "you took it back within the 5 s undo window")
    wait_for_text(page, "push-banner-0", approval_id)
    assert stub_status(demo_stub, approval_id) == "pending_approval"
    # Vetoed again, and left to run out this time.
    banner_button(page, "Veto").click()
    choose(page, "Safety")
    type_into(page, "Your password (step-up check)", "governor")
    page.get_by_role("button", name="Confirm veto", exact=True).click()
    wait_for_text(page, "veto-undo-bar", "Veto held on this device")
    wait_for_words(page, f"Veto of {approval_id} queued.")
    by_id(page, "push-banner-0").wait_for(state="detached")  # the note goes by itself
    wait_for_stub_status(demo_stub, approval_id, "vetoed", page)
    # Acting on it read it, and the veto's own event comes back stored as read: the
    # badge is where it was before the request arrived. (The undo window showed the
    # request: back to the notification centre.)
    nav(page, "Notifications")
    wait_for_text(page, "notifications-unread", f"{unread} unread")
    page.wait_for_function(
        """(needle) => [...document.querySelectorAll('[flt-semantics-identifier^="notification-"]')]
             .some((el) => { const t = el.getAttribute('aria-label') || '';
                             return t.startsWith(needle); })""",
        arg=f"{approval_id} waits for approval", timeout=WAIT_MS)


@pytest.mark.timeout(600)
def test_approve_from_a_banner_while_the_stub_is_down_is_applied_when_it_returns(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, PHONE)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()

    approval_id = new_pending_request(demo_stub)
    wait_for_text(page, "push-banner-0", approval_id)
    demo_stub.stop()
    wait_for_text(page, "connection-state", "Offline")

    approve_from_banner(page)
    wait_for_words(page, f"Approval of {approval_id} queued.")
    by_id(page, "push-banner-0").wait_for(state="detached")
    nav(page, "Outbox")
    wait_for_text(page, "outbox-pending", f"Approve {approval_id}")

    demo_stub.start()
    wait_for_text(page, "connection-state", "Online", RECONNECT_MS)  # by itself
    wait_for_text(page, "sync-summary", "0 waiting", WAIT_MS)
    wait_for_stub_status(demo_stub, approval_id, "approved", page)


@pytest.mark.timeout(300)
def test_the_demo_signs_in_by_itself_with_banners_on_and_open_goes_to_the_request(
        browser: Browser, tmp_path: Path) -> None:
    app = AppProcess(["demo"], data_dir=tmp_path / "app").start()
    try:
        stub_url = next(line.split(": ", 1)[1].strip() for line in app.output
                        if line.startswith("governance stub: "))
        page = open_app(browser, app.url, PHONE)
        by_id(page, "figure-active-agents").wait_for()  # signed in by the launcher
        with httpx.Client(base_url=stub_url) as demo:
            # Auto-approved by a seed: the banner offers Veto and Open.
            body = demo.post("/v1/demo/scenario", json={"event": "seed_auto_approval"})
        approval_id = str(body.json()["data"]["result"]["approval_id"])
        wait_for_text(page, "push-banner-0", approval_id)
        wait_for_text(page, "push-banner-0", "Auto-approved")
        banner_button(page, "Open").click()
        wait_for_text(page, "approval-detail", f"Request {approval_id}")
        by_id(page, "push-banner-0").wait_for(state="detached")
    finally:
        app.stop()
