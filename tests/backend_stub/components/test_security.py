from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from backend_stub.clock import FakeClock
from backend_stub.components.errors import DecryptionFailed, SignatureInvalid, TokenInvalid
from backend_stub.components.security import (
    AuditEntry,
    AuditHead,
    AuditLog,
    AuditStore,
    HmacSigner,
    JwtCodec,
    MemoryAuditStore,
    SecurityLayer,
    SqlAuditStore,
    Vault,
    derive_key,
    load_or_create_secret,
)
from backend_stub.db import Database

# -- RFC 4231 HMAC-SHA-256 test vectors (cases 1-4, 6, 7; case 5 is a truncated MAC) ---------

RFC4231 = [
    ("0b" * 20, b"Hi There".hex(),
     "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
    (b"Jefe".hex(), b"what do ya want for nothing?".hex(),
     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
    ("aa" * 20, "dd" * 50,
     "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"),
    ("0102030405060708090a0b0c0d0e0f10111213141516171819", "cd" * 50,
     "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
    ("aa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First".hex(),
     "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
    ("aa" * 131, (b"This is a test using a larger than block-size key and a larger than "
                  b"block-size data. The key needs to be hashed before being used by the "
                  b"HMAC algorithm.").hex(),
     "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"),
]


@pytest.mark.parametrize("key, data, expected", RFC4231, ids=["1", "2", "3", "4", "6", "7"])
def test_rfc4231_vectors(key: str, data: str, expected: str) -> None:
    signer = HmacSigner(bytes.fromhex(key))
    assert signer.sign(bytes.fromhex(data)) == expected
    assert signer.verify(bytes.fromhex(data), expected)


def test_sign_text_json_and_verify() -> None:
    signer = HmacSigner(b"k" * 32)
    assert signer.sign("héllo") == signer.sign("héllo".encode())
    assert signer.sign({"b": 1, "a": [1, "ü"]}) == signer.sign('{"a":[1,"ü"],"b":1}')
    assert not signer.verify("x", "00" * 32)
    signer.verify_or_raise("x", signer.sign("x"))
    with pytest.raises(SignatureInvalid, match="altered or signed with another key"):
        signer.verify_or_raise("x", signer.sign("y"))


def test_events_carry_a_signature_clients_can_check() -> None:
    signer = HmacSigner(b"k" * 32)
    event = {"id": "1", "type": "governance.approval.pending", "data": {"n": 1},
             "metadata": {"correlation_id": "r1", "causation_id": None, "user_id": None}}
    signed = signer.sign_event(event)
    assert signer.verify_event(signed)
    assert signer.sign_event(signed) == signed  # re-signing ignores the old signature
    assert not signer.verify_event({**signed, "data": {"n": 2}})
    assert not signer.verify_event(event)
    assert not HmacSigner(b"other" * 8).verify_event(signed)


def test_signer_needs_a_key() -> None:
    with pytest.raises(ValueError, match="non-empty key"):
        HmacSigner(b"")


# -- keys -------------------------------------------------------------------------------------


def test_secret_is_generated_once_with_owner_only_permissions(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "data")
    assert load_or_create_secret(tmp_path / "data") == first
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "secret.key").st_mode)
    assert mode == 0o600
    assert load_or_create_secret(tmp_path, "configured-secret") == b"configured-secret"


def test_secret_creation_race_keeps_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    (tmp_path / "secret.key").write_bytes(b"winner\n")
    real_exists = Path.exists
    monkeypatch.setattr(Path, "exists", lambda self: False if self.name == "secret.key"
                        else real_exists(self))
    assert load_or_create_secret(tmp_path) == b"winner"


def test_derived_keys_differ_by_purpose() -> None:
    assert derive_key(b"s", "a") != derive_key(b"s", "b")
    assert len(derive_key(b"s", "a")) == 32


# -- JWT --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def codec(key: rsa.RSAPrivateKey, clock: FakeClock, **kwargs: object) -> JwtCodec:
    return JwtCodec(issuer="http://stub", audience="governance-api", signing_key=key,
                    kid="k1", clock=clock, **kwargs)  # type: ignore[arg-type]


def test_jwt_round_trip(rsa_key: rsa.RSAPrivateKey) -> None:
    clock = FakeClock()
    c = codec(rsa_key, clock)
    token = c.create("user-1", expires_in=900, scope="governance:read")
    claims = c.verify(token)
    assert claims["sub"] == "user-1" and claims["scope"] == "governance:read"
    assert claims["exp"] - claims["iat"] == 900 and claims["jti"]


def test_jwt_expiry_follows_the_clock_with_30s_leeway(rsa_key: rsa.RSAPrivateKey) -> None:
    clock = FakeClock()
    c = codec(rsa_key, clock)
    token = c.create("u", expires_in=60)
    clock.advance(85)
    c.verify(token)
    clock.advance(10)
    with pytest.raises(TokenInvalid, match="expired"):
        c.verify(token)


def test_jwt_refuses_none_hmac_unknown_kid_and_wrong_audience(
        rsa_key: rsa.RSAPrivateKey) -> None:
    clock = FakeClock()
    c = codec(rsa_key, clock)
    claims = {"iss": "http://stub", "aud": "governance-api", "sub": "u",
              "exp": int(clock.now().timestamp()) + 60}
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": "k1"})
    with pytest.raises(TokenInvalid, match="'none' is not accepted"):
        c.verify(unsigned)
    hs = jwt.encode(claims, "secret" * 6, algorithm="HS256", headers={"kid": "k1"})
    with pytest.raises(TokenInvalid, match="'HS256' is not accepted"):
        c.verify(hs)
    other_kid = jwt.encode(claims, rsa_key, algorithm="RS256", headers={"kid": "k9"})
    with pytest.raises(TokenInvalid, match="'k9' is unknown"):
        c.verify(other_kid)
    wrong_aud = jwt.encode({**claims, "aud": "other"}, rsa_key, algorithm="RS256",
                           headers={"kid": "k1"})
    with pytest.raises(TokenInvalid, match="failed verification"):
        c.verify(wrong_aud)
    with pytest.raises(TokenInvalid, match="not a JWT"):
        c.verify("garbage")


def test_jwt_eddsa_verify_only_codec() -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    clock = FakeClock()
    signer = JwtCodec(issuer="i", audience="a", algorithm="EdDSA", signing_key=key, kid="e1",
                      clock=clock)
    verifier = JwtCodec(issuer="i", audience="a", algorithm="EdDSA",
                        verification_keys={"e1": key.public_key()}, clock=clock)
    assert verifier.verify(signer.create("u"))["sub"] == "u"
    with pytest.raises(ValueError, match="only verifies"):
        verifier.create("u")


def test_jwt_codec_refuses_weak_configuration(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="'HS256' is not allowed"):
        JwtCodec(issuer="i", audience="a", algorithm="HS256")
    with pytest.raises(ValueError, match="at most 30 s"):
        JwtCodec(issuer="i", audience="a", leeway=300)


# -- audit log contract: memory, SQLite, PostgreSQL ---------------------------------------------


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def audit(request: pytest.FixtureRequest) -> tuple[AuditLog, Database | None]:
    if request.param == "memory":
        return AuditLog(b"a" * 32, MemoryAuditStore(), clock=FakeClock()), None
    db: Database = request.getfixturevalue(f"{request.param}_db")
    return AuditLog(b"a" * 32, SqlAuditStore(db), clock=FakeClock()), db


def _fill(log: AuditLog, n: int = 5) -> None:
    for i in range(n):
        log.record("decision.applied", actor=f"user-{i}", resource=f"approval:{i}",
                   details={"action": "veto", "n": i, "ü": None})


def _sql(db: Database, statement: str) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement))


