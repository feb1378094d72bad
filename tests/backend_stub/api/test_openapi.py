"""/openapi.json lists every route the stub serves, the OAuth server's and /metrics
included, with every status each answers: the common ones declared everywhere, and every
status a route is seen to answer (errors provoked on purpose) declared on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from backend_stub.app import create_app
from backend_stub.components.asgi import EXEMPT_PATHS
from backend_stub.oauth.server import APP_CLIENT_ID
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings

# FastAPI's own documentation pages: they serve the document, they are not the API.
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
REDIRECT = "http://127.0.0.1:8765/callback"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def served(app: FastAPI) -> set[tuple[str, str]]:
    """(path, method) of every route the app routes to, included routers flattened."""
    routes: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        for method in context.methods or ():
            if method != "HEAD":
                assert context.path is not None, context.original_route
                routes.add((context.path, method.lower()))
    return routes


def make(tmp_path: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(StubSettings(data_dir=tmp_path, demo=True, **settings))
    with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
        yield client
    app.state.db.dispose()


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    yield from make(tmp_path)


def spec_of(client: TestClient) -> dict[str, Any]:
    return dict(client.get("/openapi.json").json())


def declared(spec: dict[str, Any], method: str, path: str) -> set[int]:
    return {int(code) for code in spec["paths"][path][method]["responses"]}


def test_every_served_route_is_in_the_document(client: TestClient) -> None:
    spec = spec_of(client)
    listed = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    routes = served(client.app)  # type: ignore[arg-type]
    assert len(routes) > 30
    missing = {r for r in routes if r[0] not in DOCUMENTATION} - listed
    assert not missing, f"served but not in /openapi.json: {sorted(missing)}"
    assert listed <= routes  # and nothing listed that is not served
    for route in [("/metrics", "get"), ("/v1/ready", "get"), ("/oauth/token", "post"),
                  ("/oauth/authorize", "get"), ("/oauth/authorize", "post"),
                  ("/oauth/device", "post"), ("/oauth/jwks.json", "get"),
                  ("/.well-known/oauth-authorization-server", "get")]:
        assert route in listed


def test_the_statuses_every_route_can_answer_are_declared(client: TestClient) -> None:
    spec = spec_of(client)
    for path, ops in spec["paths"].items():
        for method in ops:
            codes = declared(spec, method, path)
            assert 500 in codes, (method, path)  # the app's last-resort handler
            if path not in EXEMPT_PATHS:
                assert 429 in codes, (method, path)  # the rate limit answers every route
            if method == "post":
                assert 413 in codes, (method, path)  # the body cap
            if path.startswith("/v1/mobile/"):
                assert {401, 403} <= codes, (method, path)


def _observe(client: TestClient, token: str) -> list[tuple[str, str, httpx.Response]]:
    auth = {"Authorization": f"Bearer {token}"}
    authorize = {"response_type": "code", "client_id": APP_CLIENT_ID,
                 "redirect_uri": REDIRECT, "scope": "governance:read", "state": "s",
                 "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("get", "/metrics", {}),
        ("get", "/v1/ready", {}),
        ("get", "/v1/health", {}),
        ("get", "/oauth/authorize", {"params": {**authorize, "client_id": "nobody"}}),
        ("get", "/oauth/authorize", {"params": {**authorize, "response_type": "token"}}),
        ("get", "/oauth/authorize", {"params": authorize}),
        ("post", "/oauth/authorize", {"data": {**authorize, "username": "governor",
                                               "password": "wrong"}}),
        ("post", "/oauth/authorize", {"data": {**authorize, "username": "governor",
                                               "password": "governor"}}),
        ("post", "/oauth/authorize", {"data": {**authorize, "client_id": "nobody"}}),
        ("post", "/oauth/token", {"data": {"grant_type": "nonsense",
                                           "client_id": APP_CLIENT_ID}}),
        ("post", "/oauth/token", {"data": {"grant_type": "authorization_code",
                                           "client_id": "nobody", "code": "c"}}),
        ("post", "/oauth/token", {"content": b"x" * (9 * 1024 * 1024), "headers": FORM}),
        ("post", "/oauth/device_authorization", {"data": {"client_id": "nobody"}}),
        ("post", "/oauth/device_authorization", {"data": {"client_id": APP_CLIENT_ID,
                                                          "scope": "root"}}),
        ("post", "/oauth/revoke", {"data": {"token": "t"}}),
        ("post", "/oauth/introspect", {"data": {"token": "t"}}),
        ("get", "/oauth/device", {"params": {"user_code": "ABCD-EFGH"}}),
        ("post", "/oauth/device", {"data": {"user_code": "ABCD-EFGH", "username": "governor",
                                            "password": "governor"}}),
        ("post", "/oauth/device", {"data": {"user_code": "ABCD-EFGH", "username": "governor",
                                            "password": "wrong"}}),
        ("get", "/v1/mobile/dashboard", {}),
        ("get", "/v1/mobile/approvals/{approval_id}", {"headers": auth}),
        ("delete", "/v1/mobile/seeds/{seed_id}", {"headers": auth}),
        ("post", "/v1/mobile/decisions", {"headers": auth, "json": {"decisions": "x"}}),
        ("post", "/v1/demo/scenario", {"json": {"event": "nonsense"}}),
    ]
    ids = {"approval_id": "REQ-9999", "seed_id": "GEN-999"}
    return [(method, path, client.request(method, path.format(**ids), **kwargs))
            for method, path, kwargs in calls]


def test_every_status_a_route_is_seen_to_answer_is_declared(client: TestClient) -> None:
    spec = spec_of(client)
    token = issue_test_token(client.app)  # type: ignore[arg-type]
    seen = set()
    for method, path, answer in _observe(client, token):
        seen.add(answer.status_code)
        assert answer.status_code in declared(spec, method, path), (
            f"{method.upper()} {path} answered {answer.status_code}, which /openapi.json "
            f"does not declare: {answer.text[:200]}")
    assert {200, 302, 400, 401, 404, 413, 422} <= seen  # the errors were provoked


def test_the_rate_limits_429_is_declared_where_it_is_answered(tmp_path: Path) -> None:
    for client in make(tmp_path, client_requests_per_minute=1, requests_per_minute=1):
        spec = spec_of(client)
        for method, path in [("post", "/oauth/token"), ("get", "/oauth/jwks.json"),
                             ("get", "/.well-known/oauth-authorization-server"),
                             ("get", "/oauth/device")]:
            client.request(method, path)
            limited = client.request(method, path)
            assert limited.status_code == 429, (method, path)
            assert 429 in declared(spec, method, path)
        assert client.get("/v1/ready").status_code == 200  # exempt: load balancers
        assert client.get("/metrics").status_code == 200
