"""A phone layout that fits (issue 18): on a 390x844 and a 360x640 phone every control of
every screen is inside the screen across, and either fully shown and not covered by
another control, or inside a scrolling area that brings it into view."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    PHONE,
    SMALL_PHONE,
    AppProcess,
    button,
    by_id,
    nav,
    open_app,
    open_touch_app,
    sign_in,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

PHONES = pytest.mark.parametrize("viewport", [PHONE, SMALL_PHONE], ids=["390x844", "360x640"])

# Every control a finger can use: Flutter's semantics nodes for buttons, tabs, switches,
# check boxes, links, tappable areas and text fields. Each is judged against the screen
# and the scrolling areas it sits in (a node with overflow set: Flutter's scrollables).
MISFITS = """() => {
  const W = window.innerWidth, H = window.innerHeight, out = [];
  const interactive = el => ['button', 'tab', 'checkbox', 'switch', 'link', 'radio',
      'slider'].includes(el.getAttribute('role')) || el.hasAttribute('flt-tappable')
      || el.querySelector(':scope > input, :scope > textarea');
  const scrolls = el => { const s = getComputedStyle(el);
      return ['scroll', 'auto'].includes(s.overflowY)
          || ['scroll', 'auto'].includes(s.overflowX); };
  const span = (a, b, of) => `${Math.round(a)}..${Math.round(b)} of ${of}`;
  for (const el of document.querySelectorAll('flt-semantics')) {
    if (!interactive(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    const name = (el.getAttribute('aria-label') || el.innerText || '').trim().slice(0, 60)
        || (el.querySelector('input, textarea') || {}).ariaLabel || '?';
    if (r.left < -1 || r.right > W + 1) {
      out.push(`${name}: runs off the screen across (${span(r.left, r.right, W)})`);
      continue;
    }
    // The part of the screen it can be seen through: the screen, cut by each scrolling
    // area around it.
    let top = 0, bottom = H, scrolled = false;
    for (let p = el.parentElement; p; p = p.parentElement) {
      if (p.tagName === 'FLT-SEMANTICS' && scrolls(p)) {
        const b = p.getBoundingClientRect();
        top = Math.max(top, b.top); bottom = Math.min(bottom, b.bottom); scrolled = true;
      }
    }
    const inside = r.top >= top - 1 && r.bottom <= bottom + 1;
    if (!inside) {
      if (!scrolled) out.push(`${name}: cut off at the screen's edge and nothing `
                              + `scrolls it (${span(r.top, r.bottom, H)})`);
      continue;  // a scroll brings it into view
    }
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
    if (hit && hit !== el && !el.contains(hit) && !hit.contains(el)) {
      const by = ((hit.getAttribute && (hit.getAttribute('aria-label') || hit.innerText))
                  || hit.tagName).toString().trim().slice(0, 40);
      out.push(`${name}: covered by ${by}`);
    }
  }
  return out; }"""


# How long a screen just opened may take to settle (its lists become scrollable a frame
# or more after their rows arrive) before what does not fit is reported.
SETTLE_MS = 10_000


# What the governor reads: every node's label and text.
SHOWN = """() => [...document.querySelectorAll('flt-semantics')].map(
    el => (el.getAttribute('aria-label') || '') + ' ' + el.innerText).join('\\n')"""
# Server tokens and machine formats that must have been put into words.
RAW = {
    "a raw timestamp": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d"),
    "a server token": re.compile(r"\b(request_changes|pending_approval|auto_approved|"
                                 r"public_sector|veto_window)\b"),
    # "2000.0"; not an address's "127.0.0.1" nor a size's "5.0 MB".
    "a float's .0": re.compile(r"(?<![\d.])\d+\.0(?![\d.]| [KM]B)"),
    "an industry code": re.compile(r"\bCoe\b"),
}


def raw_values(page: Page, screen: str) -> list[str]:
    shown: str = page.evaluate(SHOWN)
    lines = dict.fromkeys(line.strip() for line in shown.splitlines())  # once each
    return [f"{screen}: {what}: {m.group(0)!r} in {line[:80]!r}"
            for line in lines for what, pattern in RAW.items()
            for m in [pattern.search(line)] if m]


def misfits(page: Page, screen: str) -> list[str]:
    try:
        page.wait_for_function(f"() => ({MISFITS})().length === 0", timeout=SETTLE_MS)
        return []
    except Exception:  # Playwright's TimeoutError: still misfits once settled
        found: list[str] = page.evaluate(MISFITS)
        return [f"{screen}: {m}" for m in found]


def first(page: Page, prefix: str) -> Any:
    rows = page.locator(f'[flt-semantics-identifier^="{prefix}"]')
    rows.first.wait_for()
    return rows.first


def opened(page: Page, section: str, ready: str) -> None:
    """Open a top-level screen and wait for a node whose id starts with ``ready``."""
    nav(page, section)
    first(page, ready)


def open_request(page: Page) -> None:
    button(page, "All").click()
    first(page, "approval-REQ").click()
    by_id(page, "approval-detail").wait_for()


def open_veto_form(page: Page) -> None:
    button(page, "Veto").click()
    by_id(page, "veto-deadline").wait_for()


def open_seed(page: Page) -> None:
    first(page, "seed-GEN").click()
    by_id(page, "seed-detail").wait_for()


def open_wizard(page: Page) -> None:
    nav(page, "Seeds")
    button(page, "New seed").click()
    button(page, "Next step").wait_for()


def open_more(page: Page) -> None:
    nav(page, "More")
    button(page, "Settings").wait_for()


def open_agents(page: Page) -> None:
    button(page, "Agents").click()
    first(page, "agent")


# The governor's walk through every screen: (screen, how to get there from the last one).
WALK: tuple[tuple[str, Callable[[Page], object]], ...] = (
    ("dashboard", lambda p: by_id(p, "figure-pending-approvals").wait_for()),
    ("approvals", lambda p: opened(p, "Approvals", "approval-REQ")),
    ("request", open_request),
    ("veto form", open_veto_form),
    ("seeds", lambda p: opened(p, "Seeds", "seed-GEN")),
    ("seed", open_seed),
    ("seed wizard", open_wizard),
    ("notifications", lambda p: opened(p, "Notifications", "notification")),
    ("more", open_more),
    # From the More screen itself (a tap on More again would re-render it under the tap).
    ("agents", open_agents),
    ("violations", lambda p: opened(p, "Violations", "violation")),
    ("outbox", lambda p: opened(p, "Outbox", "sync-summary")),
    ("settings", lambda p: opened(p, "Settings", "settings-account")),
)


@PHONES
def test_every_control_of_every_screen_fits_a_phone(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    button(page, "Sign in").wait_for()
    problems = misfits(page, "sign-in")
    sign_in(page, "governor", "governor")
    for screen, go in WALK:
        go(page)
        problems += misfits(page, screen) + raw_values(page, screen)
    assert not problems, "\n".join(problems)


@PHONES
def test_the_approvals_filters_are_all_shown_whole(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    nav(page, "Approvals")
    first(page, "approval-REQ")
    for name in ("All", "Pending", "In veto window", "Decided"):
        box = button(page, name).bounding_box()
        assert box is not None, name
        # Whole: a filter cut to a sliver by a scrolling row is narrower than its word.
        assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], (name, box)
        assert box["width"] >= 48, (name, box)
    button(page, "Decided").click()
    wait_for_text(page, "approvals-shown", "")


def pull_down(page: Page, x: float, y: float, distance: int = 300) -> None:
    """A finger's drag down from (x, y) over about 600 ms: touch events through the
    DevTools protocol (the page's context has touch), as Flutter's scrollables read a
    phone's drag. Paced like a finger (a list reports its scroll at most every 100 ms;
    an instant drag would be one report)."""
    cdp = page.context.new_cdp_session(page)
    steps = 15

    def touch(kind: str, to_y: float) -> None:
        points = [] if kind == "touchEnd" else [{"x": x, "y": to_y}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", y)
    for i in range(1, steps + 1):
        page.wait_for_timeout(40)  # the finger's speed, not a wait for the app
        touch("touchMove", y + distance * i / steps)
    touch("touchEnd", y + distance)


@PHONES
def test_pulling_a_list_down_past_its_top_syncs_it(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    # No periodic sync to mistake for the pull's.
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="3600")
    page = open_touch_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    nav(page, "Approvals")
    button(page, "All").click()  # more requests than the screen holds: the list scrolls
    box = first(page, "approval-REQ").bounding_box()
    assert box is not None
    pull_down(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    # The snack bar (and its copy in the screen reader's live region) says so.
    page.get_by_text("Refreshed: this list is up to date with the server.").first.wait_for()
