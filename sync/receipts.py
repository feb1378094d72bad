"""Decision receipts, checked offline (see ``docs/api.md``, "Decision receipts").

The server signs a receipt for every decision it applies: ``{"jws", "claims", "path"}``, a
compact JWS over the Merkle root of the claims of the decisions applied together, the
decision's claims, and their path to that root. The client keeps it with
what it expected (the digest of the decision it sent, computed when the decision was
queued) and checks it against the key set it cached from ``/oauth/jwks.json``: a receipt
altered, signed with a key the server never published, or made for another decision or
request is refused, each with the reason.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from jwt.algorithms import RSAAlgorithm

from sync.models import Receipt

RECEIPT_TYP = "governor-receipts+jwt"
AUDIT_HEAD_TYP = "governor-audit-head+jwt"
# An audit entry's hash is the SHA-256 of these fields in canonical form.
AUDIT_ENTRY_FIELDS = ("seq", "at", "actor", "action", "resource", "details", "prev_hash")
ALGORITHMS = ["RS256"]


def canonical(value: Any) -> bytes:
    """RFC 8785 (JCS) for the values a decision holds: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _canonical_decision(body: dict[str, Any]) -> bytes:
    """``canonical(body)`` for a decision, computed with orjson (every tap computes one):
    for strings, integers, booleans, None and lists and dicts of them the two write the
    same bytes. Floats (orjson writes ``1e-7``, json ``1e-07``) and integers beyond 64
    bits are left to ``canonical``."""
    if any(isinstance(v, float) for v in body.values()):
        return canonical(body)
    try:
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return canonical(body)


def decision_digest(payload: Mapping[str, Any],
                    attachments: Sequence[Mapping[str, str]] = ()) -> str:
    """``sha256:<hex>`` of a queued decision (its batch item and attachments, each with
    ``name``, ``content_type`` and ``data_base64``) in the canonical form the server signs."""
    files = []
    for a in attachments:
        try:
            data = base64.b64decode(a["data_base64"], validate=True)
        except (binascii.Error, ValueError):
            data = a["data_base64"].encode()  # the server refuses it; the digest is moot
        files.append({"name": a["name"], "content_type": a["content_type"],
                      "sha256": hashlib.sha256(data).hexdigest()})
    body = {"decision_id": payload.get("id"), "approval_id": payload.get("approval_id"),
            "action": payload.get("action"),
            **{k: payload.get(k) for k in ("expected_version", "category", "reason",
                                           "comment")},
            "attachments": files}
    return "sha256:" + hashlib.sha256(_canonical_decision(body)).hexdigest()


@dataclass(frozen=True)
class Expected:
    """What a receipt must name: the decision as this device queued it."""

    decision_id: str
    approval_id: str
    action: str
    digest: str | None  # None: queued by a version that did not record it
    sub: str | None = None


class KeySet:
    """Public keys by ``kid``, built from cached JWKs (each parsed once)."""

    def __init__(self, jwks: Mapping[str, Mapping[str, Any]]) -> None:
        self._jwks = dict(jwks)
        self._keys: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self._jwks)

    def get(self, kid: str) -> Any:
        key = self._keys.get(kid)
        if key is None and kid in self._jwks:
            jwk = self._jwks[kid]
            if jwk.get("kty") != "RSA":
                return None
            key = self._keys[kid] = RSAAlgorithm.from_jwk(json.dumps(dict(jwk)))
        return key


def parse_receipt(stored: str) -> tuple[str, dict[str, Any], list[Any]] | None:
    """``(jws, claims, path)`` of a stored receipt, None if it is not one."""
    try:
        value = json.loads(stored)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    jws, claims, path = value.get("jws"), value.get("claims"), value.get("path")
    if not isinstance(jws, str) or not isinstance(claims, dict) or not isinstance(path, list):
        return None
    return jws, claims, path


def key_id(stored: str) -> str | None:
    """The ``kid`` a receipt (or a bare JWS) names, unverified; None if none."""
    parsed = parse_receipt(stored)
    try:
        kid = jwt.get_unverified_header(parsed[0] if parsed else stored).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def merkle_root(claims: Mapping[str, Any], path: Sequence[Any]) -> str | None:
    """The root a leaf's path leads to (hex), None if the path is malformed."""
    node = hashlib.sha256(b"\x00" + canonical(dict(claims))).digest()
    for step in path:
        if not (isinstance(step, list) and len(step) == 2 and step[0] in ("L", "R")):
            return None
        try:
            sibling = bytes.fromhex(step[1])
        except (TypeError, ValueError):
            return None
        pair = sibling + node if step[0] == "L" else node + sibling
        node = hashlib.sha256(b"\x01" + pair).digest()
    return node.hex()


