"""The stub's OAuth 2.0 authorization server and the API's bearer-token guard.

``install_oauth(app)`` wires everything onto an app made by ``create_app``:

- ``app.state.keys``: ``KeyRing`` (RS256 signing keys, JWKS, rotation);
- ``app.state.token_validator``: ``TokenValidator`` used by ``guard.require_scope``;
- ``app.state.oauth``: ``OAuthService`` (the Authlib server, store, login limiter);
- routes: RFC 8414 metadata, authorize (login form), token, device authorization and its
  verification page, revocation, introspection, JWKS.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

from fastapi import FastAPI

from backend_stub.oauth.access_tokens import LEEWAY_S, AccessTokenIssuer, TokenValidator
from backend_stub.oauth.keys import KeyRing
from backend_stub.oauth.migrations import MIGRATIONS
from backend_stub.oauth.passwords import hash_password
from backend_stub.oauth.ratelimit import FailureStore, LoginLimiter, RedisFailures
from backend_stub.oauth.routes import OAuthService, build_router
from backend_stub.oauth.server import GovernanceAuthorizationServer, make_clients
from backend_stub.oauth.store import OAuthStore
from backend_stub.settings import StubSettings

__all__ = ["DEMO_ACCOUNTS", "RESOURCE_CLIENT_FILE", "install_oauth",
           "resource_server_credentials"]

RESOURCE_CLIENT_FILE = "resource-server-client.json"

# username -> (password, scopes); sub is the username.
DEMO_ACCOUNTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "governor": ("governor", ("governance:read", "governance:write", "veto:execute")),
    "auditor": ("auditor", ("governance:read",)),
    # Submits agents (POST /v1/agents, `governor-stub submit`); decides nothing.
    "submitter": ("submitter", ("agents:submit",)),
}


def ensure_demo_accounts(store: OAuthStore) -> None:
    for username, (password, scopes) in DEMO_ACCOUNTS.items():
        if store.get_user(username) is None:
            store.add_user(username, hash_password(password), scopes)


def resource_server_secret(settings: StubSettings, store: OAuthStore) -> str:
    """The configured secret, else the one generated at first start and kept in the
    database (written, owner-only, to ``data_dir/resource-server-client.json`` for the
    operator, unless the database is in memory). Never a default written in the code."""
    if settings.introspection_client_secret is not None:
        return settings.introspection_client_secret.get_secret_value()
    secret = store.client_secret(settings.introspection_client_id, secrets.token_urlsafe(32))
    if store.db.url in ("sqlite://", "sqlite:///:memory:"):
        return secret  # dies with the process (tests): nothing for an operator to read
    _write_owner_only(settings.data_dir / RESOURCE_CLIENT_FILE, json.dumps(
        {"client_id": settings.introspection_client_id, "client_secret": secret}))
    return secret


def _write_owner_only(path: Path, content: str) -> None:
    if path.exists() and path.read_text("utf-8") == content:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(content)
    os.replace(tmp, path)


def resource_server_credentials(app: FastAPI) -> tuple[str, str]:
    """``(client_id, secret)`` of the resource-server client of a running app."""
    client_id: str = app.state.settings.introspection_client_id
    secret = app.state.oauth.server.clients[client_id].secret
    assert secret is not None  # a confidential client always has one
    return client_id, secret


def _failure_store(app: FastAPI) -> FailureStore | None:
    """Failed logins counted in Redis when the stub has it (replicas share one limit),
    under the same namespace as the components' keys (stubs sharing the database)."""
    components = getattr(app.state, "components", None)
    client = getattr(components, "redis", None)
    if client is None:
        return None
    from backend_stub.components import namespace_for

    namespace = namespace_for(app.state.db.url, app.state.settings.redis_namespace)
    return RedisFailures(client, f"govstub:{namespace}:login:")


def install_oauth(app: FastAPI) -> None:
    # Authlib logs issued tokens at DEBUG ("Issue token %r"); tokens must never reach a log,
    # whatever --log-level says.
    logging.getLogger("authlib").setLevel(logging.INFO)
    settings = app.state.settings
    clock = app.state.clock
    app.state.db.migrate(MIGRATIONS)
    store = OAuthStore(app.state.db)
    ensure_demo_accounts(store)
    keys = KeyRing(store, clock, verify_grace_s=settings.access_token_ttl + LEEWAY_S,
                   rotate_after_s=settings.signing_key_rotation_days * 86400)
    issuer = AccessTokenIssuer(keys, clock, issuer=settings.issuer,
                               ttl_s=settings.access_token_ttl)
    validator = TokenValidator(keys, store, clock, issuer=settings.issuer)
    server = GovernanceAuthorizationServer(
        store=store, clock=clock, issuer=issuer, validator=validator,
        clients=make_clients(settings.introspection_client_id,
                             resource_server_secret(settings, store)),
        refresh_ttl_s=settings.refresh_token_ttl,
    )
    app.state.keys = keys
    app.state.token_validator = validator
    app.state.access_token_issuer = issuer
    app.state.oauth = OAuthService(server=server, store=store, keys=keys,
                                   limiter=LoginLimiter(clock, settings.login_attempts_per_minute,
                                                        _failure_store(app)),
                                   issuer=settings.issuer)
    app.include_router(build_router())
