"""The one item of the sign-in attack list the OAuth suite (``tests/backend_stub/oauth``)
does not cover: the implicit flow asked for at the authorization endpoint. RFC 9700 says
no implicit grant; a ``response_type=token`` login must never put a token in a redirect."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.settings import StubSettings


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(StubSettings(data_dir=tmp_path / "stub", public_url="http://testserver"),
                     clock=FakeClock())
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c
    app.state.db.dispose()


@pytest.mark.parametrize("response_type", ["token", "id_token token", "code token"])
def test_the_implicit_flow_never_hands_out_a_token(client: TestClient,
                                                   response_type: str) -> None:
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {"response_type": response_type, "client_id": "governor-app",
              "redirect_uri": "http://127.0.0.1:5555/callback", "state": "s",
              "scope": "governance:read", "code_challenge": challenge,
              "code_challenge_method": "S256"}
    shown = client.get("/oauth/authorize", params=params, follow_redirects=False)
    posted = client.post("/oauth/authorize", data={**params, "username": "governor",
                                                   "password": "governor"},
                         follow_redirects=False)
    for response in (shown, posted):
        location = response.headers.get("location", "")
        assert "access_token" not in location and "#" not in location, location
        assert "access_token" not in response.text
        if response.status_code in (302, 303):
            assert "error=unsupported_response_type" in location, location
