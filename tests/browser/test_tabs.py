"""Every tab is a whole client (issue 14): a reloaded tab, a second tab opened beside the
first and a tab opened later each get pushes (banners), live lists, badges and their own
connection state, exactly like the first tab of the process.

The periodic sync is set to an hour, so only the event stream can bring the news: a tab
that is not wired to it shows a decision taken elsewhere as pending for that hour.

Flet's web client keeps its session id over a reload and the server re-attaches the
reloaded page to the session it had (``main`` does not run again): what the first
connection set up must survive the disconnect that a reload is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    AppProcess,
    by_id,
    enable_semantics,
    governor_token,
    open_app,
    sign_in,
    wait_for_text,
)
from tests.browser.test_push import banner_button, unread_badge
from tests.support.stub_process import StubProcess


def auto_approved_request(stub: StubProcess) -> str:
    """A request a precedent seed approved: its banner offers Veto and Open."""
    with stub.client() as demo:
        body = demo.post("/v1/demo/scenario", json={"event": "seed_auto_approval"}).json()
    return str(body["data"]["result"]["approval_id"])


def veto_elsewhere(stub: StubProcess, approval_id: str) -> None:
    """Another client (the same governor on another device) vetoes on the stub."""
    headers = {"Authorization": f"Bearer {governor_token(stub)}",
               "Idempotency-Key": str(uuid.uuid4())}
    with stub.client() as client:
        client.post(f"/v1/mobile/approvals/{approval_id}/veto", headers=headers,
                    json={"category": "safety", "reason": "vetoed on another device"}
                    ).raise_for_status()


def reload(page: Page) -> None:
    page.evaluate("() => { window.__beforeReload = true; }")
    page.reload()
    enable_semantics(page)
    # A new document: the reload happened (not a page kept in the back-forward cache).
    assert page.evaluate("() => window.__beforeReload === undefined")


def wait_for_badge(page: Page, at_least: int) -> None:
    """The Notifications badge reaches ``at_least`` (it moves when a pushed event lands)."""
    for _ in range(120):
        if unread_badge(page) >= at_least:
            return
        page.wait_for_timeout(500)
    assert unread_badge(page) >= at_least


def tab_follows_the_server(page: Page, stub: StubProcess, *others: Page) -> None:
    """In ``page`` (and every tab in ``others``): a pushed scenario event is a banner and
    moves the badge; a decision taken by another client shows as applied, live."""
    unread = unread_badge(page)
    approval_id = auto_approved_request(stub)
    for tab in (page, *others):
        wait_for_text(tab, "push-banner-0", approval_id)
    wait_for_badge(page, unread + 1)
    banner_button(page, "Open").click()
    wait_for_text(page, "approval-detail", f"Request {approval_id}")
    wait_for_text(page, "approval-status", "approved")

    veto_elsewhere(stub, approval_id)
    wait_for_text(page, "approval-status", "Vetoed")


@pytest.mark.timeout(420)
def test_a_reloaded_tab_a_second_tab_and_a_later_tab_each_follow_the_server(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="3600")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()

    reload(page)
    by_id(page, "figure-active-agents").wait_for()  # still signed in
    wait_for_text(page, "connection-state", "Online")
    tab_follows_the_server(page, demo_stub)

    second = open_app(browser, app.url, DESKTOP)
    by_id(second, "figure-active-agents").wait_for()  # the device is signed in
    wait_for_text(second, "connection-state", "Online")
    tab_follows_the_server(second, demo_stub, page)

    second.context.close()
    later = open_app(browser, app.url, DESKTOP)
    by_id(later, "figure-active-agents").wait_for()
    reload(later)
    by_id(later, "figure-active-agents").wait_for()
    tab_follows_the_server(later, demo_stub, page)


@pytest.mark.timeout(420)
def test_a_tab_reloaded_while_the_stub_is_down_shows_offline_then_online(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="3600")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    wait_for_text(page, "connection-state", "Online")

    demo_stub.stop(kill=True)
    wait_for_text(page, "connection-state", "Offline")
    reload(page)
    wait_for_text(page, "connection-state", "Offline")
    second = open_app(browser, app.url, DESKTOP)
    wait_for_text(second, "connection-state", "Offline")

    demo_stub.start()
    wait_for_text(page, "connection-state", "Online")
    wait_for_text(second, "connection-state", "Online")
    # Live again: a pushed event reaches the reloaded tab and a decision taken elsewhere
    # shows there.
    tab_follows_the_server(page, demo_stub, second)
