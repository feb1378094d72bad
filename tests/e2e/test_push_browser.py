"""In headless Chromium: a demo scenario event appears as a banner, and its Veto action,
after the password step-up, queues a veto in the real engine's outbox that reaches the stub.

The page is ``bench/_push_ui.py`` (the push path and a minimal banner over a real
``SyncEngine``), not ``governor_app``: the app does not render push banners yet.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sync.auth import Authenticator
from sync.tokens import MemoryVault
from tests.browser.harness import (
    REPO,
    by_id,
    chromium_missing_reason,
    free_port,
    launch_chromium,
    open_app,
    type_into,
)
from tests.support.stub_process import StubProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

WAIT_MS = 60_000


@pytest.fixture
def push_stub(tmp_path: Path) -> Iterator[StubProcess]:
    proc = StubProcess(tmp_path / "stub").start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def push_page_url(push_stub: StubProcess, tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "bench" / "_push_ui.py"), push_stub.url,
                             str(port), str(tmp_path / "engine")],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, cwd=REPO,
                            env={**os.environ, "FLET_SERVER_IP": "127.0.0.1"})
    output: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 90
        for line in proc.stdout:
            output.append(line)
            if line.startswith("push ui: http"):
                break
            if time.monotonic() > deadline:
                break
        if proc.poll() is not None or not output or not output[-1].startswith("push ui"):
            pytest.fail("the push page did not start:\n" + "".join(output[-30:]))
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def wait_label(page: Page, identifier: str, needle: str) -> None:
    page.wait_for_function(
        """([sel, needle]) => { const el = document.querySelector(sel);
             return !!el && ((el.getAttribute('aria-label') || '') + ' ' + el.innerText)
               .includes(needle); }""",
        arg=[f'[flt-semantics-identifier="{identifier}"]', needle], timeout=WAIT_MS)


def governor_token(stub: StubProcess) -> str:
    """Taken before Playwright starts: its sync API runs an event loop in this thread."""
    async def sign_in() -> str:
        auth = Authenticator(stub.url, vault=MemoryVault())
        await auth.sign_in_with_password("governor", "governor")
        token = await auth.access_token()
        await auth.aclose()
        return token
    return asyncio.run(sign_in())


def approval_status(stub: StubProcess, approval_id: str, token: str) -> str:
    with stub.client() as client:
        return str(client.get(f"/v1/mobile/approvals/{approval_id}", headers={
            "Authorization": f"Bearer {token}"}).json()["data"]["status"])


def test_a_scenario_event_becomes_a_banner_whose_veto_queues_a_veto(
        push_stub: StubProcess, push_page_url: str) -> None:
    reason = chromium_missing_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests are mandatory in CI: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    token = governor_token(push_stub)
    with sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            page = open_app(browser, push_page_url)
            page.set_default_timeout(WAIT_MS)
            wait_label(page, "push-ready", "connected")
            with push_stub.client() as demo:
                body = demo.post("/v1/demo/scenario",
                                 json={"event": "new_pending_approval"}).json()
            approval_id = body["data"]["result"]["approval_id"]
            wait_label(page, "push-banner-0", approval_id)
            wait_label(page, "push-banner-0", "Approval needed")

            banner = by_id(page, "push-banner-0")
            banner.get_by_role("button", name="Veto", exact=True).click()
            # The step-up: nothing is queued before the password is confirmed.
            page.get_by_label("Password to confirm the veto", exact=True).wait_for()
            assert approval_status(push_stub, approval_id, token) == "pending_approval"
            type_into(page, "Password to confirm the veto", "governor")
            page.get_by_role("button", name="Confirm veto", exact=True).click()
            wait_label(page, "push-status", f"Veto of {approval_id} queued")
        finally:
            browser.close()

    # The engine behind the page syncs every second: the queued veto reaches the stub.
    deadline = time.monotonic() + 60
    status = approval_status(push_stub, approval_id, token)
    while status != "vetoed" and time.monotonic() < deadline:
        time.sleep(0.5)
        status = approval_status(push_stub, approval_id, token)
    assert status == "vetoed"
