"""The approvals list pages through a large cache: a page of rows at a time, the next one
loaded by scrolling near the end or by "Show more", on a phone and on a desktop."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    PHONE,
    AppProcess,
    button,
    by_id,
    nav,
    open_app,
    type_into,
    wait_for_text,
)

CACHED = 70  # the in-memory client's requests: REQ-0001 (newest) .. REQ-0070
ROWS = 'flt-semantics[flt-semantics-identifier^="approval-REQ"]'


@pytest.fixture
def app(tmp_path: Path) -> Iterator[AppProcess]:
    with AppProcess(["app", "--server", "http://127.0.0.1:9", "--fake-client", str(CACHED)],
                    data_dir=tmp_path / "app") as proc:
        yield proc


def shown(page: Page) -> int:
    """The count in "N requests shown"."""
    text = by_id(page, "approvals-shown").first.inner_text() + " " + (
        by_id(page, "approvals-shown").first.get_attribute("aria-label") or "")
    found = re.search(r"(\d+) requests? shown", text)
    assert found, text
    return int(found.group(1))


def scroll_list_until_all_shown(page: Page, tries: int = 60) -> list[int]:
    """Scroll the list down in steps until every cached request is listed; the counts
    seen on the way."""
    row = page.locator(ROWS).first
    box = row.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    seen = [shown(page)]
    for _ in range(tries):
        if seen[-1] == CACHED:
            break
        page.mouse.wheel(0, 400)
        page.wait_for_timeout(250)
        seen.append(shown(page))
    wait_for_text(page, "approvals-shown", f"{CACHED} requests shown")
    return seen


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_the_list_shows_a_page_and_scrolling_loads_the_next(
        browser: Browser, app: AppProcess, viewport: dict[str, int]) -> None:
    page = open_app(browser, app.url, viewport)
    nav(page, "Approvals")
    button(page, "All").click()
    wait_for_text(page, "approvals-shown", "20 requests shown, more below")
    by_id(page, "approval-REQ-0001").wait_for()
    assert by_id(page, "approval-REQ-0031").count() == 0  # not sent yet

    seen = scroll_list_until_all_shown(page)
    assert set(seen) <= {20, 40, 60, 70}, seen  # whole pages of 20 are added
    assert "more below" not in by_id(page, "approvals-shown").first.inner_text()
    # To the end of the list: the oldest request, no button after it. Scroll until it is
    # there (six fixed wheel turns could all land before the list had grown under load).
    oldest = by_id(page, "approval-REQ-0070")
    for _ in range(30):
        page.mouse.wheel(0, 1000)
        try:
            oldest.wait_for(timeout=2_000)
            break
        except Exception:  # Playwright's TimeoutError: not there yet, scroll on
            continue
    oldest.wait_for()
    assert button(page, "Show more").count() == 0

    # A search or a filter change starts again from one page, at the top, though the list
    # was scrolled to its end (cut to one page there, it would be clamped to the new end,
    # and that scroll would load the next page).
    type_into(page, "Search requests", "REQ-00")  # matches every request
    wait_for_text(page, "approvals-shown", "20 requests shown, more below")
    page.wait_for_timeout(1000)  # a clamped scroll would have loaded a page by now
    assert shown(page) == 20
    by_id(page, "approval-REQ-0001").wait_for()
    first = page.locator(ROWS).first.bounding_box()
    assert first is not None and 0 <= first["y"] < viewport["height"], first

    button(page, "Pending").click()  # 12 of the 70
    wait_for_text(page, "approvals-shown", "12 requests shown")
    assert "more below" not in by_id(page, "approvals-shown").first.inner_text()


# Windows tall enough for a whole page of rows: the list cannot scroll, so no scroll can
# load the next page before the button does.
TALL_PHONE = {"width": PHONE["width"], "height": 2200}
TALL_DESKTOP = {"width": DESKTOP["width"], "height": 1700}


@pytest.mark.parametrize("viewport", [TALL_PHONE, TALL_DESKTOP], ids=["phone", "desktop"])
def test_show_more_adds_a_page_and_a_search_starts_again(
        browser: Browser, app: AppProcess, viewport: dict[str, int]) -> None:
    page = open_app(browser, app.url, viewport)
    nav(page, "Approvals")
    button(page, "All").click()
    wait_for_text(page, "approvals-shown", "20 requests shown, more below")
    button(page, "Show more").click()
    wait_for_text(page, "approvals-shown", "40 requests shown, more below")
    by_id(page, "approval-REQ-0021").wait_for()

    type_into(page, "Search requests", "REQ-006")
    wait_for_text(page, "approvals-shown", "10 requests shown")
    by_id(page, "approval-REQ-0069").wait_for()
    assert by_id(page, "approval-REQ-0001").count() == 0
    assert button(page, "Show more").count() == 0
