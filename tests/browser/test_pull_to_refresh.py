"""Pull to refresh on every list (issue 18), seeds included: on a 390x844 and a 360x640
phone, a finger's drag down from the top of the seeds list (the whole list, and a search
that leaves one row, too short to scroll) brings a change made on the server that no
event told the device of."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    PHONE,
    SMALL_PHONE,
    WAIT_MS,
    AppProcess,
    nav,
    open_touch_app,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.browser.test_phone_layout import first, pull_down
from tests.support.stub_process import StubProcess

PHONES = pytest.mark.parametrize("viewport", [PHONE, SMALL_PHONE], ids=["390x844", "360x640"])
REFRESHED = "Refreshed: this list is up to date with the server."


def retitle_quietly(stub: StubProcess, seed_id: str, title: str) -> None:
    """Change a seed's title in the stub's database, as the next delta sync will see it,
    with no event: only a sync the device asks for brings it (the stream would otherwise
    make the device catch up by itself, with or without a pull)."""
    with sqlite3.connect(stub.data_dir / "governance.db", timeout=30) as db:
        db.execute("UPDATE counters SET value = value + 1 WHERE name = 'seeds'")
        (version,) = db.execute("SELECT value FROM counters WHERE name = 'seeds'").fetchone()
        db.execute("UPDATE seeds SET title = ?, version = ? WHERE id = ?",
                   (title, version, seed_id))


def pulled_until(page: Page, seed_id: str, title: str) -> None:
    """Pull the list down from its first row until the new title shows. A pull is one
    drag; one that Flutter's engine drops (as a finger's can be) is pulled again."""
    for _ in range(4):
        box = first(page, "seed-").bounding_box()
        assert box is not None
        pull_down(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        try:
            wait_for_text(page, f"seed-{seed_id}", title, timeout_ms=15_000)
            break
        except AssertionError:
            print("the pull brought nothing; pulling again")
    wait_for_text(page, f"seed-{seed_id}", title, timeout_ms=WAIT_MS)
    page.get_by_text(REFRESHED).first.wait_for()  # and the governor is told so


@PHONES
def test_pulling_the_seeds_list_down_brings_a_server_change(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    # No periodic sync to mistake for the pull's.
    app = app_against(demo_stub.url, GOVERNOR_SYNC_INTERVAL="3600")
    page = open_touch_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    nav(page, "Seeds")
    seed_id = (first(page, "seed-GEN").get_attribute("flt-semantics-identifier")
               or "").removeprefix("seed-")

    # The whole list.
    retitle_quietly(demo_stub, seed_id, "Retitled on the server")
    pulled_until(page, seed_id, "Retitled on the server")

    # A search that leaves one row: a list too short to scroll is pulled all the same.
    type_into(page, "Search seeds", "Retitled")
    page.wait_for_function(
        """() => document.querySelectorAll('[flt-semantics-identifier^="seed-"]')
                 .length === 1""")
    retitle_quietly(demo_stub, seed_id, "Retitled once more")
    pulled_until(page, seed_id, "Retitled once more")
