"""A version conflict says which fields changed: the governor approved a request offline,
the platform's reviewers moved it on meanwhile, and the refusal names each field that
differs, as the governor saw it and as the server has it now."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser

from backend_stub.clock import SystemClock
from backend_stub.db import Database
from backend_stub.domain.service import GovernanceService
from tests.browser.harness import (
    DESKTOP,
    PHONE,
    RECONNECT_MS,
    AppProcess,
    button,
    by_id,
    nav,
    open_app,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.support.stub_process import StubProcess


def stub_service(stub: StubProcess) -> tuple[GovernanceService, Database]:
    """The stub's own service on its database (the stub process is stopped)."""
    db = Database(f"sqlite:///{stub.data_dir / 'governance.db'}")
    return GovernanceService(db, SystemClock()), db


def early_request(stub: StubProcess) -> str:
    """A request still under review two stages before the governor's: passing one stage
    changes its version and pipeline but leaves it pending (no seed can approve it yet)."""
    svc, db = stub_service(stub)
    try:
        for approval_id in svc.early_requests():
            if svc.get_approval(approval_id)["stage"] in ("submitted",
                                                          "genesis_certification"):
                return approval_id
    finally:
        db.dispose()
    raise AssertionError("the demo world has no request early in its review")


# The reconnection waits for the engine's breaker (up to minutes), by design.
@pytest.mark.timeout(600)
@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_version_conflict_names_each_changed_field(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    demo_stub.stop()
    approval_id = early_request(demo_stub)
    demo_stub.start()
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()
    nav(page, "Approvals")
    type_into(page, "Search requests", approval_id)
    by_id(page, f"approval-{approval_id}").click()
    wait_for_text(page, "approval-detail", approval_id)

    demo_stub.stop()  # offline: the approval waits on the device
    wait_for_text(page, "connection-state", "Offline")
    button(page, "Approve").click()
    button(page, "Confirm approval").click()
    svc, db = stub_service(demo_stub)
    try:
        before = svc.get_approval(approval_id)
        after = svc.advance_pipeline(approval_id)  # the reviewers move on meanwhile
    finally:
        db.dispose()
    assert after["status"] == "pending_approval" and after["version"] > before["version"]
    demo_stub.start()

    nav(page, "Outbox")
    wait_for_text(page, "outbox-rejected", "The request changed after you decided.",
                  RECONNECT_MS)
    said = wait_for_text(page, "outbox-changed-*", "Changed since you decided")
    assert f"Stage: was {before['stage']}, now {after['stage']}" in said
    assert "Pipeline: " in said
