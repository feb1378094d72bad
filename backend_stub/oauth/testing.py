"""Helpers for tests of API routes: real signed tokens without running a sign-in flow."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI

from backend_stub.clock import Clock

DEFAULT_SCOPES = ("governance:read", "governance:write", "veto:execute")


def issue_test_token(app: FastAPI, sub: str = "governor",
                     scopes: Iterable[str] = DEFAULT_SCOPES,
                     client_id: str = "governor-app") -> str:
    """A real RS256 access token from the app's own key ring (valid for the access TTL)."""
    issued = app.state.access_token_issuer.issue(sub=sub, username=sub, scopes=frozenset(scopes),
                                                 client_id=client_id)
    return str(issued.token)


def bearer(app: FastAPI, sub: str = "governor",
           scopes: Iterable[str] = DEFAULT_SCOPES) -> dict[str, str]:
    """``{"Authorization": "Bearer ..."}`` for a fresh test token."""
    return {"Authorization": f"Bearer {issue_test_token(app, sub, scopes)}"}


def make_test_app(clock: Clock | None = None, **settings: Any) -> FastAPI:
    """A full stub app on an in-memory database, its issuer ``http://testserver`` (the
    base URL of Starlette's TestClient and of ``httpx.ASGITransport`` clients)."""
    from backend_stub.app import create_app
    from backend_stub.clock import FakeClock
    from backend_stub.db import Database
    from backend_stub.settings import StubSettings

    settings.setdefault("public_url", "http://testserver")
    return create_app(StubSettings(**settings), clock=clock or FakeClock(),
                      database=Database(settings.pop("db_url", None) or "sqlite://"))
