"""The OAuth client against the real stub, in process (``httpx.ASGITransport``)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from backend_stub.clock import FakeClock as StubClock
from backend_stub.oauth.testing import make_test_app
from sync.auth import Authenticator, WrongPassword
from sync.clock import FakeClock
from sync.errors import (
    AuthFlowError,
    RateLimitedByServer,
    RefreshRefused,
    ServerUnreachable,
    SignInRequired,
)
from sync.tokens import MemoryVault

T = TypeVar("T")
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class Harness:
    """The stub app and an Authenticator sharing one notion of time."""

    def __init__(self) -> None:
        self.server_clock = StubClock(START)
        self.client_clock = FakeClock(START)
        self.app: FastAPI = make_test_app(self.server_clock)
        self.token_calls = 0
        self.offline = False
        self.vault = MemoryVault()
        self.sleeps: list[float] = []
        self.on_sleep: Any = None

    def advance(self, seconds: float) -> None:
        self.server_clock.advance(seconds)
        self.client_clock.advance(seconds)

    def transport(self) -> httpx.AsyncBaseTransport:
        asgi = httpx.ASGITransport(app=self.app)
        harness = self

        class Counting(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                if harness.offline:
                    raise httpx.ConnectError("offline", request=request)
                if request.url.path == "/oauth/token":
                    harness.token_calls += 1
                return await asgi.handle_async_request(request)

        return Counting()

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.transport(), base_url="http://testserver")

    def authenticator(self, **kwargs: Any) -> Authenticator:
        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)
            self.advance(seconds)
            if self.on_sleep is not None:
                await self.on_sleep(len(self.sleeps))

        return Authenticator("http://testserver", vault=self.vault, http=self.http(),
                             clock=self.client_clock, sleep=sleep, **kwargs)


@pytest.fixture
def h() -> Harness:
    return Harness()


def signed_in(h: Harness, username: str = "governor") -> Authenticator:
    auth = h.authenticator()
    run(auth.sign_in_with_password(username, username))
    return auth


def test_rfc7636_appendix_b_vector(h: Harness) -> None:
    """The client's Authlib configuration turns the RFC's verifier into the RFC's challenge."""
    auth = h.authenticator()
    url, _state = auth._oauth.create_authorization_url(
        "http://testserver/oauth/authorize",
        code_verifier="dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge"] == ["E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"]
    assert query["code_challenge_method"] == ["S256"]


def test_each_sign_in_uses_a_fresh_verifier_and_state(h: Harness) -> None:
    auth = h.authenticator()

    async def two() -> list[tuple[str, str, str]]:
        return [await auth._authorization_url("com.waooaw.governor:/callback")
                for _ in range(2)]

    (url1, state1, verifier1), (url2, state2, verifier2) = run(two())
    assert state1 != state2 and verifier1 != verifier2
    assert 43 <= len(verifier1) <= 128
    assert parse_qs(urlsplit(url1).query)["code_challenge"] != parse_qs(
        urlsplit(url2).query)["code_challenge"]


# --- password-form sign-in -------------------------------------------------------------
def test_sign_in_with_password_runs_code_and_pkce(h: Harness) -> None:
    auth = h.authenticator()
    assert auth.account() is None
    account = run(auth.sign_in_with_password("governor", "governor"))
    assert account.sub == "governor" and account.username == "governor"
    assert account.scopes == {"governance:read", "governance:write", "veto:execute"}
    assert auth.account() == account
    stored = h.vault.load()
    assert stored is not None and stored.refresh_token and not stored.ended
    token = run(auth.access_token())
    assert h.app.state.token_validator.validate(token).sub == "governor"


def test_auditor_account_is_read_only(h: Harness) -> None:
    account = run(h.authenticator().sign_in_with_password("auditor", "auditor"))
    assert account.scopes == {"governance:read"}
    assert not account.can("veto:execute")


def test_wrong_password(h: Harness) -> None:
    auth = h.authenticator()
    with pytest.raises(WrongPassword, match="Wrong username or password"):
        run(auth.sign_in_with_password("governor", "nope"))
    assert auth.account() is None and h.vault.load() is None


def test_password_guessing_meets_the_rate_limit(h: Harness) -> None:
    auth = h.authenticator()

    async def guess() -> None:
        for _ in range(h.app.state.settings.login_attempts_per_minute):
            with pytest.raises(WrongPassword):
                await auth.sign_in_with_password("governor", "guess")
        with pytest.raises(RateLimitedByServer) as info:
            await auth.sign_in_with_password("governor", "governor")
        assert info.value.retry_after > 0

    run(guess())


