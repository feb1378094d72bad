"""JWT access tokens (RFC 9068 shape): minted by ``AccessTokenIssuer``, checked by
``TokenValidator`` on every API request.

Validation pins the algorithm to RS256 and the key to the one named by ``kid`` in our own key
ring, so ``alg: none``, HMAC tokens "signed" with the public key and foreign keys all fail
before any claim is read. Expiry is checked against the stub's clock (not the wall clock) so
the demo clock endpoint and tests move token lifetimes too.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass

import jwt

from backend_stub.clock import Clock
from backend_stub.errors import InvalidToken
from backend_stub.oauth.keys import ALGORITHM, KeyRing
from backend_stub.oauth.store import OAuthStore

AUDIENCE = "governance-api"
LEEWAY_S = 30
# Revocations made by another stub process become visible within this many seconds.
_REVOKED_REFRESH_S = 1.0


@dataclass(frozen=True)
class AccessClaims:
    sub: str
    username: str
    scopes: frozenset[str]
    client_id: str
    jti: str
    iat: int
    exp: int


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    exp: int


class AccessTokenIssuer:
    def __init__(self, keys: KeyRing, clock: Clock, *, issuer: str, ttl_s: int) -> None:
        self._keys = keys
        self._clock = clock
        self.issuer = issuer
        self.ttl_s = ttl_s

    def issue(self, *, sub: str, username: str, scopes: frozenset[str] | set[str],
              client_id: str) -> IssuedAccessToken:
        key = self._keys.signing_key()
        now = int(self._clock.now().timestamp())
        jti = uuid.uuid4().hex
        claims = {
            "iss": self.issuer,
            "sub": sub,
            "aud": AUDIENCE,
            "exp": now + self.ttl_s,
            "iat": now,
            "jti": jti,
            "scope": " ".join(sorted(scopes)),
            "client_id": client_id,
            "preferred_username": username,
        }
        token = jwt.encode(claims, key.private_key, algorithm=ALGORITHM,
                           headers={"kid": key.kid, "typ": "at+jwt"})
        return IssuedAccessToken(token, jti, now + self.ttl_s)


class TokenValidator:
    """Checks a bearer token completely; ``validate`` raises ``InvalidToken`` naming why."""

    def __init__(self, keys: KeyRing, store: OAuthStore, clock: Clock, *, issuer: str,
                 leeway_s: int = LEEWAY_S) -> None:
        self._keys = keys
        self._store = store
        self._clock = clock
        self.issuer = issuer
        self.leeway_s = leeway_s
        self._revoked: set[str] = set()
        self._revoked_loaded = 0.0
        self._lock = threading.Lock()
        self._revoked_lock = threading.Lock()
        self._verified: OrderedDict[str, tuple[str, AccessClaims]] = OrderedDict()

    def decode(self, token: str, *, check_expiry: bool = True) -> AccessClaims:
        """Signature, issuer, audience and (unless told not to) lifetime; not revocation."""
        cached = self._verified_get(token)
        if cached is not None and self._keys.verification_key(cached[0]) is not None:
            claims = cached[1]
        else:
            kid, claims = self._verify(token)
            self._verified_put(token, kid, claims)
        if check_expiry:
            now = self._clock.now().timestamp()
            if now > claims.exp + self.leeway_s:
                raise InvalidToken("The access token has expired; refresh it.")
            if claims.iat > now + self.leeway_s:
                raise InvalidToken("The access token was issued in the future; sign in again.")
        return claims

    # The signature check dominates the cost of a request's validation, and the app sends
    # the same token for up to 15 minutes: remember tokens whose signature and claims were
    # verified (keyed by the exact token string, so any change misses). Lifetime, key
    # retirement and revocation are still checked on every request.
    _CACHE_SIZE = 4096

    def _verified_get(self, token: str) -> tuple[str, AccessClaims] | None:
        with self._lock:
            hit = self._verified.get(token)
            if hit is not None:
                self._verified.move_to_end(token)
            return hit

    def _verified_put(self, token: str, kid: str, claims: AccessClaims) -> None:
        with self._lock:
            self._verified[token] = (kid, claims)
            if len(self._verified) > self._CACHE_SIZE:
                self._verified.popitem(last=False)

    def _verify(self, token: str) -> tuple[str, AccessClaims]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("The access token is malformed; sign in again.") from exc
        if header.get("alg") != ALGORITHM:
            raise InvalidToken(f"Access tokens must be signed with {ALGORITHM}; "
                               "sign in again to get one.")
        kid = header.get("kid")
        key = self._keys.verification_key(kid) if isinstance(kid, str) else None
        if key is None or not isinstance(kid, str):
            raise InvalidToken("The access token was signed by an unknown key; sign in again.")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=self.issuer,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                         "require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
            )
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken("The access token is not meant for this API; sign in again."
                               ) from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken("The access token was issued by another server; sign in again."
                               ) from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken("The access token signature or claims are invalid; "
                               "sign in again.") from exc
        try:
            return kid, AccessClaims(
                sub=str(claims["sub"]),
                username=str(claims.get("preferred_username") or claims["sub"]),
                scopes=frozenset(str(claims.get("scope", "")).split()),
                client_id=str(claims.get("client_id", "")),
                jti=str(claims["jti"]),
                iat=int(claims["iat"]),
                exp=int(claims["exp"]),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidToken("The access token claims are malformed; sign in again.") from exc

    def validate(self, token: str) -> AccessClaims:
        claims = self.decode(token)
        if self.is_revoked(claims.jti):
            raise InvalidToken("The access token has been revoked; sign in again.")
        return claims

    def is_revoked(self, jti: str) -> bool:
        if time.monotonic() - self._revoked_loaded > _REVOKED_REFRESH_S:
            with self._revoked_lock:
                if time.monotonic() - self._revoked_loaded > _REVOKED_REFRESH_S:
                    self._revoked = self._store.revoked_jtis(self._clock.now().timestamp())
                    self._revoked_loaded = time.monotonic()
        return jti in self._revoked

    def revoke(self, jti: str, exp: float) -> None:
        self._store.revoke_jti(jti, exp)
        self.forget_cache()

    def forget_cache(self) -> None:
        """Re-read the deny list on the next check (after a family revocation)."""
        self._revoked_loaded = 0.0
