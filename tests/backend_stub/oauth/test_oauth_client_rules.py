"""The OAuth server's client rules (issue 16): one test per rule.

Revocation and introspection are bound to the client a token was issued to (RFC 7009 §2.1,
RFC 7662 §2.1); client authentication is strict (RFC 6749 §2.3, §5.2); repeated parameters
are refused (§3.1, §3.2); unknown hints are ignored (RFC 7009 §2.2); error answers carry the
status and headers of RFC 6749 §5.2 and RFC 8628 §3.5.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from backend_stub.clock import FakeClock
from backend_stub.oauth import RESOURCE_CLIENT_FILE, resource_server_credentials
from backend_stub.oauth.client_auth import REALM
from backend_stub.oauth.server import Client
from backend_stub.oauth.testing import issue_test_token, make_test_app
from backend_stub.settings import StubSettings
from tests.backend_stub.oauth.conftest import Stub

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def add_client(stub: Stub, client_id: str, secret: str | None = None) -> None:
    """Register a second client (the stub ships one app and one resource server)."""
    methods = {"client_secret_basic", "client_secret_post"} if secret else {"none"}
    stub.app.state.oauth.server.clients[client_id] = Client(
        client_id, secret, frozenset({"authorization_code", "refresh_token"}),
        frozenset(methods), frozenset({"token", "revocation", "introspection"}))


def form(stub: Stub, path: str, pairs: list[tuple[str, str]], **kw: Any) -> Any:
    """POST a form as given, repeated names included."""
    return stub.client.post(path, content=urlencode(pairs), headers={
        "Content-Type": "application/x-www-form-urlencoded", **kw.pop("headers", {})}, **kw)


def assert_oauth_error(response: Any, status: int, error: str) -> dict[str, Any]:
    """RFC 6749 §5.2: the status, a JSON body naming the error, never cached."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body: dict[str, Any] = response.json()
    assert body["error"] == error
    assert set(body) <= {"error", "error_description", "error_uri"}
    return body


def assert_basic_challenge(response: Any) -> None:
    assert response.headers["www-authenticate"] == f'Basic realm="{REALM}", charset="UTF-8"'


# --- revocation and introspection bound to the token's client ---------------------------
def test_a_client_cannot_revoke_another_clients_refresh_token(stub: Stub) -> None:
    add_client(stub, "other-app")
    tokens = stub.tokens()
    response = stub.client.post("/oauth/revoke", data={
        "token": tokens["refresh_token"], "client_id": "other-app"})
    assert response.status_code == 200  # as for an unknown token: nothing is said
    assert stub.refresh(tokens["refresh_token"]).status_code == 200


def test_a_client_cannot_revoke_another_clients_access_token(stub: Stub) -> None:
    add_client(stub, "other-app")
    token = issue_test_token(stub.app, client_id="other-app")
    response = stub.client.post("/oauth/revoke", data={"token": token,
                                                       "client_id": "governor-app"})
    assert response.status_code == 200
    assert stub.get("/probe/read", token).status_code == 200


def test_the_resource_server_cannot_revoke_a_governors_token(stub: Stub) -> None:
    tokens = stub.tokens()
    response = stub.client.post("/oauth/revoke", data={"token": tokens["refresh_token"]},
                                auth=resource_server_credentials(stub.app))
    assert_oauth_error(response, 401, "invalid_client")
    assert_basic_challenge(response)
    assert stub.refresh(tokens["refresh_token"]).status_code == 200


def test_another_client_introspecting_a_token_gets_inactive(stub: Stub) -> None:
    add_client(stub, "partner", "partner-secret-0123456789")
    app_token = stub.tokens()["access_token"]
    own = issue_test_token(stub.app, client_id="partner")
    other = stub.client.post("/oauth/introspect", data={"token": app_token},
                             auth=("partner", "partner-secret-0123456789"))
    assert other.status_code == 200 and other.json() == {"active": False}
    mine = stub.client.post("/oauth/introspect", data={"token": own},
                            auth=("partner", "partner-secret-0123456789"))
    assert mine.json()["active"] is True and mine.json()["client_id"] == "partner"