def check_receipt(stored: str, keys: KeySet, expected: Expected
                  ) -> tuple[dict[str, Any], str | None]:
    """``(claims, None)`` when the receipt is good for ``expected``, else ``(claims or {},
    why not)``; never raises."""
    parsed = parse_receipt(stored)
    if parsed is None:
        return {}, "it is not a receipt (a JSON object with jws, claims and path)"
    token, claims, path = parsed
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        return {}, f"it is not a JWS ({exc})"
    kid = header.get("kid")
    if header.get("alg") not in ALGORITHMS:
        return {}, f"its algorithm {header.get('alg')!r} is not accepted (RS256 only)"
    if header.get("typ") != RECEIPT_TYP:
        return {}, f"it is a {header.get('typ')!r}, not a decision receipt"
    key = keys.get(str(kid)) if kid is not None else None
    if key is None:
        return {}, (f"it is signed with key {kid!r}, which the server never published "
                    "to this device; sync to fetch the keys, else it is forged")
    try:
        signed: dict[str, Any] = jwt.decode(token, key, algorithms=ALGORITHMS,
                                            options={"verify_aud": False,
                                                     "require": ["receipts_root"]})
    except jwt.PyJWTError as exc:
        return {}, (f"its signature does not verify with key {kid!r} ({exc}): it was "
                    "altered or signed with another key")
    if merkle_root(claims, path) != signed["receipts_root"]:
        return {}, ("its claims are not among those the server signed: they were altered "
                    "after signing")
    for name, want in (("decision_id", expected.decision_id),
                       ("approval_id", expected.approval_id), ("action", expected.action)):
        if claims.get(name) != want:
            return claims, (f"it names {name} {claims.get(name)!r}, but it is kept for "
                            f"{want!r}: a receipt of another decision")
    if expected.sub is not None and claims.get("sub") != expected.sub:
        return claims, (f"it names decider {claims.get('sub')!r}, not {expected.sub!r}")
    if expected.digest is not None and claims.get("decision_digest") != expected.digest:
        return claims, ("its decision digest differs from the decision this device sent: "
                        "the server applied something else under this id")
    return claims, None


def _signed_claims(token: str, keys: KeySet, typ: str) -> tuple[dict[str, Any], str | None]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        return {}, f"it is not a JWS ({exc})"
    if header.get("typ") != typ or header.get("alg") not in ALGORITHMS:
        return {}, f"it is a {header.get('typ')!r} signed {header.get('alg')!r}, not a {typ}"
    kid = header.get("kid")
    key = keys.get(str(kid)) if kid is not None else None
    if key is None:
        return {}, f"it is signed with key {kid!r}, which the server never published"
    try:
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=ALGORITHMS,
                                            options={"verify_aud": False})
    except jwt.PyJWTError as exc:
        return {}, f"its signature does not verify with key {kid!r} ({exc})"
    return claims, None


def check_audit_entry(entry: Mapping[str, Any], signed_head: str, keys: KeySet,
                      receipt: Receipt) -> str | None:
    """Whether the audit-log entry the server gave for ``receipt``'s decision is the one
    the receipt names and is covered by the chain's signed head; None when it is, else
    why not. (The entries between it and the head are other governors' and are not
    disclosed; the server checks that chain.)"""
    if receipt.status != "verified" or receipt.token is None:
        return f"the receipt of {receipt.decision_id!r} is not verified ({receipt.problem})"
    body = {k: entry.get(k) for k in AUDIT_ENTRY_FIELDS}
    if hashlib.sha256(canonical(body)).hexdigest() != entry.get("hash"):
        return (f"audit entry {entry.get('seq')!r} does not hash to what it claims: its "
                "content was changed")
    parsed = parse_receipt(receipt.token)
    audit = parsed[1].get("audit") if parsed else None
    if not isinstance(audit, dict) or (audit.get("seq"), audit.get("hash")) != (
            entry.get("seq"), entry.get("hash")):
        return (f"audit entry {entry.get('seq')!r} is not the one the receipt of "
                f"{receipt.decision_id!r} names ({audit!r})")
    claims, problem = _signed_claims(signed_head, keys, AUDIT_HEAD_TYP)
    if problem is not None:
        return f"the audit head is not trustworthy: {problem}"
    head = claims.get("audit_head")
    if not isinstance(head, dict) or not isinstance(head.get("seq"), int):
        return "the signed audit head names no position"
    seq = int(entry.get("seq") or 0)
    if head["seq"] < seq or (head["seq"] == seq and head.get("hash") != entry.get("hash")):
        return (f"the signed audit head ({head['seq']}) does not cover entry {seq}: the "
                "log was cut back or rewritten")
    return None


def receipt_from_row(row: Mapping[str, Any], keys: KeySet) -> Receipt:
    """A stored receipt row (``LocalStore.receipt_rows``) checked against ``keys``."""
    common = {"decision_id": row["decision_id"], "approval_id": row["approval_id"],
              "action": row["action"], "token": row.get("token")}
    token = row.get("token")
    if not token:
        return Receipt(**common, status="awaiting")
    claims, problem = check_receipt(token, keys, Expected(
        row["decision_id"], row["approval_id"], row["action"], row.get("digest"),
        row.get("sub")))
    if problem is None and row.get("digest") is None:
        problem = ("it was kept for a decision queued before this device recorded what it "
                   "sent, so it cannot be matched to the decision")
    audit = claims.get("audit")
    if not isinstance(audit, dict):
        audit = {}
    seq = audit.get("seq") if isinstance(audit.get("seq"), int) else None
    applied = claims.get("applied_at") if isinstance(claims.get("applied_at"), str) else None
    return Receipt(**common, status="invalid" if problem else "verified", problem=problem,
                   applied_at=applied, audit_seq=seq)
