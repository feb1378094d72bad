"""Sign-in that fits a phone (issue 18): the screen names its server; empty fields get a
field error and nothing is sent; the device-code flow shows the code with a Copy button,
the address to open, a QR code and the time left, and can be cancelled; a browser
sign-in says it is waiting and can be cancelled. At 390x844 and 360x640."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser

from tests.browser.harness import (
    PHONE,
    SMALL_PHONE,
    AppProcess,
    button,
    by_id,
    open_app,
    sign_in,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

PHONES = pytest.mark.parametrize("viewport", [PHONE, SMALL_PHONE], ids=["390x844", "360x640"])


@PHONES
def test_the_form_names_its_server_and_points_at_empty_fields(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    wait_for_text(page, "sign-in-server", f"Signs in to {demo_stub.url}")
    button(page, "Sign in").click()
    page.get_by_text("Enter your user name.").first.wait_for()
    page.get_by_text("Enter your password.").first.wait_for()
    assert page.get_by_text("wrong password", exact=False).count() == 0
    # Filled in, the form signs in as before.
    sign_in(page, "governor", "governor")
    by_id(page, "figure-pending-approvals").wait_for()


@PHONES
def test_a_device_code_shows_code_address_qr_and_time_left_and_can_be_cancelled(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    button(page, "Sign in with a device code").click()
    code = by_id(page, "device-user-code")
    code.wait_for()
    wait_for_text(page, "device-verification-uri", f"{demo_stub.url}/oauth/device")
    wait_for_text(page, "device-qr", f"QR code opening {demo_stub.url}/oauth/device")
    box = by_id(page, "device-qr").bounding_box()
    assert box is not None and box["width"] >= 150, box  # large enough to scan
    wait_for_text(page, "device-time-left", "Code valid for 0:")
    # The stub here listens on 127.0.0.1: the screen says a phone cannot open it.
    wait_for_text(page, "device-reach-warning", "a phone cannot open")
    button(page, "Copy code").wait_for()
    button(page, "Cancel sign-in").click()
    code.wait_for(state="detached")
    button(page, "Sign in with a device code").wait_for()


@PHONES
def test_a_browser_sign_in_says_it_waits_and_can_be_cancelled(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    with page.context.expect_page() as opened:
        button(page, "Sign in with the system browser").click()
    # The server's sign-in page opened in a tab of its own; the governor comes back.
    assert "/oauth/authorize" in opened.value.url or opened.value.url == "about:blank"
    opened.value.close()
    page.bring_to_front()
    waiting = by_id(page, "sign-in-waiting")
    waiting.wait_for()
    button(page, "Cancel sign-in").click()
    waiting.wait_for(state="detached")
    # Cancelled, the form works: the password sign-in goes through.
    sign_in(page, "governor", "governor")
    by_id(page, "figure-pending-approvals").wait_for()
