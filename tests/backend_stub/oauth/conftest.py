from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from backend_stub.clock import FakeClock
from backend_stub.oauth.guard import Principal, require_scope
from backend_stub.oauth.testing import make_test_app

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
REDIRECT = "http://127.0.0.1:53682/callback"
ALL = "governance:read governance:write veto:execute"


def add_probe_routes(app: FastAPI) -> None:
    """Two API routes guarded like the real ones, to test the guard alone."""

    @app.get("/probe/read")
    async def probe_read(p: Principal = Depends(require_scope("governance:read"))
                         ) -> dict[str, Any]:
        return {"sub": p.sub, "scopes": sorted(p.scopes), "client_id": p.client_id}

    @app.get("/probe/veto")
    async def probe_veto(p: Principal = Depends(require_scope("veto:execute"))
                         ) -> dict[str, Any]:
        return {"sub": p.sub}


@dataclass
class Stub:
    app: FastAPI
    client: TestClient
    clock: FakeClock

    def authorize_params(self, **overrides: str | None) -> dict[str, str]:
        params: dict[str, str | None] = {
            "response_type": "code", "client_id": "governor-app", "redirect_uri": REDIRECT,
            "scope": ALL, "state": "st-1", "code_challenge": CHALLENGE,
            "code_challenge_method": "S256",
        }
        params.update(overrides)
        return {k: v for k, v in params.items() if v is not None}

    def login(self, username: str = "governor", password: str | None = None,
              **overrides: str | None) -> Any:
        params = self.authorize_params(**overrides)
        return self.client.post("/oauth/authorize", data={
            **params, "username": username, "password": password or username},
            follow_redirects=False)

    def code(self, username: str = "governor", **overrides: str | None) -> str:
        response = self.login(username, **overrides)
        assert response.status_code == 302, response.text
        query = parse_qs(urlsplit(response.headers["location"]).query)
        return query["code"][0]

    def exchange(self, code: str, verifier: str | None = VERIFIER,
                 redirect_uri: str = REDIRECT) -> Any:
        data = {"grant_type": "authorization_code", "code": code, "client_id": "governor-app",
                "redirect_uri": redirect_uri}
        if verifier is not None:
            data["code_verifier"] = verifier
        return self.client.post("/oauth/token", data=data)

    def tokens(self, username: str = "governor") -> dict[str, Any]:
        response = self.exchange(self.code(username))
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def refresh(self, refresh_token: str) -> Any:
        return self.client.post("/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh_token,
            "client_id": "governor-app"})

    def get(self, path: str, token: str | None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return self.client.get(path, headers=headers)


def hidden_inputs(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))


@pytest.fixture
def stub() -> Iterator[Stub]:
    clock = FakeClock()
    app = make_test_app(clock)
    add_probe_routes(app)
    with TestClient(app) as client:
        yield Stub(app, client, clock)