def test_the_resource_server_introspects_every_clients_token(stub: Stub) -> None:
    add_client(stub, "other-app")
    token = issue_test_token(stub.app, client_id="other-app")
    body = stub.client.post("/oauth/introspect", data={"token": token},
                            auth=resource_server_credentials(stub.app)).json()
    assert body["active"] is True and body["client_id"] == "other-app"


# --- the resource server's credentials ----------------------------------------------
def test_no_client_secret_is_defaulted_in_the_settings() -> None:
    assert StubSettings().introspection_client_secret is None


def test_the_resource_server_secret_is_generated_kept_and_written_owner_only(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stub.db'}"
    secrets = []
    for _ in range(2):  # a restart on the same database keeps the secret
        app = make_test_app(FakeClock(), db_url=url, data_dir=tmp_path / "data")
        with TestClient(app):
            secrets.append(resource_server_credentials(app)[1])
    assert secrets[0] == secrets[1] and len(secrets[0]) >= 32
    path = tmp_path / "data" / RESOURCE_CLIENT_FILE
    assert json.loads(path.read_text()) == {"client_id": "governance-rs",
                                            "client_secret": secrets[0]}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    other = make_test_app(FakeClock(), data_dir=tmp_path / "other")  # another database
    assert resource_server_credentials(other)[1] != secrets[0]
    assert not (tmp_path / "other" / RESOURCE_CLIENT_FILE).exists()  # in memory: no file


def test_a_configured_resource_server_secret_is_used(tmp_path: Path) -> None:
    app = make_test_app(FakeClock(), data_dir=tmp_path,
                        introspection_client_secret="configured-secret-0123")
    assert resource_server_credentials(app) == ("governance-rs", "configured-secret-0123")
    assert not (tmp_path / RESOURCE_CLIENT_FILE).exists()
    with TestClient(app) as client:
        token = issue_test_token(app)
        body = client.post("/oauth/introspect", data={"token": token},
                           auth=("governance-rs", "configured-secret-0123")).json()
    assert body["active"] is True


def test_a_short_configured_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="GOVSTUB_INTROSPECTION_CLIENT_SECRET"):
        StubSettings(introspection_client_secret="short")


# --- strict client authentication -----------------------------------------------------
def test_a_wrong_basic_secret_is_401_with_a_basic_challenge(stub: Stub) -> None:
    response = stub.client.post("/oauth/introspect", data={"token": "x"},
                                auth=("governance-rs", "wrong"))
    assert_oauth_error(response, 401, "invalid_client")
    assert_basic_challenge(response)


def test_a_wrong_secret_with_the_client_id_in_the_body_is_refused(stub: Stub) -> None:
    response = stub.client.post("/oauth/introspect", data={
        "token": "x", "client_id": "governance-rs", "client_secret": "wrong"})
    assert_oauth_error(response, 401, "invalid_client")


def test_a_wrong_basic_secret_does_not_fall_back_to_the_public_client(stub: Stub) -> None:
    tokens = stub.tokens()
    response = stub.client.post("/oauth/revoke", data={
        "token": tokens["refresh_token"], "client_id": "governor-app"},
        auth=("governor-app", "anything"))
    assert_oauth_error(response, 401, "invalid_client")
    assert_basic_challenge(response)
    assert stub.refresh(tokens["refresh_token"]).status_code == 200


def test_a_secret_sent_by_a_public_client_is_refused(stub: Stub) -> None:
    response = stub.client.post("/oauth/revoke", data={
        "token": "x", "client_id": "governor-app", "client_secret": "guess"})
    assert_oauth_error(response, 401, "invalid_client")


def test_basic_and_body_secrets_together_are_refused(stub: Stub) -> None:
    rs_id, rs_secret = resource_server_credentials(stub.app)
    response = stub.client.post("/oauth/introspect", data={
        "token": "x", "client_id": rs_id, "client_secret": rs_secret},
        auth=(rs_id, rs_secret))
    body = assert_oauth_error(response, 400, "invalid_request")
    assert "one client authentication method" in body["error_description"]