def test_contract_an_untouched_log_verifies(audit: tuple[AuditLog, Database | None]) -> None:
    log, _ = audit
    assert log.verify().ok and log.verify().entries_checked == 0
    _fill(log)
    report = log.verify(batch=2)
    assert report.ok and report.entries_checked == 5
    entries = log.entries()
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[1].prev_hash == entries[0].hash
    assert entries[0].details == {"action": "veto", "n": 0, "ü": None}


def test_contract_edit_is_found(audit: tuple[AuditLog, Database | None]) -> None:
    log, db = audit
    _fill(log)
    if db is None:
        store = log.store
        assert isinstance(store, MemoryAuditStore)
        from dataclasses import replace

        store.rows[2] = replace(store.rows[2], actor="mallory")
    else:
        _sql(db, "UPDATE components_audit_log SET actor = 'mallory' WHERE seq = 3")
    report = log.verify()
    assert not report.ok
    assert any("entry 3: its content was edited" in p for p in report.problems)


def test_contract_deletion_is_found(audit: tuple[AuditLog, Database | None]) -> None:
    log, db = audit
    _fill(log)
    if db is None:
        store = log.store
        assert isinstance(store, MemoryAuditStore)
        del store.rows[1]
    else:
        _sql(db, "DELETE FROM components_audit_log WHERE seq = 2")
    problems = log.verify().problems
    assert any("entries 2..2 were deleted" in p for p in problems)


