"""The device grant (RFC 8628): verification page, polling, slow_down, denial, expiry."""

from __future__ import annotations

from typing import Any

from tests.backend_stub.oauth.conftest import Stub

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def start(stub: Stub) -> dict[str, Any]:
    response = stub.client.post("/oauth/device_authorization", data={
        "client_id": "governor-app", "scope": "governance:read governance:write veto:execute"})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def poll(stub: Stub, device_code: str) -> Any:
    return stub.client.post("/oauth/token", data={
        "grant_type": GRANT, "device_code": device_code, "client_id": "governor-app"})


def verify(stub: Stub, user_code: str, username: str = "governor", password: str = "governor",
           decision: str = "approve") -> Any:
    return stub.client.post("/oauth/device", data={
        "user_code": user_code, "username": username, "password": password,
        "decision": decision})


def test_device_authorization_response(stub: Stub) -> None:
    body = start(stub)
    assert body["verification_uri"] == "http://testserver/oauth/device"
    assert body["verification_uri_complete"].endswith(f"user_code={body['user_code']}")
    assert body["interval"] == 5 and body["expires_in"] == 600
    assert len(body["device_code"]) >= 40


def test_verification_page_prefills_the_code(stub: Stub) -> None:
    body = start(stub)
    page = stub.client.get("/oauth/device", params={"user_code": body["user_code"]})
    assert page.status_code == 200 and body["user_code"] in page.text
    assert 'name="username"' in page.text and 'name="password"' in page.text


def test_pending_then_approved_then_tokens_once(stub: Stub) -> None:
    body = start(stub)
    assert poll(stub, body["device_code"]).json()["error"] == "authorization_pending"
    # the person types the code loosely
    page = verify(stub, body["user_code"].lower().replace("-", " "))
    assert page.status_code == 200 and "Device connected" in page.text
    stub.clock.advance(5)
    tokens = poll(stub, body["device_code"])
    assert tokens.status_code == 200
    assert stub.get("/probe/read", tokens.json()["access_token"]).status_code == 200
    assert tokens.json()["refresh_token"]
    stub.clock.advance(5)
    again = poll(stub, body["device_code"])
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_polling_too_fast_is_slow_down_and_the_interval_grows(stub: Stub) -> None:
    body = start(stub)
    assert poll(stub, body["device_code"]).json()["error"] == "authorization_pending"
    stub.clock.advance(1)
    assert poll(stub, body["device_code"]).json()["error"] == "slow_down"
    stub.clock.advance(6)  # 5 s was enough before; now the interval is 10 s
    assert poll(stub, body["device_code"]).json()["error"] == "slow_down"
    stub.clock.advance(16)
    assert poll(stub, body["device_code"]).json()["error"] == "authorization_pending"


def test_denied(stub: Stub) -> None:
    body = start(stub)
    page = verify(stub, body["user_code"], decision="deny")
    assert "denied" in page.text.lower()
    stub.clock.advance(5)
    assert poll(stub, body["device_code"]).json()["error"] == "access_denied"


def test_expired(stub: Stub) -> None:
    body = start(stub)
    stub.clock.advance(601)
    assert poll(stub, body["device_code"]).json()["error"] == "expired_token"
    page = verify(stub, body["user_code"])
    assert page.status_code == 400 and "expired" in page.text


def test_verification_needs_the_right_password(stub: Stub) -> None:
    body = start(stub)
    assert verify(stub, body["user_code"], password="wrong").status_code == 401
    stub.clock.advance(5)
    assert poll(stub, body["device_code"]).json()["error"] == "authorization_pending"


def test_verification_is_rate_limited(stub: Stub) -> None:
    body = start(stub)
    for _ in range(stub.app.state.settings.login_attempts_per_minute):
        verify(stub, body["user_code"], password="guess")
    response = verify(stub, body["user_code"])
    assert response.status_code == 429 and "retry-after" in response.headers


def test_unknown_user_code(stub: Stub) -> None:
    assert verify(stub, "ABCD-EFGH").status_code == 400


def test_unknown_device_code(stub: Stub) -> None:
    response = poll(stub, "nope")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_auditor_approval_gives_read_only_tokens(stub: Stub) -> None:
    body = start(stub)
    verify(stub, body["user_code"], "auditor", "auditor")
    stub.clock.advance(5)
    assert poll(stub, body["device_code"]).json()["scope"] == "governance:read"
