"""The authorization server: Authlib's generic ``AuthorizationServer`` and grants, bound to
``OAuthStore`` and to plain request objects built by the FastAPI adapter (``routes.py``).

What Authlib does not do and this module adds (RFC 9700):
- PKCE is mandatory and S256 only (``S256CodeChallenge``);
- redirect URIs are exact, except the loopback port (RFC 8252 §7.3);
- a code works once; a replay revokes what its first use issued;
- refresh tokens rotate at every use; a reused one revokes its whole family;
- the device grant's ``slow_down`` adds 5 s to the interval for good.
"""

from __future__ import annotations

import hmac
import logging
import re
import secrets
import threading
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant, RefreshTokenGrant
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
)

from backend_stub.clock import Clock
from backend_stub.errors import InvalidToken
from backend_stub.oauth.access_tokens import (
    AUDIENCE,
    AccessTokenIssuer,
    IssuedAccessToken,
    TokenValidator,
)
from backend_stub.oauth.client_auth import authenticate_client
from backend_stub.oauth.store import (
    CodeRecord,
    DeviceRecord,
    OAuthStore,
    RefreshRecord,
    User,
)

log = logging.getLogger("backend_stub.oauth")

APP_CLIENT_ID = "governor-app"
SCOPES = ("governance:read", "governance:write", "veto:execute", "agents:submit")
APP_SCHEME_REDIRECT = "com.waooaw.governor:/callback"
_LOOPBACK_REDIRECT = re.compile(r"^http://127\.0\.0\.1:(\d{1,5})/callback$")
CODE_TTL_S = 60
DEVICE_CODE_TTL_S = 600
DEVICE_POLL_INTERVAL_S = 5
KNOWN_HINTS = ("access_token", "refresh_token")


def is_registered_redirect(uri: str) -> bool:
    """The app's redirect URIs: the private-use scheme, or loopback on any port."""
    if uri == APP_SCHEME_REDIRECT:
        return True
    match = _LOOPBACK_REDIRECT.match(uri)
    return bool(match) and 0 < int(match.group(1)) < 65536  # type: ignore[union-attr]