def test_contract_deleting_the_newest_is_found(audit: tuple[AuditLog, Database | None]) -> None:
    log, db = audit
    _fill(log)
    if db is None:
        store = log.store
        assert isinstance(store, MemoryAuditStore)
        store.rows.pop()
    else:
        _sql(db, "DELETE FROM components_audit_log WHERE seq = 5")
    assert any("newest entries were deleted" in p for p in log.verify().problems)


def test_contract_insertion_is_found(audit: tuple[AuditLog, Database | None]) -> None:
    log, db = audit
    _fill(log, 3)
    forged = AuditLog(b"wrong key" * 4, MemoryAuditStore(), clock=FakeClock())
    _fill(forged, 4)
    fake = forged.entries()[3]  # seq 4, well-formed, but MAC'd with another key
    if db is None:
        store = log.store
        assert isinstance(store, MemoryAuditStore)
        store.rows.append(fake)
    else:
        assert isinstance(log.store, SqlAuditStore)
        with db.engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO components_audit_log VALUES (:seq, :at, :actor, :action, "
                ":resource, '{}', :prev, :hash, :mac)"),
                {"seq": fake.seq, "at": fake.at, "actor": fake.actor, "action": fake.action,
                 "resource": fake.resource, "prev": fake.prev_hash, "hash": fake.hash,
                 "mac": fake.mac})
    problems = log.verify().problems
    assert any("entry 4:" in p for p in problems)


def test_contract_an_empty_log_with_a_head_was_emptied(
        audit: tuple[AuditLog, Database | None]) -> None:
    log, db = audit
    _fill(log, 2)
    if db is None:
        store = log.store
        assert isinstance(store, MemoryAuditStore)
        store.rows.clear()
    else:
        _sql(db, "DELETE FROM components_audit_log")
    assert "entries were deleted" in log.verify().problems[0]


def test_contract_record_once(audit: tuple[AuditLog, Database | None]) -> None:
    log, _ = audit
    first = log.record_once("decision:u:k1", "decision.veto", actor="u", resource="r")
    assert first is not None and first.seq == 1
    assert log.record_once("decision:u:k1", "decision.veto", actor="u", resource="r") is None
    log.record("other", actor="u", resource="r")
    assert log.record_once("decision:u:k2", "decision.veto", actor="u", resource="r") is not None
    assert [e.seq for e in log.entries()] == [1, 2, 3]
    assert log.verify().ok


def test_record_once_from_racing_processes_writes_one_entry(sqlite_db: Database) -> None:
    import threading

    logs = [AuditLog(b"k" * 32, SqlAuditStore(sqlite_db)) for _ in range(4)]
    results: list[object] = []

    def work(log: AuditLog) -> None:
        for n in range(5):
            results.append(log.record_once(f"key-{n}", "x", actor="a", resource="r"))

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r is not None for r in results) == 5
    assert logs[0].verify().entries_checked == 5


