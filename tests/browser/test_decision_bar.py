"""The decision buttons stay reachable on long requests (issue 18): on a 390x844 and a
360x640 phone, a request with many grants and a long name, read to its end, still shows
Approve, Request changes and Veto, whole and not covered, below the scrolling detail."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from backend_stub.domain.wasm import build_module
from tests.browser.harness import (
    PHONE,
    SMALL_PHONE,
    WAIT_MS,
    AppProcess,
    button,
    by_id,
    nav,
    open_app,
    scroll_to_id,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

PHONES = pytest.mark.parametrize("viewport", [PHONE, SMALL_PHONE], ids=["390x844", "360x640"])
DECISIONS = ("Approve", "Request changes", "Veto")
# Many grants, dangerous ones among them: the detail runs several screens long.
GRANTS = ([f"file_read:/data/regions/region-{i:02d}/reports/*" for i in range(30)]
          + ["system_call:exec", "network_outbound:*", "env_read:*", "file_write:/etc/*"])
LONG_NAME = ("quarterly-regional-compliance-reporting-assistant-for-every-district-office-"
             "with-cross-border-data-reconciliation-and-archive-retention")


def submit_long_request(stub: StubProcess, tmp_path: Path) -> str:
    """A request as a submitter sends it (``governor-stub submit``): its id."""
    module = tmp_path / "long.wasm"
    module.write_bytes(build_module(imports=[("wasi_snapshot_preview1", "fd_write")],
                                    functions=4, memory_pages=2))
    grants = [arg for grant in GRANTS for arg in ("--capability", grant)]
    done = subprocess.run(
        [sys.executable, "-m", "backend_stub.cli", "submit", str(module), "--server", stub.url,
         "--name", LONG_NAME, "--industry", "education", "--budget", "40000",
         "--monthly-cost", "80", "--json", *grants],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["id"])


# Each decision button: inside the screen, and what is under its middle is the button.
UNREACHABLE = """(names) => {
  const W = window.innerWidth, H = window.innerHeight, out = [];
  for (const name of names) {
    const el = [...document.querySelectorAll('flt-semantics[role="button"]')].find(
        (b) => ((b.getAttribute('aria-label') || b.innerText) || '').trim() === name);
    if (!el) { out.push(`${name}: not on the screen`); continue; }
    const r = el.getBoundingClientRect();
    if (r.left < -1 || r.top < -1 || r.right > W + 1 || r.bottom > H + 1) {
      out.push(`${name}: outside the screen (${Math.round(r.top)}..${Math.round(r.bottom)}`
               + ` of ${H})`);
      continue;
    }
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (hit && hit !== el && !el.contains(hit) && !hit.contains(el))
      out.push(`${name}: covered by ${hit.getAttribute('aria-label') || hit.tagName}`);
  }
  return out; }"""


def unreachable(page: Page) -> list[str]:
    """The decision buttons a finger cannot reach now (after the screen settled)."""
    try:
        page.wait_for_function(f"(n) => ({UNREACHABLE})(n).length === 0",
                               arg=list(DECISIONS), timeout=10_000)
        return []
    except Exception:  # Playwright's TimeoutError: still unreachable once settled
        found: list[str] = page.evaluate(UNREACHABLE, list(DECISIONS))
        return found


def scrolled_to_the_end(page: Page) -> None:
    """Read the request to its last section and past it (a wheel over the detail)."""
    scroll_to_id(page, "seed-matches", within="pipeline")
    # On the way, just above the seeds: the module the submitter sent, as the stub judged
    # it, is what the governor reads.
    for line in ("Module valid, no issues", "Imports: wasi_snapshot_preview1.fd_write",
                 "Memory pages: 2"):
        wait_for_text(page, "wasm-report", line)
    for _ in range(10):
        page.mouse.wheel(0, 400)
    # Read to the end: its heading went off the top, out of the tree.
    by_id(page, "approval-detail").wait_for(state="detached", timeout=WAIT_MS)


@PHONES
def test_the_decision_buttons_stay_reachable_on_a_long_request(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int], tmp_path: Path) -> None:
    approval_id = submit_long_request(demo_stub, tmp_path)
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    nav(page, "Approvals")
    type_into(page, "Search requests", approval_id)
    by_id(page, f"approval-{approval_id}").click()
    by_id(page, "approval-detail").wait_for()
    assert unreachable(page) == []
    by_id(page, "pipeline").wait_for()
    scrolled_to_the_end(page)
    assert unreachable(page) == []
    # Still live: Veto opens the veto form.
    button(page, "Veto").click()
    by_id(page, "veto-deadline").wait_for()