def test_account_is_read_from_the_vault_offline(h: Harness) -> None:
    signed_in(h)
    h.offline = True
    again = h.authenticator()
    account = again.account()
    assert account is not None and account.username == "governor"
    assert run(again.access_token())  # still fresh: no network needed


def test_metadata_issuer_must_match_exactly(h: Harness) -> None:
    async def fake(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "http://elsewhere",
                                         "code_challenge_methods_supported": ["S256"]})

    auth = Authenticator("http://testserver", vault=h.vault,
                         http=httpx.AsyncClient(transport=httpx.MockTransport(fake)))
    with pytest.raises(AuthFlowError, match="another issuer"):
        run(auth.sign_in_with_password("governor", "governor"))


def test_server_without_s256_is_refused(h: Harness) -> None:
    async def fake(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"issuer": "http://testserver",
                                         "code_challenge_methods_supported": ["plain"]})

    auth = Authenticator("http://testserver", vault=h.vault,
                         http=httpx.AsyncClient(transport=httpx.MockTransport(fake)))
    with pytest.raises(AuthFlowError, match="PKCE S256"):
        run(auth.sign_in_with_password("governor", "governor"))


def test_sign_in_offline_is_server_unreachable(h: Harness) -> None:
    h.offline = True
    with pytest.raises(ServerUnreachable):
        run(h.authenticator().sign_in_with_password("governor", "governor"))


# --- access tokens and refresh ---------------------------------------------------------
def test_access_token_is_reused_while_fresh(h: Harness) -> None:
    auth = signed_in(h)
    calls = h.token_calls
    first = run(auth.access_token())
    h.advance(600)
    assert run(auth.access_token()) == first
    assert h.token_calls == calls


def test_refreshes_shortly_before_expiry_and_persists_the_rotated_token(h: Harness) -> None:
    auth = signed_in(h)
    before = h.vault.load()
    assert before is not None
    old = run(auth.access_token())
    h.advance(900 - 59)  # inside the 60 s margin
    new = run(auth.access_token())
    assert new != old
    after = h.vault.load()
    assert after is not None
    assert after.access_token == new
    assert after.refresh_token != before.refresh_token
    # the old refresh token is spent: reusing it would revoke the family
    assert h.app.state.token_validator.validate(new).sub == "governor"


def test_one_refresh_at_a_time(h: Harness) -> None:
    auth = signed_in(h)
    h.advance(900)
    calls = h.token_calls

    async def many() -> set[str]:
        return set(await asyncio.gather(*(auth.access_token() for _ in range(10))))

    tokens = run(many())
    assert len(tokens) == 1
    assert h.token_calls == calls + 1


def test_refresh_after_401_refreshes_once(h: Harness) -> None:
    auth = signed_in(h)
    rejected = run(auth.access_token())
    calls = h.token_calls
    fresh = run(auth.refresh_after_401(rejected))
    assert fresh != rejected and h.token_calls == calls + 1
    # A second task that saw the same rejected token gets the new one, no second refresh.
    assert run(auth.refresh_after_401(rejected)) == fresh
    assert h.token_calls == calls + 1


def test_concurrent_401s_share_one_refresh(h: Harness) -> None:
    auth = signed_in(h)
    rejected = run(auth.access_token())
    calls = h.token_calls

    async def many() -> set[str]:
        return set(await asyncio.gather(*(auth.refresh_after_401(rejected) for _ in range(5))))

    assert len(run(many())) == 1
    assert h.token_calls == calls + 1


def test_refused_refresh_ends_the_session_but_remembers_who(h: Harness) -> None:
    auth = signed_in(h)
    stored = h.vault.load()
    assert stored is not None and stored.refresh_token
    # The server revokes the sign-in (e.g. the refresh token was reused elsewhere).
    h.app.state.oauth.server.revoke(
        h.app.state.oauth.server.lookup_token(stored.refresh_token, "refresh_token"))
    h.advance(900)
    changes: list[int] = []
    auth.subscribe(lambda: changes.append(1))
    with pytest.raises(RefreshRefused, match="sign in again"):
        run(auth.access_token())
    assert auth.account() is None
    assert auth.needs_sign_in
    previous = auth.previous_account()
    assert previous is not None and previous.sub == "governor"
    kept = h.vault.load()
    assert kept is not None and kept.ended and kept.refresh_token is None
    assert changes == [1]
    # and it stays refused without asking the server again
    calls = h.token_calls
    with pytest.raises(SignInRequired):
        run(auth.access_token())
    assert h.token_calls == calls
    # a new instance (app restart) still knows who it was
    assert h.authenticator().previous_account() == previous


