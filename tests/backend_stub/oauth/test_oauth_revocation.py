"""Revocation (RFC 7009) and introspection (RFC 7662)."""

from __future__ import annotations

from typing import Any

from backend_stub.oauth import resource_server_credentials
from backend_stub.oauth.testing import issue_test_token
from tests.backend_stub.oauth.conftest import Stub


def revoke(stub: Stub, token: str, hint: str | None = None) -> Any:
    data = {"token": token, "client_id": "governor-app"}
    if hint:
        data["token_type_hint"] = hint
    return stub.client.post("/oauth/revoke", data=data)


def introspect(stub: Stub, token: str, auth: tuple[str, str] | bool | None = True) -> Any:
    if auth is True:
        auth = resource_server_credentials(stub.app)
    return stub.client.post("/oauth/introspect", data={"token": token},
                            auth=auth or None)


def test_revoking_the_refresh_token_ends_the_sign_in(stub: Stub) -> None:
    tokens = stub.tokens()
    response = revoke(stub, tokens["refresh_token"], "refresh_token")
    assert response.status_code == 200
    assert stub.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"
    assert stub.get("/probe/read", tokens["access_token"]).status_code == 401


def test_revoking_an_access_token(stub: Stub) -> None:
    tokens = stub.tokens()
    assert revoke(stub, tokens["access_token"], "access_token").status_code == 200
    assert stub.get("/probe/read", tokens["access_token"]).status_code == 401


def test_revoking_with_a_wrong_hint_still_works(stub: Stub) -> None:
    tokens = stub.tokens()
    assert revoke(stub, tokens["refresh_token"], "access_token").status_code == 200
    assert stub.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_revoking_an_unknown_token_is_200(stub: Stub) -> None:
    assert revoke(stub, "unknown").status_code == 200


def test_revocation_needs_a_known_client(stub: Stub) -> None:
    response = stub.client.post("/oauth/revoke", data={"token": "x"})
    assert response.status_code in (400, 401)
    assert response.json()["error"] == "invalid_client"


def test_introspection_of_an_active_access_token(stub: Stub) -> None:
    tokens = stub.tokens()
    body = introspect(stub, tokens["access_token"]).json()
    assert body["active"] is True
    assert body["sub"] == "governor" and body["client_id"] == "governor-app"
    assert body["aud"] == "governance-api" and body["iss"] == "http://testserver"
    assert body["scope"] == "governance:read governance:write veto:execute"


def test_introspection_of_a_refresh_token(stub: Stub) -> None:
    tokens = stub.tokens()
    assert introspect(stub, tokens["refresh_token"]).json()["active"] is True
    stub.refresh(tokens["refresh_token"])
    assert introspect(stub, tokens["refresh_token"]).json() == {"active": False}


def test_introspection_inactive_when_revoked_expired_or_unknown(stub: Stub) -> None:
    tokens = stub.tokens()
    revoke(stub, tokens["access_token"])
    assert introspect(stub, tokens["access_token"]).json() == {"active": False}
    expiring = issue_test_token(stub.app)
    stub.clock.advance(900 + 31)
    assert introspect(stub, expiring).json() == {"active": False}
    assert introspect(stub, "garbage").json() == {"active": False}


def test_introspection_is_only_for_the_resource_server(stub: Stub) -> None:
    tokens = stub.tokens()
    assert introspect(stub, tokens["access_token"], auth=None).status_code in (400, 401)
    assert introspect(stub, tokens["access_token"],
                      auth=("governance-rs", "wrong")).status_code == 401
    public = stub.client.post("/oauth/introspect", data={
        "token": tokens["access_token"], "client_id": "governor-app"})
    assert public.status_code in (400, 401)
    assert public.json()["error"] == "invalid_client"
