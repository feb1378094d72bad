"""The client rules as another standard OAuth client sees them: Authlib's httpx
``OAuth2Client`` (its client integration; the server uses Authlib's generic server and this
stub's own adapter and client authentication, a different code path)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from backend_stub.oauth import resource_server_credentials
from backend_stub.oauth.client_auth import REALM
from tests.backend_stub.oauth.conftest import REDIRECT, VERIFIER, Stub

BASE = "http://testserver"


def oauth_client(stub: Stub, client_id: str, secret: str | None = None,
                 method: str = "none") -> OAuth2Client:
    return OAuth2Client(client_id=client_id, client_secret=secret,
                        token_endpoint_auth_method=method,
                        revocation_endpoint_auth_method=method,
                        transport=stub.client._transport, base_url=BASE)


@pytest.fixture
def app_client(stub: Stub) -> Iterator[OAuth2Client]:
    with oauth_client(stub, "governor-app") as client:
        yield client


def signed_in(stub: Stub, client: OAuth2Client) -> dict[str, Any]:
    """The code flow: the login form by hand, the exchange by the independent client."""
    response = stub.login()
    code = parse_qs(urlsplit(response.headers["location"]).query)["code"][0]
    token: dict[str, Any] = client.fetch_token(
        f"{BASE}/oauth/token", grant_type="authorization_code", code=code,
        redirect_uri=REDIRECT, code_verifier=VERIFIER)
    return token


def test_the_code_flow_and_rotation_with_an_independent_client(
        stub: Stub, app_client: OAuth2Client) -> None:
    token = signed_in(stub, app_client)
    assert token["token_type"] == "Bearer" and token["refresh_token"]
    renewed = app_client.refresh_token(f"{BASE}/oauth/token",
                                       refresh_token=token["refresh_token"])
    assert renewed["refresh_token"] != token["refresh_token"]
    with pytest.raises(OAuthError) as reused:
        app_client.refresh_token(f"{BASE}/oauth/token", refresh_token=token["refresh_token"])
    assert reused.value.error == "invalid_grant"


def test_the_app_revokes_its_own_token_with_an_unknown_hint(
        stub: Stub, app_client: OAuth2Client) -> None:
    token = signed_in(stub, app_client)
    response = app_client.revoke_token(f"{BASE}/oauth/revoke",
                                       token=token["refresh_token"], token_type_hint="weird")
    assert response.status_code == 200
    assert stub.refresh(token["refresh_token"]).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_the_resource_server_introspects_by_either_advertised_method(
        stub: Stub, app_client: OAuth2Client, method: str) -> None:
    token = signed_in(stub, app_client)
    rs_id, rs_secret = resource_server_credentials(stub.app)
    with oauth_client(stub, rs_id, rs_secret, method) as rs:
        rs.token_endpoint_auth_method = method
        response = rs.introspect_token(f"{BASE}/oauth/introspect",
                                       token=token["access_token"])
    assert response.status_code == 200
    assert response.json()["active"] is True and response.json()["sub"] == "governor"


def test_the_resource_server_with_a_wrong_secret_gets_a_basic_challenge(
        stub: Stub, app_client: OAuth2Client) -> None:
    token = signed_in(stub, app_client)
    rs_id, _ = resource_server_credentials(stub.app)
    with oauth_client(stub, rs_id, "not-the-secret", "client_secret_basic") as rs:
        response = rs.introspect_token(f"{BASE}/oauth/introspect",
                                       token=token["access_token"])
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith(f'Basic realm="{REALM}"')


def test_the_resource_server_cannot_revoke_the_apps_token(
        stub: Stub, app_client: OAuth2Client) -> None:
    token = signed_in(stub, app_client)
    rs_id, rs_secret = resource_server_credentials(stub.app)
    with oauth_client(stub, rs_id, rs_secret, "client_secret_basic") as rs:
        response = rs.revoke_token(f"{BASE}/oauth/revoke", token=token["refresh_token"],
                                   token_type_hint="refresh_token")
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert "refresh_token" in app_client.refresh_token(
        f"{BASE}/oauth/token", refresh_token=token["refresh_token"])
