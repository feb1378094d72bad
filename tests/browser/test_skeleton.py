"""Walking skeleton: dashboard figures online, kept (with their age) offline, and back."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser

from tests.browser.harness import (
    RECONNECT_MS,
    AppProcess,
    by_id,
    label_of,
    open_app,
    sign_in,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

FIGURES = ("active-agents", "pending-approvals", "in-veto-window", "budget-utilisation")


# The reconnection waits for the engine's breaker (up to minutes), by design.
@pytest.mark.timeout(600)
def test_dashboard_survives_the_stub_going_away_and_comes_back_online(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url)
    sign_in(page, "governor", "governor")

    online = {key: label_of(page, f"figure-{key}") for key in FIGURES}
    assert re.fullmatch(r"Active agents: \d+", online["active-agents"]), online
    assert re.fullmatch(r"Pending approvals: \d+", online["pending-approvals"]), online
    wait_for_text(page, "connection-state", "Online")

    demo_stub.stop()
    wait_for_text(page, "connection-state", "Offline")
    wait_for_text(page, "connection-banner", "Offline")
    assert {key: label_of(page, f"figure-{key}") for key in FIGURES} == online
    assert "Data from" in by_id(page, "dashboard-age").inner_text()

    demo_stub.start()
    wait_for_text(page, "connection-state", "Online", RECONNECT_MS)  # by itself
    assert {key: label_of(page, f"figure-{key}") for key in FIGURES}.keys() == online.keys()
