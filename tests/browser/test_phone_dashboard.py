"""The dashboard leads somewhere (issue 18): each figure opens the list it counts, the
nearest deadline opens its request, a recent veto says who vetoed which agent when and
opens its request; health says why it is not ok. At 390x844 and 360x640."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from governor_app import addresses
from tests.browser.harness import (
    PHONE,
    SMALL_PHONE,
    AppProcess,
    by_id,
    label_of,
    nav,
    open_app,
    scroll_to_id,
    sign_in,
    tap_until_at,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

PHONES = pytest.mark.parametrize("viewport", [PHONE, SMALL_PHONE], ids=["390x844", "360x640"])

# Every request row listed says ``needle`` (the filter has applied).
EVERY_ROW_SAYS = """(needle) => {
  const rows = [...document.querySelectorAll('[flt-semantics-identifier^="approval-REQ"]')];
  return rows.length > 0 && rows.every(row => {
    let t = row.innerText + ' ' + (row.getAttribute('aria-label') || '');
    for (const c of row.querySelectorAll('[aria-label]')) t += ' ' + c.getAttribute('aria-label');
    return t.includes(needle); }); }"""


# Where each figure leads (its list, filtered).
FIGURE_PATHS = {"pending-approvals": "/approvals", "in-veto-window": "/approvals",
                "active-agents": "/agents"}


def open_figure(page: Page, key: str) -> None:
    """Tap a dashboard figure until its list opens (a CI run lost the one tap while the
    first sync redrew the dashboard under it, then waited 60 s on the dashboard)."""
    nav(page, "Dashboard")
    tap_until_at(page, by_id(page, f"figure-{key}"), f"figure {key}", (FIGURE_PATHS[key],))


@PHONES
def test_figures_deadline_and_recent_vetoes_open_what_they_stand_for(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")

    open_figure(page, "pending-approvals")
    page.wait_for_function(EVERY_ROW_SAYS, arg="Pending approval")
    page.wait_for_url(re.compile(r"/approvals$"))
    open_figure(page, "in-veto-window")
    page.wait_for_function(EVERY_ROW_SAYS, arg="veto window")
    open_figure(page, "active-agents")
    by_id(page, "agent-AGT-0001").or_(page.locator('[flt-semantics-identifier^="agent-"]')
                                      ).first.wait_for()
    page.wait_for_url(re.compile(r"/agents$"))

    nav(page, "Dashboard")
    nearest = label_of(page, "nearest-deadline")
    match = re.search(r"REQ-\d+", nearest + " " + by_id(page, "nearest-deadline").inner_text())
    assert match, nearest
    tap_until_at(page, by_id(page, "nearest-deadline"), "nearest deadline",
                 (addresses.approval(match.group(0)),))
    wait_for_text(page, "approval-detail", f"Request {match.group(0)}")

    nav(page, "Dashboard")
    scroll_to_id(page, "recent-veto-0")
    veto = label_of(page, "recent-veto-0")
    # Who vetoed, which agent, when: in words, not a raw timestamp.
    assert re.match(r"REQ-\d+ · [^·]+ · vetoed by \w+ .*ago", veto), veto
    assert not re.search(r"\d{4}-\d\d-\d\dT", veto), veto
    tap_until_at(page, by_id(page, "recent-veto-0"), "recent veto",
                 (addresses.approval(veto.split(" · ")[0]),))
    wait_for_text(page, "approval-detail", f"Request {veto.split(' · ')[0]}")


@PHONES
def test_health_says_why_it_is_not_ok(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    scroll_to_id(page, "health-0")
    overall = label_of(page, "health-0")
    assert overall.startswith("Overall: "), overall
    # Not a bare status word: "OK", or the status with its reason.
    assert overall == "Overall: OK" or re.match(
        r"Overall: (Degraded: \d+ violations in the last 24 hours|Down: .+ not answering)",
        overall), overall
