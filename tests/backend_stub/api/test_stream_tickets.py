"""Stream tickets for browsers (``EventSource``), CORS for configured origins, and the event
key never cached."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backend_stub.api.stream_tickets import MIGRATIONS, TICKET_TTL_S, StreamTickets
from backend_stub.clock import FakeClock
from backend_stub.db import Database
from backend_stub.errors import InvalidToken
from backend_stub.oauth.guard import Principal
from backend_stub.oauth.testing import bearer, issue_test_token, make_test_app
from backend_stub.settings import StubSettings

GOVERNOR = Principal("governor", "governor", frozenset({"governance:read", "veto:execute"}),
                     "governor-app", "jti-1")
ORIGIN = "http://127.0.0.1:5173"


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(make_test_app(FakeClock(), cors_origins=[ORIGIN])) as client:
        yield client


def tickets_on(db: Database, clock: FakeClock, revoked: set[str] | None = None
               ) -> StreamTickets:
    db.migrate(MIGRATIONS)
    return StreamTickets(db, clock, is_revoked=(set() if revoked is None else revoked).__contains__)


def new_ticket(client: TestClient, headers: dict[str, str] | None = None) -> str:
    response = client.post("/v1/mobile/events/ticket",
                           headers=headers or bearer(client.app))  # type: ignore[arg-type]
    assert response.status_code == 200, response.text
    ticket: str = response.json()["data"]["ticket"]
    return ticket


# --- the ticket store --------------------------------------------------------------
def test_a_ticket_carries_the_tokens_principal_and_works_once() -> None:
    tickets = tickets_on(Database("sqlite://"), FakeClock())
    ticket = tickets.issue(GOVERNOR)
    assert tickets.redeem(ticket) == GOVERNOR
    with pytest.raises(InvalidToken, match="already used"):
        tickets.redeem(ticket)


def test_an_expired_ticket_is_refused() -> None:
    clock = FakeClock()
    tickets = tickets_on(Database("sqlite://"), clock)
    ticket = tickets.issue(GOVERNOR)
    clock.advance(TICKET_TTL_S + 1)
    with pytest.raises(InvalidToken, match="expired"):
        tickets.redeem(ticket)


def test_a_ticket_of_a_revoked_token_is_refused() -> None:
    revoked: set[str] = set()
    tickets = tickets_on(Database("sqlite://"), FakeClock(), revoked)
    ticket = tickets.issue(GOVERNOR)
    revoked.add(GOVERNOR.jti)
    with pytest.raises(InvalidToken, match="revoked"):
        tickets.redeem(ticket)


def test_only_the_hash_of_a_ticket_is_stored() -> None:
    db = Database("sqlite://")
    tickets = tickets_on(db, FakeClock())
    ticket = tickets.issue(GOVERNOR)
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT * FROM stream_tickets").all()
    assert len(rows) == 1 and ticket not in str(rows[0])


def test_unredeemed_tickets_are_forgotten_once_expired() -> None:
    clock = FakeClock()
    db = Database("sqlite://")
    tickets = tickets_on(db, clock)
    tickets.issue(GOVERNOR)
    clock.advance(TICKET_TTL_S + 1)
    tickets.issue(GOVERNOR)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM stream_tickets").scalar() == 1


def _race(first: StreamTickets, second: StreamTickets) -> None:
    """Of many concurrent redemptions of one ticket across two processes' stores, exactly
    one succeeds."""
    for _ in range(5):
        ticket = first.issue(GOVERNOR)

        def redeem(store: StreamTickets, ticket: str = ticket) -> bool:
            try:
                store.redeem(ticket)
                return True
            except InvalidToken:
                return False

        with ThreadPoolExecutor(8) as pool:
            wins = list(pool.map(redeem, [first, second] * 4))
        assert wins.count(True) == 1


def test_a_ticket_is_single_use_across_processes_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    clock = FakeClock()
    first, second = Database(url), Database(url)
    try:
        _race(tickets_on(first, clock), tickets_on(second, clock))
    finally:
        first.dispose()
        second.dispose()


@pytest.mark.postgres
def test_a_ticket_is_single_use_across_replicas_on_postgres(postgres_url: str) -> None:
    clock = FakeClock()
    first, second = Database(postgres_url), Database(postgres_url)
    try:
        a, b = tickets_on(first, clock), tickets_on(second, clock)
        assert b.redeem(a.issue(GOVERNOR)) == GOVERNOR  # issued on one, redeemed on another
        _race(a, b)
    finally:
        first.dispose()
        second.dispose()


# --- the routes ---------------------------------------------------------------------
def test_the_ticket_route_needs_a_bearer_token_and_is_never_cached(client: TestClient) -> None:
    assert client.post("/v1/mobile/events/ticket").status_code == 401
    response = client.post("/v1/mobile/events/ticket",
                           headers=bearer(client.app))  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.json()["data"]["expires_in"] == TICKET_TTL_S


def test_the_ticket_is_bound_to_the_tokens_subject_and_scopes(client: TestClient) -> None:
    token = issue_test_token(client.app, "auditor", ("governance:read",))  # type: ignore[arg-type]
    ticket = new_ticket(client, {"Authorization": f"Bearer {token}"})
    principal = client.app.state.stream_tickets.redeem(ticket)  # type: ignore[attr-defined]
    assert principal.sub == "auditor" and principal.scopes == frozenset({"governance:read"})


def test_a_replayed_ticket_is_refused_by_the_stream(client: TestClient) -> None:
    ticket = new_ticket(client)
    client.app.state.stream_tickets.redeem(ticket)  # type: ignore[attr-defined]  # first use
    response = client.get("/v1/mobile/events", params={"ticket": ticket})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "INVALID_TOKEN"
    assert "already used" in response.json()["error"]["message"]


def test_an_expired_ticket_is_refused_by_the_stream(client: TestClient) -> None:
    ticket = new_ticket(client)
    client.app.state.clock.advance(TICKET_TTL_S + 1)  # type: ignore[attr-defined]
    response = client.get("/v1/mobile/events", params={"ticket": ticket})
    assert response.status_code == 401 and "expired" in response.text


def test_a_ticket_and_a_bearer_token_together_are_refused(client: TestClient) -> None:
    ticket = new_ticket(client)
    response = client.get("/v1/mobile/events", params={"ticket": ticket},
                          headers=bearer(client.app))  # type: ignore[arg-type]
    assert response.status_code == 401 and "not both" in response.text


def test_the_event_key_is_never_cached(client: TestClient) -> None:
    response = client.get("/v1/mobile/events/key",
                          headers=bearer(client.app))  # type: ignore[arg-type]
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


# --- CORS --------------------------------------------------------------------------
def test_an_allowed_origin_passes_the_preflight(client: TestClient) -> None:
    response = client.options("/v1/mobile/events/ticket", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    refusal = client.get("/v1/mobile/events", headers={"Origin": ORIGIN})
    assert refusal.status_code == 401  # the browser can read why
    assert refusal.headers["access-control-allow-origin"] == ORIGIN


def test_another_origin_is_refused(client: TestClient) -> None:
    response = client.options("/v1/mobile/events/ticket", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers


def test_no_origin_is_allowed_by_default() -> None:
    assert StubSettings().cors_origins == []
    with TestClient(make_test_app(FakeClock())) as plain:
        response = plain.get("/v1/mobile/events/key", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in response.headers


def test_origins_come_comma_separated_from_the_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSTUB_CORS_ORIGINS", f"{ORIGIN}, https://governor.example.com")
    assert StubSettings().cors_origins == [ORIGIN, "https://governor.example.com"]


@pytest.mark.parametrize("bad", ["*", "governor.example.com", "https://x.example/path"])
def test_a_value_that_is_not_an_origin_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="GOVSTUB_CORS_ORIGINS"):
        StubSettings(cors_origins=bad)
