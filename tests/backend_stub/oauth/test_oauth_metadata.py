from __future__ import annotations

from tests.backend_stub.oauth.conftest import Stub


def test_metadata_names_every_endpoint_and_only_s256(stub: Stub) -> None:
    meta = stub.client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == "http://testserver"
    for key in ("authorization_endpoint", "token_endpoint", "device_authorization_endpoint",
                "revocation_endpoint", "introspection_endpoint", "jwks_uri"):
        assert meta[key].startswith("http://testserver/")
    assert {"governance:read", "governance:write", "veto:execute"} <= set(
        meta["scopes_supported"])
    assert meta["response_types_supported"] == ["code"]
    assert {"authorization_code", "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"} <= set(
        meta["grant_types_supported"])
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert "none" in meta["token_endpoint_auth_methods_supported"]


def test_every_endpoint_in_the_metadata_is_served(stub: Stub) -> None:
    meta = stub.client.get("/.well-known/oauth-authorization-server").json()
    paths = {k: v.removeprefix("http://testserver") for k, v in meta.items()
             if k.endswith(("_endpoint", "_uri")) and isinstance(v, str)}
    assert stub.client.get(paths["jwks_uri"]).status_code == 200
    for key in ("token_endpoint", "device_authorization_endpoint", "revocation_endpoint",
                "introspection_endpoint"):
        assert stub.client.post(paths[key], data={}).status_code != 404, key


def test_jwks_publishes_the_signing_key_with_its_kid(stub: Stub) -> None:
    jwks = stub.client.get("/oauth/jwks.json").json()
    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig"
    assert key["kid"] == stub.app.state.keys.signing_key().kid
    assert "d" not in key  # never the private part
