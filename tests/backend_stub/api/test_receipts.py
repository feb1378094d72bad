"""Decision receipts: signed per applied decision, the same on replay, chained to the
audit log; the audit entry and the signed head, scope-checked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import jwt
import pytest
from jwt.algorithms import RSAAlgorithm
from sqlalchemy import Connection, text

from backend_stub.components.security import AuditEntry, AuditLog
from backend_stub.domain.receipts import AUDIT_HEAD_TYP, RECEIPT_TYP, decision_digest
from tests.backend_stub.api.conftest import Api
from tests.backend_stub.api.test_contract import data, error, item


def _keys(api: Api) -> dict[str, Any]:
    jwks = api.client.get("/oauth/jwks.json").json()
    return {k["kid"]: RSAAlgorithm.from_jwk(json.dumps(k)) for k in jwks["keys"]}


def _root(claims: dict[str, Any], path: list[list[str]]) -> str:
    """The Merkle root a leaf's path leads to, computed here independently."""
    canonical = json.dumps(claims, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    node = hashlib.sha256(b"\x00" + canonical.encode()).digest()
    for side, sibling in path:
        pair = bytes.fromhex(sibling) + node if side == "L" else node + bytes.fromhex(sibling)
        node = hashlib.sha256(b"\x01" + pair).digest()
    return node.hex()


def _verify(api: Api, receipt: dict[str, Any]) -> dict[str, Any]:
    header = jwt.get_unverified_header(receipt["jws"])
    assert header["typ"] == RECEIPT_TYP
    signed = jwt.decode(receipt["jws"], _keys(api)[header["kid"]], algorithms=["RS256"])
    assert signed["receipts_root"] == _root(receipt["claims"], receipt["path"])
    claims: dict[str, Any] = receipt["claims"]
    return claims


def test_every_applied_decision_gets_a_receipt_naming_what_was_decided(api: Api) -> None:
    a, b = api.submit(agent_name="A"), api.submit(agent_name="B")
    batch = [item(a["id"], "d1", comment="fine"), item(b["id"], "d2", "veto"),
             item("REQ-0404", "d3")]
    results = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                                   headers=api.auth()))
    assert "receipt" not in results[2]  # rejected: nothing was applied
    first = _verify(api, results[0]["receipt"])
    assert first["decision_id"] == "d1" and first["approval_id"] == a["id"]
    assert first["action"] == "approve" and first["sub"] == "governor"
    assert first["decision_digest"] == decision_digest(
        "d1", a["id"], "approve", expected_version=1, comment="fine")
    assert first["approval_version"] == results[0]["approval"]["version"]
    assert first["applied_at"]
    veto = _verify(api, results[1]["receipt"])
    assert veto["decision_digest"] == decision_digest("d2", b["id"], "veto",
                                                      category="safety", reason="because")
    # Each names its own audit-log entry, written in the decision's transaction.
    entries = {e.seq: e for e in api.app.state.audit_log.entries()}
    for claims in (first, veto):
        entry = entries[claims["audit"]["seq"]]
        assert entry.hash == claims["audit"]["hash"]
        assert entry.resource == f"approval:{claims['approval_id']}"
        assert AuditLog.entry_hash(entry) == entry.hash


def test_a_replay_returns_the_very_same_receipt(api: Api) -> None:
    a = api.submit()
    batch = [item(a["id"], "d1")]
    first = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                                 headers=api.auth()))[0]
    api.clock.advance(60)
    again = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                                 headers=api.auth()))[0]
    assert again["outcome"] == "replayed"
    assert again["receipt"] == first["receipt"]


