"""The OAuth client against a misbehaving server (``httpx.MockTransport``): every error path
ends in a ``SyncError`` that says what to do, and never in lost or foreign tokens."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import parse_qs

import httpx
import pytest

from sync.auth import Authenticator
from sync.clock import FakeClock
from sync.errors import AuthFlowError, RefreshRefused, ServerUnreachable
from sync.models import DeviceCode
from sync.tokens import MemoryVault, StoredTokens

T = TypeVar("T")
BASE = "http://fake"
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FORM = ('<form method="post" action="/oauth/authorize">'
        '<input type="hidden" name="state" value="{state}"></form>')


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def jwt_like(sub: str = "governor", **claims: Any) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'sub': sub, 'iss': BASE, **claims})}.sig"


def token_body(sub: str = "governor", refresh: str = "r2") -> dict[str, Any]:
    return {"access_token": jwt_like(sub), "token_type": "Bearer", "expires_in": 900,
            "refresh_token": refresh, "scope": "governance:read"}


Handler = Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """Answers discovery correctly and lets each test script the other endpoints."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.state = ""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(200, json={
                "issuer": BASE, "authorization_endpoint": f"{BASE}/oauth/authorize",
                "token_endpoint": f"{BASE}/oauth/token",
                "device_authorization_endpoint": f"{BASE}/oauth/device_authorization",
                "revocation_endpoint": f"{BASE}/oauth/revoke",
                "code_challenge_methods_supported": ["S256"]})
        if request.method == "GET" and request.url.path == "/oauth/authorize":
            self.state = parse_qs(request.url.query.decode())["state"][0]
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404)
        return handler(request)

    def login_ok(self) -> None:
        self.routes[("GET", "/oauth/authorize")] = lambda r: httpx.Response(
            200, text=FORM.format(state=self.state))
        self.routes[("POST", "/oauth/authorize")] = lambda r: httpx.Response(
            302, headers={"Location": f"com.waooaw.governor:/callback?code=c&state={self.state}"})

    def authenticator(self, vault: MemoryVault | None = None,
                      clock: FakeClock | None = None) -> Authenticator:
        async def no_sleep(_: float) -> None:
            return None

        return Authenticator(BASE, vault=vault or MemoryVault(),
                             http=httpx.AsyncClient(transport=httpx.MockTransport(self)),
                             clock=clock or FakeClock(NOW), sleep=no_sleep)


def signed_in_vault(sub: str = "governor") -> MemoryVault:
    return MemoryVault(StoredTokens(sub=sub, username=sub, scopes=frozenset({"governance:read"}),
                                    access_token=jwt_like(sub), expires_at=NOW + timedelta(
                                        seconds=30), refresh_token="r1", issuer=BASE))


@pytest.fixture
def server() -> FakeServer:
    return FakeServer()


def test_authorize_page_refused(server: FakeServer) -> None:
    server.routes[("GET", "/oauth/authorize")] = lambda r: httpx.Response(
        400, text="<h1>x</h1><p>Redirect URI not registered</p>")
    with pytest.raises(AuthFlowError, match="Redirect URI not registered"):
        run(server.authenticator().sign_in_with_password("governor", "governor"))


def test_authorize_page_without_form(server: FakeServer) -> None:
    server.routes[("GET", "/oauth/authorize")] = lambda r: httpx.Response(200, text="<p>hi</p>")
    with pytest.raises(AuthFlowError, match="no form"):
        run(server.authenticator().sign_in_with_password("governor", "governor"))


def test_login_post_answers_something_unexpected(server: FakeServer) -> None:
    server.login_ok()
    server.routes[("POST", "/oauth/authorize")] = lambda r: httpx.Response(500, text="boom")
    with pytest.raises(AuthFlowError, match="HTTP 500"):
        run(server.authenticator().sign_in_with_password("governor", "governor"))


def test_redirect_without_code(server: FakeServer) -> None:
    server.login_ok()
    server.routes[("POST", "/oauth/authorize")] = lambda r: httpx.Response(
        302, headers={"Location": f"com.waooaw.governor:/callback?state={server.state}"})
    with pytest.raises(AuthFlowError, match="no code"):
        run(server.authenticator().sign_in_with_password("governor", "governor"))


def test_login_form_posts_the_pkce_request(server: FakeServer) -> None:
    seen: dict[str, Any] = {}
    server.login_ok()

    def token(request: httpx.Request) -> httpx.Response:
        seen.update(parse_qs(request.content.decode()))
        return httpx.Response(200, json=token_body())

    server.routes[("POST", "/oauth/token")] = token
    run(server.authenticator().sign_in_with_password("governor", "governor"))
    assert seen["grant_type"] == ["authorization_code"] and seen["code"] == ["c"]
    assert seen["client_id"] == ["governor-app"] and len(seen["code_verifier"][0]) >= 43
    assert seen["redirect_uri"] == ["com.waooaw.governor:/callback"]


def test_code_exchange_refused(server: FakeServer) -> None:
    server.login_ok()
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(
        400, json={"error": "invalid_grant", "error_description": "Code challenge failed."})
    with pytest.raises(AuthFlowError, match="invalid_grant"):
        run(server.authenticator().sign_in_with_password("governor", "governor"))


