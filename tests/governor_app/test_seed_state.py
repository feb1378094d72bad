from __future__ import annotations

from datetime import UTC, datetime

from governor_app import state
from governor_app.testing import FakeGovernorClient

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_conditions_in_words() -> None:
    words = state.describe_conditions({"industry_in": ["finance", "public_sector"],
                                       "max_daily_token_budget": 100000,
                                       "no_dangerous_capabilities": True})
    assert words == ["Industry is one of Finance, Public sector",
                     "Daily token budget at most 100,000", "No dangerous capabilities"]


def test_seed_rows_and_detail_with_effectiveness() -> None:
    client = FakeGovernorClient(now=lambda: NOW)
    rows = state.seed_rows(client.seeds("crm"))
    assert [r.id for r in rows] == ["GEN-002"] and "match 31 %" in rows[0].subtitle
    seed = client.seed("GEN-002")
    assert seed is not None
    detail = state.seed_detail_view(seed)
    assert ("Veto rate", "5 %") in detail.metrics
    assert detail.chart == (("Match rate", 0.31), ("Veto rate", 0.05))
    assert detail.auto_approve.startswith("Auto-approves")


def test_wizard_walks_the_steps_and_validates_each() -> None:
    wiz = state.SeedWizard()
    assert not wiz.next() and set(wiz.errors(0)) == {"title", "description"}
    wiz.title, wiz.description = "Read-only tutors", "Education agents that only read."
    assert wiz.next() and wiz.step == 1
    assert not wiz.next() and "conditions" in wiz.errors(1)
    wiz.max_daily_tokens = "ten"
    assert "max_daily_token_budget" in wiz.errors(1)
    wiz.max_daily_tokens = "50000"
    wiz.industries.add("education")
    wiz.capabilities.add("file_read:*")
    assert wiz.next() and wiz.step == 2
    wiz.auto_approve = True
    assert wiz.next() and wiz.step == 3
    draft = wiz.draft()
    assert draft.conditions == {"industry_in": ["education"],
                                "capabilities_within": ["file_read:*"],
                                "max_daily_token_budget": 50000}
    assert draft.auto_approve and "Auto-approve full matches" in wiz.review()
    wiz.back()
    assert wiz.step == 2


def test_wizard_refuses_what_the_server_schema_refuses() -> None:
    wiz = state.SeedWizard(title="t", description="d")
    wiz.industries.add("space_mining")
    wiz.capabilities.add("no-colon")
    wiz.max_monthly_cost = "-3"
    errors = wiz.errors(1)
    assert set(errors) == {"industry_in", "capabilities_within", "max_monthly_cost_usd"}


def test_a_created_seed_queues_offline_and_appears_after_sync() -> None:
    client = FakeGovernorClient(now=lambda: NOW)
    client.online = False
    wiz = state.SeedWizard(title="Offline seed", description="made on a plane",
                           industries={"retail"})
    entry = client.create_seed(wiz.draft())
    assert entry.kind == "seed" and client.status().pending_count == 1
    client.online = True
    import asyncio

    asyncio.run(client.sync_now())
    assert any(s.title == "Offline seed" for s in client.seeds())


def test_matches_over_time_counts_cached_requests_per_day() -> None:
    from datetime import timedelta

    from governor_app.testing import demo_approval

    requests = [demo_approval(i, NOW).model_copy(update={"created_at": NOW - timedelta(days=d)})
                for i, d in enumerate((0, 0, 2, 9))]
    history = state.matches_over_time("GEN-002", requests, NOW)
    assert len(history) == 7
    assert history[-1] == ("21 Nov", 2) and history[-3] == ("19 Nov", 1)
    assert sum(n for _d, n in history) == 3  # the 9-day-old one is out of the window
    assert all(n == 0 for _d, n in state.matches_over_time("GEN-999", requests, NOW))
