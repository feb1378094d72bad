from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from governor_app import state
from governor_app.seed_wizard import (
    CAPABILITY_CHOICES,
    NO_RULES,
    SeedWizard,
    describe_conditions,
)
from sync.fakes import FakeGovernorClient
from sync.models import Seed, SeedMatch, SeedMetrics, SeedSchema

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_conditions_in_words() -> None:
    words = describe_conditions({"industry_in": ["finance", "public_sector"],
                                       "max_daily_token_budget": 100000,
                                       "no_dangerous_capabilities": True})
    assert words == ["Industry is one of Finance, Public sector",
                     "Daily token budget at most 100,000", "No dangerous capabilities"]


def test_seed_rows_and_detail_with_effectiveness() -> None:
    client = FakeGovernorClient(now=lambda: NOW)
    rows = state.seed_rows(client.seeds("crm"))
    assert [r.id for r in rows] == ["GEN-002"]
    assert rows[0].subtitle == "GEN-002 · 42 matches (31 %) · 2 vetoed (5 %)"
    seed = client.seed("GEN-002")
    assert seed is not None
    detail = state.seed_detail_view(seed)
    assert ("Veto rate", "5 %") in detail.metrics
    assert detail.chart == (("Match rate", 0.31), ("Veto rate", 2 / 42))  # its counts
    assert detail.auto_approve.startswith("Auto-approves")


def _schema() -> SeedSchema:
    from backend_stub.api.schemas import seed_schema

    return SeedSchema(body=seed_schema(), fetched_at=NOW)


def test_wizard_walks_the_steps_and_validates_each() -> None:
    wiz = SeedWizard(schema=_schema())
    assert not wiz.next() and set(wiz.errors(0)) == {"title", "description"}
    assert wiz.visible_errors()["title"].startswith("Give the seed a title")
    wiz.title, wiz.description = "Read-only tutors", "Education agents that only read."
    assert wiz.visible_errors() == {}  # fixed: the errors go
    assert wiz.next() and wiz.step == 1
    assert not wiz.next() and "conditions" in wiz.errors(1)
    wiz.typed["max_daily_token_budget"] = "ten"
    assert wiz.errors(1)["max_daily_token_budget"] == \
        "Daily token budget at most: enter a whole number."
    wiz.typed["max_daily_token_budget"] = "50000"
    wiz.chosen["industry_in"] = {"education"}
    wiz.chosen["capabilities_within"] = {"file_read:*"}
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


def test_wizard_offers_every_rule_kind_the_server_knows() -> None:
    from backend_stub.domain.seeds import CONDITIONS_SCHEMA

    fields = {f.name: f for f in SeedWizard(schema=_schema()).fields()}
    assert set(fields) == set(CONDITIONS_SCHEMA["properties"])
    assert fields["agent_kind_in"].choices == ("industry", "coe")
    assert fields["wasm_valid"].kind == "flag" and fields["requester_in"].kind == "list"
    assert fields["max_memory_pages"].kind == "integer"
    assert fields["capabilities_within"].choices == CAPABILITY_CHOICES


def test_wizard_refuses_what_the_server_schema_refuses() -> None:
    wiz = SeedWizard(schema=_schema(), title="t", description="d")
    wiz.chosen["industry_in"] = {"space_mining"}
    wiz.typed["max_monthly_cost_usd"] = "-3"
    wiz.typed["max_daily_token_budget"] = "9" * 20
    wiz.typed["max_memory_pages"] = "nan"
    wiz.typed["requester_in"] = "ana, ana"
    errors = wiz.errors(1)
    assert set(errors) == {"industry_in", "max_monthly_cost_usd", "max_daily_token_budget",
                           "max_memory_pages", "requester_in"}
    assert errors["max_daily_token_budget"] == \
        "Daily token budget at most: the server takes at most 9,007,199,254,740,992; enter " \
        "a smaller number."
    assert "'space_mining' is not one the server knows" in errors["industry_in"]
    assert not wiz.ready() and wiz.step == 1


def test_wizard_without_the_servers_rules_says_so_and_creates_nothing() -> None:
    wiz = SeedWizard(title="t", description="d")
    assert wiz.fields() == () and not wiz.next()
    assert wiz.errors() == {"conditions": NO_RULES} and not wiz.ready()


def test_the_in_memory_client_holds_the_stubs_own_schema() -> None:
    client = FakeGovernorClient(now=lambda: NOW)
    schema = client.seed_schema()
    assert schema is not None and schema.body == _schema().body
    assert FakeGovernorClient(now=lambda: NOW, seed_rules=False).seed_schema() is None


def test_a_created_seed_queues_offline_and_appears_after_sync() -> None:
    client = FakeGovernorClient(now=lambda: NOW)
    client.online = False
    wiz = SeedWizard(schema=_schema(), title="Offline seed", description="made on a plane",
                     chosen={"industry_in": {"retail"}})
    entry = client.create_seed(wiz.draft())
    assert entry.kind == "seed" and client.status().pending_count == 1
    client.online = True
    import asyncio

    asyncio.run(client.sync_now())
    assert any(s.title == "Offline seed" for s in client.seeds())