def test_a_key_taken_between_the_check_and_the_append_is_not_written_twice() -> None:
    class Racy(MemoryAuditStore):
        appends = 0

        def append(self, entries: Sequence[AuditEntry], head: AuditHead,
                   once_keys: Sequence[str | None] = (), conn: Connection | None = None
                   ) -> bool:
            self.appends += 1
            if self.appends == 1:  # another process wrote the key just before us
                self.keys["k"] = 99
            return super().append(entries, head, once_keys, conn)

    log = AuditLog(b"k" * 32, Racy())
    assert log.record_once("k", "x", actor="a", resource="r") is None
    assert log.entries() == []


def test_record_many_writes_a_batch_in_order_and_skips_recorded_keys(sqlite_db: Database
                                                                     ) -> None:
    from backend_stub.components.security import AuditItem

    log = AuditLog(b"k" * 32, SqlAuditStore(sqlite_db))
    log.record_once("d:1", "x", actor="a", resource="r1")
    items = [AuditItem("x", "a", f"r{n}", {"n": n}, once_key=f"d:{n}") for n in range(1, 6)]
    items.append(AuditItem("x", "a", "r5-again", once_key="d:5"))  # twice in one batch
    items.append(AuditItem("plain", "a", "r"))
    written = log.record_many(items)
    assert [e.resource for e in written] == ["r2", "r3", "r4", "r5", "r"]
    assert [e.seq for e in log.entries()] == list(range(1, 7))
    assert log.verify().ok
    assert log.record_many([AuditItem("x", "a", "r1", once_key="d:1")]) == []


def test_record_keyed_returns_the_entries_written_by_once_key(sqlite_db: Database) -> None:
    from backend_stub.components.security import AuditItem

    log = AuditLog(b"k" * 32, SqlAuditStore(sqlite_db))
    log.record_once("d:1", "x", actor="a", resource="r1")
    written = log.record_keyed([AuditItem("x", "a", "r1", once_key="d:1"),
                                AuditItem("x", "a", "r2", once_key="d:2"),
                                AuditItem("plain", "a", "r")])
    assert list(written) == ["d:2"]  # d:1 was recorded before; a keyless entry has no key
    assert written["d:2"] == log.locate(["d:2"])["d:2"]
    assert [e.seq for e in log.entries()] == [1, 2, 3]


def test_head_tampering_is_found(sqlite_db: Database) -> None:
    log = AuditLog(b"k" * 32, SqlAuditStore(sqlite_db))
    _fill(log, 2)
    _sql(sqlite_db, "UPDATE components_audit_head SET seq = 7")
    assert "head record was edited" in log.verify().problems[0]
    _sql(sqlite_db, "DELETE FROM components_audit_head")
    assert "head record is missing" in log.verify().problems[0]


def test_out_of_sequence_entry_is_reported() -> None:
    store = MemoryAuditStore()
    log = AuditLog(b"k" * 32, store)
    _fill(log, 2)
    from dataclasses import replace

    store.rows.append(replace(store.rows[0], seq=1))
    store.rows.sort(key=lambda r: r.seq)
    assert any("out of sequence" in p for p in log.verify().problems)


def test_a_store_that_never_accepts_gives_up() -> None:
    class Busy(MemoryAuditStore):
        def append(self, entries: Sequence[AuditEntry], head: AuditHead,
                   once_keys: Sequence[str | None] = (), conn: Connection | None = None
                   ) -> bool:
            return False

    with pytest.raises(RuntimeError, match="too busy"):
        AuditLog(b"k" * 32, Busy()).record("x", actor="a", resource="r")


