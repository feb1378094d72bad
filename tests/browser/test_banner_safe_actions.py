"""One-tap actions that are safe, in the real app against the real stub: a banner's Approve
shows the request's danger flags and asks; confirmed, it gets the request screen's undo
window; a banner acted on keeps its place while new ones arrive below it, and the note of
what became of it goes by itself; on a phone the banners never cover more than a third of
the screen (390x844 and 360x640)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from governor_app.push import danger_flags
from sync.models import ApprovalDetail
from tests.browser.harness import (
    DESKTOP,
    PHONE,
    AppProcess,
    by_id,
    governor_token,
    open_app,
    sign_in,
    stub_status,
    wait_for_stub_status,
    wait_for_text,
)
from tests.browser.test_push import banner_button, new_pending_request, wait_for_words
from tests.support.stub_process import StubProcess

SMALL_PHONE = {"width": 360, "height": 640}


def flags_on_the_stub(stub: StubProcess, approval_id: str) -> tuple[str, ...]:
    """The danger flags as the stub's own judgments in the request's data give them."""
    token = governor_token(stub)
    with stub.client() as client:
        body = client.get(f"/v1/mobile/approvals/{approval_id}",
                          headers={"Authorization": f"Bearer {token}"}).json()
    return danger_flags(ApprovalDetail.model_validate(body["data"]))


def flagged_request(stub: StubProcess) -> tuple[str, tuple[str, ...], list[str]]:
    """A new pending request with at least one danger flag (the demo picks a template at
    random; two of its four grant a dangerous capability), and those made before it."""
    made: list[str] = []
    for _ in range(20):
        approval_id = new_pending_request(stub)
        flags = flags_on_the_stub(stub, approval_id)
        if flags:
            return approval_id, flags, made
        made.append(approval_id)
    raise AssertionError("the demo made 20 requests without a danger flag")


def dismiss_banners_of(page: Page, approval_ids: list[str]) -> None:
    """Dismiss the banners of these requests (shown, or behind "N more")."""
    while True:
        labels = [by_id(page, f"push-banner-{i}").get_attribute("aria-label") or ""
                  if by_id(page, f"push-banner-{i}").count() else "" for i in range(3)]
        found = next(((i, a) for i, label in enumerate(labels) for a in approval_ids
                      if a in label), None)
        if found is None:
            return
        index, approval_id = found
        by_id(page, f"push-banner-{index}").get_by_role(
            "button", name="Dismiss", exact=True).click()
        page.wait_for_function(
            """([id, needle]) => { const el = document.querySelector(
                 `[flt-semantics-identifier="${id}"]`);
                 return !el || !(el.getAttribute('aria-label') || '').includes(needle); }""",
            arg=[f"push-banner-{index}", approval_id])


def banner_of(page: Page, approval_id: str, index: int) -> None:
    wait_for_text(page, f"push-banner-{index}", approval_id)


def wait_for_no_banner(page: Page, needle: str) -> None:
    """Wait until no banner says ``needle``."""
    page.wait_for_function(
        """(needle) => ![...document.querySelectorAll(
             '[flt-semantics-identifier^="push-banner-"]')].some(
             (el) => (el.getAttribute('aria-label') || '').includes(needle))""",
        arg=needle)


def wait_for_order(page: Page, top: str, below: str) -> None:
    """Wait until the first banner says ``top`` and a banner under it says ``below``."""
    page.wait_for_function(
        """([top, below]) => {
             const labels = [0, 1, 2].map((i) => { const el = document.querySelector(
               `[flt-semantics-identifier="push-banner-${i}"]`);
               return el ? (el.getAttribute('aria-label') || '') : ''; });
             return labels[0].includes(top) && !labels[0].includes(below)
                    && labels.slice(1).some((l) => l.includes(below)); }""",
        arg=[top, below])


@pytest.mark.timeout(300)
def test_a_banner_approve_shows_the_flags_asks_and_gets_the_undo_window(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="5")
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()

    approval_id, flags, unflagged = flagged_request(demo_stub)
    banner_of(page, approval_id, 0)
    dismiss_banners_of(page, unflagged)  # only the flagged one is left
    # Every flag is shown before anything is queued; cancelled, nothing is.
    banner_button(page, "Approve").click()
    for flag in flags:
        wait_for_text(page, "approve-dialog-flags", flag)
    page.get_by_role("button", name="Cancel", exact=True).click()
    wait_for_words(page, "you cancelled after seeing its warnings; nothing was queued")
    banner_of(page, approval_id, 0)
    assert stub_status(demo_stub, approval_id) == "pending_approval"

    # Approved anyway, it waits in the request screen's own undo window: taken back there,
    # nothing is queued and the banner stays.
    banner_button(page, "Approve").click()
    page.get_by_role("button", name="Approve anyway", exact=True).click()
    wait_for_text(page, "veto-undo-bar", "Approval held on this device")
    wait_for_text(page, "approval-detail", f"Request {approval_id}")
    page.get_by_role("button", name="Undo approval", exact=True).click()
    wait_for_words(page, "you took it back within the 5 s undo window")
    banner_of(page, approval_id, 0)
    assert stub_status(demo_stub, approval_id) == "pending_approval"

    # Approved again: while the tap is pending (its dialog open), a new request arrives
    # below it, not on top, so the banner being acted on does not move. The dialog hides
    # the page behind it from the accessibility tree: a second tab, which shows the same
    # banners, is where the order is read.
    other = open_app(browser, app.url, DESKTOP)
    by_id(other, "figure-active-agents").wait_for()
    banner_button(page, "Approve").click()
    anyway = page.get_by_role("button", name="Approve anyway", exact=True)
    anyway.wait_for()
    newer = new_pending_request(demo_stub)
    wait_for_order(other, approval_id, newer)
    other.close()
    anyway.click()
    wait_for_text(page, "veto-undo-bar", "Approval held on this device")
    # Once queued, its place holds the note of what became of it: nothing slid up.
    wait_for_order(page, f"Approval of {approval_id} queued.", newer)
    wait_for_stub_status(demo_stub, approval_id, "approved", page)
    # The note is information: it goes by itself.
    wait_for_no_banner(page, approval_id)
    wait_for_text(page, "push-banner-*", newer)


@pytest.mark.timeout(300)
def test_on_a_phone_banners_cover_at_most_a_third_of_the_screen(
        browser: Browser, demo_stub: StubProcess,
        app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="5")
    page = open_app(browser, app.url, PHONE)
    sign_in(page, "governor", "governor")
    by_id(page, "figure-active-agents").wait_for()
    ids = [new_pending_request(demo_stub) for _ in range(3)]
    banner_of(page, ids[-1], 0)
    wait_for_text(page, "push-banner-more", "more")
    for size in (PHONE, SMALL_PHONE):
        page.set_viewport_size(size)  # type: ignore[arg-type]
        wait_for_text(page, "push-banner-0", ids[-1])
        page.wait_for_function(
            """(limit) => { const boxes = [...document.querySelectorAll(
                   '[flt-semantics-identifier^="push-banner"]')].map(
                   (el) => el.getBoundingClientRect());
                 if (boxes.length === 0) return false;
                 const top = Math.min(...boxes.map((b) => b.top));
                 const bottom = Math.max(...boxes.map((b) => b.bottom));
                 return bottom - Math.min(top, 0) <= limit; }""",
            arg=size["height"] / 3)
        # The rest stay reachable from the "more" line.
        page.get_by_role("button", name="Show all", exact=True).wait_for()