def test_reused_refresh_token_is_refused(h: Harness) -> None:
    auth = signed_in(h)
    stored = h.vault.load()
    assert stored is not None and stored.refresh_token
    h.advance(900)
    run(auth.access_token())  # rotates
    # Someone replays the old refresh token: the whole family dies, this client included.
    from fastapi.testclient import TestClient

    with TestClient(h.app) as client:
        reuse = client.post("/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": stored.refresh_token,
            "client_id": "governor-app"})
    assert reuse.json()["error"] == "invalid_grant"
    h.advance(900)
    with pytest.raises(RefreshRefused):
        run(auth.access_token())


def test_network_error_during_refresh_keeps_the_tokens(h: Harness) -> None:
    auth = signed_in(h)
    before = h.vault.load()
    h.advance(900)
    h.offline = True
    with pytest.raises(ServerUnreachable, match="session is kept"):
        run(auth.access_token())
    assert h.vault.load() == before
    assert auth.account() is not None
    h.offline = False
    assert run(auth.access_token())


def test_server_error_during_refresh_keeps_the_tokens(h: Harness) -> None:
    vault = MemoryVault()
    auth = Authenticator("http://testserver", vault=vault, http=h.http(), clock=h.client_clock)
    run(auth.sign_in_with_password("governor", "governor"))
    before = vault.load()

    async def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="maintenance")

    auth._oauth._transport = httpx.MockTransport(broken)  # the token endpoint fails
    h.advance(900)
    with pytest.raises(ServerUnreachable):
        run(auth.access_token())
    assert vault.load() == before


def test_not_signed_in(h: Harness) -> None:
    auth = h.authenticator()
    with pytest.raises(SignInRequired):
        run(auth.access_token())
    with pytest.raises(SignInRequired):
        run(auth.refresh_after_401("x"))


# --- sign-out --------------------------------------------------------------------------
def test_sign_out_revokes_the_refresh_token(h: Harness) -> None:
    auth = signed_in(h)
    stored = h.vault.load()
    assert stored is not None and stored.refresh_token
    run(auth.sign_out())
    assert auth.account() is None and h.vault.load() is None
    ref = h.app.state.oauth.server.lookup_token(stored.refresh_token, "refresh_token")
    assert ref is not None and ref.revoked
    assert ref is not None
    with pytest.raises(SignInRequired):
        run(auth.access_token())


def test_sign_out_offline_still_forgets_the_session(h: Harness) -> None:
    auth = signed_in(h)
    h.offline = True
    run(auth.sign_out())
    assert auth.account() is None and h.vault.load() is None


# --- step-up ---------------------------------------------------------------------------
def test_confirm_identity(h: Harness) -> None:
    auth = signed_in(h)
    before = h.vault.load()
    assert before is not None
    assert run(auth.confirm_identity("governor")) is True
    assert run(auth.confirm_identity("wrong")) is False
    after = h.vault.load()
    assert after is not None  # the session is untouched
    assert (after.access_token, after.refresh_token) == (before.access_token,
                                                         before.refresh_token)


def test_confirm_identity_offline_checks_the_verifier_kept_at_sign_in(h: Harness) -> None:
    """A veto must be possible in a plane: the password accepted by the server at sign-in
    is checked on the device when the server cannot be reached."""
    auth = signed_in(h)
    h.offline = True
    assert run(auth.confirm_identity("governor")) is True
    assert run(auth.confirm_identity("wrong")) is False


def test_the_offline_verifier_is_no_plain_password_and_survives_refresh(h: Harness) -> None:
    auth = signed_in(h)
    stored = h.vault.load()
    assert stored is not None and "step_up" in stored.extra
    assert "governor" not in str(stored.extra["step_up"])
    h.advance(900 - 59)
    run(auth.access_token())  # rotates the tokens
    h.offline = True
    assert run(auth.confirm_identity("governor")) is True


def test_confirm_identity_offline_without_a_verifier_fails_closed(h: Harness) -> None:
    auth = signed_in(h)
    stored = h.vault.load()
    assert stored is not None
    stored.extra.pop("step_up")  # as after a browser or device-code sign-in
    h.offline = True
    with pytest.raises(ServerUnreachable, match="needs the server"):
        run(auth.confirm_identity("governor"))


def test_a_corrupt_verifier_fails_closed(h: Harness) -> None:
    auth = signed_in(h)
    stored = h.vault.load()
    assert stored is not None
    stored.extra["step_up"] = {"salt": "%%%", "hash": None}
    h.offline = True
    with pytest.raises(ServerUnreachable, match="needs the server"):
        run(auth.confirm_identity("governor"))