# --- clients -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Client(ClientMixin):
    client_id: str
    secret: str | None
    grant_types: frozenset[str]
    auth_methods: frozenset[str]
    endpoints: frozenset[str]
    # The resource server may introspect any client's tokens (RFC 7662 §2.1); other
    # clients only their own.
    introspects_all: bool = False

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # a redirect URI must always be named

    def get_allowed_scope(self, scope: str | None) -> str:
        if not scope:
            return " ".join(SCOPES)
        return " ".join(s for s in scope.split() if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return self.client_id == APP_CLIENT_ID and is_registered_redirect(redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and hmac.compare_digest(self.secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in self.auth_methods and endpoint in self.endpoints

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in self.grant_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


def make_clients(introspection_client_id: str, introspection_secret: str) -> dict[str, Client]:
    app = Client(
        APP_CLIENT_ID, None,
        frozenset({"authorization_code", "refresh_token", DEVICE_CODE_GRANT_TYPE}),
        frozenset({"none"}),
        frozenset({"token", "revocation", "device_authorization"}),
    )
    # It is issued no tokens, so it has nothing to revoke (RFC 7009 §2.1).
    resource_server = Client(
        introspection_client_id, introspection_secret, frozenset(),
        frozenset({"client_secret_basic", "client_secret_post"}),
        frozenset({"introspection"}), introspects_all=True,
    )
    return {app.client_id: app, resource_server.client_id: resource_server}


# --- requests (the adapter's half that Authlib sees) ------------------------------------
class FormPayload(OAuth2Payload):
    def __init__(self, values: Mapping[str, list[str]]) -> None:
        self._datalist = defaultdict(list, {k: list(v) for k, v in values.items()})
        self._data = {k: v[0] for k, v in values.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class PlainOAuth2Request(OAuth2Request):
    """An Authlib request made from already-read query and form values."""

    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 query: Mapping[str, list[str]], form: Mapping[str, list[str]]) -> None:
        # OAuth2Request.__init__ refuses plain http unless the host is loopback; the stub is
        # plain http by design (it also runs in-process as http://testserver), so the
        # attributes are set here instead.
        self.method = method
        self.uri = uri
        self.headers = headers
        self._body = None
        self.client = None
        self.auth_method = None
        self.user = None
        self.authorization_code = None
        self.refresh_token = None
        self.credential = None
        self._scope = None
        merged: dict[str, list[str]] = {k: list(v) for k, v in query.items()}
        for k, v in form.items():
            merged.setdefault(k, []).extend(v)
        self.payload = FormPayload(merged)
        self._args = {k: v[0] for k, v in query.items() if v}
        self._form = {k: v[0] for k, v in form.items() if v}

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


# --- token references for revocation and introspection ----------------------------------
@dataclass(frozen=True)
class TokenRef:
    kind: str  # access_token | refresh_token
    client_id: str
    sub: str
    scope: str
    iat: float
    exp: float
    expired: bool
    revoked: bool
    jti: str | None = None
    family_id: str | None = None

    def check_client(self, client: Client) -> bool:
        """Whether ``client`` is the one this token was issued to (RFC 7009 §2.1)."""
        return client.client_id == self.client_id

    def get_scope(self) -> str:
        return self.scope

    def is_expired(self) -> bool:
        return self.expired

    def is_revoked(self) -> bool:
        return self.revoked


# --- the server --------------------------------------------------------------------------
class GovernanceAuthorizationServer(AuthorizationServer):
    def __init__(self, *, store: OAuthStore, clock: Clock, issuer: AccessTokenIssuer,
                 validator: TokenValidator, clients: dict[str, Client],
                 refresh_ttl_s: int) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.store = store
        self.clock = clock
        self.issuer = issuer
        self.validator = validator
        self.clients = clients
        self.refresh_ttl_s = refresh_ttl_s
        # What _generate_token minted, for save_token (which Authlib calls with the token
        # response only): spares decoding the JWT we have just signed.
        self._issued: dict[str, tuple[IssuedAccessToken, str, str]] = {}
        self._issued_lock = threading.Lock()
        self.register_token_generator("default", self._generate_token)
        self.register_grant(PkceAuthorizationCodeGrant, [S256CodeChallenge(required=True)])
        self.register_grant(RotatingRefreshTokenGrant)
        self.register_grant(GovernanceDeviceCodeGrant)
        self.register_endpoint(GovernanceDeviceAuthorizationEndpoint)
        self.register_endpoint(GovernanceRevocationEndpoint)
        self.register_endpoint(GovernanceIntrospectionEndpoint)

    def now(self) -> float:
        return self.clock.now().timestamp()

    # Authlib's integration points
    def query_client(self, client_id: str) -> Client | None:
        return self.clients.get(client_id)

    def authenticate_client(self, request: PlainOAuth2Request, methods: Sequence[str],
                            endpoint: str = "token") -> Client:
        # One method per request, tried alone (client_auth.py); never Authlib's fallback
        # from a failed secret to the public "none" method.
        return cast(Client, authenticate_client(self.query_client, request, methods, endpoint))

    def create_oauth2_request(self, request: PlainOAuth2Request) -> PlainOAuth2Request:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]
                        ) -> tuple[int, Any, list[tuple[str, str]]]:
        return status, body, list(headers)

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        log.debug("oauth signal %s", name)

    def _generate_token(self, grant_type: str, client: Client, user: User | None = None,
                        scope: str | None = None, expires_in: int | None = None,
                        include_refresh_token: bool = True) -> dict[str, Any]:
        if user is None:
            raise InvalidGrantError(description="No account is attached to this grant.")
        granted = frozenset((scope or "").split()) & user.scopes
        if not granted:
            raise InvalidScopeError(description="The account has none of the requested scopes.")
        access = self.issuer.issue(sub=user.sub, username=user.username, scopes=granted,
                                   client_id=client.client_id)
        with self._issued_lock:
            if len(self._issued) > 1000:  # left by requests that failed after generation
                self._issued.clear()
            self._issued[access.token] = (access, user.sub, " ".join(sorted(granted)))
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": access.token,
            "expires_in": self.issuer.ttl_s,
            "scope": " ".join(sorted(granted)),
        }
        if include_refresh_token:
            token["refresh_token"] = secrets.token_urlsafe(32)  # 256 random bits
        return token

    def save_token(self, token: dict[str, Any], request: PlainOAuth2Request) -> None:
        """Consume what was exchanged (code, refresh or device code) and record the new
        refresh token in its family, atomically: of two concurrent uses one wins."""
        now = self.now()
        with self._issued_lock:
            access, sub, scope = self._issued.pop(token["access_token"])
        grant_type = request.payload.grant_type
        new_refresh = None
        if "refresh_token" in token:
            new_refresh = {
                "token": token["refresh_token"],
                "client_id": cast(Client, request.client).client_id,
                "sub": sub, "scope": scope, "access_jti": access.jti,
                "access_exp": float(access.exp),
                "expires_at": now + self.refresh_ttl_s,
            }
        if grant_type == "refresh_token":
            old = cast(RefreshRecord, request.refresh_token)
            if not self.store.consume_and_issue("refresh_token", old.token_hash, now=now,
                                                family_id=old.family_id,
                                                new_refresh=new_refresh):
                self._revoke_family(old.family_id)
                raise InvalidGrantError(description=_REUSED_REFRESH)
        elif grant_type == "authorization_code":
            code = cast(CodeRecord, request.authorization_code)
            if not self.store.consume_and_issue("code", code.code_hash, now=now,
                                                family_id=uuid.uuid4().hex,
                                                new_refresh=new_refresh):
                raise InvalidGrantError(description=_REUSED_CODE)
        elif grant_type == DEVICE_CODE_GRANT_TYPE:
            device = cast(DeviceCredential, request.credential)
            if not self.store.consume_and_issue("device_code", device.record.device_code_hash,
                                                now=now, family_id=uuid.uuid4().hex,
                                                new_refresh=new_refresh):
                raise InvalidGrantError(description="This device code was already used.")
        else:  # no other grant is registered
            raise InvalidGrantError(description=f"Grant {grant_type!r} issues no tokens here.")

    def _revoke_family(self, family_id: str) -> None:
        self.store.revoke_family(family_id, self.now())
        self.validator.forget_cache()
        log.warning("revoked token family %s", family_id)

    def lookup_token(self, token: str, hint: str | None) -> TokenRef | None:
        """A refresh token (by hash) or an access token (by signature), for RFC 7009/7662."""
        now = self.now()
        if hint not in KNOWN_HINTS:
            hint = None  # an unknown hint is ignored (RFC 7009 §2.2, RFC 7662 §2.1)
        if hint != "access_token":
            rec = self.store.get_refresh_token(token)
            if rec is not None:
                return TokenRef("refresh_token", rec.client_id, rec.sub, rec.scope,
                                rec.issued_at, rec.expires_at, now >= rec.expires_at,
                                rec.revoked_at is not None or rec.used_at is not None,
                                family_id=rec.family_id)
        try:
            claims = self.validator.decode(token, check_expiry=False)
        except InvalidToken:
            if hint == "access_token":  # the hint is only a hint (RFC 7009 §2.1)
                return self.lookup_token(token, "refresh_token")
            return None
        return TokenRef("access_token", claims.client_id, claims.sub,
                        " ".join(sorted(claims.scopes)), claims.iat, claims.exp,
                        now > claims.exp + self.validator.leeway_s,
                        self.validator.is_revoked(claims.jti), jti=claims.jti)

    def revoke(self, ref: TokenRef) -> None:
        if ref.kind == "refresh_token" and ref.family_id:
            # RFC 7009 §2.1: revoking a refresh token also ends the access tokens of its grant.
            self._revoke_family(ref.family_id)
        elif ref.jti:
            self.validator.revoke(ref.jti, ref.exp)