def test_concurrent_appends_keep_the_chain(sqlite_db: Database) -> None:
    import threading

    logs = [AuditLog(b"k" * 32, SqlAuditStore(sqlite_db)) for _ in range(4)]  # 4 "processes"

    def work(log: AuditLog) -> None:
        for i in range(10):
            log.record("x", actor="a", resource=str(i))

    threads = [threading.Thread(target=work, args=(log,)) for log in logs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = logs[0].verify()
    assert report.ok and report.entries_checked == 40


def test_audit_store_protocol_is_met() -> None:
    store: AuditStore = MemoryAuditStore()
    assert store.head() is None


# -- Vault --------------------------------------------------------------------------------------


def test_vault_round_trip_and_associated_data() -> None:
    vault = Vault(b"k" * 32)
    sealed = vault.encrypt(b"attachment bytes", b"approval:1")
    assert b"attachment bytes" not in sealed
    assert vault.decrypt(sealed, b"approval:1") == b"attachment bytes"
    assert vault.encrypt(b"x") != vault.encrypt(b"x")  # fresh nonce each time
    with pytest.raises(DecryptionFailed, match="another record"):
        vault.decrypt(sealed, b"approval:2")


def test_vault_detects_tampering_and_truncation() -> None:
    vault = Vault(b"k" * 32)
    sealed = bytearray(vault.encrypt(b"secret"))
    sealed[-1] ^= 1
    with pytest.raises(DecryptionFailed, match="altered"):
        vault.decrypt(bytes(sealed))
    with pytest.raises(DecryptionFailed, match="truncated"):
        vault.decrypt(b"\x01short")


def test_vault_key_rotation() -> None:
    old, new = b"o" * 32, b"n" * 32
    sealed = Vault(old).encrypt(b"kept")
    assert Vault(new, old_keys=[old]).decrypt(sealed) == b"kept"
    with pytest.raises(DecryptionFailed, match="key this Vault does not hold"):
        Vault(new).decrypt(sealed)
    with pytest.raises(ValueError, match="32 bytes"):
        Vault(b"short")


# -- SecurityLayer (the design's one-object API) ------------------------------------------------


def test_security_layer(rsa_key: rsa.RSAPrivateKey) -> None:
    clock = FakeClock()
    layer = SecurityLayer(b"root secret", clock=clock, jwt_codec=codec(rsa_key, clock))
    sig = layer.hmac_sign({"m": 1})
    assert layer.hmac_verify({"m": 1}, sig)
    assert layer.jwt_verify(layer.jwt_create("customer_123", role="trial"))["role"] == "trial"
    entry = layer.audit_log("decision_made", actor="agent-1", resource="file:README.md",
                            decision={"approved": False})
    assert entry.details == {"decision": {"approved": False}}
    assert layer.decrypt_data(layer.encrypt_data(b"api-key")) == b"api-key"
    bare = SecurityLayer(b"s")
    with pytest.raises(ValueError, match="no JwtCodec"):
        bare.jwt_create("u")
    with pytest.raises(ValueError, match="no JwtCodec"):
        bare.jwt_verify("t")


def test_record_many_in_the_callers_transaction_retries_a_taken_seq_alone(sql_db: Database
                                                                          ) -> None:
    from sqlalchemy import text

    from backend_stub.components.security import AuditItem

    other = AuditLog(b"k" * 32, SqlAuditStore(sql_db))
    other.record("first", actor="a", resource="r0")

    class Stale(SqlAuditStore):
        reads = 0

        def head(self, conn: Connection | None = None) -> AuditHead | None:
            # The first read misses an entry another process added: seq 1 looks free.
            self.reads += 1
            return None if self.reads == 1 else super().head(conn)

    log = AuditLog(b"k" * 32, Stale(sql_db))
    with sql_db.engine.begin() as conn:
        conn.execute(text("INSERT INTO components_cache (cache_key, value, expires_at) "
                          "VALUES ('mine', 'v', 0)"))
        written = log.record_many([AuditItem("x", "a", "r1", once_key="d:1")], conn=conn)
    assert [e.seq for e in written] == [2]
    # The failed append was undone alone: the transaction's own write is kept.
    with sql_db.engine.begin() as conn:
        assert conn.execute(text("SELECT value FROM components_cache "
                                 "WHERE cache_key = 'mine'")).scalar() == "v"
    assert [e.resource for e in log.entries()] == ["r0", "r1"]
    assert log.verify().ok


def test_record_many_in_a_transaction_that_rolls_back_writes_nothing(sql_db: Database
                                                                     ) -> None:
    from backend_stub.components.security import AuditItem

    log = AuditLog(b"k" * 32, SqlAuditStore(sql_db))
    with pytest.raises(OSError), sql_db.engine.begin() as conn:
        log.record_many([AuditItem("x", "a", "r1", once_key="d:1")], conn=conn)
        raise OSError("the decisions' commit failed")
    assert log.entries() == [] and log.store.head() is None
    assert [e.seq for e in log.record_many([AuditItem("x", "a", "r1", once_key="d:1")])] == [1]


@given(seq=st.integers(min_value=1, max_value=2**40), at=st.text(max_size=30),
       actor=st.text(max_size=20), action=st.text(max_size=20), resource=st.text(max_size=20),
       details=st.dictionaries(st.text(max_size=8), st.one_of(
           st.none(), st.booleans(), st.integers(), st.text(max_size=12),
           st.floats(allow_nan=False), st.lists(st.integers(), max_size=3)), max_size=5),
       prev=st.text(max_size=64))
@settings(max_examples=300, deadline=None)
def test_an_entry_hash_put_together_equals_the_hash_of_its_body(
        seq: int, at: str, actor: str, action: str, resource: str, details: dict[str, Any],
        prev: str) -> None:
    from backend_stub.components._support import canonical_json
    from backend_stub.components.security import AuditItem

    item = AuditItem(action, actor, resource, details)
    body = {"seq": seq, "at": at, "actor": actor, "action": action, "resource": resource,
            "details": details, "prev_hash": prev}
    assert AuditLog._entry_hash(seq, at, item, canonical_json(details), prev) == \
        AuditLog._hash(body)


@given(st.dictionaries(st.text(max_size=6), st.one_of(
    st.none(), st.booleans(), st.integers(), st.text(max_size=6), st.floats(),
    st.lists(st.integers(), max_size=2), st.tuples(st.integers())), max_size=5))
def test_values_said_to_survive_json_come_back_as_they_are(value: dict[str, Any]) -> None:
    import json

    from backend_stub.components._support import canonical_json, survives_json

    back = json.loads(canonical_json(value))
    if survives_json(value):
        assert back == value
        assert {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in value.items()}


def test_what_does_not_survive_json_is_named() -> None:
    import enum

    from backend_stub.components._support import survives_json

    class Level(enum.IntEnum):
        HIGH = 1

    assert survives_json({"a": "x", "b": 1, "c": True, "d": None})
    # Any keys: the last one's is an int, which a JSON round trip turns into a string.
    refused: tuple[dict[Any, Any], ...] = (
        {"a": 1.5}, {"a": [1]}, {"a": (1,)}, {"a": {}}, {"a": Level.HIGH}, {1: "x"})
    for value in refused:
        assert not survives_json(value)


@pytest.mark.parametrize("value", [
    {"a": "\x00\x1f\"\\\x7f\u2028\ud7ff\ue000\U0010ffff", "é": [1, True, None, {"z": 2**63 - 1}]},
    {"max": 2**64 - 1, "min": -2**63}, {"beyond": 2**64}, {"below": -2**63 - 1},
    {"surrogate": "\ud800"}, {"float": 1e16, "small": 1e-7, "plain": 0.1}, {"tuple": (1, 2)},
    {1: "an integer key"}, [3, "x", [None]], "text", 7, None])
def test_canonical_json_is_the_standard_encoders_sorted_compact_form(value: Any) -> None:
    """Whichever encoder writes it (orjson for plain values), the bytes are those of
    ``json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)``."""
    import json

    from backend_stub.components._support import canonical_json

    assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False)
