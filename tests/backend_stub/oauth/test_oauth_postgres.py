"""The authorization server on PostgreSQL: the same flows, and single use under concurrency."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from backend_stub.clock import FakeClock
from backend_stub.oauth.server import PlainOAuth2Request
from backend_stub.oauth.testing import make_test_app
from tests.backend_stub.oauth.conftest import Stub, add_probe_routes

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_stub(postgres_url: str) -> Iterator[Stub]:
    clock = FakeClock()
    app = make_test_app(clock, db_url=postgres_url)
    add_probe_routes(app)
    try:
        with TestClient(app) as client:
            yield Stub(app, client, clock)
    finally:
        app.state.db.dispose()


def test_code_flow_refresh_and_reuse_on_postgres(pg_stub: Stub) -> None:
    first = pg_stub.tokens()
    assert pg_stub.get("/probe/read", first["access_token"]).status_code == 200
    second = pg_stub.refresh(first["refresh_token"]).json()
    assert pg_stub.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"
    assert pg_stub.get("/probe/read", second["access_token"]).status_code == 401


def test_code_replay_on_postgres(pg_stub: Stub) -> None:
    code = pg_stub.code()
    first = pg_stub.exchange(code).json()
    assert pg_stub.exchange(code).json()["error"] == "invalid_grant"
    assert pg_stub.get("/probe/read", first["access_token"]).status_code == 401


def test_concurrent_refresh_on_postgres_has_one_winner(pg_stub: Stub) -> None:
    tokens = pg_stub.tokens()
    server = pg_stub.app.state.oauth.server

    def use(_: int) -> int:
        request = PlainOAuth2Request(
            "POST", "http://testserver/oauth/token", {}, {},
            {"grant_type": ["refresh_token"], "refresh_token": [tokens["refresh_token"]],
             "client_id": ["governor-app"]})
        return int(server.create_token_response(request)[0])

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(use, range(6)))
    assert statuses.count(200) == 1


def test_keys_persist_on_postgres(postgres_url: str) -> None:
    clock = FakeClock()
    one = make_test_app(clock, db_url=postgres_url)
    kid = one.state.keys.signing_key().kid
    one.state.db.dispose()
    two = make_test_app(clock, db_url=postgres_url)
    assert two.state.keys.signing_key().kid == kid
    two.state.db.dispose()