def test_basic_and_another_body_client_id_are_refused(stub: Stub) -> None:
    tokens = stub.tokens()
    response = stub.client.post("/oauth/revoke", data={
        "token": tokens["refresh_token"], "client_id": "governor-app"},
        auth=resource_server_credentials(stub.app))
    assert_oauth_error(response, 400, "invalid_request")
    assert stub.refresh(tokens["refresh_token"]).status_code == 200


def test_malformed_basic_credentials_are_invalid_client(stub: Stub) -> None:
    response = stub.client.post("/oauth/introspect", data={"token": "x"},
                                headers={"Authorization": "Basic not-base64!"})
    assert_oauth_error(response, 401, "invalid_client")
    assert_basic_challenge(response)


def test_an_unknown_client_is_invalid_client(stub: Stub) -> None:
    response = stub.client.post("/oauth/token", data={
        "grant_type": "refresh_token", "refresh_token": "x", "client_id": "nobody"})
    assert_oauth_error(response, 400, "invalid_client")  # no Basic: no challenge to send
    assert "www-authenticate" not in response.headers


def test_client_credentials_in_the_query_are_refused(stub: Stub) -> None:
    rs_id, rs_secret = resource_server_credentials(stub.app)
    response = stub.client.post(f"/oauth/introspect?client_secret={rs_secret}",
                                data={"token": "x", "client_id": rs_id})
    assert_oauth_error(response, 400, "invalid_request")


# --- repeated parameters, on every endpoint ----------------------------------------
@pytest.mark.parametrize(("path", "pairs"), [
    ("/oauth/token", [("grant_type", "refresh_token"), ("grant_type", "refresh_token"),
                      ("refresh_token", "x"), ("client_id", "governor-app")]),
    ("/oauth/token", [("grant_type", DEVICE_GRANT), ("device_code", "a"),
                      ("device_code", "b"), ("client_id", "governor-app")]),
    ("/oauth/device_authorization", [("client_id", "governor-app"),
                                     ("scope", "governance:read"), ("scope", "veto:execute")]),
    ("/oauth/revoke", [("token", "a"), ("token", "b"), ("client_id", "governor-app")]),
    ("/oauth/introspect", [("token", "a"), ("token", "b")]),
])
def test_a_repeated_parameter_is_invalid_request(stub: Stub, path: str,
                                                 pairs: list[tuple[str, str]]) -> None:
    kw = {"auth": resource_server_credentials(stub.app)} if "introspect" in path else {}
    body = assert_oauth_error(form(stub, path, pairs, **kw), 400, "invalid_request")
    assert "more than once" in body["error_description"]


def test_a_parameter_in_both_query_and_body_is_repeated(stub: Stub) -> None:
    response = stub.client.post("/oauth/revoke?token=a",
                                data={"token": "b", "client_id": "governor-app"})
    assert_oauth_error(response, 400, "invalid_request")


def test_a_repeated_redirect_uri_at_authorize_is_an_error_page(stub: Stub) -> None:
    params = [*list(stub.authorize_params().items()), ("redirect_uri", "http://127.0.0.1:1/callback")]
    response = stub.client.get(f"/oauth/authorize?{urlencode(params)}",
                               follow_redirects=False)
    assert response.status_code == 400 and "location" not in response.headers
    assert "more than once" in response.text


def test_another_repeated_parameter_at_authorize_goes_back_to_the_app(stub: Stub) -> None:
    params = [*list(stub.authorize_params().items()), ("scope", "governance:read")]
    response = stub.client.get(f"/oauth/authorize?{urlencode(params)}",
                               follow_redirects=False)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["st-1"]
    assert query["iss"] == ["http://testserver"]


