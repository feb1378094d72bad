"""Authorization endpoint and code exchange: PKCE S256 only, exact redirects, one-time codes."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.backend_stub.oauth.conftest import CHALLENGE, REDIRECT, VERIFIER, Stub, hidden_inputs


def test_rfc7636_appendix_b_vector() -> None:
    digest = hashlib.sha256(VERIFIER.encode("ascii")).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == CHALLENGE
    assert create_s256_code_challenge(VERIFIER) == CHALLENGE


def test_get_shows_a_login_form_carrying_the_request(stub: Stub) -> None:
    response = stub.client.get("/oauth/authorize", params=stub.authorize_params())
    assert response.status_code == 200
    assert 'name="username"' in response.text and 'name="password"' in response.text
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    hidden = hidden_inputs(response.text)
    assert hidden["code_challenge"] == CHALLENGE and hidden["state"] == "st-1"


def test_full_code_flow_issues_a_jwt_and_a_refresh_token(stub: Stub) -> None:
    response = stub.login()
    assert response.status_code == 302
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["st-1"]
    token = stub.exchange(query["code"][0])
    assert token.status_code == 200
    body = token.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "governance:read governance:write veto:execute"
    assert token.headers["cache-control"] == "no-store"
    claims = stub.app.state.token_validator.validate(body["access_token"])
    assert claims.sub == "governor" and claims.client_id == "governor-app"
    assert body["refresh_token"]


@pytest.mark.parametrize("redirect", [
    "http://127.0.0.1:1/callback", "http://127.0.0.1:65535/callback",
    "com.waooaw.governor:/callback"])
def test_loopback_on_any_port_and_the_app_scheme_are_accepted(stub: Stub, redirect: str
                                                              ) -> None:
    response = stub.login(redirect_uri=redirect)
    assert response.status_code == 302
    assert response.headers["location"].startswith(redirect + "?")


@pytest.mark.parametrize("redirect", [
    "http://evil.example/callback", "http://localhost:5000/callback",
    "http://127.0.0.1:5000/other", "http://127.0.0.1:5000/callback?x=1",
    "https://127.0.0.1:5000/callback", "http://127.0.0.1/callback",
    "com.waooaw.governor:/callback/../x", "com.evil:/callback"])
def test_unregistered_redirect_is_refused_without_redirecting(stub: Stub, redirect: str
                                                              ) -> None:
    for response in (
        stub.client.get("/oauth/authorize", params=stub.authorize_params(redirect_uri=redirect),
                        follow_redirects=False),
        stub.login(redirect_uri=redirect),
    ):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "start sign-in again" in response.text


def test_missing_redirect_uri_is_refused_without_redirecting(stub: Stub) -> None:
    response = stub.login(redirect_uri=None)
    assert response.status_code == 400 and "location" not in response.headers


def test_unknown_client_is_refused_without_redirecting(stub: Stub) -> None:
    response = stub.login(client_id="someone-else")
    assert response.status_code == 400 and "location" not in response.headers


@pytest.mark.parametrize("overrides", [
    {"code_challenge": None, "code_challenge_method": None},
    {"code_challenge_method": None},
    {"code_challenge_method": "plain"},
    {"code_challenge": VERIFIER, "code_challenge_method": "plain"},
])
def test_missing_or_plain_pkce_is_refused(stub: Stub, overrides: dict[str, str | None]
                                          ) -> None:
    response = stub.login("governor", "governor", **overrides)
    # The redirect URI is valid, so the error goes back to it (RFC 6749 §4.1.2.1): no code.
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"]
    assert "code" not in query and query["state"] == ["st-1"]


def test_wrong_verifier_is_invalid_grant(stub: Stub) -> None:
    response = stub.exchange(stub.code(), verifier="x" * 43)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_missing_verifier_is_refused(stub: Stub) -> None:
    response = stub.exchange(stub.code(), verifier=None)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_code_bound_to_its_redirect_uri(stub: Stub) -> None:
    response = stub.exchange(stub.code(), redirect_uri="http://127.0.0.1:1/callback")
    assert response.json()["error"] == "invalid_grant"


def test_code_replay_is_refused_and_revokes_what_the_first_use_issued(stub: Stub) -> None:
    code = stub.code()
    first = stub.exchange(code).json()
    assert stub.get("/probe/read", first["access_token"]).status_code == 200
    replay = stub.exchange(code)
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert "already used" in replay.json()["error_description"]
    assert stub.get("/probe/read", first["access_token"]).status_code == 401
    assert stub.refresh(first["refresh_token"]).json()["error"] == "invalid_grant"


def test_code_expires_after_60_seconds(stub: Stub) -> None:
    code = stub.code()
    stub.clock.advance(61)
    response = stub.exchange(code)
    assert response.json()["error"] == "invalid_grant"
    assert "expired" in response.json()["error_description"]


def test_codes_are_stored_hashed(stub: Stub) -> None:
    code = stub.code()
    assert stub.app.state.oauth.store.get_code(code) is not None
    from sqlalchemy import text

    with stub.app.state.db.engine.begin() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT code_hash FROM oauth_codes"))]
    assert code not in stored


def test_wrong_password_shows_the_form_again(stub: Stub) -> None:
    response = stub.login("governor", "wrong")
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    assert "location" not in response.headers
    assert stub.login("nobody", "nobody").status_code == 401


def test_auditor_gets_read_only_scope_whatever_it_asks(stub: Stub) -> None:
    body = stub.tokens("auditor")
    assert body["scope"] == "governance:read"
    assert stub.get("/probe/read", body["access_token"]).status_code == 200
    assert stub.get("/probe/veto", body["access_token"]).status_code == 403


def test_asking_for_fewer_scopes_gives_fewer(stub: Stub) -> None:
    response = stub.exchange(stub.code(scope="governance:read"))
    assert response.json()["scope"] == "governance:read"


def test_unknown_scope_is_refused(stub: Stub) -> None:
    response = stub.login(scope="governance:read admin")
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_scope"]


def test_password_guessing_is_stopped_by_the_rate_limit(stub: Stub) -> None:
    limit = stub.app.state.settings.login_attempts_per_minute
    for _ in range(limit):
        assert stub.login("governor", "guess").status_code == 401
    blocked = stub.login("governor", "governor")  # even the right password waits
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) > 0
    assert "Too many failed sign-in attempts" in blocked.text
    stub.clock.advance(61)
    assert stub.login("governor", "governor").status_code == 302


def test_rate_limit_also_counts_per_address_across_usernames(stub: Stub) -> None:
    limit = stub.app.state.settings.login_attempts_per_minute
    for i in range(limit):
        stub.login(f"user{i}", "guess")
    assert stub.login("auditor", "auditor").status_code == 429


def test_asking_only_for_scopes_the_account_lacks_goes_back_as_invalid_scope(stub: Stub
                                                                             ) -> None:
    response = stub.login("auditor", scope="veto:execute")
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_scope"] and "code" not in query
    assert query["state"] == ["st-1"]


def test_authorization_responses_name_the_issuer(stub: Stub) -> None:
    """RFC 9207, success and error alike."""
    meta = stub.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["authorization_response_iss_parameter_supported"] is True
    ok = parse_qs(urlsplit(stub.login().headers["location"]).query)
    assert ok["iss"] == ["http://testserver"]
    error = parse_qs(urlsplit(stub.login(code_challenge_method="plain")
                              .headers["location"]).query)
    assert error["iss"] == ["http://testserver"] and error["error"] == ["invalid_request"]
