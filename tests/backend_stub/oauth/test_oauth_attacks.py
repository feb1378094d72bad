"""Forged and stale access tokens are refused by every API route (401 + WWW-Authenticate)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from backend_stub.oauth.testing import issue_test_token
from tests.backend_stub.oauth.conftest import Stub


def _claims(stub: Stub, **overrides: Any) -> dict[str, Any]:
    now = int(stub.clock.now().timestamp())
    claims = {"iss": "http://testserver", "sub": "governor", "aud": "governance-api",
              "exp": now + 900, "iat": now, "jti": "j-1",
              "scope": "governance:read governance:write veto:execute",
              "client_id": "governor-app"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(stub: Stub, claims: dict[str, Any], **headers: Any) -> str:
    key = stub.app.state.keys.signing_key()
    return jwt.encode(claims, key.private_key, algorithm="RS256",
                      headers={"kid": key.kid, **headers})


def _refused(stub: Stub, token: str) -> str:
    response = stub.get("/probe/read", token)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    body = response.json()
    assert body["error"]["code"] == "INVALID_TOKEN"
    return str(body["error"]["message"])


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_good_token_passes(stub: Stub) -> None:
    assert stub.get("/probe/read", _sign(stub, _claims(stub))).status_code == 200


def test_alg_none_is_refused(stub: Stub) -> None:
    kid = stub.app.state.keys.signing_key().kid
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
    payload = _b64(json.dumps(_claims(stub)).encode())
    for token in (f"{header}.{payload}.", f"{header}.{payload}"):
        assert "RS256" in _refused(stub, token) or "malformed" in _refused(stub, token)


def test_hs256_signed_with_the_public_key_is_refused(stub: Stub) -> None:
    key = stub.app.state.keys.signing_key()
    public_pem = key.public_key.public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    # pyjwt refuses to HMAC with a PEM key, so forge the signature by hand.
    import hashlib
    import hmac

    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    payload = _b64(json.dumps(_claims(stub)).encode())
    signature = hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    _refused(stub, f"{header}.{payload}.{_b64(signature)}")


def test_unknown_kid_is_refused(stub: Stub) -> None:
    assert "unknown key" in _refused(stub, _sign(stub, _claims(stub), kid="not-ours"))


def test_missing_kid_is_refused(stub: Stub) -> None:
    key = stub.app.state.keys.signing_key()
    token = jwt.encode(_claims(stub), key.private_key, algorithm="RS256")
    _refused(stub, token)


def test_a_foreign_key_using_our_kid_is_refused(stub: Stub) -> None:
    foreign = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = stub.app.state.keys.signing_key().kid
    _refused(stub, jwt.encode(_claims(stub), foreign, algorithm="RS256", headers={"kid": kid}))


def test_wrong_issuer_is_refused(stub: Stub) -> None:
    assert "another server" in _refused(stub, _sign(stub, _claims(stub, iss="http://evil")))


def test_wrong_audience_is_refused(stub: Stub) -> None:
    assert "not meant for this API" in _refused(
        stub, _sign(stub, _claims(stub, aud="another-api")))


@pytest.mark.parametrize("missing", ["exp", "iat", "jti", "sub", "aud", "iss"])
def test_a_required_claim_missing_is_refused(stub: Stub, missing: str) -> None:
    _refused(stub, _sign(stub, _claims(stub, **{missing: None})))


def test_expiry_honours_a_30_second_leeway_and_no_more(stub: Stub) -> None:
    token = issue_test_token(stub.app)
    stub.clock.advance(900 + 29)
    assert stub.get("/probe/read", token).status_code == 200
    stub.clock.advance(2)
    assert "expired" in _refused(stub, token)


def test_issued_in_the_future_is_refused(stub: Stub) -> None:
    now = int(stub.clock.now().timestamp())
    _refused(stub, _sign(stub, _claims(stub, iat=now + 3600, exp=now + 7200)))


def test_tampered_payload_is_refused(stub: Stub) -> None:
    token = issue_test_token(stub.app, "auditor", ("governance:read",))
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "governance:read governance:write veto:execute"
    claims["sub"] = "governor"
    forged = f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"
    _refused(stub, forged)


def test_tampered_signature_is_refused(stub: Stub) -> None:
    token = issue_test_token(stub.app)
    _refused(stub, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


def test_revoked_jti_is_refused(stub: Stub) -> None:
    token = issue_test_token(stub.app)
    claims = stub.app.state.token_validator.validate(token)
    stub.app.state.token_validator.revoke(claims.jti, claims.exp)
    assert "revoked" in _refused(stub, token)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "bearer-x y",
                                    "Bearer not.a.jwt", "Bearer a.b.c"])
def test_missing_or_malformed_authorization_is_401(stub: Stub, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = stub.client.get("/probe/read", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_missing_scope_is_403_naming_the_scope(stub: Stub) -> None:
    token = issue_test_token(stub.app, "auditor", ("governance:read",))
    response = stub.get("/probe/veto", token)
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="veto:execute"')
    assert response.json()["error"]["code"] == "INSUFFICIENT_SCOPE"


def test_principal_carries_the_token_identity(stub: Stub) -> None:
    body = stub.get("/probe/read", issue_test_token(stub.app)).json()
    assert body == {"sub": "governor", "client_id": "governor-app",
                    "scopes": ["governance:read", "governance:write", "veto:execute"]}


def test_disable_auth_gives_the_benchmark_principal() -> None:
    from fastapi.testclient import TestClient

    from backend_stub.oauth.testing import make_test_app
    from tests.backend_stub.oauth.conftest import add_probe_routes

    app = make_test_app(disable_auth=True)
    add_probe_routes(app)
    with TestClient(app) as client:
        assert client.get("/probe/veto").json() == {"sub": "governor"}


def test_validation_uses_the_stub_clock_not_the_wall_clock(stub: Stub) -> None:
    # The fake clock stands in 2026-01-01: a token valid then is valid, whatever time.time().
    assert stub.clock.now().timestamp() < time.time()
    assert stub.get("/probe/read", issue_test_token(stub.app)).status_code == 200