def test_confirm_identity_needs_a_session(h: Harness) -> None:
    with pytest.raises(SignInRequired):
        run(h.authenticator().confirm_identity("governor"))


# --- browser (loopback) ----------------------------------------------------------------
def _browser(h: Harness, username: str = "governor", tamper: Any = None) -> Any:
    """A stand-in for the system browser: fills in the form, then follows the redirect to
    the app's loopback listener over real TCP on 127.0.0.1."""

    async def open_url(url: str) -> None:
        async def drive() -> None:
            async with h.http() as browser:
                page = await browser.get(url)
                assert page.status_code == 200
                from sync.auth import _FormParser

                parser = _FormParser()
                parser.feed(page.text)
                assert parser.form is not None
                form = {**parser.form.fields, "username": username, "password": username}
                response = await browser.post("/oauth/authorize", data=form)
            location = response.headers["location"]
            if tamper is not None:
                location = tamper(location)
            assert location.startswith("http://127.0.0.1:")
            async with httpx.AsyncClient() as loopback:
                done = await loopback.get(location)
                assert done.status_code == 200

        asyncio.get_running_loop().create_task(drive())

    return open_url


def test_sign_in_with_browser_over_loopback(h: Harness) -> None:
    auth = h.authenticator()
    account = run(auth.sign_in_with_browser(_browser(h)))
    assert account.username == "governor"
    assert run(auth.access_token())


def test_browser_state_mismatch_is_refused(h: Harness) -> None:
    def tamper(location: str) -> str:
        parts = urlsplit(location)
        query = parse_qs(parts.query)
        return f"{parts.scheme}://{parts.netloc}{parts.path}?code={query['code'][0]}&state=evil"

    auth = h.authenticator()
    with pytest.raises(AuthFlowError, match="state mismatch"):
        run(auth.sign_in_with_browser(_browser(h, tamper=tamper)))
    assert auth.account() is None and h.vault.load() is None


def test_browser_error_response(h: Harness) -> None:
    def tamper(location: str) -> str:
        parts = urlsplit(location)
        query = parse_qs(parts.query)
        return (f"{parts.scheme}://{parts.netloc}{parts.path}?error=access_denied"
                f"&state={query['state'][0]}&iss={query['iss'][0]}")

    with pytest.raises(AuthFlowError, match="refused"):
        run(h.authenticator().sign_in_with_browser(_browser(h, tamper=tamper)))


def test_browser_timeout(h: Harness) -> None:
    with pytest.raises(AuthFlowError, match="did not finish"):
        run(h.authenticator().sign_in_with_browser(lambda url: None, timeout=0.05))


def test_loopback_listener_ignores_other_paths(h: Harness) -> None:
    async def open_url(url: str) -> None:
        redirect = parse_qs(urlsplit(url).query)["redirect_uri"][0]
        assert redirect.startswith("http://127.0.0.1:") and redirect.endswith("/callback")
        async with httpx.AsyncClient() as client:
            other = await client.get(redirect.replace("/callback", "/favicon.ico"))
            assert other.status_code == 404

    with pytest.raises(AuthFlowError):
        run(h.authenticator().sign_in_with_browser(open_url, timeout=0.2))


# --- device grant ----------------------------------------------------------------------
async def _approve(h: Harness, user_code: str, decision: str = "approve",
                   username: str = "governor") -> None:
    async with h.http() as browser:
        response = await browser.post("/oauth/device", data={
            "user_code": user_code, "username": username, "password": username,
            "decision": decision})
        assert response.status_code == 200


def test_device_sign_in(h: Harness) -> None:
    auth = h.authenticator()

    async def go() -> None:
        code = await auth.start_device_sign_in()
        assert code.verification_uri == "http://testserver/oauth/device"
        assert code.interval == 5 and code.user_code

        async def on_sleep(n: int) -> None:
            if n == 2:
                await _approve(h, code.user_code)

        h.on_sleep = on_sleep
        account = await auth.finish_device_sign_in(code)
        assert account.username == "governor"

    run(go())
    assert h.sleeps == [5, 5]
    assert h.vault.load() is not None


def test_device_sign_in_honours_slow_down(h: Harness) -> None:
    auth = h.authenticator()

    async def go() -> None:
        code = await auth.start_device_sign_in()

        async def on_sleep(n: int) -> None:
            if n == 2:
                h.server_clock.advance(-3)  # the server sees the second poll too early
            if n == 3:
                await _approve(h, code.user_code)

        h.on_sleep = on_sleep
        await auth.finish_device_sign_in(code)

    run(go())
    assert h.sleeps[:2] == [5, 5] and h.sleeps[2] == 10


