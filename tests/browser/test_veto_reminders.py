"""Reminders that reach the governor, in the real app against the real stub: a veto queued
offline an hour before its window closes raises an urgent banner through quiet hours, with
Send now (which says, offline, that the veto still waits) and Open request; once the
server is back the veto is applied and the reminder goes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.harness import (
    DESKTOP,
    RECONNECT_MS,
    AppProcess,
    button,
    by_id,
    choose,
    governor_token,
    nav,
    open_app,
    sign_in,
    type_into,
    wait_for_stub_status,
    wait_for_text,
)
from tests.browser.test_banner_safe_actions import wait_for_no_banner
from tests.browser.test_conflicts import first_id
from tests.browser.test_push import banner_button, wait_for_words
from tests.support.stub_process import StubProcess


def quiet_now(data_dir: Path) -> None:
    """Saved preferences with quiet hours around this moment (the device's local time)."""
    hour = datetime.now().astimezone().hour
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "app-preferences.json").write_text(json.dumps({
        "quiet_hours": True, "quiet_start": f"{(hour + 23) % 24:02d}:00",
        "quiet_end": f"{(hour + 2) % 24:02d}:00"}), encoding="utf-8")


def fifty_minutes_before_the_deadline(stub: StubProcess, approval_id: str) -> None:
    """Move the stub's clock so that the request's veto window closes in 50 minutes."""
    token = governor_token(stub)
    with stub.client() as http:
        deadline = datetime.fromisoformat(http.get(
            f"/v1/mobile/approvals/{approval_id}",
            headers={"Authorization": f"Bearer {token}"}).json()["data"]["veto_deadline"])
        now = datetime.fromisoformat(http.post("/v1/demo/clock", json={
            "advance_seconds": 0}).json()["data"]["now"])
        left = deadline - now - timedelta(minutes=50)
        http.post("/v1/demo/clock", json={
            "advance_seconds": int(left.total_seconds())}).raise_for_status()


# The reconnection waits for the engine's breaker (up to minutes), by design.
@pytest.mark.timeout(600)
def test_a_reminder_of_an_unsent_veto_is_an_urgent_banner_through_quiet_hours(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        tmp_path: Path) -> None:
    quiet_now(tmp_path / "app")  # the data dir app_against gives the app
    app = app_against(demo_stub.url, GOVERNOR_STEP_UP_FOR_VETO="false")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    nav(page, "Approvals")
    button(page, "In veto window").click()
    approval_id = first_id(page, "approval", "REQ", every_says="veto window")
    fifty_minutes_before_the_deadline(demo_stub, approval_id)
    by_id(page, f"approval-{approval_id}").click()
    # The app keeps the server's time: the countdown shows under an hour left.
    wait_for_text(page, "veto-countdown", "0:4")

    demo_stub.stop()
    wait_for_text(page, "connection-state", "Offline")
    button(page, "Veto").click()
    choose(page, "Safety")
    type_into(page, "Reason for the veto", "Unsafe grant; must not deploy.")
    button(page, "Veto this request").click()
    button(page, "Confirm veto").click()
    wait_for_text(page, "approval-pending", "Veto queued")

    # Queued with under an hour left: an urgent banner, in quiet hours all the same.
    banner = wait_for_text(page, "push-banner-0", "Veto not sent yet")
    assert "Urgent" in banner and approval_id in banner and "1 hour" in banner
    # Send now, offline, says the veto still waits and keeps the banner.
    banner_button(page, "Send now").click()
    wait_for_words(page, f"The veto of {approval_id} waits in the outbox")
    wait_for_text(page, "push-banner-0", "Veto not sent yet")
    nav(page, "Dashboard")
    banner_button(page, "Open request").click()
    wait_for_text(page, "approval-detail", f"Request {approval_id}")

    demo_stub.start()
    wait_for_stub_status(demo_stub, approval_id, "vetoed", page)
    wait_for_text(page, "approval-status", "Vetoed", RECONNECT_MS)
    wait_for_no_banner(page, "Veto not sent yet")  # sent: the reminder goes
