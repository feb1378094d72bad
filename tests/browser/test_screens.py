"""Each screen's main path, on a phone (390x844) and a desktop (1280x800)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser, Page

from tests.browser.harness import (
    DESKTOP,
    PHONE,
    AppProcess,
    button,
    by_id,
    label_of,
    nav,
    open_app,
    sign_in,
    type_into,
    wait_for_text,
)
from tests.support.stub_process import StubProcess


def first_row(page: Page, kind: str, starts: str = "") -> str:
    """The id of the first ``kind-ID`` row shown (ids starting with ``starts``)."""
    rows = page.locator(f'[flt-semantics-identifier^="{kind}-{starts}"]')
    rows.first.wait_for()
    return (rows.first.get_attribute("flt-semantics-identifier") or "").removeprefix(
        f"{kind}-")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_every_screen_main_path(browser: Browser, demo_stub: StubProcess,
                                app_against: Callable[..., AppProcess],
                                viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")

    # Dashboard: figures, deadline, budget, freshness.
    assert label_of(page, "figure-pending-approvals").startswith("Pending approvals: ")
    wait_for_text(page, "nearest-deadline", "left")
    wait_for_text(page, "dashboard-age", "Data from")

    # Approvals: filter, search, detail with the pipeline and the actions.
    nav(page, "Approvals")
    request_id = first_row(page, "approval", "REQ")
    button(page, "In veto window").click()
    button(page, "Pending").click()
    type_into(page, "Search requests", request_id)
    by_id(page, f"approval-{request_id}").click()
    wait_for_text(page, "approval-detail", request_id)
    wait_for_text(page, "stage-genesis_certification", "Passed")
    for name in ("Approve", "Request changes", "Veto"):
        button(page, name).wait_for()
    if viewport is DESKTOP:
        page.keyboard.press("a")  # the desktop shortcut opens the approve dialog
        button(page, "Confirm approval").wait_for()
        button(page, "Cancel").click()
    button(page, "Request changes").click()
    button(page, "Send change request").click()
    page.get_by_text("Say what must change", exact=False).wait_for()
    button(page, "Cancel").click()

    # Seeds: search offline, detail with effectiveness, the wizard queues a seed.
    nav(page, "Seeds")
    seed_id = first_row(page, "seed", "GEN")
    by_id(page, f"seed-{seed_id}").click()
    wait_for_text(page, "seed-detail", seed_id)
    by_id(page, "seed-chart").wait_for()
    button(page, "Back to seeds").click()
    button(page, "New seed").click()
    button(page, "Next step").click()
    page.get_by_text("Give the seed a title", exact=False).wait_for()
    type_into(page, "Seed title", "Browser-made seed")
    type_into(page, "Seed description", "Retail agents that only read.")
    button(page, "Next step").click()
    wait_for_text(page, "wizard-step", "Step 2 of 4")
    page.get_by_role("checkbox", name="Retail").click()
    button(page, "Next step").click()
    wait_for_text(page, "wizard-step", "Step 3 of 4")
    button(page, "Next step").click()
    wait_for_text(page, "seed-review", "Industry is one of Retail")
    button(page, "Create seed").click()
    type_into(page, "Search seeds", "Browser-made")
    wait_for_text(page, "seed-GEN*", "Browser-made seed")  # made by the server, synced

    # Notifications, agents, violations.
    nav(page, "Notifications")
    first_row(page, "notification")
    nav(page, "Agents")
    first_row(page, "agent")
    nav(page, "Violations")
    first_row(page, "violation")

    # Outbox and sync.
    nav(page, "Outbox")
    button(page, "Sync now").click()
    wait_for_text(page, "sync-summary", "0 waiting")
    wait_for_text(page, "sync-last-error", "No error.")

    # Settings: theme, quiet hours, sign-out.
    nav(page, "Settings")
    wait_for_text(page, "settings-account", "governor")
    page.get_by_role("switch", name="Dark theme").click()
    button(page, "Sign out").click()
    button(page, "Sign in").wait_for()


def test_an_auditor_sees_a_read_only_app(browser: Browser, demo_stub: StubProcess,
                                         app_against: Callable[..., AppProcess]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, DESKTOP)
    sign_in(page, "auditor", "auditor")
    nav(page, "Approvals")
    request_id = first_row(page, "approval", "REQ")
    by_id(page, f"approval-{request_id}").click()
    wait_for_text(page, "actions-unavailable", "read-only")
    for name in ("Approve", "Request changes", "Veto"):
        assert button(page, name).count() == 0
    nav(page, "Seeds")
    assert button(page, "New seed").is_disabled()
