"""A Genesis certificate verifies with an independent JOSE library against the stub's JWKS."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from joserfc import jws
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet

from backend_stub.domain.wasm import build_module
from tests.backend_stub.api.conftest import Api


def verify(certificate: dict[str, Any], jwks: dict[str, Any]) -> dict[str, Any]:
    """What an outsider does (docs/api.md): verify the JWS, compare its payload."""
    signature = certificate["signature"]
    keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    verified = jws.deserialize_compact(signature["jws"], keys, algorithms=["RS256"])
    assert verified.headers()["kid"] == signature["kid"]
    body = {k: v for k, v in certificate.items() if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert verified.payload == canonical.encode()
    return dict(json.loads(verified.payload))


def certificate_of(api: Api, approval_id: str) -> dict[str, Any]:
    detail = api.client.get(f"/v1/mobile/approvals/{approval_id}", headers=api.auth()).json()
    stage = next(s for s in detail["data"]["pipeline"] if s["stage"] == "genesis_certification")
    return dict(stage["certificate"])


def test_a_certificate_verifies_against_the_published_jwks(api: Api) -> None:
    module = build_module(functions=4, memory_pages=2)
    request = api.submit(wasm_module=module)
    cert = certificate_of(api, request["id"])
    jwks = api.client.get("/oauth/jwks.json").json()
    claims = verify(cert, jwks)
    assert claims["module_sha256"] == hashlib.sha256(module).hexdigest()
    assert claims["subject_agent"] == request["agent"]["id"]
    assert claims["issuer"] == api.app.state.settings.issuer


def test_a_tampered_certificate_does_not_verify(api: Api) -> None:
    cert = certificate_of(api, api.submit()["id"])
    jwks = api.client.get("/oauth/jwks.json").json()
    with pytest.raises(AssertionError):  # a field changed: the payload no longer matches
        verify({**cert, "module_sha256": "00" * 32}, jwks)
    header, payload, sig = cert["signature"]["jws"].split(".")
    forged = {**cert, "signature": {**cert["signature"],
                                    "jws": f"{header}.{payload}.{sig[:-4]}AAAA"}}
    with pytest.raises(BadSignatureError):
        verify(forged, jwks)
