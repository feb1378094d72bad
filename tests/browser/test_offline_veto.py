"""Go offline, veto with an attachment, see it pending, come back online, see it applied:
in the app, with a verified receipt, and on the stub (its audit trail holds the veto, once,
with the file)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.harness import (
    PHONE,
    RECONNECT_MS,
    AppProcess,
    attach_file,
    button,
    by_id,
    choose,
    nav,
    open_app,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.support.server_state import read_server
from tests.support.stub_process import StubProcess


def first_pending_id(page: object) -> str:
    rows = by_id(page, "approval-").page.locator(  # type: ignore[arg-type]
        '[flt-semantics-identifier^="approval-REQ"]')
    rows.first.wait_for()
    identifier = rows.first.get_attribute("flt-semantics-identifier") or ""
    return identifier.removeprefix("approval-")


# The reconnection waits for the engine's breaker (up to minutes), by design.
@pytest.mark.timeout(600)
def test_veto_offline_with_an_attachment_is_applied_when_the_stub_returns(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        tmp_path: Path) -> None:
    # The step-up check itself is covered in tests/sync/test_auth.py and
    # tests/e2e/test_push_engine.py (offline too); this test is about the outbox.
    app = app_against(demo_stub.url, GOVERNOR_STEP_UP_FOR_VETO="false")
    page = open_app(browser, app.url, PHONE)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()

    nav(page, "Approvals")
    approval_id = first_pending_id(page)

    demo_stub.stop()
    wait_for_text(page, "connection-state", "Offline")

    by_id(page, f"approval-{approval_id}").click()
    button(page, "Veto").click()
    choose(page, "Safety")
    reason = "Dangerous exec import; see the attached review."
    type_into(page, "Reason for the veto", reason)
    wait_for_text(page, "reason-counter", "47 / 2000")
    evidence = tmp_path / "review.txt"
    attach_file(page, evidence, "exec import found in the module")
    wait_for_text(page, "veto-attachments", "review.txt (31 B)")
    wait_for_text(page, "veto-attachments", "Up to 5 files, 5.0 MB in all.")

    button(page, "Veto this request").click()
    button(page, "Confirm veto").click()
    by_id(page, "veto-undo-bar").wait_for()
    wait_for_text(page, "approval-pending", "Veto queued")  # after the undo window
    wait_for_text(page, "connection-banner", "1 decision(s) wait")

    nav(page, "Outbox")
    wait_for_text(page, "outbox-pending", f"Veto {approval_id}")

    demo_stub.start()
    wait_for_text(page, "connection-state", "Online", RECONNECT_MS)  # by itself
    wait_for_text(page, "sync-summary", "0 waiting")

    nav(page, "Approvals")
    button(page, "All").click()
    type_into(page, "Search requests", approval_id)
    by_id(page, f"approval-{approval_id}").click()
    wait_for_text(page, "approval-status", "Vetoed")
    assert by_id(page, "approval-pending").count() == 0

    # The stub holds it, not only the app's label: one veto, the reason, the file.
    server = read_server(f"sqlite:///{demo_stub.data_dir / 'governance.db'}")
    vetoes = [d for d in server.decisions
              if d.approval_id == approval_id and d.action == "veto"]
    assert len(vetoes) == 1, vetoes
    veto = vetoes[0]
    assert (veto.category, veto.reason) == ("safety", reason)
    assert veto.key is not None and veto.device_id is not None
    assert veto.attachments == (hashlib.sha256(evidence.read_bytes()).hexdigest(),)
    assert server.approvals[approval_id].status == "vetoed"
    assert server.approvals[approval_id].decided_by == veto.sub
    # Decided offline, applied later: the server's receipt, checked on the device.
    wait_for_text(page, "receipt-status", "Receipt verified: Veto signed by the server")
