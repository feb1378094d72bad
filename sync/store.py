"""The local store: everything the governor can see offline, and the outbox.

SQLModel tables on SQLite in WAL mode with foreign keys on. The schema evolves through
named migrations recorded in ``schema_migration``, so an upgrade runs forward in place and
an outbox written by an older version survives it. Seeds are searchable offline through an
FTS5 index kept in step with the ``seed`` table by triggers.

Every write that must be all-or-nothing (enqueueing a decision with its attachments,
recording a batch's outcomes) is one SQLite transaction: a process killed at any instant
leaves the database either before or after it, never in between.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool
from sqlmodel import Field, SQLModel, create_engine

from sync import rules, seed_rank, store_reads
from sync.errors import DeviceKeyError, StoreError
from sync.models import (
    Attachment,
    DecisionAction,
    OutboxEntry,
    OutboxState,
)
from sync.receipts import decision_digest
from sync.sealing import (
    SECRET_KEYS,
    OutboxSealer,
    has_sealed,
    is_sealed,
    open_secrets,
    overlay,
    seal_secrets,
)

# --- tables ---------------------------------------------------------------------------
# The SQLModel classes describe the current schema; the migrations below build it. A test
# checks that the two agree, so a new column cannot be added to one and forgotten in the
# other.


class SchemaMigration(SQLModel, table=True):
    __tablename__ = "schema_migration"
    name: str = Field(primary_key=True)
    applied_at: str


class MetaRow(SQLModel, table=True):
    __tablename__ = "meta"
    key: str = Field(primary_key=True)
    value: str


class DashboardRow(SQLModel, table=True):
    __tablename__ = "dashboard"
    id: int = Field(primary_key=True)
    body: str
    etag: str | None = None
    fetched_at: str


class ApprovalRow(SQLModel, table=True):
    __tablename__ = "approval"
    id: str = Field(primary_key=True)
    status: str  # as the server last said; a pending decision is laid over it on reading
    version: int
    veto_deadline: str | None = None  # UTC ISO (``iso``), so text order is time order
    created_at: str | None = None
    summary: str
    detail: str | None = None
    detail_version: int | None = None
    search: str = ""  # what the list's search box matches, lower-cased (``search_text``)


class SeedRow(SQLModel, table=True):
    __tablename__ = "seed"
    num: int | None = Field(default=None, primary_key=True)
    id: str = Field(unique=True)
    version: int
    status: str
    title: str
    description: str
    body: str
    conditions: str = ""  # the conditions' JSON, searched as words (``seed_fts``)


class AgentRow(SQLModel, table=True):
    __tablename__ = "agent"
    id: str = Field(primary_key=True)
    body: str


class ViolationRow(SQLModel, table=True):
    __tablename__ = "violation"
    id: str = Field(primary_key=True)
    occurred_at: str
    body: str


class NotificationRow(SQLModel, table=True):
    __tablename__ = "notification"
    sub: str = Field(primary_key=True)  # the account it was received for ('' for none)
    id: str = Field(primary_key=True)
    timestamp: str
    body: str
    read: bool = False


class SyncCursor(SQLModel, table=True):
    __tablename__ = "sync_cursor"
    collection: str = Field(primary_key=True)
    cursor: str | None = None
    etag: str | None = None
    synced_at: str | None = None


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    id: str = Field(primary_key=True)
    seq: int = Field(unique=True)
    kind: str
    approval_id: str | None = None
    action: str | None = None
    payload: str
    expected_version: int | None = None
    veto_deadline: str | None = None
    state: str
    created_at: str
    updated_at: str
    attempts: int = 0
    error_code: str | None = None
    error_message: str | None = None
    error_details: str = "{}"
    sub: str | None = None
    reminded: int = 0  # bit 1: one hour before the deadline, bit 2: ten minutes
    digest: str | None = None  # a decision's: what the server's receipt for it must name


class AttachmentRow(SQLModel, table=True):
    __tablename__ = "attachment"
    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(foreign_key="outbox.id", ondelete="CASCADE")
    position: int
    name: str
    content_type: str
    data_base64: str


class ReceiptRow(SQLModel, table=True):
    __tablename__ = "receipt"
    decision_id: str = Field(primary_key=True)
    approval_id: str = Field(index=True)
    action: str
    sub: str | None = None
    digest: str | None = None
    token: str | None = None
    queued_at: str
    received_at: str | None = None


class SigningKeyRow(SQLModel, table=True):
    __tablename__ = "signing_key"
    kid: str = Field(primary_key=True)
    jwk: str
    first_seen: str


# --- migrations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    """Statements, then ``backfill`` (Python, for what SQL cannot compute the way the code
    does, such as Unicode lower-casing), in the transaction that records the migration."""

    name: str
    statements: tuple[str, ...]
    backfill: Callable[[Connection], None] | None = None


def _backfill_approval_list(conn: Connection) -> None:
    updates = [(search_text(summary), utc_text(summary.get("veto_deadline")), r[0])
               for r in conn.exec_driver_sql("SELECT id, summary FROM approval")
               for summary in (_loads(r[1]),)]
    if updates:
        conn.exec_driver_sql("UPDATE approval SET search = ?, veto_deadline = ? "
                             "WHERE id = ?", updates)


# Before a cached request changes (a new version) or goes, the row as it was is kept for
# each decision on it that the server has not taken (or has refused): what ``seen`` gives.
# The row's texts are copied as stored (sealed for the row) with its two versions; only
# the first change is kept. (``NOT EXISTS``, not ``OR IGNORE``: an upsert's conflict
# clause overrides the one of a statement in its trigger.)
_SEEN_ON_CHANGE = """CREATE TRIGGER {trigger} {timing} {event} ON approval {when} BEGIN
  INSERT INTO decision_seen (entry_id, body, approval_id)
  SELECT o.id, json_array(old.summary, old.detail, old.version, old.detail_version), old.id
  FROM outbox o WHERE o.approval_id = old.id AND o.kind = 'decision'
  AND o.state IN ('queued', 'sending', 'held', 'rejected')
  AND NOT EXISTS (SELECT 1 FROM decision_seen s WHERE s.entry_id = o.id); END"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration("0001_initial", (
        "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)",
        """CREATE TABLE dashboard (id INTEGER PRIMARY KEY NOT NULL, body TEXT NOT NULL,
           etag TEXT, fetched_at TEXT NOT NULL)""",
        """CREATE TABLE approval (id TEXT PRIMARY KEY NOT NULL, status TEXT NOT NULL,
           version INTEGER NOT NULL, veto_deadline TEXT, created_at TEXT,
           summary TEXT NOT NULL, detail TEXT, detail_version INTEGER)""",
        """CREATE TABLE seed (num INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
           id TEXT NOT NULL UNIQUE, version INTEGER NOT NULL, status TEXT NOT NULL,
           title TEXT NOT NULL, description TEXT NOT NULL, body TEXT NOT NULL)""",
        "CREATE TABLE agent (id TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL)",
        """CREATE TABLE violation (id TEXT PRIMARY KEY NOT NULL, occurred_at TEXT NOT NULL,
           body TEXT NOT NULL)""",
        """CREATE TABLE notification (id TEXT PRIMARY KEY NOT NULL, timestamp TEXT NOT NULL,
           body TEXT NOT NULL, read BOOLEAN NOT NULL DEFAULT 0)""",
        """CREATE TABLE sync_cursor (collection TEXT PRIMARY KEY NOT NULL, cursor TEXT,
           etag TEXT, synced_at TEXT)""",
        """CREATE TABLE outbox (id TEXT PRIMARY KEY NOT NULL, seq INTEGER NOT NULL UNIQUE,
           kind TEXT NOT NULL, approval_id TEXT, action TEXT, payload TEXT NOT NULL,
           expected_version INTEGER, veto_deadline TEXT, state TEXT NOT NULL,
           created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
           attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT,
           error_details TEXT NOT NULL DEFAULT '{}', sub TEXT)""",
        "CREATE INDEX outbox_state ON outbox (state, seq)",
    )),
    # Vetoes gained evidence and deadline reminders after the first release; both need
    # the outbox to carry more than the batch item itself.
    Migration("0002_outbox_attachments_and_reminders", (
        "ALTER TABLE outbox ADD COLUMN reminded INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE attachment (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
           entry_id TEXT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
           position INTEGER NOT NULL, name TEXT NOT NULL, content_type TEXT NOT NULL,
           data_base64 TEXT NOT NULL)""",
        "CREATE INDEX attachment_entry ON attachment (entry_id)",
    )),
    # Offline search over seeds: an external-content FTS5 index, kept in step by triggers
    # so no code path can update a seed and forget the index.
    Migration("0003_seed_fulltext", (
        """CREATE VIRTUAL TABLE seed_fts USING fts5(title, description, id UNINDEXED,
           content='seed', content_rowid='num', tokenize='unicode61 remove_diacritics 2')""",
        """CREATE TRIGGER seed_ai AFTER INSERT ON seed BEGIN
             INSERT INTO seed_fts (rowid, title, description, id)
             VALUES (new.num, new.title, new.description, new.id); END""",
        """CREATE TRIGGER seed_ad AFTER DELETE ON seed BEGIN
             INSERT INTO seed_fts (seed_fts, rowid, title, description, id)
             VALUES ('delete', old.num, old.title, old.description, old.id); END""",
        """CREATE TRIGGER seed_au AFTER UPDATE ON seed BEGIN
             INSERT INTO seed_fts (seed_fts, rowid, title, description, id)
             VALUES ('delete', old.num, old.title, old.description, old.id);
             INSERT INTO seed_fts (rowid, title, description, id)
             VALUES (new.num, new.title, new.description, new.id); END""",
        "INSERT INTO seed_fts (seed_fts) VALUES ('rebuild')",
        "CREATE INDEX violation_time ON violation (occurred_at)",
        "CREATE INDEX notification_time ON notification (timestamp)",
    )),
    # (0004, a prefix index on the seed index, was withdrawn before release: it doubled
    # indexing time, and with only the last word searched as a prefix it bought nothing.)
    # Deciding looks up what is pending on one request, and reminders look at unsent
    # vetoes; without these both scan the whole outbox, quadratic over a long queue.
    Migration("0005_outbox_lookup_indexes", (
        "CREATE INDEX IF NOT EXISTS outbox_approval ON outbox (approval_id, state)",
        "CREATE INDEX IF NOT EXISTS outbox_action ON outbox (action, state)",
    )),
    # The approvals list filters, searches, counts and pages in SQL: thousands of cached
    # requests were parsed and validated on every keystroke. ``search`` holds the fields
    # the search box matches; deadlines are normalised to UTC so SQL can compare them.
    Migration("0006_approval_list_columns", (
        "ALTER TABLE approval ADD COLUMN search TEXT NOT NULL DEFAULT ''",
        "CREATE INDEX approval_recent ON approval (created_at DESC, id DESC)",
    ), backfill=_backfill_approval_list),
    # Ranked search over any number of seeds: conditions are searched too (weighted like
    # the description, under the title), and prefix indexes for two- and three-letter
    # prefixes keep the first letters typed from merging thousands of doclists.
    Migration("0007_seed_search_conditions_and_prefixes", (
        "ALTER TABLE seed ADD COLUMN conditions TEXT NOT NULL DEFAULT ''",
        "UPDATE seed SET conditions = coalesce(json_extract(body, '$.conditions'), '')",
        "DROP TRIGGER seed_ai",
        "DROP TRIGGER seed_ad",
        "DROP TRIGGER seed_au",
        "DROP TABLE seed_fts",
        """CREATE VIRTUAL TABLE seed_fts USING fts5(title, description, conditions,
           id UNINDEXED, content='seed', content_rowid='num',
           tokenize='unicode61 remove_diacritics 2', prefix='2 3')""",
        """CREATE TRIGGER seed_ai AFTER INSERT ON seed BEGIN
             INSERT INTO seed_fts (rowid, title, description, conditions, id)
             VALUES (new.num, new.title, new.description, new.conditions, new.id); END""",
        """CREATE TRIGGER seed_ad AFTER DELETE ON seed BEGIN
             INSERT INTO seed_fts (seed_fts, rowid, title, description, conditions, id)
             VALUES ('delete', old.num, old.title, old.description, old.conditions,
                     old.id); END""",
        """CREATE TRIGGER seed_au AFTER UPDATE ON seed BEGIN
             INSERT INTO seed_fts (seed_fts, rowid, title, description, conditions, id)
             VALUES ('delete', old.num, old.title, old.description, old.conditions,
                     old.id);
             INSERT INTO seed_fts (rowid, title, description, conditions, id)
             VALUES (new.num, new.title, new.description, new.conditions, new.id); END""",
        "INSERT INTO seed_fts (seed_fts) VALUES ('rebuild')",
    )),
    # Every entry changes state twice on its way out (sending, applied): with the state in
    # these two indexes as well, each change rewrote three index entries, not one. The
    # lookups they serve (one request's decisions, the vetoes) find few rows either way.
    Migration("0008_outbox_lookups_without_state", (
        "DROP INDEX outbox_approval",
        "DROP INDEX outbox_action",
        "CREATE INDEX outbox_approval ON outbox (approval_id)",
        "CREATE INDEX outbox_action ON outbox (action)",
    )),
    # Receipts: what each queued decision must be signed as (its digest, recorded when it
    # is queued), then the server's signed receipt; and the server's public keys, kept
    # after the server retires them so old receipts still check offline.
    Migration("0009_receipts_and_keys", (
        """CREATE TABLE receipt (decision_id TEXT PRIMARY KEY NOT NULL,
           approval_id TEXT NOT NULL, action TEXT NOT NULL, sub TEXT, digest TEXT,
           token TEXT, queued_at TEXT NOT NULL, received_at TEXT)""",
        "CREATE INDEX receipt_approval ON receipt (approval_id, queued_at)",
        """CREATE TABLE signing_key (kid TEXT PRIMARY KEY NOT NULL, jwk TEXT NOT NULL,
           first_seen TEXT NOT NULL)""",
    )),
    # Accounts apart on one device: a notification (and whether it was read) belongs to
    # the account it arrived for, so another account signing in later neither sees it nor
    # inherits its badge. What earlier versions kept belongs to no account ('').
    Migration("0010_notifications_per_account", (
        """CREATE TABLE notification_new (sub TEXT NOT NULL DEFAULT '', id TEXT NOT NULL,
           timestamp TEXT NOT NULL, body TEXT NOT NULL, read BOOLEAN NOT NULL DEFAULT 0,
           PRIMARY KEY (sub, id))""",
        "INSERT INTO notification_new (sub, id, timestamp, body, read) "
        "SELECT '', id, timestamp, body, read FROM notification",
        "DROP TABLE notification",
        "ALTER TABLE notification_new RENAME TO notification",
        "CREATE INDEX notification_time ON notification (sub, timestamp)",
    )),
    # A refused decision says which fields changed under it: the request as the governor
    # saw it when deciding is kept with the entry (and goes with it).
    Migration("0011_decision_seen", (
        """CREATE TABLE decision_seen (entry_id TEXT PRIMARY KEY NOT NULL
           REFERENCES outbox (id) ON DELETE CASCADE, body TEXT NOT NULL)""",
    )),
    # Only vetoes are looked up by action (claimed first, reminded of), yet every approve
    # tap wrote an entry into that index too: now it holds the vetoes alone, in queue
    # order, so the claim walks it without sorting and a tap that approves skips it.
    Migration("0012_outbox_veto_index", (
        "DROP INDEX outbox_action",
        "CREATE INDEX outbox_veto ON outbox (seq) WHERE action = 'veto'",
    )),
    # The request as the governor saw it when deciding was copied with every tap, though
    # it is needed only once the request changes under an unanswered (or refused)
    # decision: now the row is copied then, as it was (still sealed for its row), by the
    # change itself. Until it changes, the request as cached is the request as seen.
    Migration("0013_decision_seen_on_change", (
        "ALTER TABLE decision_seen ADD COLUMN approval_id TEXT",
        _SEEN_ON_CHANGE.format(trigger="approval_seen_update", timing="BEFORE",
                               event="UPDATE OF version",
                               when="WHEN new.version IS NOT old.version"),
        _SEEN_ON_CHANGE.format(trigger="approval_seen_delete", timing="BEFORE",
                               event="DELETE", when=""),
    )),
    # A tap wrote a receipt row beside its entry (three more index entries in its
    # commit): the digest the receipt must name now goes in the entry itself, and the
    # receipt row is written when the server takes the decision, with the batch's answer.
    # Until then the decision awaits its receipt from the outbox (``receipt_rows``).
    Migration("0014_outbox_digest", (
        "ALTER TABLE outbox ADD COLUMN digest TEXT",
    )),
    # The same copy, made after the row changed (``old`` is the row before either way, and
    # the trigger writes only decision_seen): a BEFORE trigger makes SQLite compute the
    # new row twice, which cost a batch's answer (500 rows stamped) four times the update.
    Migration("0015_decision_seen_after_update", (
        "DROP TRIGGER approval_seen_update",
        _SEEN_ON_CHANGE.format(trigger="approval_seen_update", timing="AFTER",
                               event="UPDATE OF version",
                               when="WHEN new.version IS NOT old.version"),
    )),
)


# Whose rows the reads give (``LocalStore.serve``); defined with the reads the cold start
# shares (``sync.store_reads``).
EveryAccount = store_reads.EveryAccount
EVERY_ACCOUNT = store_reads.EVERY_ACCOUNT
Owner = store_reads.Owner


iso = store_reads.iso


def parse_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _dumps(value: Any) -> str:
    # orjson: the outbox and the cache serialise thousands of rows per sync.
    return orjson.dumps(value, default=str).decode()


_loads = orjson.loads


def _loads_or_empty(value: str) -> dict[str, Any]:
    # An entry whose stored item was damaged on disk still lists (and is rejected by the
    # server when sent, alone), instead of breaking every read of the outbox.
    try:
        loaded = _loads(value)
    except orjson.JSONDecodeError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def utc_text(value: Any) -> str | None:
    """A server timestamp as stored for comparison in SQL: UTC ``iso``; a naive one is
    taken as UTC; one that cannot be read is dropped (never compared)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))


