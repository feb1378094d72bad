"""Receipts kept and checked offline: good ones verify; tampered, re-signed with another
key and replayed (another decision's or another request's) receipts are refused."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from governor_app.cli import main as governor_main
from sync.models import Attachment, DecisionAction, OutboxState, Receipt
from sync.receipts import KeySet, canonical, decision_digest, receipt_from_row
from sync.store import MIGRATIONS, LocalStore, Outcome

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks(*pairs: tuple[str, Any]) -> dict[str, Any]:
    keys = []
    for kid, key in pairs:
        jwk = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
        keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
    return {"keys": keys}


def sign_jws(payload: dict[str, Any], key: Any = KEY, kid: str = "k1",
             typ: str = "governor-receipts+jwt") -> str:
    return jwt.encode({"iss": "http://stub", "iat": 1, **payload}, key, algorithm="RS256",
                      headers={"kid": kid, "typ": typ})


def sign_all(claims: list[dict[str, Any]], key: Any = KEY, kid: str = "k1",
             typ: str = "governor-receipts+jwt") -> list[str]:
    """Receipts as the stub makes them: one JWS over the Merkle root of the batch."""
    from backend_stub.domain.receipts import leaf_hash, merkle

    root, paths = merkle([leaf_hash(c) for c in claims])
    jws = sign_jws({"receipts_root": root.hex(), "receipts_count": len(claims)}, key, kid,
                   typ)
    return [json.dumps({"jws": jws, "claims": c, "path": p})
            for c, p in zip(claims, paths, strict=True)]


def sign(claims: dict[str, Any], key: Any = KEY, kid: str = "k1",
         typ: str = "governor-receipts+jwt") -> str:
    # Signed among others, so the receipt has a Merkle path to check.
    others = [{**claims, "decision_id": f"other-{i}"} for i in range(4)]
    return sign_all([others[0], claims, *others[1:]], key, kid, typ)[1]


def queue(store: LocalStore, entry_id: str, approval_id: str = "APR-1", *,
          action: DecisionAction = DecisionAction.VETO, reason: str = "unsafe host",
          files: tuple[Attachment, ...] = ()) -> dict[str, Any]:
    payload = {"id": entry_id, "approval_id": approval_id, "action": action.value,
               "category": "safety", "reason": reason, "decided_at": "2026-01-01T12:00:00Z",
               "device_id": "dev"}
    store.enqueue(entry_id=entry_id, kind="decision", payload=payload, created_at=NOW,
                  approval_id=approval_id, action=action, sub="governor", attachments=files)
    return payload


def claims_for(payload: dict[str, Any], files: tuple[Attachment, ...] = ()) -> dict[str, Any]:
    return {"sub": "governor", "decision_id": payload["id"],
            "approval_id": payload["approval_id"], "action": payload["action"],
            "decision_digest": decision_digest(payload, [a.model_dump() for a in files]),
            "applied_at": "2026-01-01T12:05:00Z", "approval_version": 3,
            "audit": {"seq": 7, "hash": "ab" * 32}}


def receive(store: LocalStore, entry_id: str, token: str) -> None:
    store.record_outcomes([Outcome(entry_id, applied=True, receipt=token)], NOW)


def checked(store: LocalStore, approval_id: str | None = None) -> list[Receipt]:
    keys = KeySet(store.signing_keys())
    return [receipt_from_row(r, keys) for r in store.receipt_rows(approval_id)]


@pytest.fixture
def store() -> LocalStore:
    s = LocalStore()
    s.save_signing_keys(jwks(("k1", KEY)), NOW)
    return s


def test_a_good_receipt_verifies_offline_and_names_its_audit_entry(store: LocalStore) -> None:
    files = (Attachment(name="log.txt", content_type="text/plain",
                        data_base64=base64.b64encode(b"evidence bytes").decode()),)
    payload = queue(store, "d1", files=files)
    [awaiting] = checked(store)
    assert awaiting.status == "awaiting"
    receive(store, "d1", sign(claims_for(payload, files)))
    [receipt] = checked(store, "APR-1")
    assert receipt.status == "verified", receipt.problem
    assert (receipt.audit_seq, receipt.applied_at) == (7, "2026-01-01T12:05:00Z")


def test_the_digest_matches_the_stubs_for_the_same_decision() -> None:
    from backend_stub.domain.receipts import decision_digest as stub_digest

    payload = {"id": "d1", "approval_id": "APR-1", "action": "veto", "category": "safety",
               "reason": "naïve — ünicode", "decided_at": "x", "device_id": "y"}
    files = [{"name": "a", "content_type": "text/plain",
              "data_base64": base64.b64encode(b"\x00\x01").decode()}]
    assert decision_digest(payload, files) == stub_digest(
        "d1", "APR-1", "veto", category="safety", reason="naïve — ünicode",
        attachments=[("a", "text/plain", b"\x00\x01")])


def _json_digest(payload: dict[str, Any]) -> str:
    body: dict[str, Any] = {
        "decision_id": payload.get("id"), "approval_id": payload.get("approval_id"),
        "action": payload.get("action"),
        **{k: payload.get(k) for k in ("expected_version", "category", "reason", "comment")},
        "attachments": []}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


@pytest.mark.parametrize("text", [
    "plain", "naïve — ünicode", "quote \" back\\slash", "tab\tnew\nline\r\x08\x0c",
    "".join(chr(c) for c in range(0x20)), "\x7f\u2028\u2029\ufeff\U0001f600"])
def test_the_digest_is_the_canonical_json_digest_for_any_text(text: str) -> None:
    # The digest is computed with orjson on the tap's path; it must be the bytes of
    # ``canonical`` (json, sorted, no whitespace, UTF-8) for every string a governor types.
    payload = {"id": "d1", "approval_id": "APR-1", "action": "approve",
               "expected_version": 3, "comment": text}
    assert decision_digest(payload) == _json_digest(payload)


@pytest.mark.parametrize("version", [1.5e-07, 2**70])
def test_values_orjson_writes_otherwise_are_digested_as_canonical_json(version: Any) -> None:
    # A float (orjson writes 1e-7, json 1e-07) or an integer beyond 64 bits cannot come
    # from the engine, but the digest must not depend on which encoder wrote it.
    payload = {"id": "d1", "approval_id": "APR-1", "action": "approve",
               "expected_version": version}
    assert decision_digest(payload) == _json_digest(payload)


def test_a_receipt_with_altered_claims_is_refused(store: LocalStore) -> None:
    payload = queue(store, "d1")
    receipt = json.loads(sign(claims_for(payload)))
    receipt["claims"]["audit"]["seq"] = 1  # claims the decision sits elsewhere in the log
    receive(store, "d1", json.dumps(receipt))
    [checked_receipt] = checked(store)
    assert checked_receipt.status == "invalid"
    assert "altered after signing" in (checked_receipt.problem or "")


def test_a_receipt_with_a_tampered_signed_part_is_refused(store: LocalStore) -> None:
    payload = queue(store, "d1")
    receipt = json.loads(sign(claims_for(payload)))
    header, body, signature = receipt["jws"].split(".")
    signed = json.loads(base64.urlsafe_b64decode(body + "=="))
    signed["receipts_count"] = 99
    forged = base64.urlsafe_b64encode(json.dumps(signed).encode()).rstrip(b"=").decode()
    receipt["jws"] = f"{header}.{forged}.{signature}"
    receive(store, "d1", json.dumps(receipt))
    [checked_receipt] = checked(store)
    assert checked_receipt.status == "invalid"
    assert "signature does not verify" in (checked_receipt.problem or "")


@pytest.mark.parametrize("kid, why", [("k1", "signature does not verify"),
                                      ("k-unknown", "never published")])
def test_a_receipt_signed_with_another_key_is_refused(store: LocalStore, kid: str,
                                                      why: str) -> None:
    payload = queue(store, "d1")
    receive(store, "d1", sign(claims_for(payload), key=OTHER_KEY, kid=kid))
    [receipt] = checked(store)
    assert receipt.status == "invalid" and why in (receipt.problem or "")


def test_a_receipt_of_another_decision_is_refused(store: LocalStore) -> None:
    a = queue(store, "dA", "APR-1")
    queue(store, "dB", "APR-1", reason="another reason")
    receive(store, "dA", sign(claims_for(a)))
    receive(store, "dB", sign(claims_for(a)))  # A's receipt presented for B
    good, replayed = checked(store)
    assert good.status == "verified"
    assert replayed.status == "invalid" and "decision_id 'dA'" in (replayed.problem or "")


def test_a_receipt_of_another_request_is_refused(store: LocalStore) -> None:
    payload = queue(store, "d1", "APR-1")
    receive(store, "d1", sign({**claims_for(payload), "approval_id": "APR-2"}))
    [receipt] = checked(store)
    assert receipt.status == "invalid" and "approval_id 'APR-2'" in (receipt.problem or "")


def test_a_receipt_for_a_different_body_is_refused(store: LocalStore) -> None:
    payload = queue(store, "d1")
    receive(store, "d1", sign(claims_for({**payload, "reason": "something else"})))
    [receipt] = checked(store)
    assert receipt.status == "invalid" and "digest" in (receipt.problem or "")


@pytest.mark.parametrize("token, why", [
    ("not a receipt", "not a receipt"),
    (json.dumps({"jws": "x.y", "claims": {}, "path": []}), "not a JWS"),
    (sign({"decision_id": "d1"}, typ="JWT"), "not a decision receipt"),
    (json.dumps({"jws": jwt.encode({"receipts_root": "00"}, "secret" * 6, algorithm="HS256",
                                   headers={"kid": "k1", "typ": "governor-receipts+jwt"}),
                 "claims": {}, "path": []}), "algorithm 'HS256'"),
])
def test_what_is_not_a_receipt_is_refused(store: LocalStore, token: str, why: str) -> None:
    queue(store, "d1")
    receive(store, "d1", token)
    [receipt] = checked(store)
    assert receipt.status == "invalid" and why in (receipt.problem or "")


def test_keys_the_server_retired_stay_cached(store: LocalStore) -> None:
    payload = queue(store, "d1")
    receive(store, "d1", sign(claims_for(payload)))
    assert store.save_signing_keys(jwks(("k2", OTHER_KEY)), NOW) == 1  # k1 retired there
    assert set(store.signing_keys()) == {"k1", "k2"}
    assert checked(store)[0].status == "verified"


def test_cancelled_and_rejected_decisions_await_no_receipt(store: LocalStore) -> None:
    queue(store, "d1")
    queue(store, "d2", "APR-2")
    store.remove("d1", {OutboxState.QUEUED})
    store.record_outcomes([Outcome("d2", applied=False, error_code="ALREADY_DECIDED",
                                   error_message="x")], NOW)
    assert checked(store) == []


def test_a_decision_awaits_its_receipt_from_the_outbox_until_the_server_takes_it(
        store: LocalStore) -> None:
    """A tap writes no receipt row: the queued decision awaits its receipt from its outbox
    entry; the row is written when the server takes it (answer with or without a receipt)
    and outlives the entry."""
    payload = queue(store, "d1")
    queue(store, "d2", "APR-2")
    with store.reading() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM receipt").scalar_one() == 0
    assert [(r.decision_id, r.status) for r in checked(store)] == [
        ("d1", "awaiting"), ("d2", "awaiting")]
    receive(store, "d1", sign(claims_for(payload)))
    store.record_outcomes([Outcome("d2", applied=True)], NOW)  # a server without receipts
    assert store.prune_applied(datetime(2026, 2, 1, tzinfo=UTC)) == 2
    assert [(r.decision_id, r.status) for r in checked(store)] == [
        ("d1", "verified"), ("d2", "awaiting")]
    assert [r["digest"] for r in store.receipt_rows("APR-1")] == [decision_digest(payload)]


def test_a_decision_queued_before_receipts_were_kept_gets_its_digest_on_arrival(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    before = [m.name for m in MIGRATIONS].index("0014_outbox_digest")
    LocalStore(path, migrations=MIGRATIONS[:before]).close()
    payload = {"id": "old-1", "approval_id": "APR-1", "action": "veto", "category": "safety",
               "reason": "old", "decided_at": "2026-01-01T12:00:00Z", "device_id": "dev"}
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO outbox (id, seq, kind, approval_id, action, payload, state, "
            "created_at, updated_at, sub) VALUES ('old-1', 1, 'decision', 'APR-1', 'veto', "
            "?, 'sending', '2026-01-01T12:00:00+00:00', '2026-01-01T12:00:00+00:00', "
            "'governor')", (json.dumps(payload),))
    store = LocalStore(path)
    store.save_signing_keys(jwks(("k1", KEY)), NOW)
    receive(store, "old-1", sign(claims_for(payload)))
    [receipt] = checked(store)
    assert receipt.status == "verified", receipt.problem


def test_governor_receipts_verify_lists_each_bad_receipt_and_fails(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = LocalStore(tmp_path / "governor.db")
    store.save_signing_keys(jwks(("k1", KEY)), NOW)
    good = queue(store, "good")
    receive(store, "good", sign(claims_for(good)))
    assert governor_main(["receipts", "verify", "--data-dir", str(tmp_path)]) == 0
    assert "1 receipt(s) verified, 0 invalid" in capsys.readouterr().out
    bad = queue(store, "bad", "APR-2")
    receive(store, "bad", sign(claims_for(bad), key=OTHER_KEY))
    store.close()
    assert governor_main(["receipts", "verify", "--data-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("INVALID bad (veto of APR-2): its signature does not")
    assert "1 receipt(s) verified, 1 invalid" in captured.out


def test_governor_receipts_verify_without_a_database_says_where_it_looked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert governor_main(["receipts", "verify", "--data-dir", str(tmp_path / "none")]) == 2
    assert "no local database" in capsys.readouterr().err


def _entry(seq: int = 7) -> dict[str, Any]:
    import hashlib

    body = {"seq": seq, "at": "2026-01-01T12:05:00Z", "actor": "governor",
            "action": "decision.veto", "resource": "approval:APR-1",
            "details": {"idempotency_key": "d1"}, "prev_hash": "0" * 64}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                            .encode()).hexdigest()
    return {**body, "hash": digest}


def _verified_receipt(store: LocalStore, entry: dict[str, Any]) -> Receipt:
    payload = queue(store, "d1")
    receive(store, "d1", sign({**claims_for(payload),
                               "audit": {"seq": entry["seq"], "hash": entry["hash"]}}))
    [receipt] = checked(store)
    assert receipt.status == "verified"
    return receipt


def _head(seq: int, hash_: str, key: Any = KEY) -> str:
    return sign_jws({"audit_head": {"seq": seq, "hash": hash_}}, key=key,
                    typ="governor-audit-head+jwt")


def test_the_audit_entry_of_a_decision_checks_against_the_signed_head(
        store: LocalStore) -> None:
    from sync.receipts import check_audit_entry

    entry = _entry()
    receipt = _verified_receipt(store, entry)
    keys = KeySet(store.signing_keys())
    assert check_audit_entry(entry, _head(9, "f" * 64), keys, receipt) is None
    assert check_audit_entry(entry, _head(7, entry["hash"]), keys, receipt) is None


@pytest.mark.parametrize("change, why", [
    (lambda e, h: ({**e, "actor": "someone"}, h), "content was changed"),
    (lambda e, h: (_entry(8), h), "not the one the receipt"),
    (lambda e, h: (e, _head(9, "f" * 64, key=OTHER_KEY)), "signature does not verify"),
    (lambda e, h: (e, _head(6, "f" * 64)), "does not cover entry 7"),
    (lambda e, h: (e, sign_jws({"audit_head": {"seq": 9}})), "not a governor-audit-head"),
])
def test_a_changed_entry_or_a_bad_head_is_refused(store: LocalStore, change: Any,
                                                  why: str) -> None:
    from sync.receipts import check_audit_entry

    entry = _entry()
    receipt = _verified_receipt(store, entry)
    changed_entry, head = change(entry, _head(9, "f" * 64))
    problem = check_audit_entry(changed_entry, head, KeySet(store.signing_keys()), receipt)
    assert problem is not None and why in problem


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_every_receipt_of_a_batch_verifies_alone(store: LocalStore, size: int) -> None:
    payloads = [queue(store, f"d{i}", f"APR-{i}") for i in range(size)]
    for payload, receipt in zip(payloads, sign_all([claims_for(p) for p in payloads]),
                                strict=True):
        receive(store, payload["id"], receipt)
    assert [r.status for r in checked(store)] == ["verified"] * size