def test_matches_over_time_counts_cached_requests_per_day() -> None:
    from datetime import timedelta

    from sync.fakes import demo_approval

    full = [SeedMatch(seed_id="GEN-002", score=1.0, conditions_met=["industry"])]
    requests = [demo_approval(i, NOW).model_copy(update={
        "created_at": NOW - timedelta(days=d), "seed_matches": full})
        for i, d in enumerate((0, 0, 2, 9))]
    # A partial match (the demo's 0.82) is a suggestion, not one of the seed's matches.
    requests.append(demo_approval(5, NOW).model_copy(update={"created_at": NOW}))
    history = state.matches_over_time("GEN-002", requests, NOW)
    assert len(history) == 7
    assert history[-1] == ("21 Nov", 2) and history[-3] == ("19 Nov", 1)
    assert sum(n for _d, n in history) == 3  # the 9-day-old one is out of the window
    assert all(n == 0 for _d, n in state.matches_over_time("GEN-999", requests, NOW))


def test_every_wizard_capability_choice_is_a_pattern_the_stub_accepts() -> None:
    from backend_stub.domain.seeds import condition_errors

    assert condition_errors({"capabilities_within": list(CAPABILITY_CHOICES)}) == {}


def seed(status: Literal["proposed", "active", "retired"], auto_approve: bool,
         matches: int = 4, vetoes: int = 1, veto_rate: float = 0.9) -> Seed:
    return Seed(id="GEN-009", title="t", description="d", conditions={"wasm_valid": True},
                auto_approve=auto_approve, status=status,
                metrics=SeedMetrics(matches=matches, vetoes=vetoes, match_rate=0.2,
                                    veto_rate=veto_rate),
                created_by="governor", created_at=NOW, version=1)


def test_only_an_active_seed_says_it_auto_approves() -> None:
    retired = seed("retired", True)
    assert not state.auto_approves(retired) and not state.seed_rows([retired])[0].auto_approves
    assert state.seed_detail_view(retired).auto_approve == (
        "Retired: matches and auto-approves nothing")
    assert state.seed_detail_view(seed("proposed", True)).auto_approve == (
        "Will auto-approve full matches once active")
    assert state.seed_rows([seed("active", True)])[0].auto_approves
    assert state.seed_detail_view(seed("active", False)).auto_approve == (
        "Suggests only: the governor decides")


def test_a_seeds_figures_and_chart_come_from_one_source() -> None:
    # The server's veto rate (stale: 0.9) never contradicts its own counts (1 of 4).
    s = seed("active", True, matches=4, vetoes=1, veto_rate=0.9)
    detail, row = state.seed_detail_view(s), state.seed_rows([s])[0]
    assert ("Matches", "4") in detail.metrics and ("Vetoes", "1") in detail.metrics
    assert ("Veto rate", "25 %") in detail.metrics
    assert detail.chart == (("Match rate", 0.2), ("Veto rate", 0.25))
    assert row.subtitle == "GEN-009 · 4 matches (20 %) · 1 vetoed (25 %)"
    one = state.seed_rows([seed("active", True, matches=1, vetoes=0)])[0]
    assert one.subtitle.startswith("GEN-009 · 1 match (")  # not "1 matches"
    none = state.seed_detail_view(seed("active", True, matches=0, vetoes=0))
    assert ("Veto rate", "0 %") in none.metrics


def test_retire_is_offered_to_a_writer_for_a_seed_not_retired() -> None:
    import asyncio

    import pytest

    from sync.errors import InvalidDecision, ServerUnreachable
    from sync.models import Account

    governor = Account(sub="g", username="governor",
                       scopes=frozenset({"governance:read", "governance:write"}))
    auditor = Account(sub="a", username="auditor", scopes=frozenset({"governance:read"}))
    assert state.may_retire(seed("active", True), governor)
    assert state.may_retire(seed("proposed", False), governor)
    assert not state.may_retire(seed("retired", True), governor)
    assert not state.may_retire(seed("active", True), auditor)
    assert not state.may_retire(seed("active", True), None)
    client = FakeGovernorClient(now=lambda: NOW)
    client.online = False
    with pytest.raises(ServerUnreachable):
        asyncio.run(client.retire_seed("GEN-002", "why"))
    client.online = True
    with pytest.raises(InvalidDecision, match="1 to 2000 characters"):
        asyncio.run(client.retire_seed("GEN-002", " "))
    retired = asyncio.run(client.retire_seed("GEN-002", "why"))
    assert retired.status == "retired" and not state.seed_rows([retired])[0].auto_approves
    asyncio.run(client.sign_out())
    asyncio.run(client.sign_in_with_password("auditor", "auditor"))
    with pytest.raises(InvalidDecision, match="governance:write"):
        asyncio.run(client.retire_seed("GEN-004", "why"))