def test_device_sign_in_denied(h: Harness) -> None:
    auth = h.authenticator()

    async def go() -> None:
        code = await auth.start_device_sign_in()

        async def on_sleep(n: int) -> None:
            if n == 1:
                await _approve(h, code.user_code, "deny")

        h.on_sleep = on_sleep
        with pytest.raises(AuthFlowError, match="denied"):
            await auth.finish_device_sign_in(code)

    run(go())
    assert auth.account() is None


def test_device_code_expires(h: Harness) -> None:
    auth = h.authenticator()

    async def go() -> None:
        code = await auth.start_device_sign_in()
        with pytest.raises(AuthFlowError, match="expired"):
            await auth.finish_device_sign_in(code)

    run(go())
    assert len(h.sleeps) >= 600 / 5 - 1


def test_device_polling_survives_a_network_blip(h: Harness) -> None:
    auth = h.authenticator()

    async def go() -> None:
        code = await auth.start_device_sign_in()

        async def on_sleep(n: int) -> None:
            h.offline = n == 1
            if n == 2:
                await _approve(h, code.user_code)

        h.on_sleep = on_sleep
        assert (await auth.finish_device_sign_in(code)).username == "governor"

    run(go())


def test_start_device_sign_in_offline(h: Harness) -> None:
    h.offline = True
    with pytest.raises(ServerUnreachable):
        run(h.authenticator().start_device_sign_in())


def test_a_session_of_another_server_is_ignored(h: Harness) -> None:
    signed_in(h)
    other = Authenticator("http://127.0.0.1:9", vault=h.vault, http=h.http())
    assert other.account() is None
    with pytest.raises(SignInRequired):
        run(other.access_token())
    assert h.vault.load() is not None  # not deleted: it still belongs to the first server


def test_open_system_browser(monkeypatch: pytest.MonkeyPatch) -> None:
    import webbrowser

    from sync.auth import open_system_browser

    opened: list[str] = []

    def fake_open(url: str) -> bool:
        opened.append(url)
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    run(open_system_browser("http://127.0.0.1:1/x"))
    assert opened == ["http://127.0.0.1:1/x"]
    monkeypatch.setattr(webbrowser, "open", lambda url: False)
    with pytest.raises(AuthFlowError, match="No browser"):
        run(open_system_browser("http://127.0.0.1:1/x"))


def test_aclose_leaves_the_callers_client_usable(h: Harness) -> None:
    async def go() -> int:
        async with h.http() as http:
            auth = Authenticator("http://testserver", vault=h.vault, http=http,
                                 clock=h.client_clock)
            await auth.sign_in_with_password("governor", "governor")
            await auth.aclose()
            response = await http.get("/.well-known/oauth-authorization-server")
            return response.status_code

    assert run(go()) == 200


# --- with the engine's ApiClient: a 401 costs one refresh and one retry ------------------
def _api(h: Harness, auth: Authenticator) -> Any:
    from sync.api import ApiClient

    return ApiClient("http://testserver", authenticator=auth, transport=h.transport())


def test_token_expired_on_the_server_is_refreshed_once_and_retried(h: Harness) -> None:
    auth = signed_in(h)
    api = _api(h, auth)
    h.server_clock.advance(900 + 31)  # only the server's clock: the client thinks it is fresh
    calls = h.token_calls
    response = run(api.request("GET", "/v1/mobile/dashboard"))
    assert response.status == 200
    assert h.token_calls == calls + 1


def test_a_server_that_keeps_refusing_is_not_hammered(h: Harness) -> None:
    auth = signed_in(h)
    api = _api(h, auth)
    h.app.state.token_validator.issuer = "http://someone-else"  # every token now fails
    calls = h.token_calls
    with pytest.raises(SignInRequired, match="refused the session twice"):
        run(api.request("GET", "/v1/mobile/dashboard"))
    assert h.token_calls == calls + 1  # one refresh, no loop


def test_browser_response_naming_another_issuer_is_refused(h: Harness) -> None:
    def tamper(location: str) -> str:
        return location.replace("iss=http%3A%2F%2Ftestserver", "iss=http%3A%2F%2Fevil")

    auth = h.authenticator()
    with pytest.raises(AuthFlowError, match="issuer mismatch"):
        run(auth.sign_in_with_browser(_browser(h, tamper=tamper)))
    assert auth.account() is None
