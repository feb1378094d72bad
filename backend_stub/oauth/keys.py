"""Signing keys: RS256 key pairs kept in the database and published as a JWKS.

Rotation (``KeyRing.rotate``): a new key signs from now on; the old one is retired but keeps
verifying (and stays in the JWKS) until every token it signed has expired, that is for the
access-token lifetime plus the validation leeway. Keys live in the database so tokens
survive a restart and several stub processes sharing a database agree on them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.api_jws import PyJWS

from backend_stub.clock import Clock
from backend_stub.oauth.store import KeyRecord, OAuthStore

ALGORITHM = "RS256"
# A token naming an unknown kid makes us re-read the keys (another process may have rotated),
# but not more often than this, so a flood of forged kids cannot hammer the database.
_RELOAD_EVERY_S = 1.0
# Processes sharing a database re-read the keys this often, so they sign with the same one.
_RESYNC_EVERY_S = 30.0


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    public_key: rsa.RSAPublicKey
    created_at: float
    retired_at: float | None


def _thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 JWK thumbprint: a kid derived from the key itself."""
    jwk = json.loads(RSAAlgorithm.to_jwk(public_key))
    canonical = json.dumps({k: jwk[k] for k in ("e", "kty", "n")}, separators=(",", ":"),
                           sort_keys=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _load(record: KeyRecord) -> SigningKey:
    private = serialization.load_pem_private_key(record.private_pem.encode("ascii"),
                                                 password=None)
    assert isinstance(private, rsa.RSAPrivateKey), "only RSA keys are stored"
    return SigningKey(record.kid, private, private.public_key(), record.created_at,
                      record.retired_at)


class KeyRing:
    def __init__(self, store: OAuthStore, clock: Clock, *, verify_grace_s: float,
                 rotate_after_s: float | None = None) -> None:
        self._store = store
        self._clock = clock
        self._grace = verify_grace_s
        self._rotate_after = rotate_after_s or None
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._last_reload = 0.0
        self._reload()
        if self._current() is None:
            self.rotate()

    def _reload(self) -> None:
        with self._lock:
            loaded = {r.kid: r for r in self._store.load_keys()}
            self._keys = {kid: self._keys.get(kid) or _load(rec) for kid, rec in loaded.items()}
            # A retirement recorded by another process must replace our cached copy.
            for kid, rec in loaded.items():
                if self._keys[kid].retired_at != rec.retired_at:
                    self._keys[kid] = _load(rec)
            self._last_reload = time.monotonic()

    def _current(self) -> SigningKey | None:
        active = [k for k in self._keys.values() if k.retired_at is None]
        return max(active, key=lambda k: k.created_at) if active else None

    def _verifying(self, key: SigningKey) -> bool:
        if key.retired_at is None:
            return True
        return self._clock.now().timestamp() < key.retired_at + self._grace

    def signing_key(self) -> SigningKey:
        if time.monotonic() - self._last_reload > _RESYNC_EVERY_S:
            self._reload()  # follow rotations made by other processes sharing the database
        current = self._current()
        if current is None:  # every key retired by another process without a successor
            self.rotate()
            current = self._current()
        elif (self._rotate_after is not None
              and self._clock.now().timestamp() >= current.created_at + self._rotate_after):
            self.rotate()  # scheduled rotation: limits what one leaked key can sign
            current = self._current()
        assert current is not None
        return current

    def verification_key(self, kid: str) -> rsa.RSAPublicKey | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_reload > _RELOAD_EVERY_S:
            self._reload()
            key = self._keys.get(kid)
        if key is None or not self._verifying(key):
            return None
        return key.public_key

    def rotate(self) -> str:
        """Start signing with a new key; the previous ones verify until their tokens expire."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = _thumbprint(private.public_key())
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()).decode("ascii")
        now = self._clock.now().timestamp()
        # created_at must order keys even when the (fake) clock stands still.
        newest = max((k.created_at for k in self._keys.values()), default=now - 1)
        self._store.add_key(KeyRecord(kid, ALGORITHM, pem, max(now, newest + 1e-3), None))
        self._store.retire_keys_except(kid, now)
        self._store.delete_keys_retired_before(now - self._grace - 3600)
        self._reload()
        return kid

    def sign_payload(self, payload: bytes) -> tuple[str, str]:
        """(kid, compact JWS over ``payload``) with the current key: verifiable with the
        JWKS for as long as the key is published (tokens' and certificates' alike)."""
        key = self.signing_key()
        jws = PyJWS().encode(payload, key.private_key, algorithm=ALGORITHM,
                             headers={"kid": key.kid, "cty": "json"})
        return key.kid, jws

    def jwks(self) -> dict[str, Any]:
        keys = []
        for key in sorted(self._keys.values(), key=lambda k: k.created_at, reverse=True):
            if not self._verifying(key):
                continue
            jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key))
            jwk.update({"kid": key.kid, "alg": ALGORITHM, "use": "sig"})
            keys.append(jwk)
        return {"keys": keys}
