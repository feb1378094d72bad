"""The detail screen says why each dangerous grant is dangerous (the stub's reasons)."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Browser

from tests.browser.harness import (
    PHONE,
    AppProcess,
    button,
    by_id,
    governor_token,
    nav,
    open_app,
    scroll_to_id,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.support.stub_process import StubProcess


def test_the_detail_says_why_each_dangerous_grant_is_dangerous(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    token = governor_token(demo_stub)
    with demo_stub.client() as client:
        rows = client.get("/v1/mobile/approvals", params={"limit": 100},
                          headers={"Authorization": f"Bearer {token}"}).json()["data"]
    request_id = next(r["id"] for r in rows if r["agent"]["name"] == "Dynamic Pricing Bot")

    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, PHONE)
    sign_in(page, "governor", "governor")
    nav(page, "Approvals")
    button(page, "All").click()
    type_into(page, "Search requests", request_id)
    by_id(page, f"approval-{request_id}").click()
    wait_for_text(page, "approval-detail", request_id)
    # The grants come after the pipeline's evidence (certificate, reviews): below the fold.
    scroll_to_id(page, "capability-system_call:exec")
    wait_for_text(page, "capability-system_call:exec",
                  "Why: Makes the system call 'exec' outside the sandbox.")
    wait_for_text(page, "capability-network_outbound:*", "any host on the internet")
