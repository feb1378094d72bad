"""Permission truth: the read-only auditor walks every surface (screens, a push banner,
the notification centre, keyboard shortcuts, addresses opened directly) and is offered no
write action; the governor may retire a seed, after which it never says it auto-approves.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    AppProcess,
    button,
    by_id,
    enable_semantics,
    nav,
    open_app,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.browser.test_push import banner_button, new_pending_request, wait_for_words
from tests.support.stub_process import StubProcess

# Every action that writes: none may be offered (shown and enabled) to the auditor.
WRITE_ACTIONS = ("Approve", "Veto", "Request changes", "Confirm approval", "Confirm veto",
                 "Send change request", "New seed", "Create seed", "Retire seed",
                 "Confirm retirement", "Decide again", "Discard", "Take back", "Undo veto")


def offered_writes(page: Page) -> list[str]:
    """The write actions on screen now that can be pressed."""
    found = []
    for name in WRITE_ACTIONS:
        buttons = page.get_by_role("button", name=name, exact=True)
        found += [name for i in range(buttons.count()) if buttons.nth(i).is_enabled()]
    return found


def first_id(page: Page, kind: str, starts: str = "") -> str:
    rows = page.locator(f'[flt-semantics-identifier^="{kind}-{starts}"]')
    rows.first.wait_for()
    return (rows.first.get_attribute("flt-semantics-identifier") or "").removeprefix(
        f"{kind}-")


@pytest.mark.timeout(300)
def test_the_auditor_walks_every_surface_and_is_offered_no_write_action(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "auditor", "auditor")
    by_id(page, "figure-active-agents").wait_for()
    assert offered_writes(page) == []  # the dashboard

    # A push banner for a request waiting for approval: Open only.
    approval_id = new_pending_request(demo_stub)
    wait_for_text(page, "push-banner-0", approval_id)
    banner_button(page, "Open").wait_for()
    assert banner_button(page, "Approve").count() == 0
    assert banner_button(page, "Veto").count() == 0
    assert offered_writes(page) == []

    # The request: read-only, and its keyboard shortcuts open nothing.
    banner_button(page, "Open").click()
    wait_for_text(page, "approval-detail", approval_id)
    wait_for_text(page, "actions-unavailable", "read-only")
    for key in ("a", "v", "r"):
        page.keyboard.press(key)
    assert offered_writes(page) == []
    # Its veto address, opened directly, offers no veto either.
    page.goto(f"{app.url}/approvals/{approval_id}/veto")
    enable_semantics(page)  # a new page load: the tree is switched on again
    wait_for_words(page, "read-only")
    assert offered_writes(page) == []

    # The lists and the notification centre.
    for screen in ("Approvals", "Notifications", "Agents", "Violations", "Outbox",
                   "Settings"):
        nav(page, screen)
        if screen == "Notifications":
            first_id(page, "notification")
        assert offered_writes(page) == [], screen

    # Seeds: no New seed, no Retire; the wizard's address offers nothing.
    nav(page, "Seeds")
    seed_id = first_id(page, "seed", "GEN")
    assert offered_writes(page) == []
    by_id(page, f"seed-{seed_id}").click()
    wait_for_text(page, "seed-detail", seed_id)
    assert offered_writes(page) == []
    page.goto(f"{app.url}/seeds/new")
    enable_semantics(page)
    wait_for_words(page, "creating a seed needs the governance:write scope")
    assert offered_writes(page) == []


@pytest.mark.timeout(300)
def test_the_governor_retires_a_seed_and_it_no_longer_says_it_auto_approves(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()  # signed in: its dashboard is drawn
    nav(page, "Seeds")
    auto = page.locator('[flt-semantics-identifier^="seed-GEN"]').filter(
        has_text=re.compile("auto-approves"))
    auto.first.wait_for()
    seed_id = (auto.first.get_attribute("flt-semantics-identifier") or "").removeprefix(
        "seed-")
    by_id(page, f"seed-{seed_id}").click()
    wait_for_text(page, "seed-status", "Auto-approves a full match")
    button(page, "Retire seed").click()
    button(page, "Confirm retirement").click()  # no reason: said at the field, not sent
    page.get_by_text("Say why the seed is retired", exact=False).wait_for()
    type_into(page, "Why retire it (required)", "Replaced by a narrower seed.")
    button(page, "Confirm retirement").click()
    wait_for_words(page, f"Seed {seed_id} retired")
    wait_for_text(page, "seed-status", "Retired: matches and auto-approves nothing")
    assert button(page, "Retire seed").count() == 0
    button(page, "Back to seeds").click()
    wait_for_text(page, f"seed-{seed_id}", "Retired")
    label = by_id(page, f"seed-{seed_id}")
    assert "auto-approves" not in (label.inner_text() + (label.get_attribute("aria-label")
                                                         or ""))
