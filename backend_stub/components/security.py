"""Security: HMAC signatures, JWT helpers, a tamper-evident audit log, and authenticated
encryption of attachments at rest.

All keys come from one secret (``StubSettings.secret_key``, or a generated one kept in
``data_dir/secret.key`` with mode 0600); each use gets its own key derived with HKDF, so an
HMAC key never doubles as an encryption key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import jwt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Connection, bindparam, text
from sqlalchemy.exc import IntegrityError

from backend_stub.clock import Clock, rfc3339
from backend_stub.components._support import (
    canonical_json,
    insert_rows,
    quote,
    survives_json,
    transaction,
)
from backend_stub.components.errors import DecryptionFailed, SignatureInvalid, TokenInvalid
from backend_stub.db import Database, hold_write_lock

SECRET_FILE = "secret.key"


# -- keys ---------------------------------------------------------------------------------

def load_or_create_secret(data_dir: Path, configured: str | None = None) -> bytes:
    """The stub's root secret: the configured one, else ``data_dir/secret.key`` (made on
    first use, readable by the owner only)."""
    if configured:
        return configured.encode()
    path = data_dir / SECRET_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48).encode()
    # O_EXCL: two processes starting together agree on the first one's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value


def derive_key(secret: bytes, purpose: str, length: int = 32) -> bytes:
    """A key for one purpose (``"event-hmac"``, ``"attachments"``, ...) from the secret."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=b"waooaw-governance-stub",
                info=purpose.encode()).derive(secret)


# -- HMAC ---------------------------------------------------------------------------------

def _message_bytes(message: bytes | str | Mapping[str, Any]) -> bytes:
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode()
    return canonical_json(message).encode()


