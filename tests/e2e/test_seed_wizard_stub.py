"""The seed wizard accepts exactly what the real stub accepts: it validates with the schema
the engine fetched from the stub, and the stub judges the same bodies."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from governor_app.seed_wizard import RuleField, SeedWizard
from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.models import SeedSchema
from sync.settings import GovernorSettings
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess, unthrottled_stub


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubProcess]:
    with unthrottled_stub(tmp_path_factory.mktemp("stub")) as proc:
        yield proc


def synced_schema_and_token(stub: StubProcess, data_dir: Path) -> tuple[SeedSchema, str]:
    """The schema as the app has it: fetched by the engine's sync and read back from its
    store through the facade."""
    async def scenario() -> tuple[SeedSchema, str]:
        auth = Authenticator(stub.url, vault=MemoryVault())
        await auth.sign_in_with_password("governor", "governor")
        engine = SyncEngine(GovernorSettings(server_url=stub.url, data_dir=data_dir,
                                             sync_interval=0), authenticator=auth)
        await engine.sync_now()
        schema = engine.seed_schema()
        token = await auth.access_token()
        await engine.stop()
        assert schema is not None, "the engine's sync did not fetch the seed schema"
        return schema, token
    return asyncio.run(scenario())


NUMBERISH = st.one_of(
    st.integers(min_value=-10, max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["9" * 20, "1e12", "1e13", "nan", "inf", "-0", " 42 ", "1_000", "٣",
                     "5.0", "0x10", "", "ten"]),
    st.text(max_size=6))
LISTISH = st.one_of(
    st.lists(st.sampled_from(["ana", "bo", "ana", "", " ", "x" * 201]), max_size=4
             ).map(", ".join),
    st.text(max_size=12))
TITLE = st.one_of(st.sampled_from(["", "   ", "Tutors", "t" * 200, "t" * 201]),
                  st.text(min_size=1, max_size=8))


@st.composite
def wizard_inputs(draw: st.DrawFn, fields: tuple[RuleField, ...]) -> dict[str, Any]:
    chosen: dict[str, set[str]] = {}
    typed: dict[str, str] = {}
    flags: set[str] = set()
    for f in fields:
        if not draw(st.booleans()):
            continue  # each rule is left out about half the time
        if f.kind == "choices":
            chosen[f.name] = draw(st.sets(st.sampled_from(f.choices)))
        elif f.kind == "flag":
            flags.add(f.name)
        else:
            typed[f.name] = draw(LISTISH if f.kind == "list" else NUMBERISH)
    return {"title": draw(TITLE), "description": draw(TITLE), "chosen": chosen,
            "typed": typed, "flags": flags, "auto_approve": draw(st.booleans())}


def stub_verdict(client: httpx.Client, token: str, body: dict[str, Any]
                 ) -> tuple[bool, set[str]]:
    """Whether the stub creates the seed, and the condition rules it refuses."""
    response = client.post("/v1/mobile/seeds", json=body, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex})
    assert response.status_code in (201, 422), response.text
    if response.status_code == 201:
        return True, set()
    fields = response.json()["error"]["details"].get("fields", {})
    refused = {path.split(".")[1] if path.count(".") else path for path in fields
               if path.startswith("conditions")}
    return False, refused


def test_the_wizard_accepts_exactly_what_the_stub_accepts(stub: StubProcess,
                                                          tmp_path: Path) -> None:
    schema, token = synced_schema_and_token(stub, tmp_path / "client")
    fields = SeedWizard(schema=schema).fields()
    with httpx.Client(base_url=stub.url, timeout=30) as client:

        @settings(max_examples=200, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(wizard_inputs(fields))
        def wizard_agrees(inputs: dict[str, Any]) -> None:
            wiz = SeedWizard(schema=schema, **inputs)
            errors = wiz.errors()
            accepted, refused_rules = stub_verdict(client, token, wiz.body())
            assert accepted == (not errors), (wiz.body(), errors)
            if not accepted and not {"title", "description"} & set(errors):
                # The body's own fields passed: the service judged the conditions.
                rules = {name for name in errors if name not in ("title", "description")}
                assert rules == refused_rules, (wiz.body(), errors, refused_rules)

        wizard_agrees()


def test_a_twenty_digit_budget_is_refused_by_both_at_its_field(stub: StubProcess,
                                                               tmp_path: Path) -> None:
    schema, token = synced_schema_and_token(stub, tmp_path / "client")
    wiz = SeedWizard(schema=schema, title="Budget cap", description="Caps the budget.",
                     typed={"max_daily_token_budget": "9" * 20})
    assert set(wiz.errors()) == {"max_daily_token_budget"}
    with httpx.Client(base_url=stub.url, timeout=30) as client:
        assert stub_verdict(client, token, wiz.body()) == (False, {"max_daily_token_budget"})
