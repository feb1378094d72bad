"""Bearer-token guard for API routes.

    principal: Principal = Depends(require_scope("governance:read"))

A missing, malformed, expired, revoked or foreign token is ``InvalidToken`` (401); a valid
token without the scope is ``InsufficientScope`` (403); both carry ``WWW-Authenticate`` as
the contract says.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request

from backend_stub.errors import InsufficientScope, InvalidToken

ALL_SCOPES = frozenset({"governance:read", "governance:write", "veto:execute"})


@dataclass(frozen=True)
class Principal:
    sub: str
    username: str
    scopes: frozenset[str]
    client_id: str
    jti: str

    def has(self, scope: str) -> bool:
        return scope in self.scopes


# What a route sees when settings.disable_auth is on (benchmarks measuring the cost of
# validation only): the governor, with every scope.
BENCHMARK_PRINCIPAL = Principal("governor", "governor", ALL_SCOPES, "governor-app", "benchmark")


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise InvalidToken("This request needs a bearer access token; sign in first.")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("The Authorization header must be 'Bearer <access token>'.")
    return token


def authenticate(request: Request) -> Principal:
    """The principal behind the request's bearer token (no scope check)."""
    if request.app.state.settings.disable_auth:
        return BENCHMARK_PRINCIPAL
    claims = request.app.state.token_validator.validate(bearer_token(request))
    return Principal(claims.sub, claims.username, claims.scopes, claims.client_id, claims.jti)


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    # async: validation is CPU-only (keys and the deny list are cached), and a sync
    # dependency would cost a thread-pool hop on every request.
    async def dependency(request: Request) -> Principal:
        principal = authenticate(request)
        if scope not in principal.scopes:
            raise InsufficientScope(scope)
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_scope_{scope.replace(':', '_')}"
    return dependency