def test_a_fresh_batch_names_the_audit_entries_it_wrote_without_looking_them_up(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entries written with the batch come back from the write (no second query); only
    a replay's entry, written by an earlier request, is looked up."""
    a, b = api.submit(agent_name="A"), api.submit(agent_name="B")
    log: AuditLog = api.app.state.audit_log
    looked_up: list[list[str]] = []
    locate = log.locate

    def recording_locate(keys: Sequence[str], conn: Connection | None = None
                         ) -> dict[str, AuditEntry]:
        looked_up.append(list(keys))
        return locate(keys, conn)

    monkeypatch.setattr(log, "locate", recording_locate)
    first = data(api.client.post("/v1/mobile/decisions", json={"decisions": [
        item(a["id"], "d1")]}, headers=api.auth()))
    assert looked_up == []
    assert _verify(api, first[0]["receipt"])["audit"]["seq"] == log.entries()[-1].seq
    both = data(api.client.post("/v1/mobile/decisions", json={"decisions": [
        item(a["id"], "d1"), item(b["id"], "d2")]}, headers=api.auth()))
    assert [r["outcome"] for r in both] == ["replayed", "applied"]
    assert looked_up == [["decision:governor:d1"]]
    assert both[0]["receipt"] == first[0]["receipt"]
    assert _verify(api, both[1]["receipt"])["audit"]["seq"] == log.entries()[-1].seq


def test_single_decision_routes_answer_with_a_receipt_in_meta(api: Api) -> None:
    a = api.submit()
    headers = {**api.auth(), "Idempotency-Key": "k-approve"}
    response = api.client.post(f"/v1/mobile/approvals/{a['id']}/approve",
                               json={"expected_version": 1}, headers=headers)
    assert response.status_code == 200
    claims = _verify(api, response.json()["meta"]["receipt"])
    assert claims["decision_id"] == "k-approve" and claims["action"] == "approve"
    replay = api.client.post(f"/v1/mobile/approvals/{a['id']}/approve",
                             json={"expected_version": 1}, headers=headers)
    assert replay.json()["meta"]["receipt"] == response.json()["meta"]["receipt"]
    refused = api.client.post(f"/v1/mobile/approvals/{a['id']}/approve",
                              json={"expected_version": 1},
                              headers={**api.auth(), "Idempotency-Key": "k-other"})
    assert refused.status_code == 409 and "receipt" not in refused.json()["meta"]


def test_receipts_verify_after_the_signing_key_rotates(api: Api) -> None:
    a = api.submit()
    receipt = data(api.client.post("/v1/mobile/decisions",
                                   json={"decisions": [item(a["id"], "d1")]},
                                   headers=api.auth()))[0]["receipt"]
    old_kid = jwt.get_unverified_header(receipt["jws"])["kid"]
    api.app.state.keys.rotate()
    assert _verify(api, receipt)["decision_id"] == "d1"  # the old key is still published
    b = api.submit(agent_name="B")
    newer = data(api.client.post("/v1/mobile/decisions",
                                 json={"decisions": [item(b["id"], "d2")]},
                                 headers=api.auth()))[0]["receipt"]
    assert jwt.get_unverified_header(newer["jws"])["kid"] != old_kid


def test_the_decider_reads_their_audit_entry_and_checks_it_against_the_signed_head(
        api: Api) -> None:
    a = api.submit()
    receipt = data(api.client.post("/v1/mobile/decisions",
                                   json={"decisions": [item(a["id"], "d1")]},
                                   headers=api.auth()))[0]["receipt"]
    claims = _verify(api, receipt)
    read = api.auth(("governance:read",))
    entry = data(api.client.get("/v1/mobile/audit/decisions/d1", headers=read))
    assert (entry["seq"], entry["hash"]) == (claims["audit"]["seq"], claims["audit"]["hash"])
    body = {k: entry[k] for k in ("seq", "at", "actor", "action", "resource", "details",
                                  "prev_hash")}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert hashlib.sha256(canonical.encode()).hexdigest() == entry["hash"]
    head = data(api.client.get("/v1/mobile/audit/head", headers=read))
    header = jwt.get_unverified_header(head["signed"])
    assert header["typ"] == AUDIT_HEAD_TYP
    signed = jwt.decode(head["signed"], _keys(api)[header["kid"]], algorithms=["RS256"])
    assert signed["audit_head"] == {"seq": head["seq"], "hash": head["hash"]}
    assert signed["audit_head"]["seq"] >= entry["seq"]


def test_only_the_decider_or_an_auditor_reads_a_decisions_audit_entry(api: Api) -> None:
    a = api.submit()
    api.client.post("/v1/mobile/decisions", json={"decisions": [item(a["id"], "d1")]},
                    headers=api.auth())
    other = api.auth(("governance:read",), sub="someone-else")
    missing = api.client.get("/v1/mobile/audit/decisions/d1", headers=other)
    assert missing.status_code == 404 and "'someone-else'" in error(missing)["message"]
    peeking = api.client.get("/v1/mobile/audit/decisions/d1?subject=governor", headers=other)
    assert peeking.status_code == 403
    assert error(peeking)["code"] == "INSUFFICIENT_SCOPE"
    auditor = api.auth(("governance:read",), sub="auditor")
    seen = api.client.get("/v1/mobile/audit/decisions/d1?subject=governor", headers=auditor)
    assert seen.status_code == 200 and data(seen)["actor"] == "governor"
    assert api.client.get("/v1/mobile/audit/decisions/d1").status_code == 401


def test_the_head_of_an_empty_log_is_not_found(api: Api) -> None:
    response = api.client.get("/v1/mobile/audit/head", headers=api.auth(("governance:read",)))
    assert response.status_code == 404
    assert "empty" in error(response)["message"]


def test_one_signature_covers_a_batch_and_each_receipt_verifies_alone(api: Api) -> None:
    approvals = [api.submit(agent_name=f"A{i}") for i in range(5)]
    results = data(api.client.post("/v1/mobile/decisions", json={"decisions": [
        item(a["id"], f"d{i}") for i, a in enumerate(approvals)]}, headers=api.auth()))
    receipts = [r["receipt"] for r in results]
    assert len({r["jws"] for r in receipts}) == 1  # one RSA signature for the batch
    assert [_verify(api, r)["decision_id"] for r in receipts] == [f"d{i}" for i in range(5)]
    forged = {**receipts[0], "claims": {**receipts[0]["claims"], "action": "veto"}}
    with pytest.raises(AssertionError):
        _verify(api, forged)


def _stored_receipts(api: Api) -> list[tuple[str, str, str | None]]:
    with api.app.state.db.engine.connect() as conn:
        return [(r[0], r[1], r[2]) for r in conn.execute(text(
            "SELECT decision_id, receipt, signature FROM decision_receipts "
            "ORDER BY decision_id"))]


def test_a_batch_stores_its_signature_once_and_replays_each_receipt_whole(api: Api) -> None:
    approvals = [api.submit(agent_name=f"A{i}") for i in range(3)]
    batch = [item(a["id"], f"d{i}") for i, a in enumerate(approvals)]
    first = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                                 headers=api.auth()))
    jws = first[0]["receipt"]["jws"]
    with api.app.state.db.engine.connect() as conn:
        signatures = conn.execute(text(
            "SELECT sha256, jws FROM decision_receipt_signatures")).all()
    assert [tuple(r) for r in signatures] == [(hashlib.sha256(jws.encode()).hexdigest(), jws)]
    rows = _stored_receipts(api)
    assert {signature for _, _, signature in rows} == {signatures[0][0]}
    assert all(jws not in receipt for _, receipt, _ in rows)  # not once per decision
    again = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                                 headers=api.auth()))
    assert [r["outcome"] for r in again] == ["replayed"] * 3
    assert [r["receipt"] for r in again] == [r["receipt"] for r in first]
    assert list(again[0]["receipt"]) == ["jws", "claims", "path"]  # as first answered


