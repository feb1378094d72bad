"""Every API route is guarded: discovered from the app itself, so a new route without a
scope fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from backend_stub.oauth.testing import issue_test_token, make_test_app

PUBLIC = {"/v1/health", "/v1/ready"}  # for balancers and probes: no token


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(make_test_app()) as c:
        yield c


def _routes() -> list[tuple[str, str]]:
    paths = make_test_app().openapi()["paths"]
    routes = []
    for path, operations in paths.items():
        if not path.startswith("/v1/") or path in PUBLIC or path.startswith("/v1/demo/"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "X-1", path)
        routes += [(method.upper(), concrete) for method in operations]
    return routes


ROUTES = _routes()


def test_the_api_routes_were_found() -> None:
    assert ("GET", "/v1/mobile/dashboard") in ROUTES
    assert ("POST", "/v1/mobile/approvals/X-1/veto") in ROUTES


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_token_is_401_with_www_authenticate(client: TestClient, method: str, path: str
                                               ) -> None:
    response = client.request(method, path, json={}, headers={"Idempotency-Key": "k-1"})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert response.json()["error"]["code"] == "INVALID_TOKEN"


@pytest.mark.parametrize(("method", "path"),
                         [r for r in ROUTES if r[0] != "GET" and not r[1].endswith(
                             ("/decisions", "/events/ticket"))])  # a ticket only reads
def test_read_only_token_cannot_write(client: TestClient, method: str, path: str) -> None:
    token = issue_test_token(client.app, "auditor", ("governance:read",))  # type: ignore[arg-type]
    response = client.request(method, path, json={}, headers={
        "Authorization": f"Bearer {token}", "Idempotency-Key": "k-2"})
    assert response.status_code == 403, response.text
    assert response.headers["www-authenticate"].startswith(
        'Bearer error="insufficient_scope", scope="')


@pytest.mark.parametrize(("method", "path"),
                         [r for r in ROUTES if r[0] == "GET" and not r[1].endswith("/events")])
def test_read_token_reads(client: TestClient, method: str, path: str) -> None:
    token = issue_test_token(client.app, "auditor", ("governance:read",))  # type: ignore[arg-type]
    response = client.request(method, path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code not in (401, 403), response.text