class HmacSigner:
    """HMAC-SHA-256 over bytes, text, or a JSON object in canonical form (sorted keys, no
    spaces, UTF-8). Events get a top-level ``signature`` over everything else in them."""

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("HmacSigner needs a non-empty key; configure GOVSTUB_SECRET_KEY")
        self._key = key

    def sign(self, message: bytes | str | Mapping[str, Any]) -> str:
        return hmac.digest(self._key, _message_bytes(message), "sha256").hex()

    def verify(self, message: bytes | str | Mapping[str, Any], signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)

    def verify_or_raise(self, message: bytes | str | Mapping[str, Any], signature: str) -> None:
        if not self.verify(message, signature):
            raise SignatureInvalid("the HMAC signature does not match the message; it was "
                                   "altered or signed with another key")

    def sign_event(self, event: Mapping[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in event.items() if k != "signature"}
        return {**body, "signature": self.sign(body)}

    def verify_event(self, event: Mapping[str, Any]) -> bool:
        signature = event.get("signature")
        if not isinstance(signature, str):
            return False
        return self.verify({k: v for k, v in event.items() if k != "signature"}, signature)


# -- JWT ----------------------------------------------------------------------------------

_ASYMMETRIC = ("RS256", "ES256", "EdDSA", "PS256")


class JwtCodec:
    """Sign and verify JWTs with an asymmetric key (PyJWT underneath).

    Verification accepts only the configured algorithm (never ``none`` or an HMAC one, so a
    public key cannot be used as an HMAC secret), needs a known ``kid``, and checks ``iss``,
    ``aud`` and ``exp`` against the injected clock with at most 30 s of leeway.
    """

    def __init__(self, *, issuer: str, audience: str, algorithm: str = "RS256",
                 signing_key: Any = None, kid: str | None = None,
                 verification_keys: Mapping[str, Any] | None = None,
                 clock: Clock | None = None, leeway: float = 30.0) -> None:
        if algorithm not in _ASYMMETRIC:
            raise ValueError(f"JWT algorithm {algorithm!r} is not allowed; use one of "
                             f"{', '.join(_ASYMMETRIC)}")
        if leeway > 30:
            raise ValueError(f"JWT leeway {leeway} s is too generous; use at most 30 s")
        self.issuer = issuer
        self.audience = audience
        self.algorithm = algorithm
        self._signing_key = signing_key
        self.kid = kid
        self._keys = dict(verification_keys or {})
        if signing_key is not None and kid is not None and kid not in self._keys:
            self._keys[kid] = signing_key.public_key()
        self._clock = clock
        self.leeway = leeway

    def _now(self) -> float:
        return self._clock.now().timestamp() if self._clock else time.time()

    def create(self, subject: str, *, expires_in: int = 900, **claims: Any) -> str:
        if self._signing_key is None or self.kid is None:
            raise ValueError("this JwtCodec only verifies; give it signing_key and kid to sign")
        now = int(self._now())
        payload = {"iss": self.issuer, "aud": self.audience, "sub": subject, "iat": now,
                   "exp": now + expires_in, "jti": uuid.uuid4().hex, **claims}
        return jwt.encode(payload, self._signing_key, algorithm=self.algorithm,
                          headers={"kid": self.kid})

    def verify(self, token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"the token is not a JWT ({exc}); sign in again") from exc
        if header.get("alg") != self.algorithm:
            raise TokenInvalid(f"the token's algorithm {header.get('alg')!r} is not accepted; "
                               f"only {self.algorithm} is")
        key = self._keys.get(str(header.get("kid")))
        if key is None:
            raise TokenInvalid(f"the token's key id {header.get('kid')!r} is unknown; "
                               "sign in again to get a token signed with a current key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[self.algorithm], audience=self.audience,
                issuer=self.issuer, options={"verify_exp": False, "verify_iat": False,
                                             "require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise TokenInvalid(f"the token failed verification ({exc}); sign in again") \
                from exc
        if float(claims["exp"]) + self.leeway < self._now():
            raise TokenInvalid("the token has expired; refresh it or sign in again")
        return claims


# -- tamper-evident audit log -----------------------------------------------------------------

GENESIS = "0" * 64


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    action: str
    resource: str
    details: dict[str, Any]
    prev_hash: str
    hash: str
    mac: str
    # ``details`` in canonical JSON when the writer has it already (what the store keeps).
    details_json: str | None = field(default=None, compare=False, repr=False)

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action,
                "resource": self.resource, "details": self.details,
                "prev_hash": self.prev_hash}


@dataclass(frozen=True)
class AuditItem:
    """An entry to write: who did what to which resource; ``once_key`` makes it unique."""

    action: str
    actor: str
    resource: str
    details: dict[str, Any] = field(default_factory=dict)
    once_key: str | None = None


@dataclass(frozen=True)
class AuditHead:
    seq: int
    hash: str
    mac: str


class AuditStore(Protocol):
    """Where the entries live. ``conn``, when given, is a transaction the caller is in
    (a SQL store writes in it; the memory store has none and ignores it)."""

    def head(self, conn: Connection | None = None) -> AuditHead | None: ...
    def append(self, entries: Sequence[AuditEntry], head: AuditHead,
               once_keys: Sequence[str | None] = (), conn: Connection | None = None) -> bool:
        """Add the entries (with their once keys, if any) and move the head, all in one
        transaction; ``False`` if a ``seq`` or a once key was taken."""
        ...
    def entries(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]: ...
    def existing_keys(self, once_keys: Sequence[str], conn: Connection | None = None
                      ) -> set[str]: ...
    def locate(self, once_keys: Sequence[str], conn: Connection | None = None
               ) -> dict[str, AuditEntry]:
        """The entries written under these once keys, by key (missing ones left out)."""
        ...


class MemoryAuditStore:
    def __init__(self) -> None:
        self.rows: list[AuditEntry] = []
        self.head_row: AuditHead | None = None
        self.keys: dict[str, int] = {}
        self._lock = threading.Lock()

    def head(self, conn: Connection | None = None) -> AuditHead | None:
        return self.head_row

    def append(self, entries: Sequence[AuditEntry], head: AuditHead,
               once_keys: Sequence[str | None] = (), conn: Connection | None = None) -> bool:
        keys = [k for k in once_keys if k is not None]
        with self._lock:
            taken = {r.seq for r in self.rows}
            if any(e.seq in taken for e in entries) or any(k in self.keys for k in keys):
                return False
            self.rows.extend(entries)
            self.head_row = head
            for entry, key in zip(entries, once_keys, strict=False):
                if key is not None:
                    self.keys[key] = entry.seq
            return True

    def existing_keys(self, once_keys: Sequence[str], conn: Connection | None = None
                      ) -> set[str]:
        with self._lock:
            return {k for k in once_keys if k in self.keys}

    def entries(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        with self._lock:
            return sorted((r for r in self.rows if r.seq > after), key=lambda r: r.seq)[:limit]

    def locate(self, once_keys: Sequence[str], conn: Connection | None = None
               ) -> dict[str, AuditEntry]:
        with self._lock:
            by_seq = {r.seq: r for r in self.rows}
            return {k: by_seq[self.keys[k]] for k in once_keys
                    if k in self.keys and self.keys[k] in by_seq}


class SqlAuditStore:
    """``components_audit_log`` plus its signed head row, written in one transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def head(self, conn: Connection | None = None) -> AuditHead | None:
        with transaction(self.db, conn) as tx:
            if conn is not None:  # the head read must stay the head until the commit
                hold_write_lock(conn)
            row = tx.execute(text(
                "SELECT seq, hash, mac FROM components_audit_head WHERE id = 1")).first()
        return None if row is None else AuditHead(int(row[0]), row[1], row[2])

    def append(self, entries: Sequence[AuditEntry], head: AuditHead,
               once_keys: Sequence[str | None] = (), conn: Connection | None = None) -> bool:
        keyed = [(k, e.seq) for e, k in zip(entries, once_keys, strict=False) if k is not None]
        try:
            # In the caller's transaction, a savepoint: a seq another process took first
            # undoes this append alone, and the log retries it.
            with transaction(self.db, conn) as tx, \
                    (tx.begin_nested() if conn is not None else nullcontext()):
                insert_rows(tx, "components_audit_keys", ("once_key", "seq"), keyed)
                insert_rows(tx, "components_audit_log", (
                    "seq", "at", "actor", "action", "resource", "details", "prev_hash", "hash",
                    "mac"), [(e.seq, e.at, e.actor, e.action, e.resource,
                              e.details_json or canonical_json(e.details), e.prev_hash, e.hash,
                              e.mac) for e in entries])
                tx.execute(text(
                    "INSERT INTO components_audit_head (id, seq, hash, mac) "
                    "VALUES (1, :seq, :hash, :mac) ON CONFLICT (id) DO UPDATE SET "
                    "seq = excluded.seq, hash = excluded.hash, mac = excluded.mac"),
                    {"seq": head.seq, "hash": head.hash, "mac": head.mac})
        except IntegrityError:
            return False
        return True

    def existing_keys(self, once_keys: Sequence[str], conn: Connection | None = None
                      ) -> set[str]:
        found: set[str] = set()
        with transaction(self.db, conn) as tx:
            if conn is not None:  # what is found stays so until the commit
                hold_write_lock(conn)
            for start in range(0, len(once_keys), 500):  # bounded IN lists
                chunk = list(once_keys[start:start + 500])
                rows = tx.execute(
                    text("SELECT once_key FROM components_audit_keys "
                         "WHERE once_key IN :keys").bindparams(
                        bindparam("keys", expanding=True)), {"keys": chunk}).all()
                found.update(r[0] for r in rows)
        return found

    def entries(self, after: int = 0, limit: int = 1000) -> list[AuditEntry]:
        with self.db.engine.begin() as conn:
            rows = conn.execute(text(
                "SELECT seq, at, actor, action, resource, details, prev_hash, hash, mac "
                "FROM components_audit_log WHERE seq > :after ORDER BY seq LIMIT :limit"),
                {"after": after, "limit": limit}).all()
        return [AuditEntry(int(r[0]), r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7],
                           r[8]) for r in rows]

    def locate(self, once_keys: Sequence[str], conn: Connection | None = None
               ) -> dict[str, AuditEntry]:
        found: dict[str, AuditEntry] = {}
        with transaction(self.db, conn) as tx:
            for start in range(0, len(once_keys), 500):  # bounded IN lists
                rows = tx.execute(text(
                    "SELECT k.once_key, l.seq, l.at, l.actor, l.action, l.resource, "
                    "l.details, l.prev_hash, l.hash, l.mac FROM components_audit_keys k "
                    "JOIN components_audit_log l ON l.seq = k.seq "
                    "WHERE k.once_key IN :keys").bindparams(
                    bindparam("keys", expanding=True)),
                    {"keys": list(once_keys[start:start + 500])}).all()
                found.update({r[0]: AuditEntry(int(r[1]), r[2], r[3], r[4], r[5],
                                               json.loads(r[6]), r[7], r[8], r[9])
                              for r in rows})
        return found


@dataclass
class AuditReport:
    entries_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class AuditLog:
    """An append-only log where each entry hashes the one before, and each entry and the
    head are MAC'd with a key the database does not hold: editing, inserting or deleting
    any entry (the newest included) is found by ``verify()``."""

    def __init__(self, key: bytes, store: AuditStore | None = None, *,
                 clock: Clock | None = None) -> None:
        self._key = key
        self.store: AuditStore = store or MemoryAuditStore()
        self._clock = clock
        self._lock = threading.Lock()

    def _mac(self, value: str) -> str:
        # hmac.digest: OpenSSL's one-shot HMAC, without an hmac.HMAC object per entry.
        return hmac.digest(self._key, value.encode(), "sha256").hex()

    @staticmethod
    def _hash(body: Mapping[str, Any]) -> str:
        return hashlib.sha256(canonical_json(body).encode()).hexdigest()

    @staticmethod
    def _entry_hash(seq: int, at: str, item: AuditItem, details_json: str, prev: str) -> str:
        """``_hash`` of the entry's ``body()``, its canonical JSON put together from the
        details' own (a batch of 500 entries would otherwise encode each twice). The keys
        in sorted order, as canonical JSON has them; ``verify`` recomputes with ``_hash``."""
        text = "".join((
            '{"action":', quote(item.action), ',"actor":', quote(item.actor),
            ',"at":', quote(at), ',"details":', details_json, ',"prev_hash":', quote(prev),
            ',"resource":', quote(item.resource), ',"seq":', str(int(seq)), "}"))
        return hashlib.sha256(text.encode()).hexdigest()

    def _head_mac(self, seq: int, entry_hash: str) -> str:
        return self._mac(f"head:{seq}:{entry_hash}")

    def record(self, action: str, *, actor: str, resource: str,
               details: Mapping[str, Any] | None = None) -> AuditEntry:
        """Append one entry (who did what to which resource) and return it."""
        ((_, entry),) = self._append([AuditItem(action, actor, resource, dict(details or {}))])
        return entry

    def record_once(self, once_key: str, action: str, *, actor: str, resource: str,
                    details: Mapping[str, Any] | None = None) -> AuditEntry | None:
        """Append the entry unless one with ``once_key`` exists (``None`` then).

        For actions that may be seen twice, such as a decision and its replay: recording on
        both means a crash between the action and its entry is healed by the retry.
        """
        written = self.record_many([AuditItem(action, actor, resource, dict(details or {}),
                                              once_key)])
        return written[0] if written else None

    def record_many(self, items: Sequence[AuditItem], *, conn: Connection | None = None
                    ) -> list[AuditEntry]:
        """Append several entries in one transaction (a batch of decisions); items whose
        ``once_key`` was recorded already are skipped. Returns the entries written.

        With ``conn`` they are written in the caller's transaction (a batch of decisions
        and its entries commit together); on SQLite it is made to hold the write lock
        (``hold_write_lock``) before the head is read.
        """
        return [entry for _, entry in self._append(list(items), conn)]

    def record_keyed(self, items: Sequence[AuditItem], *, conn: Connection | None = None
                     ) -> dict[str, AuditEntry]:
        """``record_many``, the entries written returned by their once key: a batch of
        decisions names each decision's entry in its receipt without looking it up."""
        return {item.once_key: entry for item, entry in self._append(list(items), conn)
                if item.once_key is not None}

    def _append(self, items: list[AuditItem], conn: Connection | None = None
                ) -> list[tuple[AuditItem, AuditEntry]]:
        # What is hashed is exactly what the database gives back: the details as their
        # JSON reads back (a round trip, unless they are flat and would come back as is).
        prepared: list[tuple[AuditItem, dict[str, Any], str]] = []
        for item in items:
            text = canonical_json(item.details)
            details = dict(item.details) if survives_json(item.details) else json.loads(text)
            prepared.append((item, details, text))
        # Other processes are settled by unique seqs and keys, retried below. Inside the
        # caller's transaction the lock is not taken: that transaction may hold the
        # database's write lock, which a writer holding this lock could be waiting for.
        with self._lock if conn is None else nullcontext():
            for _ in range(50):
                keys = [i.once_key for i, _, _ in prepared if i.once_key is not None]
                done = self.store.existing_keys(keys, conn) if keys else set()
                todo: list[tuple[AuditItem, dict[str, Any], str]] = []
                for item, details, text in prepared:
                    if item.once_key is None or item.once_key not in done:
                        todo.append((item, details, text))
                        if item.once_key is not None:
                            done.add(item.once_key)  # a key twice in one batch: once
                if not todo:
                    return []
                head = self.store.head(conn)
                seq, prev = (head.seq + 1, head.hash) if head else (1, GENESIS)
                at = rfc3339(self._clock.now() if self._clock else datetime.now(UTC))
                entries: list[AuditEntry] = []
                for item, details, text in todo:
                    entry_hash = self._entry_hash(seq, at, item, text, prev)
                    entries.append(AuditEntry(seq, at, item.actor, item.action, item.resource,
                                              details, prev, entry_hash, self._mac(entry_hash),
                                              text))
                    seq, prev = seq + 1, entry_hash
                last = entries[-1]
                if self.store.append(entries, AuditHead(last.seq, last.hash,
                                                        self._head_mac(last.seq, last.hash)),
                                     [item.once_key for item, _, _ in todo], conn):
                    return [(item, entry) for (item, _, _), entry in zip(todo, entries,
                                                                          strict=True)]
        raise RuntimeError("the audit log is too busy to append to; retry the action")

    def entries(self, limit: int = 1000) -> list[AuditEntry]:
        return self.store.entries(0, limit)

    def locate(self, once_keys: Sequence[str], conn: Connection | None = None
               ) -> dict[str, AuditEntry]:
        """The entries recorded under these once keys (a decision's, for its receipt)."""
        return self.store.locate(once_keys, conn) if once_keys else {}

    @staticmethod
    def entry_hash(entry: AuditEntry) -> str:
        """The hash an entry's content gives (equal to ``entry.hash`` unless edited)."""
        return AuditLog._hash(entry.body())

    def verify(self, batch: int = 1000) -> AuditReport:
        report = AuditReport()
        expected_seq, prev_hash = 1, GENESIS
        last: AuditEntry | None = None
        after = 0
        while True:
            rows = self.store.entries(after, batch)
            if not rows:
                break
            for entry in rows:
                report.entries_checked += 1
                where = f"entry {entry.seq}"
                if entry.seq != expected_seq:
                    report.problems.append(
                        f"{where}: expected entry {expected_seq} here; entries "
                        f"{expected_seq}..{entry.seq - 1} were deleted" if entry.seq > expected_seq
                        else f"{where}: out of sequence (inserted?)")
                if entry.prev_hash != prev_hash:
                    report.problems.append(f"{where}: does not chain to the entry before it "
                                           "(an entry was inserted, deleted or edited)")
                if self._hash(entry.body()) != entry.hash:
                    report.problems.append(f"{where}: its content was edited after it was "
                                           "written")
                if not hmac.compare_digest(self._mac(entry.hash), entry.mac):
                    report.problems.append(f"{where}: its MAC does not match (forged or "
                                           "written with another key)")
                expected_seq, prev_hash, last = entry.seq + 1, entry.hash, entry
                after = entry.seq
        head = self.store.head()
        if last is None:
            if head is not None:
                report.problems.append(f"the log is empty but its head says {head.seq} "
                                       "entries were written: entries were deleted")
            return report
        if head is None:
            report.problems.append("the log's head record is missing (deleted?)")
        elif not hmac.compare_digest(self._head_mac(head.seq, head.hash), head.mac):
            report.problems.append("the log's head record was edited")
        elif head.seq != last.seq or head.hash != last.hash:
            report.problems.append(
                f"the head says the last entry is {head.seq} but the log ends at {last.seq}: "
                "the newest entries were deleted or replaced")
        return report


# -- attachments at rest ------------------------------------------------------------------

_VERSION = b"\x01"


class Vault:
    """AES-256-GCM encryption for data at rest. A sealed blob is
    ``version(1) || key id(4) || nonce(12) || ciphertext+tag``; old keys can still open what
    they sealed (key rotation), and ``associated_data`` binds a blob to its owner (e.g. the
    approval id) so it cannot be swapped onto another record."""

    def __init__(self, key: bytes, old_keys: Iterable[bytes] = ()) -> None:
        if len(key) != 32:
            raise ValueError("Vault keys are 32 bytes (AES-256); derive one with derive_key()")
        self._current = (self._key_id(key), AESGCM(key))
        self._keys = {self._key_id(k): AESGCM(k) for k in (*old_keys, key)}

    @staticmethod
    def _key_id(key: bytes) -> bytes:
        return hashlib.sha256(b"vault-key-id" + key).digest()[:4]

    def encrypt(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        key_id, aead = self._current
        nonce = os.urandom(12)
        return _VERSION + key_id + nonce + aead.encrypt(nonce, plaintext, associated_data)

    def decrypt(self, sealed: bytes, associated_data: bytes = b"") -> bytes:
        if len(sealed) < 1 + 4 + 12 + 16 or sealed[:1] != _VERSION:
            raise DecryptionFailed("the sealed data is truncated or not from this Vault")
        aead = self._keys.get(sealed[1:5])
        if aead is None:
            raise DecryptionFailed("the data was sealed with a key this Vault does not hold; "
                                   "configure the old key as an old_keys entry")
        try:
            return aead.decrypt(sealed[5:17], sealed[17:], associated_data)
        except InvalidTag as exc:
            raise DecryptionFailed("the sealed data was altered or belongs to another "
                                   "record; it cannot be trusted") from exc

    # The design's names.
    encrypt_data = encrypt
    decrypt_data = decrypt


class SecurityLayer:
    """The design's one-object API over the pieces above."""

    def __init__(self, secret: bytes, *, audit_store: AuditStore | None = None,
                 clock: Clock | None = None, jwt_codec: JwtCodec | None = None) -> None:
        self.signer = HmacSigner(derive_key(secret, "event-hmac"))
        self.vault = Vault(derive_key(secret, "attachments"))
        self.audit = AuditLog(derive_key(secret, "audit-log"), audit_store, clock=clock)
        self.jwt = jwt_codec

    def hmac_sign(self, message: bytes | str | Mapping[str, Any]) -> str:
        return self.signer.sign(message)

    def hmac_verify(self, message: bytes | str | Mapping[str, Any], signature: str) -> bool:
        return self.signer.verify(message, signature)

    def jwt_create(self, user_id: str, *, expires_in: int = 900, **claims: Any) -> str:
        if self.jwt is None:
            raise ValueError("this SecurityLayer has no JwtCodec; pass jwt_codec=")
        return self.jwt.create(user_id, expires_in=expires_in, **claims)

    def jwt_verify(self, token: str) -> dict[str, Any]:
        if self.jwt is None:
            raise ValueError("this SecurityLayer has no JwtCodec; pass jwt_codec=")
        return self.jwt.verify(token)

    def audit_log(self, action: str, *, actor: str, resource: str,
                  **details: Any) -> AuditEntry:
        return self.audit.record(action, actor=actor, resource=resource, details=details)

    def encrypt_data(self, plaintext: bytes, associated_data: bytes = b"") -> bytes:
        return self.vault.encrypt(plaintext, associated_data)

    def decrypt_data(self, sealed: bytes, associated_data: bytes = b"") -> bytes:
        return self.vault.decrypt(sealed, associated_data)
