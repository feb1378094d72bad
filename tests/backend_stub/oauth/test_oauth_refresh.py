"""Refresh tokens rotate at every use; a reused one revokes its whole family (RFC 9700)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from backend_stub.clock import FakeClock
from backend_stub.oauth.testing import make_test_app
from tests.backend_stub.oauth.conftest import Stub


def test_refresh_rotates_both_tokens(stub: Stub) -> None:
    first = stub.tokens()
    stub.clock.advance(10)
    second = stub.refresh(first["refresh_token"])
    assert second.status_code == 200
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["access_token"] != first["access_token"]
    assert body["scope"] == first["scope"]
    assert stub.get("/probe/read", body["access_token"]).status_code == 200
    # and the new one rotates again
    assert stub.refresh(body["refresh_token"]).status_code == 200


def test_reused_refresh_token_revokes_the_whole_family(stub: Stub) -> None:
    first = stub.tokens()
    second = stub.refresh(first["refresh_token"]).json()
    third = stub.refresh(second["refresh_token"]).json()
    # An attacker (or a confused client) replays the first refresh token.
    reuse = stub.refresh(first["refresh_token"])
    assert reuse.status_code == 400
    assert reuse.json()["error"] == "invalid_grant"
    assert "already used" in reuse.json()["error_description"]
    # Everything of that sign-in is dead, including the newest tokens.
    assert stub.refresh(third["refresh_token"]).json()["error"] == "invalid_grant"
    for token in (first, second, third):
        assert stub.get("/probe/read", token["access_token"]).status_code == 401


def test_family_revocation_leaves_other_sign_ins_alone(stub: Stub) -> None:
    mine = stub.tokens()
    other = stub.tokens()
    stub.refresh(mine["refresh_token"])
    stub.refresh(mine["refresh_token"])  # reuse
    assert stub.get("/probe/read", other["access_token"]).status_code == 200
    assert stub.refresh(other["refresh_token"]).status_code == 200


def test_unknown_refresh_token_is_invalid_grant(stub: Stub) -> None:
    response = stub.refresh("nope")
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_refresh_token_expires(stub: Stub) -> None:
    tokens = stub.tokens()
    stub.clock.advance(stub.app.state.settings.refresh_token_ttl + 1)
    assert stub.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_refresh_needs_the_client_id(stub: Stub) -> None:
    tokens = stub.tokens()
    response = stub.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert response.json()["error"] == "invalid_client"


def test_refresh_cannot_widen_the_scope(stub: Stub) -> None:
    tokens = stub.tokens("auditor")
    response = stub.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
        "client_id": "governor-app", "scope": "governance:read veto:execute"})
    assert response.json()["error"] == "invalid_scope"


def test_unsupported_grants_are_refused(stub: Stub) -> None:
    for grant in ("password", "client_credentials", "implicit"):
        response = stub.client.post("/oauth/token", data={
            "grant_type": grant, "client_id": "governor-app", "username": "governor",
            "password": "governor"})
        assert response.json()["error"] == "unsupported_grant_type", grant


def test_refresh_tokens_are_stored_hashed(stub: Stub) -> None:
    tokens = stub.tokens()
    with stub.app.state.db.engine.begin() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT token_hash FROM oauth_refresh_tokens"))]
    assert tokens["refresh_token"] not in stored and len(stored) == 1


def test_concurrent_use_of_one_refresh_token_lets_exactly_one_win(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from backend_stub.oauth.server import PlainOAuth2Request

    # A database file: threads get their own connections, as in the running stub (the
    # in-memory test database is one connection shared by every thread).
    clock = FakeClock()
    app = make_test_app(clock, db_url=f"sqlite:///{tmp_path / 'stub.db'}")
    client = TestClient(app)
    stub = Stub(app, client, clock)
    tokens = stub.tokens()
    server = stub.app.state.oauth.server

    def use(_: int) -> tuple[int, dict[str, str]]:
        request = PlainOAuth2Request(
            "POST", "http://testserver/oauth/token", {}, {},
            {"grant_type": ["refresh_token"], "refresh_token": [tokens["refresh_token"]],
             "client_id": ["governor-app"]})
        status, body, _headers = server.create_token_response(request)
        return status, body

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(use, range(4)))
    winners = [body for status, body in results if status == 200]
    assert len(winners) == 1
    assert all(body["error"] == "invalid_grant" for status, body in results if status != 200)
    # The losers are reuses: they revoke the family, the winner's new token included.
    assert stub.refresh(winners[0]["refresh_token"]).json()["error"] == "invalid_grant"


def test_rotation_leaves_the_database_fully_synchronous(tmp_path: Path) -> None:
    """The rotation skips one fsync (it fails safe); every other write must not."""
    clock = FakeClock()
    app = make_test_app(clock, db_url=f"sqlite:///{tmp_path / 'stub.db'}")
    with TestClient(app) as client:
        stub = Stub(app, client, clock)
        assert stub.refresh(stub.tokens()["refresh_token"]).status_code == 200
    with app.state.db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_tokens_never_reach_the_logs(stub: Stub, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        tokens = stub.tokens()
        stub.refresh(tokens["refresh_token"])
        stub.refresh(tokens["refresh_token"])  # reuse: logged as a warning, without tokens
    text = caplog.text
    assert "revoked token family" in text
    assert tokens["refresh_token"] not in text and tokens["access_token"] not in text