_REUSED_REFRESH = ("This refresh token was already used; every token of this sign-in is now "
                   "revoked. Sign in again.")
_REUSED_CODE = ("This authorization code was already used; the tokens it issued are now "
                "revoked. Start sign-in again.")


# --- grants ------------------------------------------------------------------------------
class S256CodeChallenge(CodeChallenge):
    """PKCE required for every authorization request, S256 only (no downgrade to plain)."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": CodeChallenge.CODE_CHALLENGE_METHODS["S256"]}

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "Only code_challenge_method=S256 is accepted; plain PKCE is refused.")
        super().validate_code_challenge(grant, redirect_uri)


class PkceAuthorizationCodeGrant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    server: GovernanceAuthorizationServer

    def save_authorization_code(self, code: str, request: PlainOAuth2Request) -> None:
        user = cast(User, request.user)
        scope = " ".join(s for s in (request.scope or "").split() if s in user.scopes)
        data = request.payload.data
        if not scope:
            # The redirect URI is validated by now, so the app hears about it (§4.1.2.1).
            raise InvalidScopeError(description="The account has none of the requested scopes.",
                                    redirect_uri=data["redirect_uri"],
                                    state=data.get("state"))
        self.server.store.add_code(
            code, client_id=cast(Client, request.client).client_id,
            redirect_uri=data["redirect_uri"],
            scope=scope, sub=user.sub, code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"],
            expires_at=self.server.now() + CODE_TTL_S,
        )

    def query_authorization_code(self, code: str, client: Client) -> CodeRecord | None:
        rec = self.server.store.get_code(code)
        if rec is None or rec.client_id != client.client_id:
            return None
        if rec.used_at is not None:
            if rec.family_id:
                self.server._revoke_family(rec.family_id)
            raise InvalidGrantError(description=_REUSED_CODE)
        if self.server.now() >= rec.expires_at:
            raise InvalidGrantError(
                description="This authorization code has expired; start sign-in again.")
        return rec

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        pass  # consumed atomically in save_token (store.consume_and_issue)

    def authenticate_user(self, authorization_code: CodeRecord) -> User | None:
        return self.server.store.get_user_by_sub(authorization_code.sub)


class RotatingRefreshTokenGrant(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True
    server: GovernanceAuthorizationServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        rec = self.server.store.get_refresh_token(refresh_token)
        if rec is None or rec.revoked_at is not None:
            return None
        if rec.used_at is not None:
            self.server._revoke_family(rec.family_id)
            raise InvalidGrantError(description=_REUSED_REFRESH)
        if self.server.now() >= rec.expires_at:
            return None
        return rec

    def authenticate_user(self, refresh_token: RefreshRecord) -> User | None:
        return self.server.store.get_user_by_sub(refresh_token.sub)

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        pass  # consumed atomically in save_token (store.consume_and_issue)


@dataclass(frozen=True)
class DeviceCredential:
    record: DeviceRecord
    expired: bool

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_scope(self) -> str:
        return self.record.scope

    def get_user_code(self) -> str:
        return self.record.user_code

    def is_expired(self) -> bool:
        return self.expired


class GovernanceDeviceCodeGrant(DeviceCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    server: GovernanceAuthorizationServer

    def query_device_credential(self, device_code: str) -> DeviceCredential | None:
        rec = self.server.store.get_device_code(device_code)
        if rec is None:
            return None
        if rec.status == "used":
            raise InvalidGrantError(description="This device code was already used.")
        return DeviceCredential(rec, self.server.now() >= rec.expires_at)

    def query_user_grant(self, user_code: str) -> tuple[User | None, bool] | None:
        rec = self.server.store.get_device_by_user_code(user_code)
        if rec is None or rec.status == "pending":
            return None
        if rec.status == "denied" or rec.sub is None:
            return None, False
        return self.server.store.get_user_by_sub(rec.sub), True

    def should_slow_down(self, credential: DeviceCredential) -> bool:
        rec = credential.record
        now = self.server.now()
        too_fast = rec.last_poll_at is not None and now - rec.last_poll_at < rec.poll_interval
        # RFC 8628 §3.5: slow_down adds 5 s to the interval for this and every later request.
        interval = rec.poll_interval + 5 if too_fast else rec.poll_interval
        self.server.store.record_device_poll(rec.device_code_hash, now, interval)
        return too_fast


class GovernanceDeviceAuthorizationEndpoint(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = ["none"]
    EXPIRES_IN = DEVICE_CODE_TTL_S
    INTERVAL = DEVICE_POLL_INTERVAL_S
    server: GovernanceAuthorizationServer

    def get_verification_uri(self) -> str:
        return f"{self.server.issuer.issuer}/oauth/device"

    def save_device_credential(self, client_id: str, scope: str | None,
                               data: dict[str, Any]) -> None:
        client = self.server.clients[client_id]
        self.server.store.add_device_code(
            data["device_code"], user_code=data["user_code"], client_id=client_id,
            scope=client.get_allowed_scope(scope), expires_at=self.server.now() + self.EXPIRES_IN,
            interval=self.INTERVAL,
        )


class GovernanceRevocationEndpoint(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["none", "client_secret_basic", "client_secret_post"]
    server: GovernanceAuthorizationServer

    def check_params(self, request: PlainOAuth2Request, client: Client) -> None:
        if not request.form.get("token"):
            raise InvalidRequestError("Send the token to revoke in the 'token' parameter.")

    def authenticate_token(self, request: PlainOAuth2Request, client: Client
                           ) -> TokenRef | None:
        """A token issued to another client is left alone and answered like an unknown one
        (200): the caller learns nothing about it (RFC 7009 §2.1, §2.2)."""
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        if token is None or not token.check_client(client):
            return None
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return self.server.lookup_token(token_string, token_type_hint)

    def revoke_token(self, token: TokenRef, request: PlainOAuth2Request) -> None:
        self.server.revoke(token)


class GovernanceIntrospectionEndpoint(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
    server: GovernanceAuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> TokenRef | None:
        return self.server.lookup_token(token_string, token_type_hint)

    def check_params(self, request: PlainOAuth2Request, client: Client) -> None:
        if not request.form.get("token"):
            raise InvalidRequestError("Send the token to introspect in the 'token' parameter.")

    def check_permission(self, token: TokenRef, client: Client, request: Any) -> bool:
        """The resource server introspects every token; another client only its own, and
        another client's token is ``{"active": false}`` to it (RFC 7662 §2.2)."""
        return client.introspects_all or token.check_client(client)

    def introspect_token(self, token: TokenRef) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "active": True,
            "scope": token.scope,
            "client_id": token.client_id,
            "username": token.sub,
            "sub": token.sub,
            "token_type": "Bearer" if token.kind == "access_token" else "refresh_token",
            "exp": int(token.exp),
            "iat": int(token.iat),
            "iss": self.server.issuer.issuer,
        }
        if token.kind == "access_token":
            payload["aud"] = AUDIENCE
            payload["jti"] = token.jti
        return payload

