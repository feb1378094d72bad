"""Addresses (issue 18): every request has its own path in the address bar; opening it
directly shows it (after sign-in, and offline from the cache); an unknown id says so; the
browser's Back walks the app's own history; a banner opens its request by its address.

At both sizes, phone (390x844) and desktop (1280x800)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    PHONE,
    AppProcess,
    button,
    by_id,
    governor_token,
    nav,
    open_app,
    sign_in,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

SIZES = pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])


def a_request_id(stub: StubProcess) -> str:
    """A request the stub holds (asked of the stub itself, before the app knows it)."""
    token = governor_token(stub)
    with stub.client() as client:
        body = client.get("/v1/mobile/approvals",
                          headers={"Authorization": f"Bearer {token}"}).json()
    return str(body["data"][0]["id"])


def wait_for_address(page: Page, path: str) -> None:
    page.wait_for_url(re.compile(re.escape(path) + r"$"))


@SIZES
def test_a_request_address_opens_it_after_sign_in_and_offline_from_the_cache(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    approval_id = a_request_id(demo_stub)
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport, route=f"/approvals/{approval_id}")
    # The sign-in screen remembers where the governor was going.
    sign_in(page, "governor", "governor")
    wait_for_text(page, "approval-detail", f"Request {approval_id}")
    wait_for_address(page, f"/approvals/{approval_id}")

    # Offline: a new tab on the same address shows the request from the device's cache.
    demo_stub.stop()
    wait_for_text(page, "connection-state", "Offline")
    offline = open_app(browser, app.url, viewport, route=f"/approvals/{approval_id}")
    wait_for_text(offline, "approval-detail", f"Request {approval_id}")
    wait_for_text(offline, "connection-state", "Offline")

    # An id the device does not hold: said so, with a way back, not the dashboard.
    unknown = open_app(browser, app.url, viewport, route="/approvals/REQ-NOT-HERE")
    wait_for_text(unknown, "not-found", "Request 'REQ-NOT-HERE' is not on this device")
    assert by_id(unknown, "figure-active-agents").count() == 0
    button(unknown, "Go to approvals").click()
    wait_for_address(unknown, "/approvals")
    by_id(unknown, f"approval-{approval_id}").wait_for()


@SIZES
def test_back_walks_the_apps_own_history_with_the_address_following(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    approval_id = a_request_id(demo_stub)
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()
    wait_for_address(page, "/dashboard")

    nav(page, "Approvals")
    wait_for_address(page, "/approvals")
    by_id(page, f"approval-{approval_id}").click()
    wait_for_text(page, "approval-detail", f"Request {approval_id}")
    wait_for_address(page, f"/approvals/{approval_id}")

    page.go_back()
    wait_for_address(page, "/approvals")
    by_id(page, f"approval-{approval_id}").wait_for()
    assert by_id(page, "approval-detail").count() == 0
    page.go_back()
    wait_for_address(page, "/dashboard")
    by_id(page, "figure-active-agents").wait_for()
    # Forward works too: the browser's history is the app's.
    page.go_forward()
    wait_for_address(page, "/approvals")
    by_id(page, f"approval-{approval_id}").wait_for()


@SIZES
def test_a_banner_and_a_notification_open_their_request_by_its_address(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()
    with demo_stub.client() as demo:
        body = demo.post("/v1/demo/scenario", json={"event": "seed_auto_approval"}).json()
    approval_id = str(body["data"]["result"]["approval_id"])
    wait_for_text(page, "push-banner-0", approval_id)
    by_id(page, "push-banner-0").get_by_role("button", name="Open", exact=True).click()
    wait_for_text(page, "approval-detail", f"Request {approval_id}")
    wait_for_address(page, f"/approvals/{approval_id}")

    nav(page, "Notifications")
    wait_for_address(page, "/notifications")
    by_id(page, "notifications-unread").wait_for()
    # The newest event about a request (the list is lazy: rows far down are not built).
    row = page.locator('[flt-semantics-identifier^="notification-"][aria-label*="REQ-"]').first
    row.wait_for()
    found = re.search(r"REQ-\d+", row.get_attribute("aria-label") or "")
    assert found, row.get_attribute("aria-label")
    row.get_by_role("button", name="Open", exact=True).click()
    wait_for_text(page, "approval-detail", f"Request {found.group(0)}")
    wait_for_address(page, f"/approvals/{found.group(0)}")
