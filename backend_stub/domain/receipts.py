"""Decision receipts: signed with the stub's published keys, for every applied decision.

A receipt is ``{"jws", "claims", "path"}``: ``claims`` name the decision; ``jws`` is a
compact JWS (RS256, ``kid``) over the Merkle root of the claims of every decision applied in
the same batch, and ``path`` proves these claims are a leaf of that tree (RFC 9162-style
hashing: a leaf is ``SHA-256(0x00 || canonical claims)``, a node ``SHA-256(0x01 || left ||
right)``). One signature per batch: a 500-decision batch pays for one RSA signature, not
500, and a receipt still verifies alone. ``claims`` (see ``docs/api.md``):

- ``decision_id``: the decision's id (the batch item's ``id``, or the ``Idempotency-Key`` of
  a single-decision route), ``approval_id``, ``action``;
- ``decision_digest``: ``sha256:`` and the hex SHA-256 of the decision body in canonical
  form (``decision_digest()``), so the decider can check it names what they sent;
- ``applied_at`` (RFC 3339), ``approval_version`` (the request's version after it);
- ``audit``: ``{"seq", "hash"}``, the audit-log entry written for the decision in the
  decision's own transaction, so its position in the chain is known when the receipt is
  signed (both commit together or not at all).

The receipt is stored with the decision, in the same transaction: a replay (same key)
answers with the very receipt the first answer carried. The batch's JWS is stored once
(``decision_receipt_signatures``), each decision's claims and path beside its row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import jwt
import orjson
from sqlalchemy import Connection, bindparam, text

from backend_stub.clock import Clock, rfc3339
from backend_stub.components._support import insert_rows
from backend_stub.components.security import AuditEntry, AuditLog
from backend_stub.db import Database, Migration
from backend_stub.oauth.keys import ALGORITHM, KeyRing

RECEIPT_TYP = "governor-receipts+jwt"
AUDIT_HEAD_TYP = "governor-audit-head+jwt"

# The audit log's once key for a decision (``components.hooks`` writes the entry under it).
Locator = Callable[[Sequence[str], Connection], dict[str, AuditEntry]]


def _create(conn: Connection) -> None:
    conn.execute(text(
        "CREATE TABLE decision_receipts (sub VARCHAR(200) NOT NULL, "
        "decision_id VARCHAR(200) NOT NULL, approval_id VARCHAR(64) NOT NULL, "
        "receipt TEXT NOT NULL, audit_seq INTEGER, created_at VARCHAR(40) NOT NULL, "
        "PRIMARY KEY (sub, decision_id))"))


def _batch_signatures(conn: Connection) -> None:
    # A batch's receipts share one JWS: stored once, by its SHA-256, not once per receipt
    # (~700 bytes each, a third of a 500-decision batch's receipts). A row without
    # ``signature`` (written before) keeps its JWS inside ``receipt``.
    conn.execute(text(
        "CREATE TABLE decision_receipt_signatures (sha256 VARCHAR(64) PRIMARY KEY, "
        "jws TEXT NOT NULL)"))
    conn.execute(text("ALTER TABLE decision_receipts ADD COLUMN signature VARCHAR(64)"))


MIGRATIONS = [Migration("receipts_0001_decision_receipts", _create),
              Migration("receipts_0002_batch_signatures", _batch_signatures)]


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) for the values a receipt holds (text, integers, null, lists,
    objects): sorted keys, no whitespace, UTF-8 (what ``json.dumps(sort_keys=True,
    separators=(",", ":"), ensure_ascii=False)`` gives, at orjson's speed)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def decision_digest(decision_id: str, approval_id: str, action: str, *,
                    expected_version: int | None = None, category: str | None = None,
                    reason: str | None = None, comment: str | None = None,
                    attachments: Sequence[tuple[str, str, bytes]] = ()) -> str:
    """``sha256:<hex>`` of the decision body in canonical form; ``attachments`` as
    (name, content type, bytes), each represented by its SHA-256."""
    body = {"decision_id": decision_id, "approval_id": approval_id, "action": action,
            "expected_version": expected_version, "category": category, "reason": reason,
            "comment": comment,
            "attachments": [{"name": n, "content_type": c,
                             "sha256": hashlib.sha256(d).hexdigest()}
                            for n, c, d in attachments]}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def leaf_hash(claims: dict[str, Any]) -> bytes:
    return hashlib.sha256(b"\x00" + canonical(claims)).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle(leaves: Sequence[bytes]) -> tuple[bytes, list[list[list[str]]]]:
    """The root over ``leaves`` and, per leaf, its path: ``[side, sibling hex]`` from the
    leaf up, ``side`` ``"L"`` when the sibling is on the left. An odd node out at a level
    goes up unchanged."""
    paths: list[list[list[str]]] = [[] for _ in leaves]
    # Per level, the node each leaf is under: a leaf's sibling is the node at index ^ 1.
    under = list(range(len(leaves)))
    level = list(leaves)
    while len(level) > 1:
        hexes = [h.hex() for h in level]  # each node's hex once, not once per leaf under it
        last = len(level) - 1
        for leaf, index in enumerate(under):
            if index % 2:
                paths[leaf].append(["L", hexes[index - 1]])
            elif index < last:
                paths[leaf].append(["R", hexes[index + 1]])
            under[leaf] = index // 2
        level = [_node(level[j], level[j + 1]) for j in range(0, last, 2)] + (
            [level[-1]] if len(level) % 2 else [])
    return level[0], paths


def command_digest(command: Any) -> str:
    return decision_digest(
        command.key, command.approval_id, command.action,
        expected_version=command.expected_version, category=command.category,
        reason=command.reason, comment=command.comment,
        attachments=[(a.name, a.content_type, a.data) for a in command.attachments])


class ReceiptSigner:
    """Signs receipts and the audit head with the key ring's current key (``kid`` in the
    header), so the key set at ``/oauth/jwks.json`` verifies them."""

    def __init__(self, keys: KeyRing, clock: Clock, *, issuer: str) -> None:
        self.keys = keys
        self.clock = clock
        self.issuer = issuer

    def sign(self, claims: dict[str, Any], typ: str = RECEIPT_TYP) -> str:
        key = self.keys.signing_key()
        payload = {"iss": self.issuer, "iat": int(self.clock.now().timestamp()), **claims}
        return jwt.encode(payload, key.private_key, algorithm=ALGORITHM,
                          headers={"kid": key.kid, "typ": typ})

    def sign_receipts(self, claims: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """A receipt per claims, all under one signature over their Merkle root."""
        root, paths = merkle([leaf_hash(c) for c in claims])
        jws = self.sign({"receipts_root": root.hex(), "receipts_count": len(claims)})
        return [{"jws": jws, "claims": c, "path": p}
                for c, p in zip(claims, paths, strict=True)]


class ReceiptBook:
    """Issues a receipt per applied decision and keeps it for replays."""

    def __init__(self, db: Database, signer: ReceiptSigner,
                 audit_log: AuditLog | None = None) -> None:
        self.db = db
        self.signer = signer
        self.audit_log = audit_log

    def writer(self, sub: str, commands: Sequence[Any],
               inner: Callable[[Connection, Sequence[Any]], Mapping[str, AuditEntry]] | None,
               issued: dict[str, Any]) -> Callable[[Connection, Sequence[Any]], None]:
        """An ``also`` for ``GovernanceService.decide``: runs ``inner`` (the audit log's,
        which returns the entries it wrote by once key) first, then puts each applied or
        replayed decision's receipt in ``issued`` (by decision id), signing and storing the
        new ones in the same transaction."""

        # A scheduled key rotation writes to the database: let it happen now, before the
        # decisions' transaction holds the write lock, not while signing inside it.
        self.signer.keys.signing_key()

        def write(conn: Connection, results: Sequence[Any]) -> None:
            written = inner(conn, results) if inner is not None else {}
            done = [(c, r) for c, r in zip(commands, results, strict=False)
                    if r.outcome in ("applied", "replayed")]
            if not done:
                return
            keys = list(dict.fromkeys(c.key for c, _ in done))
            # Only a replay can have a receipt already; a fresh decision never has.
            stored = self._stored(conn, sub, list(dict.fromkeys(
                c.key for c, r in done if r.outcome == "replayed")))
            positions = self._positions(conn, sub, keys, written)
            fresh: dict[str, tuple[Any, dict[str, Any]]] = {}
            for command, result in done:
                if command.key in stored:
                    issued[command.key] = stored[command.key]
                elif command.key not in fresh:  # the same decision twice: one receipt
                    fresh[command.key] = (command, self._claims(
                        sub, command, result, positions.get(command.key)))
            if not fresh:
                return
            receipts = self.signer.sign_receipts([c for _, c in fresh.values()])
            jws = receipts[0]["jws"]  # one signature for the batch: stored once
            signature = hashlib.sha256(jws.encode()).hexdigest()
            insert_rows(conn, "decision_receipt_signatures", ("sha256", "jws"),
                        [(signature, jws)])
            rows = []
            now = rfc3339(self.signer.clock.now())
            for (command, _), receipt in zip(fresh.values(), receipts, strict=True):
                issued[command.key] = receipt
                entry = positions.get(command.key)
                stored = {"claims": receipt["claims"], "path": receipt["path"]}
                rows.append((sub, command.key, command.approval_id,
                             orjson.dumps(stored).decode(), signature,
                             entry.seq if entry else None, now))
            # Through the driver: 500 rows cost SQLAlchemy more than the inserts.
            insert_rows(conn, "decision_receipts", ("sub", "decision_id", "approval_id",
                                                    "receipt", "signature", "audit_seq",
                                                    "created_at"), rows)

        return write

    def _claims(self, sub: str, command: Any, result: Any, entry: AuditEntry | None
                ) -> dict[str, Any]:
        approval = result.approval or {}
        meta = (result.body or {}).get("meta") or {}
        applied_at = meta.get("timestamp") or approval.get("decided_at")
        if isinstance(applied_at, datetime):
            applied_at = rfc3339(applied_at)
        claims = {"sub": sub, "decision_id": command.key, "approval_id": command.approval_id,
                  "action": command.action, "decision_digest": command_digest(command),
                  "applied_at": applied_at, "approval_version": approval.get("version"),
                  "audit": {"seq": entry.seq, "hash": entry.hash} if entry else None}
        return claims

    @staticmethod
    def _stored(conn: Connection, sub: str, keys: list[str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for start in range(0, len(keys), 500):
            rows = conn.execute(text(
                "SELECT r.decision_id, r.receipt, s.jws FROM decision_receipts r "
                "LEFT JOIN decision_receipt_signatures s ON s.sha256 = r.signature "
                "WHERE r.sub = :sub AND r.decision_id IN :keys").bindparams(
                bindparam("keys", expanding=True)),
                {"sub": sub, "keys": keys[start:start + 500]}).all()
            for decision_id, receipt, jws in rows:
                stored = orjson.loads(receipt)
                # The receipt as it was answered: its batch's JWS first (an older row
                # holds its own).
                found[decision_id] = stored if jws is None else {"jws": jws, **stored}
        return found

    def _positions(self, conn: Connection, sub: str, keys: list[str],
                   written: Mapping[str, AuditEntry]) -> dict[str, AuditEntry]:
        """The audit entry of each decision by its id: those just ``written`` as they are,
        the others (a replay's, written by an earlier request) looked up."""
        if self.audit_log is None:
            return {}
        from backend_stub.components.hooks import decision_once_key

        once = {decision_once_key(sub, k): k for k in keys}
        found = {k: written[k] for k in once if k in written}
        missing = [k for k in once if k not in found]
        if missing:
            found.update(self.audit_log.locate(missing, conn))
        return {once[k]: entry for k, entry in found.items()}

    def audit_entry(self, sub: str, decision_id: str) -> AuditEntry | None:
        """The audit-log entry of ``sub``'s decision ``decision_id``, if written."""
        if self.audit_log is None:
            return None
        from backend_stub.components.hooks import decision_once_key

        with self.db.engine.connect() as conn:
            key = decision_once_key(sub, decision_id)
            return self.audit_log.locate([key], conn).get(key)

    def owner(self, decision_id: str) -> list[str]:
        """Who made decisions under this id (ids are per decider)."""
        with self.db.engine.connect() as conn:
            return [r[0] for r in conn.execute(text(
                "SELECT sub FROM decision_receipts WHERE decision_id = :d ORDER BY sub"),
                {"d": decision_id})]

    def signed_head(self) -> str | None:
        """The audit chain's head (``seq``, ``hash``) as a JWS, or None while it is empty."""
        if self.audit_log is None:
            return None
        head = self.audit_log.store.head()
        if head is None:
            return None
        return self.signer.sign({"audit_head": {"seq": head.seq, "hash": head.hash}},
                                typ=AUDIT_HEAD_TYP)