def search_text(summary: dict[str, Any]) -> str:
    """What the approvals search matches: id, agent name and id, requester and industry,
    lower-cased (Python's Unicode lower-casing; SQLite's ``lower`` knows only ASCII)."""
    agent = summary.get("agent")
    agent = agent if isinstance(agent, dict) else {}
    return " ".join((str(summary.get("id", "")), str(agent.get("name", "")),
                     str(agent.get("id", "")), str(summary.get("requester", "")),
                     str(summary.get("industry", "")))).lower()


# Values that come back from JSON as they went in (a dict holding only these needs no
# round trip through its text to be what a read of it gives).
_PLAIN_JSON = frozenset({str, int, bool, type(None)})
_PENDING = (OutboxState.QUEUED.value, OutboxState.SENDING.value)
_FTS_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_query(query: str) -> str | None:
    """Turn what a person types into an FTS5 query: every word required, the last one as a
    prefix (it is still being typed). Earlier words match whole: a prefix on every word
    makes FTS5 merge many doclists and costs tens of milliseconds over 100k seeds.

    Quoting each token keeps FTS5 syntax (``AND``, ``-``, ``"``) from being interpreted, so
    no input can make the search fail.
    """
    tokens = _FTS_TOKEN.findall(query)
    if not tokens:
        return None
    whole = [f'"{t}"' for t in tokens[:-1]]
    return " ".join([*whole, f'"{tokens[-1]}"*'])


# What a slim decision answer (``Prefer: return=minimal``) says of each approval.
SLIM_KEYS = frozenset({"id", "status", "version", "updated_at"})
# What is sealed in an outbox payload when a sealer is given (with any attachments).
SECRET_FIELDS = ("reason", "comment")
# How a secret key of cached JSON appears in ``_dumps`` text.
_SECRET_KEY_TEXTS = tuple(f'"{k}":' for k in sorted(SECRET_KEYS))


@dataclass(frozen=True)
class ServerSwitch:
    """What binding the store to another server changed."""

    previous: str
    current: str
    held: int  # queued for ``previous``, now held
    released: int  # held for ``current`` earlier, queued again


class Claimed(NamedTuple):
    """An entry taken for sending: its id, the stored batch item as JSON text (sent as it
    is, never parsed and re-serialised on the way out) and whether it has attachments."""

    id: str
    body: str
    has_files: bool = False

    @property
    def payload(self) -> dict[str, Any]:
        parsed: dict[str, Any] = _loads(self.body)
        return parsed