def test_a_repeated_parameter_in_the_login_post_is_refused(stub: Stub) -> None:
    response = stub.login(code_challenge_method="S256")
    assert response.status_code == 302  # the baseline signs in
    pairs = [*stub.authorize_params().items(), ("username", "governor"),
             ("password", "governor"), ("password", "other")]
    refused = form(stub, "/oauth/authorize", pairs, follow_redirects=False)
    assert refused.status_code == 302
    assert parse_qs(urlsplit(refused.headers["location"]).query)["error"] == [
        "invalid_request"]


# --- token_type_hint ---------------------------------------------------------------
def test_an_unknown_hint_is_ignored_by_revocation(stub: Stub) -> None:
    tokens = stub.tokens()
    response = stub.client.post("/oauth/revoke", data={
        "token": tokens["refresh_token"], "token_type_hint": "id_token",
        "client_id": "governor-app"})
    assert response.status_code == 200
    assert stub.refresh(tokens["refresh_token"]).json()["error"] == "invalid_grant"


def test_an_unknown_hint_is_ignored_by_introspection(stub: Stub) -> None:
    token = stub.tokens()["access_token"]
    body = stub.client.post("/oauth/introspect", data={
        "token": token, "token_type_hint": "saml"},
        auth=resource_server_credentials(stub.app)).json()
    assert body["active"] is True


# --- metadata -----------------------------------------------------------------------
def test_the_metadata_advertises_only_what_is_supported(stub: Stub) -> None:
    meta = stub.client.get("/.well-known/oauth-authorization-server").json()
    server = stub.app.state.oauth.server
    clients = server.clients.values()

    def methods(endpoint: str) -> set[str]:
        return {m for c in clients if endpoint in c.endpoints for m in c.auth_methods}

    assert set(meta["token_endpoint_auth_methods_supported"]) == methods("token")
    assert set(meta["revocation_endpoint_auth_methods_supported"]) == methods("revocation")
    assert set(meta["introspection_endpoint_auth_methods_supported"]) == methods(
        "introspection")
    granted = {g for c in clients for g in c.grant_types}
    assert set(meta["grant_types_supported"]) == granted
    # No client signs JWTs for authentication: nothing to advertise an algorithm for.
    assert "token_endpoint_auth_signing_alg_values_supported" not in meta
    assert meta["response_modes_supported"] == ["query"]


# --- error statuses and headers ------------------------------------------------------
def test_token_endpoint_errors_are_400_and_never_cached(stub: Stub) -> None:
    assert_oauth_error(stub.refresh("unknown"), 400, "invalid_grant")
    assert_oauth_error(stub.client.post("/oauth/token", data={
        "grant_type": "password", "client_id": "governor-app"}), 400,
        "unsupported_grant_type")
    assert_oauth_error(stub.client.post("/oauth/token", data={
        "grant_type": "authorization_code", "client_id": "governor-app"}), 400,
        "invalid_request")


def test_device_grant_errors_are_400_and_never_cached(stub: Stub) -> None:
    """RFC 8628 §3.5: authorization_pending, slow_down, access_denied, expired_token."""
    def start() -> str:
        response = stub.client.post("/oauth/device_authorization", data={
            "client_id": "governor-app", "scope": "governance:read"})
        assert response.headers["cache-control"] == "no-store"
        code: str = response.json()["device_code"]
        return code

    def poll(code: str) -> Any:
        return stub.client.post("/oauth/token", data={
            "grant_type": DEVICE_GRANT, "device_code": code, "client_id": "governor-app"})

    code = start()
    assert_oauth_error(poll(code), 400, "authorization_pending")
    assert_oauth_error(poll(code), 400, "slow_down")
    denied = start()
    user_code = stub.app.state.oauth.store.get_device_code(denied).user_code
    stub.app.state.oauth.store.decide_device_code(user_code, "governor", False)
    assert_oauth_error(poll(denied), 400, "access_denied")
    stub.clock.advance(601)
    assert_oauth_error(poll(code), 400, "expired_token")


def test_successful_token_answers_are_never_cached(stub: Stub) -> None:
    response = stub.exchange(stub.code())
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