def test_unreadable_access_token(server: FakeServer) -> None:
    server.login_ok()
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(
        200, json={**token_body(), "access_token": "opaque"})
    vault = MemoryVault()
    with pytest.raises(AuthFlowError, match="cannot read"):
        run(server.authenticator(vault).sign_in_with_password("governor", "governor"))
    assert vault.load() is None


def test_token_endpoint_down_during_exchange(server: FakeServer) -> None:
    server.login_ok()
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(502, text="bad gateway")
    with pytest.raises(ServerUnreachable):
        run(server.authenticator().sign_in_with_password("governor", "governor"))


def test_refresh_for_another_account_is_refused(server: FakeServer) -> None:
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(
        200, json=token_body("mallory"))
    vault = signed_in_vault()
    auth = server.authenticator(vault)
    with pytest.raises(AuthFlowError, match="another account"):
        run(auth.access_token())
    stored = vault.load()
    assert stored is not None and stored.sub == "governor"


def test_transient_oauth_error_during_refresh_keeps_the_session(server: FakeServer) -> None:
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(
        400, json={"error": "temporarily_unavailable"})
    vault = signed_in_vault()
    before = vault.load()
    with pytest.raises(ServerUnreachable, match="session is kept"):
        run(server.authenticator(vault).access_token())
    assert vault.load() == before


@pytest.mark.parametrize("error", ["invalid_grant", "invalid_client", "unauthorized_client"])
def test_refused_refresh(server: FakeServer, error: str) -> None:
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(
        400, json={"error": error})
    vault = signed_in_vault()
    auth = server.authenticator(vault)
    with pytest.raises(RefreshRefused):
        run(auth.access_token())
    stored = vault.load()
    assert stored is not None and stored.ended and stored.sub == "governor"


def test_session_without_refresh_token_asks_to_sign_in(server: FakeServer) -> None:
    vault = signed_in_vault()
    stored = vault.load()
    assert stored is not None
    vault.save(StoredTokens(**{**stored.__dict__, "refresh_token": None}))
    with pytest.raises(RefreshRefused, match="cannot be renewed"):
        run(server.authenticator(vault).access_token())


def test_vault_failure_keeps_the_session_in_memory(server: FakeServer) -> None:
    class BrokenVault(MemoryVault):
        def save(self, tokens: StoredTokens) -> None:
            raise OSError("keychain locked")

    server.login_ok()
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(200, json=token_body())
    auth = server.authenticator(BrokenVault())
    account = run(auth.sign_in_with_password("governor", "governor"))
    assert account.sub == "governor" and run(auth.access_token())


def test_device_authorization_refused(server: FakeServer) -> None:
    server.routes[("POST", "/oauth/device_authorization")] = lambda r: httpx.Response(
        400, json={"error": "invalid_scope"})
    with pytest.raises(AuthFlowError, match="invalid_scope"):
        run(server.authenticator().start_device_sign_in())


def test_device_poll_unexpected_error(server: FakeServer) -> None:
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(
        400, json={"error": "invalid_request", "error_description": "Invalid device_code"})
    code = DeviceCode(device_code="d", user_code="BCDF-GHJK", verification_uri=f"{BASE}/d",
                      expires_in=600, interval=5)
    with pytest.raises(AuthFlowError, match="invalid_request"):
        run(server.authenticator().finish_device_sign_in(code))


def test_sign_out_when_the_server_refuses_revocation(server: FakeServer) -> None:
    server.routes[("POST", "/oauth/revoke")] = lambda r: httpx.Response(503)
    vault = signed_in_vault()
    auth = server.authenticator(vault)
    run(auth.sign_out())
    assert vault.load() is None and auth.account() is None


def test_expires_at_from_the_token_when_expires_in_is_missing(server: FakeServer) -> None:
    exp = int((NOW + timedelta(minutes=15)).timestamp())
    server.login_ok()
    server.routes[("POST", "/oauth/token")] = lambda r: httpx.Response(200, json={
        "access_token": jwt_like(exp=exp), "token_type": "Bearer", "refresh_token": "r"})
    vault = MemoryVault()
    run(server.authenticator(vault).sign_in_with_password("governor", "governor"))
    stored = vault.load()
    assert stored is not None and stored.expires_at == NOW + timedelta(minutes=15)


def test_callback_state_is_checked_before_anything_else(server: FakeServer) -> None:
    server.login_ok()
    server.routes[("POST", "/oauth/authorize")] = lambda r: httpx.Response(
        302, headers={"Location": "com.waooaw.governor:/callback?code=c&state=forged"})
    calls: list[str] = []

    def token(request: httpx.Request) -> httpx.Response:
        calls.append("token")
        return httpx.Response(500)

    server.routes[("POST", "/oauth/token")] = token
    with pytest.raises(AuthFlowError, match="state mismatch"):
        run(server.authenticator().sign_in_with_password("governor", "governor"))
    assert calls == []  # the code was never exchanged



def test_iss_naming_another_server_is_refused(server: FakeServer) -> None:
    server.login_ok()
    server.routes[("POST", "/oauth/authorize")] = lambda r: httpx.Response(302, headers={
        "Location": f"com.waooaw.governor:/callback?code=c&state={server.state}"
                    "&iss=http://other"})
    with pytest.raises(AuthFlowError, match="issuer mismatch"):
        run(server.authenticator().sign_in_with_password("governor", "governor"))
