"""Small parts of the server on their own: passwords, the login limiter, the key ring."""

from __future__ import annotations

from backend_stub.clock import FakeClock
from backend_stub.db import Database
from backend_stub.oauth.keys import KeyRing
from backend_stub.oauth.migrations import MIGRATIONS
from backend_stub.oauth.passwords import hash_password, verify_password
from backend_stub.oauth.ratelimit import LoginLimiter
from backend_stub.oauth.routes import normalise_user_code
from backend_stub.oauth.server import is_registered_redirect
from backend_stub.oauth.store import OAuthStore


def test_password_hash_round_trip_and_salting() -> None:
    stored = hash_password("governor")
    assert stored.startswith("scrypt$") and "governor" not in stored
    assert verify_password("governor", stored)
    assert not verify_password("Governor", stored)
    assert hash_password("governor") != stored  # a fresh salt each time


def test_malformed_stored_hash_never_verifies() -> None:
    for stored in ("", "plain", "md5$1$2$3$4$5", "scrypt$x$8$1$AAAA$AAAA", "scrypt$$$$$"):
        assert not verify_password("anything", stored)


def test_limiter_window_slides() -> None:
    clock = FakeClock()
    limiter = LoginLimiter(clock, 3)
    keys = LoginLimiter.keys(" Governor ", "10.0.0.1")
    assert keys == ["user:governor", "addr:10.0.0.1"]
    for _ in range(3):
        assert limiter.retry_after(keys) is None
        limiter.record_failure(keys)
        clock.advance(10)
    wait = limiter.retry_after(keys)
    assert wait == 30  # the first failure leaves the window 60 s after it happened
    clock.advance(30)
    assert limiter.retry_after(keys) is None
    assert limiter.retry_after(LoginLimiter.keys("auditor", None)) is None


def test_redirect_matching() -> None:
    assert is_registered_redirect("http://127.0.0.1:8080/callback")
    assert is_registered_redirect("com.waooaw.governor:/callback")
    for uri in ("http://127.0.0.1:0/callback", "http://127.0.0.1:70000/callback",
                "http://127.0.0.1:8080/callback/", "http://[::1]:8080/callback",
                "http://127.0.0.1.evil.example:80/callback", "com.waooaw.governor://callback"):
        assert not is_registered_redirect(uri), uri


def test_user_code_normalisation() -> None:
    assert normalise_user_code("bcdf ghjk") == "BCDF-GHJK"
    assert normalise_user_code("BCDF-GHJK") == "BCDF-GHJK"
    assert normalise_user_code(" short ") == "SHORT"


def _ring(clock: FakeClock) -> tuple[KeyRing, OAuthStore]:
    db = Database("sqlite://")
    db.migrate(MIGRATIONS)
    store = OAuthStore(db)
    return KeyRing(store, clock, verify_grace_s=930), store


def test_key_ring_creates_a_key_once() -> None:
    clock = FakeClock()
    ring, store = _ring(clock)
    assert len(store.load_keys()) == 1
    again = KeyRing(store, clock, verify_grace_s=930)
    assert again.signing_key().kid == ring.signing_key().kid


def test_key_ring_recovers_when_every_key_was_retired_elsewhere() -> None:
    clock = FakeClock()
    ring, store = _ring(clock)
    old = ring.signing_key().kid
    store.retire_keys_except("none", clock.now().timestamp())
    ring._reload()
    assert ring.signing_key().kid != old


def test_retired_keys_are_deleted_long_after_their_grace() -> None:
    clock = FakeClock()
    ring, store = _ring(clock)
    first = ring.signing_key().kid
    ring.rotate()
    clock.advance(930 + 3600 + 1)
    ring.rotate()
    assert first not in {k.kid for k in store.load_keys()}
    assert len(ring.jwks()["keys"]) == 2  # the current key and the one just retired
