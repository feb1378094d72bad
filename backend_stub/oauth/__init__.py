"""The stub's OAuth 2.0 authorization server and the API's bearer-token guard.

``install_oauth(app)`` wires everything onto an app made by ``create_app``:

- ``app.state.keys``: ``KeyRing`` (RS256 signing keys, JWKS, rotation);
- ``app.state.token_validator``: ``TokenValidator`` used by ``guard.require_scope``;
- ``app.state.oauth``: ``OAuthService`` (the Authlib server, store, login limiter);
- routes: RFC 8414 metadata, authorize (login form), token, device authorization and its
  verification page, revocation, introspection, JWKS.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI

from backend_stub.oauth.access_tokens import LEEWAY_S, AccessTokenIssuer, TokenValidator
from backend_stub.oauth.keys import KeyRing
from backend_stub.oauth.migrations import MIGRATIONS
from backend_stub.oauth.passwords import hash_password
from backend_stub.oauth.ratelimit import LoginLimiter
from backend_stub.oauth.routes import OAuthService, build_router
from backend_stub.oauth.server import GovernanceAuthorizationServer, make_clients
from backend_stub.oauth.store import OAuthStore

__all__ = ["DEMO_ACCOUNTS", "install_oauth"]

# username -> (password, scopes); sub is the username.
DEMO_ACCOUNTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "governor": ("governor", ("governance:read", "governance:write", "veto:execute")),
    "auditor": ("auditor", ("governance:read",)),
}


def ensure_demo_accounts(store: OAuthStore) -> None:
    for username, (password, scopes) in DEMO_ACCOUNTS.items():
        if store.get_user(username) is None:
            store.add_user(username, hash_password(password), scopes)


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
                             settings.introspection_client_secret.get_secret_value()),
        refresh_ttl_s=settings.refresh_token_ttl,
    )
    app.state.keys = keys
    app.state.token_validator = validator
    app.state.access_token_issuer = issuer
    app.state.oauth = OAuthService(server=server, store=store, keys=keys,
                                   limiter=LoginLimiter(clock, settings.login_attempts_per_minute),
                                   issuer=settings.issuer)
    app.include_router(build_router())
