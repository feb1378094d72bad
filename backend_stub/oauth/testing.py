"""Helpers for tests of API routes: real signed tokens without running a sign-in flow."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI

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
