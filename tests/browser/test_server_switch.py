"""One server per store, through app restarts: a decision queued for one stub is never sent
to another; it waits there as held, saying for which server, and is sent once the app
points at its server again."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    RECONNECT_MS,
    WAIT_MS,
    AppProcess,
    button,
    by_id,
    governor_token,
    nav,
    open_app,
    sign_in,
    wait_for_stub_status,
    wait_for_text,
)
from tests.support.stub_process import StubProcess


@pytest.fixture
def two_stubs(tmp_path: Path) -> Iterator[tuple[StubProcess, StubProcess]]:
    first = StubProcess(tmp_path / "stub-a").start()
    second = StubProcess(tmp_path / "stub-b").start()
    try:
        yield first, second
    finally:
        first.stop()
        second.stop()


def first_pending_id(page: Page) -> str:
    rows = page.locator('[flt-semantics-identifier^="approval-REQ"]')
    rows.first.wait_for()
    return (rows.first.get_attribute("flt-semantics-identifier") or "").removeprefix(
        "approval-")


def signed_in(page: Page) -> None:
    """Past the sign-in screen: sign in when it is shown (a session is kept per server)."""
    screen = by_id(page, "figure-active-agents").or_(button(page, "Sign in")).first
    screen.wait_for(timeout=WAIT_MS)
    if button(page, "Sign in").count():
        sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for(timeout=WAIT_MS)


def status_on(stub: StubProcess, approval_id: str) -> str | None:
    """The stub's own word on a request; None when it has no such request."""
    with stub.client() as client:
        response = client.get(f"/v1/mobile/approvals/{approval_id}",
                              headers={"Authorization": f"Bearer {governor_token(stub)}"})
    return None if response.status_code == 404 else str(response.json()["data"]["status"])


@pytest.mark.timeout(600)
def test_a_decision_queued_for_one_server_is_held_on_another_and_sent_when_back(
        browser: Browser, two_stubs: tuple[StubProcess, StubProcess],
        app_against: Callable[..., AppProcess]) -> None:
    stub_a, stub_b = two_stubs
    app = app_against(stub_a.url)
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    nav(page, "Approvals")
    approval_id = first_pending_id(page)

    # Decided offline: queued for A.
    stub_a.stop()
    wait_for_text(page, "connection-state", "Offline")
    by_id(page, f"approval-{approval_id}").click()
    button(page, "Approve").click()
    button(page, "Confirm approval").click()
    nav(page, "Outbox")
    wait_for_text(page, "outbox-pending", f"Approve {approval_id}")
    page.close()
    app.stop()

    # The same device now pointed at B: A's cache is gone, the decision is held and says
    # why, and B never hears of it.
    app = app_against(stub_b.url)
    page = open_app(browser, app.url, DESKTOP)
    signed_in(page)
    wait_for_text(page, "connection-state", "Online")
    nav(page, "Outbox")
    wait_for_text(page, "outbox-held", f"Approve {approval_id}")
    wait_for_text(page, "outbox-held", f"Queued for {stub_a.url}")
    wait_for_text(page, "outbox-held", f"not sent to {stub_b.url}")
    wait_for_text(page, "sync-summary", "0 waiting")
    assert status_on(stub_b, approval_id) in (None, "pending_approval")
    page.close()
    app.stop()

    # Back to A: the held decision is queued again and applied there.
    stub_a.start()
    app = app_against(stub_a.url)
    page = open_app(browser, app.url, DESKTOP)
    signed_in(page)
    wait_for_stub_status(stub_a, approval_id, "approved", page)
    nav(page, "Outbox")
    wait_for_text(page, "sync-summary", "0 waiting", RECONNECT_MS)
    assert by_id(page, "outbox-held").count() == 0
    assert status_on(stub_b, approval_id) in (None, "pending_approval")