def test_a_receipt_stored_whole_before_signatures_were_shared_replays_as_stored(
        api: Api) -> None:
    """A row written before ``receipts_0002`` holds its JWS itself (no ``signature``)."""
    a = api.submit()
    batch = [item(a["id"], "d1")]
    first = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                                 headers=api.auth()))[0]
    with api.app.state.db.engine.begin() as conn:
        conn.execute(text("UPDATE decision_receipts SET receipt = :r, signature = NULL"),
                     {"r": json.dumps(first["receipt"])})
        conn.execute(text("DELETE FROM decision_receipt_signatures"))
    again = data(api.client.post("/v1/mobile/decisions", json={"decisions": batch},
                                 headers=api.auth()))[0]
    assert again["outcome"] == "replayed"
    assert again["receipt"] == first["receipt"]


@pytest.mark.parametrize("action", ["approve", "request_changes", "veto"])
def test_an_independent_jose_library_verifies_receipts(api: Api, action: str) -> None:
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import KeySet

    a = api.submit()
    receipt = data(api.client.post("/v1/mobile/decisions",
                                   json={"decisions": [item(a["id"], "d1", action)]},
                                   headers=api.auth()))[0]["receipt"]
    keys = KeySet.import_key_set(api.client.get("/oauth/jwks.json").json())
    token = jose_jwt.decode(receipt["jws"], keys, algorithms=["RS256"])
    assert token.header["typ"] == RECEIPT_TYP
    assert token.claims["receipts_root"] == _root(receipt["claims"], receipt["path"])
    assert receipt["claims"]["decision_id"] == "d1" and receipt["claims"]["action"] == action