class DecisionBasis(NamedTuple):
    """A cached request as a new decision on it needs it (``LocalStore.decision_basis``)."""

    status: str  # as the server last said
    version: int
    veto_deadline: datetime | None
    pending: DecisionAction | None  # the owner's unanswered decision on it, as shown


@dataclass
class Outcome:
    """What the server said about one outbox entry."""

    entry_id: str
    applied: bool
    error_code: str | None = None
    error_message: str | None = None
    error_details: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    receipt: str | None = None  # the server's signed receipt of an applied decision


class LocalStore:
    """The SQLite database of one device. ``LocalStore()`` is in memory (tests)."""

    def __init__(self, path: Path | str | None = None, *,
                 migrations: Sequence[Migration] = MIGRATIONS,
                 sealer: OutboxSealer | None = None) -> None:
        self.path = Path(path) if path is not None else None
        # What the governor typed or attached is sealed with the device key when a sealer
        # is given (the engine always gives one); see ``sync.sealing``.
        self.sealer = sealer
        # Whose outbox, notifications and badges the reads give (``serve``): one device may
        # be shared by several accounts, and each sees only its own.
        self.owner: Owner = EVERY_ACCOUNT
        # Requests cached from push events, by the mark of their write (``listing_mark``).
        self._event_writes = 0
        self._cached_by_event: dict[str, int] = {}
        try:
            if self.path is None:
                self.engine: Engine = create_engine(
                    "sqlite://", connect_args={"check_same_thread": False},
                    poolclass=StaticPool)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.engine = create_engine(
                    f"sqlite:///{self.path}", connect_args={"check_same_thread": False,
                                                             "timeout": 30})
        except OSError as exc:
            raise StoreError(f"Cannot open the local database at {str(path)!r}: {exc}. "
                             "Check that the data directory is writable.") from exc
        event.listen(self.engine, "connect", _on_connect)
        event.listen(self.engine, "begin", _on_begin)
        # One writer at a time inside this process; SQLite serialises across processes.
        self._lock = threading.RLock()
        self.applied_migrations = self.migrate(migrations)
        # The outbox's hot path (a tap's checks and its durable row; claiming, sending and
        # recording batches) talks to one connection of its own, kept out of the pool: a
        # pooled checkout, its events and reset cost more than the statements of a tap.
        # Taken on first use, and again after ``close()``, as the pool's connections are.
        self._raw_fairy: Any = None
        # Seed search: the words of seeds ranked lately (``seed_rank.rank``'s ``known``).
        self._seed_splits: dict[Any, seed_rank.Split] = {}

    @property
    def _raw(self) -> sqlite3.Connection:
        if self._raw_fairy is None:
            self._raw_fairy = self.engine.raw_connection()
        return cast(sqlite3.Connection, self._raw_fairy.driver_connection)

    def close(self) -> None:
        with self._lock:
            if self._raw_fairy is not None:
                self._raw_fairy.close()
                self._raw_fairy = None
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the outbox's own connection (``BEGIN IMMEDIATE``,
        committed on leaving, rolled back on any error)."""
        with self._lock:
            db = self._raw
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                db.execute("COMMIT")
            except BaseException:
                # A COMMIT that failed (disk full, I/O error) leaves the transaction open:
                # rolled back here, or every later write on this connection would fail.
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    @contextmanager
    def _peeking(self) -> Iterator[sqlite3.Connection]:
        """The outbox's own connection for a read of one statement (its own snapshot)."""
        with self._lock:
            yield self._raw

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        # A deferred BEGIN: readers never wait for, or block, a writer (WAL).
        with self._lock, self.engine.connect().execution_options(readonly=True) as conn:
            yield conn

    # --- accounts ---------------------------------------------------------------------
    def serve(self, sub: str | None) -> None:
        """From now on read as the account ``sub`` (None: nobody is signed in): its own
        outbox entries, unanswered decisions and notifications, and no one else's."""
        self.owner = sub

    def keep_account(self, fields: dict[str, Any] | None) -> None:
        """Record who the store serves (``sub``, ``username``, ``scopes``; None: nobody
        signed in), for the cold start to name before the token vault is opened
        (``sync.cold_start``). The vault stays the authority: the engine corrects this
        whenever its account changes. Written only when it changed."""
        kept = store_reads.account_text(fields)
        if self.get_meta(store_reads.ACCOUNT_META) != kept:
            self.set_meta(store_reads.ACCOUNT_META, kept)

    def _mine(self, column: str = "sub") -> tuple[str, dict[str, Any]]:
        """The SQL condition (with its parameter) that keeps the owner's rows."""
        return store_reads.mine(self.owner, column)

    def _notification_sub(self) -> str:
        return store_reads.notification_sub(self.owner)

    def _mine_notification(self) -> tuple[str, dict[str, Any]]:
        return store_reads.mine_notification(self.owner)

    # --- migrations -------------------------------------------------------------------
    def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> list[str]:
        """Apply, in order, each migration not yet recorded; returns the names applied."""
        applied: list[str] = []
        with self.transaction() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE IF NOT EXISTS schema_migration "
                "(name TEXT PRIMARY KEY NOT NULL, applied_at TEXT NOT NULL)")
            done = {r[0] for r in conn.exec_driver_sql("SELECT name FROM schema_migration")}
        for migration in migrations:
            if migration.name in done:
                continue
            with self.transaction() as conn:
                for statement in migration.statements:
                    conn.exec_driver_sql(statement)
                if migration.backfill is not None:
                    migration.backfill(conn)
                conn.execute(text("INSERT INTO schema_migration (name, applied_at) "
                                  "VALUES (:n, :t)"),
                             {"n": migration.name, "t": iso(datetime.now(UTC))})
            applied.append(migration.name)
        return applied

    def migration_names(self) -> list[str]:
        with self.reading() as conn:
            return [r[0] for r in conn.exec_driver_sql(
                "SELECT name FROM schema_migration ORDER BY name")]

    # --- meta -------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self._peeking() as db:
            return store_reads.meta(db, key)

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(text("INSERT INTO meta (key, value) VALUES (:k, :v) "
                              "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                         {"k": key, "v": value})

    # --- the server this store belongs to ----------------------------------------------
    _SERVER_DATA = ("dashboard", "approval", "seed", "agent", "violation", "notification",
                    "sync_cursor")

    def bind_server(self, server_url: str) -> ServerSwitch | None:
        """Make this store the cache of ``server_url``; returns what a switch changed.

        The cache, the cursors (push included) and the notifications belong to one server:
        reused against another, they would show its data as this one's and skip its
        events. They are dropped at a switch. Decisions queued for the old server are not
        sent to the new one: they are held (``OTHER_SERVER``) until the store is bound to
        their server again, when they go back to the queue. A store from before servers
        were recorded adopts the first server it is bound to."""
        with self.transaction() as conn:
            row = conn.execute(text("SELECT value FROM meta WHERE key = 'server_url'")).first()
            previous = row[0] if row else None
            if previous == server_url:
                return None
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('server_url', :v) "
                              "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                         {"v": server_url})
            if previous is None:
                return None
            for table in self._SERVER_DATA:
                conn.exec_driver_sql(f"DELETE FROM {table}")  # names from the tuple above
            conn.exec_driver_sql("DELETE FROM meta WHERE key IN ('push_cursor', "
                                 "'last_synced_at', 'seed_schema')")
            held = conn.execute(text(
                "UPDATE outbox SET state = 'held', error_code = 'OTHER_SERVER', "
                "error_message = :m, error_details = :d WHERE state IN "
                "('queued', 'sending', 'held') AND error_code IS NOT 'OTHER_SERVER'"),
                {"m": f"Queued for {previous}, not sent to {server_url}. Point the app at "
                      f"{previous} again to send it, or discard it.",
                 "d": orjson.dumps({"server": previous}).decode()}).rowcount
            released = conn.execute(text(
                "UPDATE outbox SET state = 'queued', error_code = NULL, error_message = NULL, "
                "error_details = '{}' WHERE error_code = 'OTHER_SERVER' "
                "AND json_extract(error_details, '$.server') = :s"),
                {"s": server_url}).rowcount
        return ServerSwitch(previous, server_url, int(held or 0), int(released or 0))

    def device_id(self, configured: str | None = None) -> str:
        """The device's id: the configured one, else the one generated on first use."""
        if configured:
            return configured
        with self.transaction() as conn:
            row = conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'device_id'").first()
            if row:
                return str(row[0])
            device = f"dev-{uuid.uuid4().hex[:16]}"
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('device_id', :v)"),
                         {"v": device})
            return device

    # --- cursors ----------------------------------------------------------------------
    def cursor(self, collection: str) -> SyncCursor:
        with self.reading() as conn:
            row = conn.execute(text("SELECT cursor, etag, synced_at FROM sync_cursor "
                                    "WHERE collection = :c"), {"c": collection}).first()
        if row is None:
            return SyncCursor(collection=collection)
        return SyncCursor(collection=collection, cursor=row[0], etag=row[1], synced_at=row[2])

    @staticmethod
    def _set_cursor(conn: Connection, collection: str, *, cursor: str | None,
                    etag: str | None, synced_at: datetime) -> None:
        conn.execute(text(
            "INSERT INTO sync_cursor (collection, cursor, etag, synced_at) "
            "VALUES (:c, :cur, :e, :t) ON CONFLICT (collection) DO UPDATE SET "
            "cursor = excluded.cursor, etag = excluded.etag, synced_at = excluded.synced_at"),
            {"c": collection, "cur": cursor, "e": etag, "t": iso(synced_at)})

    def set_cursor(self, collection: str, *, cursor: str | None = None,
                   etag: str | None = None, synced_at: datetime) -> None:
        with self.transaction() as conn:
            self._set_cursor(conn, collection, cursor=cursor, etag=etag, synced_at=synced_at)

    def cursors(self) -> list[SyncCursor]:
        with self.reading() as conn:
            rows = conn.exec_driver_sql(
                "SELECT collection, cursor, etag, synced_at FROM sync_cursor").all()
        return [SyncCursor(collection=r[0], cursor=r[1], etag=r[2], synced_at=r[3])
                for r in rows]

    # --- dashboard --------------------------------------------------------------------
    def save_dashboard(self, body: dict[str, Any], etag: str | None,
                       fetched_at: datetime) -> None:
        with self.transaction() as conn:
            conn.execute(text(
                "INSERT INTO dashboard (id, body, etag, fetched_at) VALUES (1, :b, :e, :t) "
                "ON CONFLICT (id) DO UPDATE SET body = excluded.body, etag = excluded.etag, "
                "fetched_at = excluded.fetched_at"),
                {"b": self._sealed_json(body, "dashboard"), "e": etag, "t": iso(fetched_at)})

    def touch_dashboard(self, fetched_at: datetime) -> None:
        """A 304: what we hold is still current as of now."""
        with self.transaction() as conn:
            conn.execute(text("UPDATE dashboard SET fetched_at = :t WHERE id = 1"),
                         {"t": iso(fetched_at)})

    def load_dashboard(self) -> tuple[dict[str, Any], str | None, datetime] | None:
        with self._peeking() as db:
            row = store_reads.dashboard_row(db)
        if row is None:
            return None
        fetched = parse_iso(row[2])
        assert fetched is not None
        return self._cached(row[0], "dashboard"), row[1], fetched

    # --- the server's seed schema ------------------------------------------------------
    def save_seed_schema(self, body: dict[str, Any], etag: str | None,
                         fetched_at: datetime) -> None:
        """Keep the server's seed schema (one meta row; dropped at a server switch)."""
        self.set_meta("seed_schema", _dumps({"body": body, "etag": etag,
                                             "fetched_at": iso(fetched_at)}))

    def load_seed_schema(self) -> tuple[dict[str, Any], str | None, datetime] | None:
        stored = self.get_meta("seed_schema")
        if stored is None:
            return None
        kept = orjson.loads(stored)
        fetched = parse_iso(kept["fetched_at"])
        assert fetched is not None
        return kept["body"], kept["etag"], fetched

    # --- cached server data: free-text secrets sealed (``sync.sealing.seal_secrets``) ---
    def _sealed_json(self, body: Any, bound: str) -> str:
        """``body`` as stored: its reasons, comments, notes and attachments sealed for
        ``bound`` (the row), the rest in clear for SQL to list, filter and search."""
        text = _dumps(body)
        # Most rows (list summaries, most notifications) hold no secret key: one scan of
        # the text spares them the walk.
        if self.sealer is None or not any(k in text for k in _SECRET_KEY_TEXTS):
            return text
        return _dumps(seal_secrets(body, self.sealer, bound))

    def _cached(self, stored: str, bound: str) -> Any:
        """Stored JSON read back with its sealed values opened; rows written in clear by
        earlier versions read as they are, and only rows holding a sealed value pay for
        opening it."""
        body = _loads(stored)
        return open_secrets(body, self.sealer, bound) if has_sealed(stored) else body

    def seal_clear_cache(self) -> int:
        """Seal what versions before the cache was sealed left in clear (cached server data,
        outbox attachment names); once per database, recorded in ``meta``. Freed space is
        zeroed and the WAL checkpointed, so the clear text does not linger in the files.
        Returns how many values were rewritten."""
        if self.sealer is None or self.get_meta("cache_sealed") == "v1":
            return 0
        with self.transaction() as conn:
            db = _db(conn)
            db.execute("PRAGMA secure_delete = ON")
            changed = 0
            for table, column, bound in (("approval", "summary", "approval/"),
                                         ("approval", "detail", "approval/"),
                                         ("notification", "body", "notification/"),
                                         ("dashboard", "body", "dashboard")):
                rows = db.execute(f"SELECT id, {column} FROM {table} "
                                  f"WHERE {column} IS NOT NULL").fetchall()
                updates = []
                for row_id, stored in rows:
                    if has_sealed(stored):
                        continue  # sealed already
                    where = bound if bound == "dashboard" else f"{bound}{row_id}"
                    sealed = self._sealed_json(_loads(stored), where)
                    if sealed != stored:
                        updates.append((sealed, row_id))
                db.executemany(f"UPDATE {table} SET {column} = ? WHERE id = ?", updates)
                changed += len(updates)
            names = [(self._seal_file(r[1], r[2], f"{r[3]}/name"), r[0]) for r in db.execute(
                "SELECT id, name, entry_id, position FROM attachment").fetchall()
                if not is_sealed(r[1])]
            db.executemany("UPDATE attachment SET name = ? WHERE id = ?", names)
            db.execute("INSERT INTO meta (key, value) VALUES ('cache_sealed', 'v1') "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value")
        with self._lock:
            raw = self.engine.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]
                raw.driver_connection.execute("PRAGMA secure_delete = OFF")  # type: ignore[union-attr]
            finally:
                raw.close()
        return changed + len(names)

    # --- approvals --------------------------------------------------------------------
    def _approval_params(self, a: dict[str, Any], sealed: bool = False) -> tuple[Any, ...]:
        """The row's columns; ``sealed``: ``a``'s secrets are sealed already."""
        return (a["id"], a["status"], int(a["version"]), utc_text(a.get("veto_deadline")),
                a.get("created_at"),
                _dumps(a) if sealed else self._sealed_json(a, f"approval/{a['id']}"),
                search_text(a))

    _UPSERT_APPROVAL = (
        "INSERT INTO approval (id, status, version, veto_deadline, created_at, summary, "
        "search) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version, "
        "veto_deadline = excluded.veto_deadline, created_at = excluded.created_at, "
        "summary = excluded.summary, search = excluded.search "
        # Never let an older answer overwrite a newer one (a list page read before a
        # decision's own answer arrived).
        "WHERE excluded.version >= approval.version")

    def listing_mark(self) -> int:
        """A mark to take when a whole listing is asked for (``upsert_approvals``'s
        ``asked_at``): what push events cache after it, the listing cannot know of."""
        return self._event_writes

    def upsert_approvals(self, approvals: Iterable[dict[str, Any]], *,
                         replace_all: bool = False, asked_at: int | None = None) -> None:
        """Store approval summaries; with ``replace_all`` forget those not listed.

        ``asked_at`` (``listing_mark()`` when the listing was asked for): a request cached
        from a push event after that mark is missing from the listing for that reason
        alone, and is kept for the next listing to judge."""
        rows = [self._approval_params(a) for a in approvals]
        with self.transaction() as conn:
            if rows:
                conn.exec_driver_sql(self._UPSERT_APPROVAL, rows)
            if replace_all:
                keep = {r[0] for r in rows}
                existing = [r[0] for r in conn.exec_driver_sql("SELECT id FROM approval")
                            if asked_at is None
                            or self._cached_by_event.get(r[0], -1) <= asked_at]
                gone = [{"id": i} for i in existing if i not in keep]
                if gone:
                    conn.execute(text("DELETE FROM approval WHERE id = :id"), gone)

    def save_approval_detail(self, detail: dict[str, Any]) -> None:
        """Store a full approval; it also refreshes the summary (same fields, fewer)."""
        params = self._approval_params(detail)
        with self.transaction() as conn:
            conn.exec_driver_sql(self._UPSERT_APPROVAL, params)
            conn.execute(text("UPDATE approval SET detail = :d, detail_version = :v "
                              "WHERE id = :id AND version <= :v"),
                         {"d": self._sealed_json(detail, f"approval/{detail['id']}"),
                          "v": int(detail["version"]), "id": detail["id"]})

    def approval_versions(self) -> dict[str, tuple[int, int | None]]:
        """``{id: (version, version of the stored detail)}``: which details are stale."""
        with self.reading() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, version, detail_version FROM approval").all()
        return {r[0]: (r[1], r[2]) for r in rows}

    def stale_detail_ids(self, limit: int, open_statuses: Iterable[str]) -> list[str]:
        """Approvals whose stored detail is missing or older than the summary: requests
        still open first, newest first."""
        statuses = sorted(open_statuses)
        marks = ", ".join(f":s{i}" for i in range(len(statuses))) or "''"
        with self.reading() as conn:
            rows = conn.execute(text(
                "SELECT id FROM approval WHERE detail_version IS NOT version "
                f"ORDER BY CASE WHEN status IN ({marks}) THEN 0 ELSE 1 END, "
                "created_at DESC, id DESC LIMIT :l"),
                {"l": limit, **{f"s{i}": v for i, v in enumerate(statuses)}}).all()
        return [r[0] for r in rows]

    def approval_summaries(self) -> list[dict[str, Any]]:
        with self.reading() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, summary FROM approval ORDER BY created_at DESC, id DESC").all()
        return [self._cached(r[1], f"approval/{r[0]}") for r in rows]

    def approval_page(self, filter: str, needle: str, now: datetime, limit: int,
                      offset: int) -> list[tuple[dict[str, Any], DecisionAction | None]]:
        """One page of the list, newest first: ``(summary, unanswered decision)`` for the
        requests whose shown status passes ``filter`` ("all", "pending", "veto_window",
        "decided") and whose search text holds ``needle`` (lower-cased by the caller).
        Sealed values (notes, reasons) stay sealed: the list shows none of them, so a page
        decrypts nothing."""
        with self._peeking() as db:
            rows = store_reads.approval_page(db, self.owner, filter, needle, iso(now), limit,
                                             offset)
        return [(_loads(summary), pending) for summary, pending in rows]

    def approval_total(self, filter: str, needle: str, now: datetime) -> int:
        """How many requests ``approval_page`` would list with no limit."""
        with self._peeking() as db:
            return store_reads.approval_total(db, self.owner, filter, needle, iso(now))

    def approval(self, approval_id: str) -> tuple[dict[str, Any], bool] | None:
        """The fullest record held: ``(fields, is_detail)``."""
        with self._peeking() as db:
            row = db.execute("SELECT summary, detail, version, detail_version "
                             "FROM approval WHERE id = ?", (approval_id,)).fetchone()
        return None if row is None else self._composed(approval_id, *row)

    def _composed(self, approval_id: str, summary: str, detail: str | None, version: int,
                  detail_version: int | None) -> tuple[dict[str, Any], bool]:
        """An approval row's fields as ``approval`` gives them."""
        bound = f"approval/{approval_id}"
        if detail is not None:
            fields = self._cached(detail, bound)
            if detail_version == version:
                return fields, True
            # The summary is newer than the detail: keep the detail's extra fields, take
            # the summary's status and version.
            fields.update(self._cached(summary, bound))
            return fields, True
        return self._cached(summary, bound), False

    # --- seeds ------------------------------------------------------------------------
    _UPSERT_SEED = (
        "INSERT INTO seed (id, version, status, title, description, conditions, body) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
        "status = excluded.status, title = excluded.title, "
        "description = excluded.description, conditions = excluded.conditions, "
        "body = excluded.body")
    # Seeds new to the store, indexed in one statement (see ``_write_seeds``).
    _INDEX_NEW_SEEDS = (
        "INSERT INTO seed_fts (rowid, title, description, conditions, id) "
        "SELECT num, title, description, conditions, id FROM seed WHERE num > ?")
    # From this many seeds in one write, the new ones are indexed once, not row by row.
    BULK_INDEX_ROWS = 200

    @staticmethod
    def _seed_row(s: dict[str, Any]) -> tuple[str, int, str, str, str, str, str]:
        if not isinstance(s, dict) or not isinstance(s.get("id"), str) or not s["id"]:
            raise StoreError(f"The server sent a seed without an id ({str(s)[:80]!r}); "
                             "nothing of its page was stored. Sync again, and report the "
                             "server if it keeps sending it.")
        conditions = s.get("conditions")
        try:
            version = int(s.get("version", 0))
        except (TypeError, ValueError) as exc:
            raise StoreError(f"Seed {s['id']!r} came with the version {s.get('version')!r}, "
                             "not a number; nothing of its page was stored. Sync again, and "
                             "report the server if it keeps sending it.") from exc
        return (s["id"], version, s.get("status", ""), s.get("title", ""),
                s.get("description", ""), _dumps(conditions) if conditions else "",
                _dumps(s))

    def _write_seeds(self, conn: Connection, seeds: Iterable[dict[str, Any]]) -> int:
        """Upsert ``seeds`` in the caller's transaction; returns how many.

        The ``seed_ai`` trigger indexes each inserted row on its own, which cost five times
        the rest of an initial sync; so for a bulk write the trigger is dropped, the rows
        inserted, the new ones (numbered above the highest number before, AUTOINCREMENT)
        indexed by one ``INSERT ... SELECT``, and the trigger created again from its own
        stored text: all in this transaction, so no reader ever sees a seed unindexed and
        a failure leaves schema and index as they were. Updated rows still go through
        ``seed_au``. Ids repeated in one write keep their last version (a row inserted and
        updated in the same write would be removed from an index it is not yet in)."""
        rows = list({row[0]: row for row in map(self._seed_row, seeds)}.values())
        if not rows:
            return 0
        self._seed_splits.clear()  # a row may change under its version (local writes)
        db = cast(sqlite3.Connection, conn.connection.driver_connection)
        if len(rows) < self.BULK_INDEX_ROWS:
            db.executemany(self._UPSERT_SEED, rows)
            return len(rows)
        trigger = db.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' "
                             "AND name = 'seed_ai'").fetchone()[0]
        highest = db.execute("SELECT coalesce(max(num), 0) FROM seed").fetchone()[0]
        db.execute("DROP TRIGGER seed_ai")
        db.executemany(self._UPSERT_SEED, rows)
        db.execute(self._INDEX_NEW_SEEDS, (highest,))
        db.execute(trigger)
        return len(rows)

    def upsert_seeds(self, seeds: Iterable[dict[str, Any]]) -> int:
        with self.transaction() as conn:
            return self._write_seeds(conn, seeds)

    def delete_seeds(self, ids: Iterable[str]) -> None:
        params = [{"id": i} for i in ids]
        if params:
            with self.transaction() as conn:
                conn.execute(text("DELETE FROM seed WHERE id = :id"), params)

    def apply_seed_delta(self, changed: list[dict[str, Any]], deleted: list[str],
                         version: str | None, synced_at: datetime) -> None:
        """One transaction: the tombstones, the changes and the new cursor together."""
        with self.transaction() as conn:
            if deleted:
                conn.execute(text("DELETE FROM seed WHERE id = :id"),
                             [{"id": i} for i in deleted])
            self._write_seeds(conn, changed)
            self._set_cursor(conn, "seeds", cursor=version, etag=None, synced_at=synced_at)

    # Title over description and conditions, as bm25 column weights.
    SEARCH_WEIGHTS = (4.0, 1.0, 1.0)
    RANK_UP_TO = 2000  # seeds; up to this, FTS5 ranks every match itself
    RANK_CANDIDATES = 100  # beyond it, how many of the newest matches are ranked
    SPLITS_KEPT = 4096  # seeds whose words ranking keeps between searches (a few MB)
    _SEARCH_RANKED = (
        "SELECT s.body FROM seed_fts JOIN seed s ON s.num = seed_fts.rowid "
        "WHERE seed_fts MATCH ? ORDER BY bm25(seed_fts, {}, {}, {}), s.version DESC, "
        "s.num DESC LIMIT ?").format(*SEARCH_WEIGHTS)
    _SEARCH_NEWEST = (
        "SELECT s.num, s.version, s.title, s.description, s.conditions "
        "FROM seed_fts JOIN seed s ON s.num = seed_fts.rowid "
        "WHERE seed_fts MATCH ? ORDER BY seed_fts.rowid DESC LIMIT ?")

    def search_seeds(self, query: str = "", limit: int = 200) -> list[dict[str, Any]]:
        """Seeds matching every word (the last one as a prefix), best first: bm25 with the
        title weighted over the description and conditions, then the newest.

        Up to ``RANK_UP_TO`` cached seeds FTS5 ranks every match. Beyond, FTS5's bm25
        would walk every document holding each word (3 to 10 ms for a common word over
        100,000 seeds), so the newest ``RANK_CANDIDATES`` matches (at least ``limit``),
        which FTS5 streams and stops at, are ranked by ``sync.seed_rank`` instead."""
        match = fts_query(query)
        # One read transaction; its statements go to the driver's connection directly (the
        # SQLAlchemy result layer cost a tenth of a search over 100k seeds).
        with self.reading() as conn:
            db = _db(conn)
            if match is None:
                rows = db.execute("SELECT body FROM seed ORDER BY id LIMIT ?",
                                  (limit,)).fetchall()
                return [_loads(r[0]) for r in rows]
            if self._seed_total(conn) <= self.RANK_UP_TO:
                rows = db.execute(self._SEARCH_RANKED, (match, limit)).fetchall()
                return [_loads(r[0]) for r in rows]
            found = db.execute(
                self._SEARCH_NEWEST, (match, max(limit, self.RANK_CANDIDATES))).fetchall()
            if len(self._seed_splits) > self.SPLITS_KEPT:
                self._seed_splits.clear()
            best = seed_rank.rank(
                [seed_rank.Candidate(r[0], (r[2], r[3], r[4]), r[1]) for r in found],
                _FTS_TOKEN.findall(query), self.SEARCH_WEIGHTS, self._seed_splits)[:limit]
            bodies: dict[int, str] = dict(db.execute(
                "SELECT num, body FROM seed WHERE num IN (SELECT value FROM json_each(?))",
                (_dumps(best),)).fetchall())
        return [_loads(bodies[num]) for num in best]

    def _seed_total(self, conn: Connection) -> int:
        # max(num) is an index lookup, and close enough to the count to pick a strategy.
        return int(_db(conn).execute("SELECT coalesce(max(num), 0) FROM seed").fetchone()[0])

    def seed(self, seed_id: str) -> dict[str, Any] | None:
        with self.reading() as conn:
            row = conn.execute(text("SELECT body FROM seed WHERE id = :id"),
                               {"id": seed_id}).first()
        return _loads(row[0]) if row else None

    def seed_count(self) -> int:
        with self.reading() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM seed").scalar_one())

    # --- agents, violations, notifications --------------------------------------------
    def replace_agents(self, agents: list[dict[str, Any]], etag: str | None,
                       synced_at: datetime, digest: str | None = None) -> None:
        with self.transaction() as conn:
            conn.exec_driver_sql("DELETE FROM agent")
            if agents:
                conn.execute(text("INSERT INTO agent (id, body) VALUES (:id, :b)"),
                             [{"id": a["id"], "b": _dumps(a)} for a in agents])
            self._set_cursor(conn, "agents", cursor=digest, etag=etag, synced_at=synced_at)

    def agents(self) -> list[dict[str, Any]]:
        with self.reading() as conn:
            return [_loads(r[0]) for r in
                    conn.exec_driver_sql("SELECT body FROM agent ORDER BY id")]

    def upsert_violations(self, violations: list[dict[str, Any]]) -> None:
        if violations:
            with self.transaction() as conn:
                self._upsert_violations(conn, violations)

    @staticmethod
    def _upsert_violations(conn: Connection, violations: list[dict[str, Any]]) -> None:
        conn.execute(text(
            "INSERT INTO violation (id, occurred_at, body) VALUES (:id, :t, :b) "
            "ON CONFLICT (id) DO UPDATE SET occurred_at = excluded.occurred_at, "
            "body = excluded.body"),
            [{"id": v["id"], "t": str(v.get("occurred_at", "")), "b": _dumps(v)}
             for v in violations])

    def apply_violation_delta(self, changed: list[dict[str, Any]], deleted: list[str],
                              version: str | None, synced_at: datetime) -> None:
        with self.transaction() as conn:
            if deleted:
                conn.execute(text("DELETE FROM violation WHERE id = :id"),
                             [{"id": i} for i in deleted])
            if changed:
                self._upsert_violations(conn, changed)
            self._set_cursor(conn, "violations", cursor=version, etag=None,
                             synced_at=synced_at)

    def violations(self) -> list[dict[str, Any]]:
        with self.reading() as conn:
            return [_loads(r[0]) for r in conn.exec_driver_sql(
                "SELECT body FROM violation ORDER BY occurred_at DESC")]

    def add_notifications(self, notifications: list[dict[str, Any]]) -> int:
        """Store notifications not seen before; returns how many were new."""
        if not notifications:
            return 0
        sub = self._notification_sub()
        with self.transaction() as conn:
            before = conn.exec_driver_sql("SELECT count(*) FROM notification").scalar_one()
            conn.execute(text(
                "INSERT INTO notification (sub, id, timestamp, body, read) "
                "VALUES (:sub, :id, :t, :b, 0) ON CONFLICT (sub, id) DO NOTHING"),
                [{"sub": sub, "id": str(n["id"]), "t": str(n.get("timestamp", "")),
                  "b": self._sealed_json(n, f"notification/{n['id']}")}
                 for n in notifications])
            after = conn.exec_driver_sql("SELECT count(*) FROM notification").scalar_one()
        return int(after - before)

    def has_notification(self, notification_id: str) -> bool:
        mine, owner = self._mine_notification()
        with self.reading() as conn:
            return conn.execute(text(f"SELECT 1 FROM notification WHERE id = :id AND {mine}"),
                                {"id": notification_id, **owner}).first() is not None

    def apply_event(self, notification: dict[str, Any], approval: dict[str, Any] | None,
                    push_cursor: str | None) -> None:
        """A pushed event: its notification, what it changed, and the stream cursor."""
        if approval is not None:  # see ``listing_mark``
            self._event_writes += 1
            self._cached_by_event[str(approval["id"])] = self._event_writes
        with self.transaction() as conn:
            conn.execute(text(
                "INSERT INTO notification (sub, id, timestamp, body, read) "
                "VALUES (:sub, :id, :t, :b, 0) ON CONFLICT (sub, id) DO NOTHING"),
                {"sub": self._notification_sub(), "id": notification["id"],
                 "t": str(notification["timestamp"]),
                 "b": self._sealed_json(notification, f"notification/{notification['id']}")})
            if approval is not None:
                conn.exec_driver_sql(self._UPSERT_APPROVAL, self._approval_params(approval))
            if push_cursor is not None:
                conn.execute(text("INSERT INTO meta (key, value) VALUES ('push_cursor', :v) "
                                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                             {"v": push_cursor})

    def notifications(self) -> list[tuple[dict[str, Any], bool]]:
        with self._peeking() as db:
            rows = store_reads.notification_rows(db, self.owner)
        return [(self._cached(body, f"notification/{nid}"), read) for nid, body, read in rows]

    def mark_read(self, notification_id: str) -> bool:
        with self.transaction() as conn:
            mine, owner = self._mine_notification()
            result = conn.execute(text(f"UPDATE notification SET read = 1 WHERE id = :id "
                                       f"AND {mine}"), {"id": notification_id, **owner})
        return bool(result.rowcount)

    # --- outbox -----------------------------------------------------------------------
    def enqueue(self, *, entry_id: str, kind: str, payload: dict[str, Any],
                created_at: datetime, approval_id: str | None = None,
                action: DecisionAction | None = None, expected_version: int | None = None,
                veto_deadline: datetime | None = None, sub: str | None = None,
                attachments: Sequence[Attachment] = ()) -> OutboxEntry:
        """Queue one write, with its attachments, in one transaction. Plain DB-API
        statements, and the entry returned is built from what was written rather than
        read back: a tap's decision costs three statements and a commit."""
        now = iso(created_at)
        clear = _dumps(payload)
        digest = None
        if kind == "decision" and approval_id is not None and action is not None:
            # What the server's receipt for this decision must name.
            digest = decision_digest(payload, [
                {"name": a.name, "content_type": a.content_type,
                 "data_base64": a.data_base64} for a in attachments])
        row = [entry_id, 0, kind, approval_id, action.value if action else None,
               clear, expected_version,
               iso(veto_deadline) if veto_deadline else None, "queued", now, now, sub]
        with self._writing() as db:
            # The sequence never goes back, even after entries are deleted: the next one
            # is past both the highest held and the floor kept in meta, which the deletes
            # (``remove``, ``prune_applied``) raise, so a tap writes no meta row.
            row[1] = int(db.execute(self._NEXT_SEQ).fetchone()[0])
            stored = list(row)
            # Reasons, comments and files are sealed with the device key; the entry
            # returned keeps them in clear (it is what the caller just gave us).
            if self.sealer is not None and (attachments or any(
                    payload.get(k) for k in SECRET_FIELDS)):
                stored[5] = self.sealer.seal(clear, entry_id)
            db.execute("INSERT INTO outbox (id, seq, kind, approval_id, action, payload, "
                       "expected_version, veto_deadline, state, created_at, updated_at, sub, "
                       "digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (*stored, digest))
            if attachments:
                db.executemany(
                    "INSERT INTO attachment (entry_id, position, name, content_type, "
                    "data_base64) VALUES (?, ?, ?, ?, ?)",
                    [(entry_id, i, self._seal_file(a.name, entry_id, f"{i}/name"),
                      a.content_type, self._seal_file(a.data_base64, entry_id, i))
                     for i, a in enumerate(attachments)])
        # The row as ``entry()`` would read it back (id .. created_at, attempts,
        # error_code, error_message, error_details, sub). A payload of plain values (a
        # tap's) reads back as it was given, so the text just written is not parsed again.
        plain = all(type(v) in _PLAIN_JSON for v in payload.values())
        return self._entry((*row[:10], 0, None, None, None, sub),
                           payload=dict(payload) if plain else None)

    def seen(self, entry_id: str) -> dict[str, Any] | None:
        """The request as the governor saw it when making decision ``entry_id``: the row
        kept when the request changed under the decision (``_SEEN_ON_CHANGE``), else the
        request as cached, unchanged since. None once the entry is gone."""
        with self._peeking() as db:
            row = db.execute(
                "SELECT o.approval_id, s.body, s.approval_id FROM outbox o "
                "LEFT JOIN decision_seen s ON s.entry_id = o.id WHERE o.id = ?",
                (entry_id,)).fetchone()
        if row is None:
            return None
        approval_id, kept, kept_for = row
        if kept is not None and kept_for is None:  # copied at the tap by earlier versions
            return cast(dict[str, Any], self._cached(kept, f"seen/{entry_id}"))
        if kept is not None:
            summary, detail, version, detail_version = _loads(kept)
            return self._composed(kept_for, summary, detail, version, detail_version)[0]
        found = self.approval(approval_id) if approval_id is not None else None
        return found[0] if found is not None else None

    _NEXT_SEQ = ("SELECT max((SELECT coalesce(max(seq), 0) + 1 FROM outbox), coalesce("
                 "(SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_seq'), 0))")
    # Before entries are deleted: the floor moves past every sequence number given so far.
    # (``WHERE true``: SQLite's rule for an upsert fed by a SELECT.)
    _KEEP_SEQ = ("INSERT INTO meta (key, value) "
                 + _NEXT_SEQ.replace("SELECT max(", "SELECT 'next_seq', max(", 1)
                 + " WHERE true ON CONFLICT (key) DO UPDATE SET value = excluded.value")

    _ENTRY_COLUMNS = ("id, seq, kind, approval_id, action, payload, expected_version, "
                      "veto_deadline, state, created_at, attempts, error_code, "
                      "error_message, error_details, sub")

    def _open(self, stored: str, entry_id: str, part: int | str | None = None) -> str:
        """An outbox value in clear; ``DeviceKeyError`` naming the entry if it cannot be."""
        if not is_sealed(stored):
            return stored
        if self.sealer is None:
            raise DeviceKeyError(f"Outbox entry {entry_id!r} is sealed, and this store was "
                                 "opened without the device key; open it through the "
                                 "engine (which takes the key from the token vault).",
                                 entry_id)
        return self.sealer.open(stored, entry_id, part)

    def _seal_file(self, value: str, entry_id: str, position: int | str) -> str:
        if self.sealer is None:
            return value
        return self.sealer.seal(value, entry_id, position)

    def _readable(self, stored: str, entry_id: str) -> str:
        try:
            return self._open(stored, entry_id)
        except DeviceKeyError:
            return "{}"  # shown without its text; held when it is to be sent

    def _entry(self, row: Sequence[Any], state: OutboxState | None = None,
               attempts: int | None = None, payload: dict[str, Any] | None = None
               ) -> OutboxEntry:
        # Rows were validated on the way in; skipping validation on the way out keeps a
        # 500-entry batch cheap to build.
        return OutboxEntry.model_construct(
            id=row[0], seq=row[1], kind=row[2], approval_id=row[3],
            action=DecisionAction(row[4]) if row[4] else None,
            payload=payload if payload is not None
            else _loads_or_empty(self._readable(row[5], row[0])),
            expected_version=row[6], veto_deadline=parse_iso(row[7]),
            state=state or OutboxState(row[8]), created_at=datetime.fromisoformat(row[9]),
            attempts=row[10] if attempts is None else attempts, error_code=row[11],
            error_message=row[12], error_details=_loads(row[13] or "{}"), sub=row[14])

    def entry(self, entry_id: str) -> OutboxEntry | None:
        with self.reading() as conn:
            row = conn.execute(text(f"SELECT {self._ENTRY_COLUMNS} FROM outbox WHERE id = :id"),
                               {"id": entry_id}).first()
        return self._entry(row) if row else None

    def entries(self, states: Iterable[OutboxState] | None = None, *, owned: bool = False
                ) -> list[OutboxEntry]:
        """The entries in queue order, of ``states`` if given; with ``owned`` only the
        owner's (``serve``): what the account's outbox shows. Without it every account's
        (the judges of tests and tools)."""
        mine, params = self._mine() if owned else ("1", {})
        sql = f"SELECT {self._ENTRY_COLUMNS} FROM outbox WHERE {mine}"
        if states is not None:
            names = [s.value for s in states]
            if not names:
                return []
            sql += " AND state IN (" + ", ".join(f":s{i}" for i in range(len(names))) + ")"
            params.update({f"s{i}": n for i, n in enumerate(names)})
        sql += " ORDER BY seq"
        with self.reading() as conn:
            return [self._entry(r) for r in conn.execute(text(sql), params)]

    # The send path runs these for every batch of 500: plain DB-API statements with
    # positional parameters (SQLAlchemy's ``text()`` binds cost more than the statements).
    _CLAIM = ("SELECT id, payload, EXISTS (SELECT 1 FROM attachment a "
              "WHERE a.entry_id = outbox.id) FROM outbox {index} WHERE state = 'queued' "
              "AND {which} AND kind = ? AND sub IS ? "
              "AND id NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?")
    # Vetoes are few: found through their index and sorted, never by walking the queue.
    _CLAIM_VETOES = _CLAIM.format(index="INDEXED BY outbox_veto", which="action = 'veto'")
    _CLAIM_OTHERS = _CLAIM.format(index="", which="action IS NOT 'veto'")
    _MARK_SENDING = ("UPDATE outbox SET state = 'sending', attempts = attempts + 1, "
                     "updated_at = ? WHERE id = ?")

    def claim(self, kind: str, limit: int, sub: str | None, now: datetime,
              skip: Iterable[str] = ()) -> list[Claimed]:
        """Take the next sendable entries and mark them ``sending``, in one transaction, so
        an entry cancelled a moment earlier is never sent: vetoes first (their deadlines
        are hard), then the rest in sequence order. ``skip``: ids already tried in this
        pass (the server left them unanswered); they wait for the next pass."""
        skipped = _dumps(list(skip))
        with self._writing() as db:
            # Two statements rather than one ``ORDER BY <is veto>, seq``: each walks an
            # index in order and stops at the limit instead of sorting the whole queue.
            rows = db.execute(self._CLAIM_VETOES, (kind, sub, skipped, limit)).fetchall()
            if len(rows) < limit:
                rows += db.execute(self._CLAIM_OTHERS,
                                   (kind, sub, skipped, limit - len(rows))).fetchall()
            rows = self._opened(db, rows, now)
            if rows:
                t = iso(now)
                db.executemany(self._MARK_SENDING, [(t, r[0]) for r in rows])
        return [Claimed(r[0], r[1], bool(r[2])) for r in rows]

    def _opened(self, db: sqlite3.Connection, rows: list[Any], now: datetime) -> list[Any]:
        """The claimed rows with sealed payloads opened; an entry the device key does not
        open is held with the reason (never sent, never dropped) and left out."""
        if not any(is_sealed(r[1]) for r in rows):
            return rows
        opened: list[Any] = []
        held: list[tuple[str, str, str]] = []
        for r in rows:
            try:
                opened.append((r[0], self._open(r[1], r[0]), r[2]))
            except DeviceKeyError as exc:
                held.append((iso(now), str(exc), r[0]))
        if held:
            db.executemany(
                "UPDATE outbox SET state = 'held', updated_at = ?, error_code = 'DEVICE_KEY', "
                "error_message = ? WHERE id = ?", held)
        return opened

    def claim_ids(self, entry_ids: Sequence[str], now: datetime) -> list[Claimed]:
        """Claim these entries again, in order, if they are still queued."""
        with self._writing() as db:
            found = {r[0]: r for r in db.execute(
                "SELECT id, payload, EXISTS (SELECT 1 FROM attachment a "
                "WHERE a.entry_id = outbox.id) FROM outbox WHERE state = 'queued' "
                "AND id IN (SELECT value FROM json_each(?))", (_dumps(list(entry_ids)),))}
            rows = self._opened(db, [found[i] for i in dict.fromkeys(entry_ids) if i in found],
                                now)
            if rows:
                t = iso(now)
                db.executemany(self._MARK_SENDING, [(t, r[0]) for r in rows])
        return [Claimed(r[0], r[1], bool(r[2])) for r in rows]

    def attachments(self, entry_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
        if not entry_ids:
            return {}
        with self._peeking() as db:
            return self._attachments(db, entry_ids)

    def _attachments(self, db: sqlite3.Connection,
                     entry_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        rows = db.execute(
            "SELECT entry_id, name, content_type, data_base64, position FROM attachment "
            "WHERE entry_id IN (SELECT value FROM json_each(?)) "
            "ORDER BY entry_id, position", (_dumps(list(entry_ids)),)).fetchall()
        for r in rows:
            data, name = r[3], r[1]
            if is_sealed(data):
                data = self._open(data, r[0], r[4])
            if is_sealed(name):
                name = self._open(name, r[0], f"{r[4]}/name")
            found.setdefault(r[0], []).append(
                {"name": name, "content_type": r[2], "data_base64": data})
        return found

    def requeue(self, entry_ids: Sequence[str], now: datetime) -> None:
        """The send failed before the server could answer: back in the queue, unchanged."""
        if not entry_ids:
            return
        t = iso(now)
        with self._writing() as db:
            db.executemany("UPDATE outbox SET state = 'queued', updated_at = ? "
                           "WHERE id = ? AND state = 'sending'", [(t, i) for i in entry_ids])

    def requeue_all_sending(self, now: datetime) -> int:
        """Recovery: whatever a previous process left ``sending`` is queued again (the
        server may or may not have it; the same key makes the replay safe)."""
        with self.transaction() as conn:
            result = conn.execute(text("UPDATE outbox SET state = 'queued', updated_at = :t "
                                       "WHERE state = 'sending'"), {"t": iso(now)})
        return int(result.rowcount or 0)

    def record_outcomes(self, outcomes: Sequence[Outcome], now: datetime) -> None:
        """The server's answers for a batch, all in one transaction; approvals the server
        returned refresh the cache in the same transaction, so the pending marker and the
        fresh state appear together. An approval that is only its id, status, version and
        ``updated_at`` (``return=minimal``) is stamped on the cached request; a whole one
        (a server answering in full, or a rejection, which stays whole under
        ``return=minimal``) is merged."""
        if not outcomes:
            return
        t = iso(now)
        applied = [o.entry_id for o in outcomes if o.applied]
        rejected = [(t, o.error_code, o.error_message, _dumps(o.error_details or {}),
                     o.entry_id) for o in outcomes if not o.applied]
        returned = [o.approval for o in outcomes
                    if o.approval and "id" in o.approval and "status" in o.approval
                    and "version" in o.approval]
        receipts = [(o.receipt, t, o.entry_id) for o in outcomes if o.applied and o.receipt]
        with self._writing() as db:
            # One statement per change over the batch's ids (``json_each``), not one per
            # entry.
            applied_ids = _dumps(applied)
            if applied:  # the receipt rows of the decisions taken, kept after their entries
                db.execute(self._RECEIPTS_FROM_OUTBOX, (applied_ids,))
            if receipts:  # before the attachments go: an entry queued earlier needs them
                self._expect_receipts(db, [r[2] for r in receipts])
                db.executemany("UPDATE receipt SET token = ?, received_at = ? "
                               "WHERE decision_id = ?", receipts)
            if applied:
                db.execute(
                    "UPDATE outbox SET state = 'applied', updated_at = ?, error_code = NULL, "
                    "error_message = NULL, error_details = '{}' WHERE id IN "
                    "(SELECT value FROM json_each(?)) AND state IN ('queued', 'sending')",
                    (t, applied_ids))
                # The evidence reached the server; keep the row, drop the bytes.
                db.execute("DELETE FROM attachment WHERE entry_id IN "
                           "(SELECT value FROM json_each(?))", (applied_ids,))
            if rejected:
                db.executemany(
                    "UPDATE outbox SET state = 'rejected', updated_at = ?, error_code = ?, "
                    "error_message = ?, error_details = ? "
                    "WHERE id = ? AND state IN ('queued', 'sending')", rejected)
                db.executemany("DELETE FROM receipt WHERE decision_id = ? "
                               "AND token IS NULL", [(r[4],) for r in rejected])
            # Told apart by what each carries, not by ``Preference-Applied``: under
            # ``return=minimal`` a rejection still carries the whole request (the fields
            # a conflict names come from it), and a replay of a slim first answer is slim
            # without the header.
            stamped = [a for a in returned if a.keys() <= SLIM_KEYS]
            full = [a for a in returned if not a.keys() <= SLIM_KEYS]
            if stamped:
                db.executemany(self._STAMP_APPROVAL, [
                    (str(a["status"]), int(a["version"]),
                     a["updated_at"] if isinstance(a.get("updated_at"), str) else None,
                     str(a["id"])) for a in stamped])
            if full:
                self._merge_approvals(db, full)

    # A slim answer's new status and version laid over the cached summary in SQL (nothing
    # parsed or sealed: the fields it names hold no secret). The detail keeps its older
    # version, so it reads with the summary's status and is fetched again by the next
    # download; fields the answer leaves out (deadline, decider) come with the next
    # listing, which the same version overwrites.
    _STAMP_APPROVAL = (
        "UPDATE approval SET status = ?1, version = ?2, summary = CASE WHEN ?3 IS NULL "
        "THEN json_set(summary, '$.status', ?1, '$.version', ?2) "
        "ELSE json_set(summary, '$.status', ?1, '$.version', ?2, '$.updated_at', ?3) END "
        "WHERE id = ?4 AND version <= ?2")

    def _merge_approvals(self, db: sqlite3.Connection,
                         returned: list[dict[str, Any]]) -> None:
        """Lay what the server returned over what is cached: a batch answer may carry only
        what a decision changes, and the cached summary and detail keep the rest."""
        ids = [str(a["id"]) for a in returned]
        held = {r[0]: (r[1], r[2]) for r in db.execute(
            "SELECT id, summary, detail FROM approval "
            "WHERE id IN (SELECT value FROM json_each(?))", (_dumps(ids),))}
        summaries = []
        details = []
        for approval in returned:
            summary_text, detail_text = held.get(str(approval["id"]), (None, None))
            # The answer's secrets (its notes) are sealed once, for both rows; what the
            # rows held sealed stays sealed (``overlay``; opened only if the answer does
            # not replace it).
            bound = f"approval/{approval['id']}"
            change = seal_secrets(approval, self.sealer, bound)
            summary = self._overlaid(summary_text, approval, change, bound)
            if not {"agent", "requester", "industry"} <= summary.keys():
                continue  # too little to show a request we do not hold
            summaries.append(self._approval_params(summary, sealed=True))
            if detail_text is not None:
                detail = self._overlaid(detail_text, approval, change, bound)
                version = int(approval["version"])
                details.append((_dumps(detail), version, approval["id"], version))
        if summaries:
            db.executemany(self._UPSERT_APPROVAL, summaries)
        if details:
            # The detail, brought to the same version, need not be fetched again.
            db.executemany("UPDATE approval SET detail = ?, detail_version = ? "
                                 "WHERE id = ? AND version = ?", details)

    def _overlaid(self, stored: str | None, approval: dict[str, Any],
                  change: dict[str, Any], bound: str) -> dict[str, Any]:
        """A cached row with a server answer laid over it, sealed."""
        if stored is None:
            return change
        held = _loads(stored)
        merged = overlay(held, change)
        if merged is None:
            merged = seal_secrets({**held, **approval}, self.sealer, bound)
        return cast(dict[str, Any], merged)

    # --- receipts and the server's keys ------------------------------------------------
    # Before the entries are marked applied (the same states as that update).
    _RECEIPTS_FROM_OUTBOX = (
        "INSERT OR IGNORE INTO receipt (decision_id, approval_id, action, sub, digest, "
        "queued_at) SELECT id, approval_id, action, sub, digest, created_at FROM outbox "
        "WHERE id IN (SELECT value FROM json_each(?)) AND digest IS NOT NULL "
        "AND state IN ('queued', 'sending')")

    def _expect_receipts(self, db: sqlite3.Connection, entry_ids: list[str]) -> None:
        """Receipt rows for decisions queued before this version kept them: what was sent
        is worked out from the outbox entry while its attachments are still there."""
        have = {r[0] for r in db.execute(
            "SELECT decision_id FROM receipt WHERE decision_id IN "
            "(SELECT value FROM json_each(?))", (_dumps(entry_ids),))}
        missing = [i for i in entry_ids if i not in have]
        if not missing:
            return
        try:
            files = self._attachments(db, missing)
        except DeviceKeyError:
            files = {}  # the digest comes out wrong and the receipt says so
        rows = []
        for r in db.execute(
                "SELECT id, approval_id, action, sub, created_at, payload FROM outbox "
                "WHERE id IN (SELECT value FROM json_each(?)) AND approval_id IS NOT NULL "
                "AND action IS NOT NULL", (_dumps(missing),)):
            try:
                payload = _loads(self._open(r[5], r[0]))
            except (orjson.JSONDecodeError, DeviceKeyError):
                payload = None
            digest = (decision_digest(payload, files.get(r[0], ()))
                      if isinstance(payload, dict) else None)
            rows.append((r[0], r[1], r[2], r[3], digest, r[4]))
        db.executemany(
            "INSERT OR IGNORE INTO receipt (decision_id, approval_id, action, sub, digest, "
            "queued_at) VALUES (?, ?, ?, ?, ?, ?)", rows)

    def receipt_rows(self, approval_id: str | None = None) -> list[dict[str, Any]]:
        """Kept receipts (and decisions awaiting theirs), oldest first: the receipt rows,
        and the decisions still in the outbox that have none yet (queued, sending, held)."""
        which = "1" if approval_id is None else "approval_id = :a"
        sql = ("SELECT decision_id, approval_id, action, sub, digest, token, received_at, "
               f"queued_at FROM receipt WHERE {which} UNION ALL "
               "SELECT id, approval_id, action, sub, digest, NULL, NULL, created_at "
               "FROM outbox o WHERE digest IS NOT NULL "
               f"AND state IN ('queued', 'sending', 'held') AND {which} "
               "AND NOT EXISTS (SELECT 1 FROM receipt r WHERE r.decision_id = o.id) "
               "ORDER BY 8, 1")
        with self.reading() as conn:
            rows = _db(conn).execute(sql, {"a": approval_id}).fetchall()
        names = ("decision_id", "approval_id", "action", "sub", "digest", "token",
                 "received_at")
        return [dict(zip(names, r[:7], strict=True)) for r in rows]

    def receipt_signatures(self, entry_ids: Sequence[str]) -> list[str]:
        """The distinct signed parts (JWS) of these entries' receipts: a batch of 500
        decisions shares one."""
        with self.reading() as conn:
            return [r[0] for r in _db(conn).execute(
                "SELECT DISTINCT json_extract(token, '$.jws') FROM receipt "
                "WHERE token IS NOT NULL AND json_valid(token) AND decision_id IN "
                "(SELECT value FROM json_each(?))", (_dumps(list(entry_ids)),)) if r[0]]

    def save_signing_keys(self, jwks: dict[str, Any], now: datetime) -> int:
        """Merge the server's published keys into the cache; returns how many were new."""
        keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)
                and isinstance(k.get("kid"), str)]
        with self.transaction() as conn:
            before = int(conn.exec_driver_sql("SELECT count(*) FROM signing_key").scalar_one())
            _db(conn).executemany(
                "INSERT OR IGNORE INTO signing_key (kid, jwk, first_seen) VALUES (?, ?, ?)",
                [(k["kid"], _dumps(k), iso(now)) for k in keys])
            after = int(conn.exec_driver_sql("SELECT count(*) FROM signing_key").scalar_one())
        return after - before

    def signing_keys(self) -> dict[str, dict[str, Any]]:
        with self.reading() as conn:
            return {r[0]: _loads(r[1]) for r in conn.exec_driver_sql(
                "SELECT kid, jwk FROM signing_key")}

    def set_error(self, entry_id: str, code: str, message: str) -> None:
        """Note why the last attempt failed without taking the entry off the queue."""
        with self.transaction() as conn:
            conn.execute(text("UPDATE outbox SET error_code = :c, error_message = :m "
                              "WHERE id = :id"), {"id": entry_id, "c": code, "m": message})

    def hold_foreign(self, sub: str | None) -> tuple[int, int]:
        """Hold entries queued by another account; release those of ``sub``.

        Returns ``(held, released)`` counts."""
        with self.transaction() as conn:
            held = conn.execute(text(
                "UPDATE outbox SET state = 'held' WHERE state IN ('queued', 'sending') "
                "AND sub IS NOT :sub"), {"sub": sub}).rowcount
            # Entries held for another server stay held (``bind_server`` releases them).
            released = conn.execute(text(
                "UPDATE outbox SET state = 'queued' WHERE state = 'held' AND sub IS :sub "
                "AND coalesce(error_code, '') NOT IN ('OTHER_SERVER', 'DEVICE_KEY')"),
                {"sub": sub}).rowcount if sub is not None else 0
        return int(held or 0), int(released or 0)

    def retry_device_key_holds(self) -> int:
        """Entries held as ``DEVICE_KEY`` go back to the queue (the key may be restored)
        with their error kept until they are sent; ``hold_foreign`` then holds those of
        another account as usual."""
        with self.transaction() as conn:
            result = conn.execute(text("UPDATE outbox SET state = 'queued' "
                                       "WHERE state = 'held' AND error_code = 'DEVICE_KEY'"))
        return int(result.rowcount or 0)

    def remove(self, entry_id: str, allowed: set[OutboxState]) -> OutboxEntry | None:
        """Delete an entry if it is in one of ``allowed`` states; returns what it was."""
        with self.transaction() as conn:
            row = conn.execute(text(f"SELECT {self._ENTRY_COLUMNS} FROM outbox WHERE id = :id"),
                               {"id": entry_id}).first()
            if row is None:
                return None
            entry = self._entry(row)
            if entry.state in allowed:
                conn.exec_driver_sql(self._KEEP_SEQ)
                conn.execute(text("DELETE FROM outbox WHERE id = :id"), {"id": entry_id})
                # Taken back or given up: no receipt will come for it.
                conn.execute(text("DELETE FROM receipt WHERE decision_id = :id "
                                  "AND token IS NULL"), {"id": entry_id})
        return entry

    def counts(self, *, owned: bool = False) -> dict[str, int]:
        """Entries per state: the owner's with ``owned``, else every account's."""
        with self._peeking() as db:
            return store_reads.outbox_counts(db, self.owner if owned else EVERY_ACCOUNT)

    def foreign_count(self) -> int:
        """How many entries other accounts left on this device (what sign-out and the
        outbox say stays here, without showing them)."""
        with self._peeking() as db:
            return store_reads.foreign_count(db, self.owner)

    def oldest_pending_at(self) -> datetime | None:
        with self._peeking() as db:
            return parse_iso(store_reads.oldest_pending_at(db, self.owner))

    def decision_basis(self, approval_id: str) -> DecisionBasis | None:
        """What a new decision on a cached request is judged and sent on, in one read: its
        status, version and veto deadline as the server last said, and the owner's
        unanswered decision on it (as ``pending_action``). None: not cached."""
        mine, owner = self._mine("o.sub")
        with self._peeking() as db:
            row = db.execute(
                "SELECT a.status, a.version, a.veto_deadline, (SELECT group_concat(action) "
                "FROM (SELECT o.action FROM outbox o WHERE o.approval_id = a.id "
                "AND o.kind = 'decision' AND o.state IN ('queued', 'sending', 'held') "
                f"AND {mine} ORDER BY o.seq)) FROM approval a WHERE a.id = :a",
                {"a": approval_id, **owner}).fetchone()
        if row is None:
            return None
        actions = [DecisionAction(a) for a in row[3].split(",")] if row[3] else []
        return DecisionBasis(row[0], int(row[1]), parse_iso(row[2]),
                             rules.shown_pending(actions))

    def pending_action(self, approval_id: str) -> DecisionAction | None:
        """The decision on one request the server has not answered yet (queued, sending or
        held); a queued veto wins over an earlier approve, else the latest one counts."""
        mine, owner = self._mine("sub")
        with self._peeking() as db:
            rows = db.execute(
                "SELECT action FROM outbox WHERE approval_id = :a AND kind = 'decision' "
                f"AND state IN ('queued', 'sending', 'held') AND {mine} ORDER BY seq",
                {"a": approval_id, **owner}).fetchall()
        return rules.shown_pending([DecisionAction(r[0]) for r in rows])

    def unsent_vetoes(self) -> list[tuple[str, str | None, datetime, int]]:
        """``(entry_id, approval_id, deadline, reminded bits)`` of queued vetoes."""
        mine, owner = self._mine()
        with self.reading() as conn:
            rows = conn.execute(text(
                # Through the vetoes' own index: the queue of approvals is never walked.
                "SELECT id, approval_id, veto_deadline, reminded FROM outbox "
                "INDEXED BY outbox_veto "
                "WHERE action = 'veto' AND state IN ('queued', 'sending', 'held') "
                f"AND veto_deadline IS NOT NULL AND {mine}"), owner).all()
        return [(r[0], r[1], datetime.fromisoformat(r[2]), int(r[3])) for r in rows]

    def mark_reminded(self, entry_id: str, bits: int) -> None:
        with self.transaction() as conn:
            conn.execute(text("UPDATE outbox SET reminded = reminded | :b WHERE id = :id"),
                         {"b": bits, "id": entry_id})

    def prune_applied(self, before: datetime) -> int:
        with self.transaction() as conn:
            conn.exec_driver_sql(self._KEEP_SEQ)
            result = conn.execute(text("DELETE FROM outbox WHERE state = 'applied' "
                                       "AND updated_at < :t"), {"t": iso(before)})
        return int(result.rowcount or 0)


def _db(conn: Connection) -> sqlite3.Connection:
    """The sqlite3 connection under ``conn``, inside its transaction. The outbox's send
    path (500 entries claimed, recorded and merged per batch) talks to it directly: the
    SQLAlchemy result and parameter layers cost more than the statements."""
    return cast(sqlite3.Connection, conn.connection.driver_connection)


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling skips BEGIN before DDL; take control of it so a
    # migration and its record commit together (SQLAlchemy's documented recipe).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL + NORMAL survives a killed process (only a power cut can lose the last commit).
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA cache_size=-16384")
    cursor.close()


def _on_begin(conn: Connection) -> None:
    # Writers take the lock up front, so two never deadlock upgrading a read lock.
    if conn.get_execution_options().get("readonly"):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
