"""Sign-in end to end: ``sync.auth.Authenticator`` against the real stub process."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import httpx
import pytest

from sync.auth import Authenticator, _FormParser
from sync.clock import FakeClock
from sync.errors import AuthFlowError, RefreshRefused
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess

T = TypeVar("T")
DASHBOARD = "/v1/mobile/dashboard"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def api_get(stub: StubProcess, path: str, token: str) -> httpx.Response:
    with stub.client() as client:
        return client.get(path, headers={"Authorization": f"Bearer {token}"})


def advance_stub_clock(stub: StubProcess, seconds: float) -> None:
    with stub.client() as client:
        client.post("/v1/demo/clock", json={"advance_seconds": seconds}).raise_for_status()


def test_metadata_issuer_is_the_stub_url(stub: StubProcess) -> None:
    with stub.client() as client:
        meta = client.get("/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == stub.url
    assert meta["code_challenge_methods_supported"] == ["S256"]


def test_password_sign_in_then_api_then_sign_out(stub: StubProcess) -> None:
    async def go() -> tuple[str, str]:
        async with httpx.AsyncClient(timeout=10) as http:
            auth = Authenticator(stub.url, vault=MemoryVault(), http=http)
            account = await auth.sign_in_with_password("governor", "governor")
            assert account.can("veto:execute")
            token = await auth.access_token()
            refreshed = await auth.refresh_after_401(token)
            await auth.sign_out()
            await auth.aclose()
            return token, refreshed

    first, second = run(go())
    # The refresh revoked nothing, but sign-out revoked the whole sign-in.
    assert api_get(stub, DASHBOARD, first).status_code == 401
    response = api_get(stub, DASHBOARD, second)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_api_accepts_the_token_and_enforces_scopes(stub: StubProcess) -> None:
    async def token_for(username: str) -> str:
        async with httpx.AsyncClient(timeout=10) as http:
            auth = Authenticator(stub.url, vault=MemoryVault(), http=http)
            await auth.sign_in_with_password(username, username)
            token = await auth.access_token()
            await auth.aclose()
            return token

    governor, auditor = run(token_for("governor")), run(token_for("auditor"))
    assert api_get(stub, DASHBOARD, governor).status_code == 200
    assert api_get(stub, DASHBOARD, auditor).status_code == 200
    with stub.client() as client:
        approvals = client.get("/v1/mobile/approvals",
                               headers={"Authorization": f"Bearer {auditor}"}).json()["data"]
        assert approvals, "the demo world has approval requests"
        veto = client.post(f"/v1/mobile/approvals/{approvals[0]['id']}/veto",
                           headers={"Authorization": f"Bearer {auditor}",
                                    "Idempotency-Key": "e2e-auditor-veto"},
                           json={"category": "safety", "reason": "not allowed"})
    assert veto.status_code == 403
    assert veto.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", scope="veto:execute"')


def test_tokens_survive_a_stub_restart(stub: StubProcess) -> None:
    async def sign_in() -> tuple[Authenticator, str]:
        http = httpx.AsyncClient(timeout=10)
        auth = Authenticator(stub.url, vault=MemoryVault(), http=http)
        await auth.sign_in_with_password("governor", "governor")
        return auth, await auth.access_token()

    async def refresh(auth: Authenticator, token: str) -> str:
        fresh = await auth.refresh_after_401(token)
        await auth.aclose()
        await auth._http.aclose()
        return fresh

    loop = asyncio.new_event_loop()
    try:
        auth, token = loop.run_until_complete(sign_in())
        stub.restart()
        assert api_get(stub, DASHBOARD, token).status_code == 200  # keys are in the database
        fresh = loop.run_until_complete(refresh(auth, token))  # and so are refresh tokens
    finally:
        loop.close()
    assert api_get(stub, DASHBOARD, fresh).status_code == 200


def test_expiry_follows_the_demo_clock_and_refused_refresh_asks_to_sign_in(
        stub: StubProcess) -> None:
    clock = FakeClock()

    async def go() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            auth = Authenticator(stub.url, vault=MemoryVault(), http=http, clock=clock)
            await auth.sign_in_with_password("governor", "governor")
            token = await auth.access_token()
            advance_stub_clock(stub, 900 + 31)
            assert api_get(stub, DASHBOARD, token).status_code == 401
            clock.advance(900)
            fresh = await auth.access_token()  # refreshed before use
            assert api_get(stub, DASHBOARD, fresh).status_code == 200
            advance_stub_clock(stub, 31 * 24 * 3600)  # past the refresh token's lifetime
            clock.advance(31 * 24 * 3600)
            with pytest.raises(RefreshRefused):
                await auth.access_token()
            previous = auth.previous_account()
            assert auth.account() is None and previous is not None
            assert previous.sub == "governor"
            await auth.aclose()

    run(go())


def test_device_sign_in_against_the_real_stub(stub: StubProcess) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            polls: list[float] = []

            async def sleep(seconds: float) -> None:
                polls.append(seconds)
                advance_stub_clock(stub, seconds)  # the stub's time, not ours, paces polling
                if len(polls) == 2:
                    page = await http.post(code.verification_uri, data={
                        "user_code": code.user_code, "username": "governor",
                        "password": "governor", "decision": "approve"})
                    assert page.status_code == 200

            auth = Authenticator(stub.url, vault=MemoryVault(), http=http, sleep=sleep)
            code = await auth.start_device_sign_in()
            assert code.verification_uri == f"{stub.url}/oauth/device"
            account = await auth.finish_device_sign_in(code)
            assert account.username == "governor" and polls == [5, 5]
            await auth.aclose()

    run(go())


def test_browser_sign_in_over_loopback_against_the_real_stub(stub: StubProcess) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            auth = Authenticator(stub.url, vault=MemoryVault(), http=http)

            async def browser(url: str) -> None:
                async def drive() -> None:
                    async with httpx.AsyncClient(timeout=10, follow_redirects=True) as b:
                        page = await b.get(url)
                        parser = _FormParser()
                        parser.feed(page.text)
                        assert parser.form is not None
                        done = await b.post(f"{stub.url}/oauth/authorize", data={
                            **parser.form.fields, "username": "auditor",
                            "password": "auditor"})
                        assert "close this window" in done.text

                asyncio.get_running_loop().create_task(drive())

            account = await auth.sign_in_with_browser(browser, timeout=30)
            assert account.username == "auditor" and account.scopes == {"governance:read"}
            await auth.aclose()

    run(go())


def test_wrong_redirect_never_reaches_the_browser(stub: StubProcess) -> None:
    with stub.client() as client:
        response = client.get("/oauth/authorize", params={
            "response_type": "code", "client_id": "governor-app",
            "redirect_uri": "http://evil.example/callback", "state": "s",
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256"})
    assert response.status_code == 400 and "location" not in response.headers


def test_state_mismatch_is_caught_by_the_client(stub: StubProcess) -> None:
    async def go() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            auth = Authenticator(stub.url, vault=MemoryVault(), http=http)

            async def attacker(url: str) -> None:
                redirect = url.split("redirect_uri=")[1].split("&")[0]
                from urllib.parse import unquote

                async def drive() -> None:
                    async with httpx.AsyncClient() as b:
                        await b.get(f"{unquote(redirect)}?code=stolen&state=forged")

                asyncio.get_running_loop().create_task(drive())

            with pytest.raises(AuthFlowError, match="state mismatch"):
                await auth.sign_in_with_browser(attacker, timeout=30)
            assert auth.account() is None
            await auth.aclose()

    run(go())
