"""The seed wizard validates with the server's rules (fetched from the stub and kept on the
device): every rule kind the server knows is offered, and a value the server would refuse
is refused at its field, where the error stays until the field is fixed."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import Browser

from tests.browser.harness import (
    DESKTOP,
    PHONE,
    AppProcess,
    button,
    by_id,
    nav,
    open_app,
    scroll_to_id,
    sign_in,
    type_into,
    wait_for_text,
    wait_label_empty,
)
from tests.support.stub_process import StubProcess

BUDGET = "max_daily_token_budget"
# Every rule kind of the stub's condition schema (backend_stub.domain.seeds).
RULES = ("industry_in", "agent_kind_in", "capabilities_within", BUDGET,
         "max_monthly_cost_usd", "no_dangerous_capabilities", "wasm_valid", "max_memory_pages",
         "requester_in")


@pytest.mark.parametrize("viewport", [PHONE, DESKTOP], ids=["phone", "desktop"])
def test_a_twenty_digit_budget_is_refused_at_its_field_until_fixed(
        browser: Browser, demo_stub: StubProcess, app_against: Callable[..., AppProcess],
        viewport: dict[str, int]) -> None:
    app = app_against(demo_stub.url)
    page = open_app(browser, app.url, viewport)
    sign_in(page, "governor", "governor")
    nav(page, "Seeds")
    button(page, "New seed").click()

    # An empty title is refused at the title, and the error goes once it is filled in.
    button(page, "Next step").click()
    wait_for_text(page, "wizard-error-title", "Give the seed a title")
    type_into(page, "Seed title", "Capped budgets")
    wait_label_empty(page, "title")
    wait_for_text(page, "wizard-error-description", "Describe when")
    type_into(page, "Seed description", "Agents within a daily token budget.")
    wait_label_empty(page, "description")
    button(page, "Next step").click()
    wait_for_text(page, "wizard-step", "Step 2 of 4")

    for rule in RULES:  # every rule kind the server knows is offered
        scroll_to_id(page, f"wizard-rule-{rule}")
    scroll_to_id(page, f"wizard-rule-{BUDGET}")
    type_into(page, "Daily token budget at most", "9" * 20)
    wait_for_text(page, f"wizard-error-{BUDGET}", "at most 9,007,199,254,740,992")
    # At its field: right under it, inside the rule's own block.
    field = page.get_by_label("Daily token budget at most", exact=True).bounding_box()
    error = by_id(page, f"wizard-error-{BUDGET}").first.bounding_box()
    block = by_id(page, f"wizard-rule-{BUDGET}").first.bounding_box()
    assert field and error and block
    assert field["y"] < error["y"] <= block["y"] + block["height"]

    button(page, "Next step").click()  # refused: the step stays, and so does the error
    wait_for_text(page, "wizard-step", "Step 2 of 4")
    wait_for_text(page, f"wizard-error-{BUDGET}", "at most 9,007,199,254,740,992")

    type_into(page, "Daily token budget at most", "50000", replace=True)
    wait_label_empty(page, BUDGET)
    button(page, "Next step").click()
    wait_for_text(page, "wizard-step", "Step 3 of 4")
    button(page, "Next step").click()
    wait_for_text(page, "seed-review", "Daily token budget at most 50,000")
    button(page, "Create seed").click()
    type_into(page, "Search seeds", "Capped budgets")
    wait_for_text(page, "seed-GEN*", "Capped budgets")  # the server took it
