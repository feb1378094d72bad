"""Small parts of the server on their own: passwords, the login limiter, the key ring."""

from __future__ import annotations

import pytest

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


def test_limiter_in_redis_is_shared_by_two_replicas(redis_url: str) -> None:
    import uuid

    import redis

    from backend_stub.oauth.ratelimit import RedisFailures

    client = redis.Redis.from_url(redis_url)
    prefix = f"test:{uuid.uuid4().hex}:login:"
    clock = FakeClock()
    one = LoginLimiter(clock, 3, RedisFailures(client, prefix))
    two = LoginLimiter(clock, 3, RedisFailures(client, prefix))
    keys = LoginLimiter.keys("governor", "10.0.0.1")
    try:
        for limiter in (one, two, one):  # failures on either replica count for both
            assert limiter.retry_after(keys) is None
            limiter.record_failure(keys)
            clock.advance(10)
        assert one.retry_after(keys) == two.retry_after(keys) == 30
        clock.advance(30)
        assert two.retry_after(keys) is None
        assert client.ttl(prefix + keys[0]) > 0  # nothing outlives the window for long
    finally:
        client.delete(*(prefix + k for k in keys))
        client.close()


def test_limiter_without_redis_counts_in_this_process_and_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    import redis

    from backend_stub.oauth.ratelimit import RedisFailures

    # Nothing listens on port 9: every Redis call fails at once.
    client = redis.Redis(host="127.0.0.1", port=9, socket_connect_timeout=0.2)
    clock = FakeClock()
    limiter = LoginLimiter(clock, 2, RedisFailures(client, "test:down:"))
    keys = LoginLimiter.keys("governor", None)
    limiter.record_failure(keys)
    limiter.record_failure(keys)
    assert limiter.retry_after(keys) == 60  # still throttled, here
    assert "Redis unreachable" in caplog.text


def test_replicas_adding_the_same_account_together_all_succeed(stub_db_url: str) -> None:
    """Replicas starting together each add the demo accounts: whichever unique index (the
    username's or the sub's) meets the other's row first, nobody fails (CI: PostgreSQL
    raised on the sub's index and a replica did not start)."""
    import threading

    databases = [Database(stub_db_url) for _ in range(4)]
    databases[0].migrate(MIGRATIONS)
    stores = [OAuthStore(db) for db in databases]
    failures: list[str] = []
    try:
        for round_ in range(30):
            name = f"user-{round_}"
            barrier = threading.Barrier(len(stores))

            def add(store: OAuthStore, name: str = name,
                    barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                try:
                    store.add_user(name, "hash", ["governance:read"])
                except Exception as exc:  # collected: an assert in a thread is lost
                    failures.append(repr(exc))

            threads = [threading.Thread(target=add, args=(s,)) for s in stores]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            user = stores[0].get_user(name)
            assert user is not None and user.sub == name
        assert failures == []
    finally:
        for db in databases:
            db.dispose()
