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

from sync import seed_rank
from sync.errors import StoreError
from sync.models import (
    PENDING_SHOWS_AS,
    Attachment,
    DecisionAction,
    OutboxEntry,
    OutboxState,
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


class AttachmentRow(SQLModel, table=True):
    __tablename__ = "attachment"
    id: int | None = Field(default=None, primary_key=True)
    entry_id: str = Field(foreign_key="outbox.id", ondelete="CASCADE")
    position: int
    name: str
    content_type: str
    data_base64: str


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
)


def iso(value: datetime) -> str:
    """Timestamps are stored as UTC ISO strings, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


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


@dataclass
class Outcome:
    """What the server said about one outbox entry."""

    entry_id: str
    applied: bool
    error_code: str | None = None
    error_message: str | None = None
    error_details: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None


class LocalStore:
    """The SQLite database of one device. ``LocalStore()`` is in memory (tests)."""

    def __init__(self, path: Path | str | None = None, *,
                 migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.path = Path(path) if path is not None else None
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

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        # A deferred BEGIN: readers never wait for, or block, a writer (WAL).
        with self._lock, self.engine.connect().execution_options(readonly=True) as conn:
            yield conn

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
        with self.reading() as conn:
            row = conn.execute(text("SELECT value FROM meta WHERE key = :k"),
                               {"k": key}).first()
        return row[0] if row else None

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
                                 "'last_synced_at')")
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
                {"b": _dumps(body), "e": etag, "t": iso(fetched_at)})

    def touch_dashboard(self, fetched_at: datetime) -> None:
        """A 304: what we hold is still current as of now."""
        with self.transaction() as conn:
            conn.execute(text("UPDATE dashboard SET fetched_at = :t WHERE id = 1"),
                         {"t": iso(fetched_at)})

    def load_dashboard(self) -> tuple[dict[str, Any], str | None, datetime] | None:
        with self.reading() as conn:
            row = conn.exec_driver_sql(
                "SELECT body, etag, fetched_at FROM dashboard WHERE id = 1").first()
        if row is None:
            return None
        fetched = parse_iso(row[2])
        assert fetched is not None
        return _loads(row[0]), row[1], fetched

    # --- approvals --------------------------------------------------------------------
    @staticmethod
    def _approval_params(a: dict[str, Any]) -> tuple[Any, ...]:
        return (a["id"], a["status"], int(a["version"]), utc_text(a.get("veto_deadline")),
                a.get("created_at"), _dumps(a), search_text(a))

    _UPSERT_APPROVAL = (
        "INSERT INTO approval (id, status, version, veto_deadline, created_at, summary, "
        "search) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET status = excluded.status, version = excluded.version, "
        "veto_deadline = excluded.veto_deadline, created_at = excluded.created_at, "
        "summary = excluded.summary, search = excluded.search "
        # Never let an older answer overwrite a newer one (a list page read before a
        # decision's own answer arrived).
        "WHERE excluded.version >= approval.version")

    def upsert_approvals(self, approvals: Iterable[dict[str, Any]], *,
                         replace_all: bool = False) -> None:
        """Store approval summaries; with ``replace_all`` forget those not listed."""
        rows = [self._approval_params(a) for a in approvals]
        with self.transaction() as conn:
            if rows:
                conn.exec_driver_sql(self._UPSERT_APPROVAL, rows)
            if replace_all:
                keep = {r[0] for r in rows}
                existing = [r[0] for r in conn.exec_driver_sql("SELECT id FROM approval")]
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
                         {"d": _dumps(detail), "v": int(detail["version"]), "id": detail["id"]})

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
                "SELECT summary FROM approval ORDER BY created_at DESC, id DESC").all()
        return [_loads(r[0]) for r in rows]

    # The approvals list as the governor sees it: a decision not yet answered by the
    # server shows as the status it leads to (a queued veto wins over an earlier approve;
    # otherwise the latest decision counts), and the list filters on that status.
    _SHOWN = (
        "WITH unanswered AS (SELECT approval_id, max(seq), action, "
        "sum(action = 'veto') AS vetoes FROM outbox WHERE kind = 'decision' "
        "AND state IN ('queued', 'sending', 'held') GROUP BY approval_id), "
        "shown AS (SELECT a.id, a.created_at, a.veto_deadline, a.search, a.summary, "
        "CASE WHEN u.vetoes > 0 THEN 'veto' ELSE u.action END AS pending, "
        "CASE WHEN u.vetoes > 0 THEN '{veto}' "
        + "".join(f"WHEN u.action = '{a.value}' THEN '{st.value}' "
                  for a, st in PENDING_SHOWS_AS.items() if a != DecisionAction.VETO)
        + "ELSE a.status END AS status "
        "FROM approval a LEFT JOIN unanswered u ON u.approval_id = a.id) "
    ).format(veto=PENDING_SHOWS_AS[DecisionAction.VETO].value)
    _LIST_FILTERS = {
        "all": "1",
        "pending": "status = 'pending_approval'",
        "veto_window": "status IN ('approved', 'auto_approved') AND veto_deadline > :now",
        "decided": "status != 'pending_approval'",
    }

    def _list_where(self, filter: str, needle: str) -> str:
        try:
            where = self._LIST_FILTERS[filter]
        except KeyError:
            raise ValueError(f"Unknown approvals filter {filter!r}; use one of "
                             f"{', '.join(self._LIST_FILTERS)}.") from None
        return f"WHERE {where}" + (" AND instr(search, :needle) > 0" if needle else "")

    def approval_page(self, filter: str, needle: str, now: datetime, limit: int,
                      offset: int) -> list[tuple[dict[str, Any], DecisionAction | None]]:
        """One page of the list, newest first: ``(summary, unanswered decision)`` for the
        requests whose shown status passes ``filter`` ("all", "pending", "veto_window",
        "decided") and whose search text holds ``needle`` (lower-cased by the caller)."""
        sql = (self._SHOWN + "SELECT summary, pending FROM shown "
               + self._list_where(filter, needle)
               + " ORDER BY created_at DESC, id DESC LIMIT :l OFFSET :o")
        with self.reading() as conn:
            rows = conn.execute(text(sql), {"now": iso(now), "needle": needle,
                                            "l": max(0, limit), "o": max(0, offset)}).all()
        return [(_loads(r[0]), DecisionAction(r[1]) if r[1] else None) for r in rows]

    def approval_total(self, filter: str, needle: str, now: datetime) -> int:
        """How many requests ``approval_page`` would list with no limit."""
        sql = self._SHOWN + "SELECT count(*) FROM shown " + self._list_where(filter, needle)
        with self.reading() as conn:
            return int(conn.execute(text(sql), {"now": iso(now), "needle": needle})
                       .scalar_one())

    def approval(self, approval_id: str) -> tuple[dict[str, Any], bool] | None:
        """The fullest record held: ``(fields, is_detail)``."""
        with self.reading() as conn:
            row = conn.execute(text("SELECT summary, detail, version, detail_version "
                                    "FROM approval WHERE id = :id"),
                               {"id": approval_id}).first()
        if row is None:
            return None
        if row[1] is not None:
            detail = _loads(row[1])
            if row[3] == row[2]:
                return detail, True
            # The summary is newer than the detail: keep the detail's extra fields, take
            # the summary's status and version.
            detail.update(_loads(row[0]))
            return detail, True
        return _loads(row[0]), False

    # --- seeds ------------------------------------------------------------------------
    _UPSERT_SEED = text(
        "INSERT INTO seed (id, version, status, title, description, conditions, body) "
        "VALUES (:id, :version, :status, :title, :description, :conditions, :body) "
        "ON CONFLICT (id) DO UPDATE SET version = excluded.version, "
        "status = excluded.status, title = excluded.title, "
        "description = excluded.description, conditions = excluded.conditions, "
        "body = excluded.body")

    @staticmethod
    def _seed_params(s: dict[str, Any]) -> dict[str, Any]:
        conditions = s.get("conditions")
        return {"id": s["id"], "version": int(s.get("version", 0)),
                "status": s.get("status", ""), "title": s.get("title", ""),
                "description": s.get("description", ""),
                "conditions": _dumps(conditions) if conditions else "", "body": _dumps(s)}

    def upsert_seeds(self, seeds: Iterable[dict[str, Any]]) -> int:
        rows = [self._seed_params(s) for s in seeds]
        if not rows:
            return 0
        with self.transaction() as conn:
            conn.execute(self._UPSERT_SEED, rows)
        return len(rows)

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
            if changed:
                conn.execute(self._UPSERT_SEED, [self._seed_params(s) for s in changed])
            self._set_cursor(conn, "seeds", cursor=version, etag=None, synced_at=synced_at)

    # Title over description and conditions, as bm25 column weights.
    SEARCH_WEIGHTS = (4.0, 1.0, 1.0)
    RANK_UP_TO = 2000  # seeds; up to this, FTS5 ranks every match itself
    RANK_CANDIDATES = 100  # beyond it, how many of the newest matches are ranked
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
        with self.reading() as conn:
            if match is None:
                rows = conn.exec_driver_sql("SELECT body FROM seed ORDER BY id LIMIT ?",
                                            (limit,)).all()
                return [_loads(r[0]) for r in rows]
            if self._seed_total(conn) <= self.RANK_UP_TO:
                rows = conn.exec_driver_sql(self._SEARCH_RANKED, (match, limit)).all()
                return [_loads(r[0]) for r in rows]
            found = conn.exec_driver_sql(
                self._SEARCH_NEWEST, (match, max(limit, self.RANK_CANDIDATES))).all()
            best = seed_rank.rank(
                [seed_rank.Candidate(r[0], (r[2], r[3], r[4]), r[1]) for r in found],
                _FTS_TOKEN.findall(query), self.SEARCH_WEIGHTS)[:limit]
            bodies: dict[int, str] = dict(conn.exec_driver_sql(
                "SELECT num, body FROM seed WHERE num IN (SELECT value FROM json_each(?))",
                (_dumps(best),)).all())
        return [_loads(bodies[num]) for num in best]

    def _seed_total(self, conn: Connection) -> int:
        # max(num) is an index lookup, and close enough to the count to pick a strategy.
        return int(conn.exec_driver_sql("SELECT coalesce(max(num), 0) FROM seed").scalar_one())

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
        with self.transaction() as conn:
            before = conn.exec_driver_sql("SELECT count(*) FROM notification").scalar_one()
            conn.execute(text(
                "INSERT INTO notification (id, timestamp, body, read) VALUES (:id, :t, :b, 0) "
                "ON CONFLICT (id) DO NOTHING"),
                [{"id": str(n["id"]), "t": str(n.get("timestamp", "")), "b": _dumps(n)}
                 for n in notifications])
            after = conn.exec_driver_sql("SELECT count(*) FROM notification").scalar_one()
        return int(after - before)

    def has_notification(self, notification_id: str) -> bool:
        with self.reading() as conn:
            return conn.execute(text("SELECT 1 FROM notification WHERE id = :id"),
                                {"id": notification_id}).first() is not None

    def apply_event(self, notification: dict[str, Any], approval: dict[str, Any] | None,
                    push_cursor: str | None) -> None:
        """A pushed event: its notification, what it changed, and the stream cursor."""
        with self.transaction() as conn:
            conn.execute(text(
                "INSERT INTO notification (id, timestamp, body, read) VALUES (:id, :t, :b, 0) "
                "ON CONFLICT (id) DO NOTHING"),
                {"id": notification["id"], "t": str(notification["timestamp"]),
                 "b": _dumps(notification)})
            if approval is not None:
                conn.exec_driver_sql(self._UPSERT_APPROVAL, self._approval_params(approval))
            if push_cursor is not None:
                conn.execute(text("INSERT INTO meta (key, value) VALUES ('push_cursor', :v) "
                                  "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                             {"v": push_cursor})

    def notifications(self) -> list[tuple[dict[str, Any], bool]]:
        with self.reading() as conn:
            rows = conn.exec_driver_sql(
                "SELECT body, read FROM notification ORDER BY timestamp DESC, id DESC").all()
        return [(_loads(r[0]), bool(r[1])) for r in rows]

    def mark_read(self, notification_id: str) -> bool:
        with self.transaction() as conn:
            result = conn.execute(text("UPDATE notification SET read = 1 WHERE id = :id"),
                                  {"id": notification_id})
        return bool(result.rowcount)

    # --- outbox -----------------------------------------------------------------------
    def enqueue(self, *, entry_id: str, kind: str, payload: dict[str, Any],
                created_at: datetime, approval_id: str | None = None,
                action: DecisionAction | None = None, expected_version: int | None = None,
                veto_deadline: datetime | None = None, sub: str | None = None,
                attachments: Sequence[Attachment] = ()) -> OutboxEntry:
        """Queue one write, with its attachments, in one transaction."""
        with self.transaction() as conn:
            seq = int(conn.exec_driver_sql(
                "SELECT coalesce(max(seq), 0) + 1 FROM outbox").scalar_one())
            # The sequence never goes back, even after applied entries are pruned.
            floor = conn.exec_driver_sql(
                "SELECT value FROM meta WHERE key = 'next_seq'").scalar_one_or_none()
            seq = max(seq, int(floor or 0))
            conn.execute(text("INSERT INTO meta (key, value) VALUES ('next_seq', :v) "
                              "ON CONFLICT (key) DO UPDATE SET value = excluded.value"),
                         {"v": str(seq + 1)})
            now = iso(created_at)
            conn.execute(text(
                "INSERT INTO outbox (id, seq, kind, approval_id, action, payload, "
                "expected_version, veto_deadline, state, created_at, updated_at, sub) "
                "VALUES (:id, :seq, :kind, :aid, :action, :payload, :ev, :vd, 'queued', "
                ":now, :now, :sub)"),
                {"id": entry_id, "seq": seq, "kind": kind, "aid": approval_id,
                 "action": action.value if action else None, "payload": _dumps(payload),
                 "ev": expected_version, "vd": iso(veto_deadline) if veto_deadline else None,
                 "now": now, "sub": sub})
            if attachments:
                conn.execute(text(
                    "INSERT INTO attachment (entry_id, position, name, content_type, "
                    "data_base64) VALUES (:e, :p, :n, :c, :d)"),
                    [{"e": entry_id, "p": i, "n": a.name, "c": a.content_type,
                      "d": a.data_base64} for i, a in enumerate(attachments)])
        entry = self.entry(entry_id)
        assert entry is not None
        return entry

    _ENTRY_COLUMNS = ("id, seq, kind, approval_id, action, payload, expected_version, "
                      "veto_deadline, state, created_at, attempts, error_code, "
                      "error_message, error_details, sub")

    @staticmethod
    def _entry(row: Sequence[Any], state: OutboxState | None = None,
               attempts: int | None = None) -> OutboxEntry:
        # Rows were validated on the way in; skipping validation on the way out keeps a
        # 500-entry batch cheap to build.
        return OutboxEntry.model_construct(
            id=row[0], seq=row[1], kind=row[2], approval_id=row[3],
            action=DecisionAction(row[4]) if row[4] else None, payload=_loads_or_empty(row[5]),
            expected_version=row[6], veto_deadline=parse_iso(row[7]),
            state=state or OutboxState(row[8]), created_at=datetime.fromisoformat(row[9]),
            attempts=row[10] if attempts is None else attempts, error_code=row[11],
            error_message=row[12], error_details=_loads(row[13] or "{}"), sub=row[14])

    def entry(self, entry_id: str) -> OutboxEntry | None:
        with self.reading() as conn:
            row = conn.execute(text(f"SELECT {self._ENTRY_COLUMNS} FROM outbox WHERE id = :id"),
                               {"id": entry_id}).first()
        return self._entry(row) if row else None

    def entries(self, states: Iterable[OutboxState] | None = None) -> list[OutboxEntry]:
        sql = f"SELECT {self._ENTRY_COLUMNS} FROM outbox"
        params: dict[str, Any] = {}
        if states is not None:
            names = [s.value for s in states]
            if not names:
                return []
            sql += " WHERE state IN (" + ", ".join(f":s{i}" for i in range(len(names))) + ")"
            params = {f"s{i}": n for i, n in enumerate(names)}
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
    _CLAIM_VETOES = _CLAIM.format(index="INDEXED BY outbox_action", which="action = 'veto'")
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
        with self.transaction() as conn:
            # Two statements rather than one ``ORDER BY <is veto>, seq``: each walks an
            # index in order and stops at the limit instead of sorting the whole queue.
            rows = _db(conn).execute(self._CLAIM_VETOES,
                                     (kind, sub, skipped, limit)).fetchall()
            if len(rows) < limit:
                rows += _db(conn).execute(self._CLAIM_OTHERS,
                                          (kind, sub, skipped, limit - len(rows))).fetchall()
            if rows:
                t = iso(now)
                _db(conn).executemany(self._MARK_SENDING, [(t, r[0]) for r in rows])
        return [Claimed(r[0], r[1], bool(r[2])) for r in rows]

    def claim_ids(self, entry_ids: Sequence[str], now: datetime) -> list[Claimed]:
        """Claim these entries again, in order, if they are still queued."""
        with self.transaction() as conn:
            found = {r[0]: r for r in _db(conn).execute(
                "SELECT id, payload, EXISTS (SELECT 1 FROM attachment a "
                "WHERE a.entry_id = outbox.id) FROM outbox WHERE state = 'queued' "
                "AND id IN (SELECT value FROM json_each(?))", (_dumps(list(entry_ids)),))}
            rows = [found[i] for i in dict.fromkeys(entry_ids) if i in found]
            if rows:
                t = iso(now)
                _db(conn).executemany(self._MARK_SENDING, [(t, r[0]) for r in rows])
        return [Claimed(r[0], r[1], bool(r[2])) for r in rows]

    def attachments(self, entry_ids: Sequence[str]) -> dict[str, list[dict[str, str]]]:
        found: dict[str, list[dict[str, str]]] = {}
        if not entry_ids:
            return found
        with self.reading() as conn:
            rows = _db(conn).execute(
                "SELECT entry_id, name, content_type, data_base64 FROM attachment "
                "WHERE entry_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY entry_id, position", (_dumps(list(entry_ids)),)).fetchall()
        for r in rows:
            found.setdefault(r[0], []).append(
                {"name": r[1], "content_type": r[2], "data_base64": r[3]})
        return found

    def requeue(self, entry_ids: Sequence[str], now: datetime) -> None:
        """The send failed before the server could answer: back in the queue, unchanged."""
        if not entry_ids:
            return
        t = iso(now)
        with self.transaction() as conn:
            _db(conn).executemany("UPDATE outbox SET state = 'queued', updated_at = ? "
                                 "WHERE id = ? AND state = 'sending'",
                                 [(t, i) for i in entry_ids])

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
        fresh state appear together."""
        if not outcomes:
            return
        t = iso(now)
        applied = [(t, o.entry_id) for o in outcomes if o.applied]
        rejected = [(t, o.error_code, o.error_message, _dumps(o.error_details or {}),
                     o.entry_id) for o in outcomes if not o.applied]
        returned = [o.approval for o in outcomes
                    if o.approval and "id" in o.approval and "status" in o.approval
                    and "version" in o.approval]
        with self.transaction() as conn:
            if applied:
                _db(conn).executemany(
                    "UPDATE outbox SET state = 'applied', updated_at = ?, error_code = NULL, "
                    "error_message = NULL, error_details = '{}' "
                    "WHERE id = ? AND state IN ('queued', 'sending')", applied)
                # The evidence reached the server; keep the row, drop the bytes.
                _db(conn).executemany("DELETE FROM attachment WHERE entry_id = ?",
                                     [(a[1],) for a in applied])
            if rejected:
                _db(conn).executemany(
                    "UPDATE outbox SET state = 'rejected', updated_at = ?, error_code = ?, "
                    "error_message = ?, error_details = ? "
                    "WHERE id = ? AND state IN ('queued', 'sending')", rejected)
            if returned:
                self._merge_approvals(conn, returned)

    def _merge_approvals(self, conn: Connection, returned: list[dict[str, Any]]) -> None:
        """Lay what the server returned over what is cached: a batch answer may carry only
        what a decision changes, and the cached summary and detail keep the rest."""
        ids = [str(a["id"]) for a in returned]
        held = {r[0]: (r[1], r[2]) for r in _db(conn).execute(
            "SELECT id, summary, detail FROM approval "
            "WHERE id IN (SELECT value FROM json_each(?))", (_dumps(ids),))}
        summaries = []
        details = []
        for approval in returned:
            summary_text, detail_text = held.get(str(approval["id"]), (None, None))
            summary = {**_loads(summary_text), **approval} if summary_text else approval
            if not {"agent", "requester", "industry"} <= summary.keys():
                continue  # too little to show a request we do not hold
            summaries.append(self._approval_params(summary))
            if detail_text is not None:
                detail = {**_loads(detail_text), **approval}
                version = int(approval["version"])
                details.append((_dumps(detail), version, approval["id"], version))
        if summaries:
            _db(conn).executemany(self._UPSERT_APPROVAL, summaries)
        if details:
            # The detail, brought to the same version, need not be fetched again.
            _db(conn).executemany("UPDATE approval SET detail = ?, detail_version = ? "
                                 "WHERE id = ? AND version = ?", details)

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
                "AND error_code IS NOT 'OTHER_SERVER'"),
                {"sub": sub}).rowcount if sub is not None else 0
        return int(held or 0), int(released or 0)

    def remove(self, entry_id: str, allowed: set[OutboxState]) -> OutboxEntry | None:
        """Delete an entry if it is in one of ``allowed`` states; returns what it was."""
        with self.transaction() as conn:
            row = conn.execute(text(f"SELECT {self._ENTRY_COLUMNS} FROM outbox WHERE id = :id"),
                               {"id": entry_id}).first()
            if row is None:
                return None
            entry = self._entry(row)
            if entry.state in allowed:
                conn.execute(text("DELETE FROM outbox WHERE id = :id"), {"id": entry_id})
        return entry

    def counts(self) -> dict[str, int]:
        with self.reading() as conn:
            rows = conn.exec_driver_sql("SELECT state, count(*) FROM outbox GROUP BY state")
            return {r[0]: int(r[1]) for r in rows}

    def oldest_pending_at(self) -> datetime | None:
        with self.reading() as conn:
            value = conn.exec_driver_sql(
                "SELECT min(created_at) FROM outbox WHERE state IN ('queued', 'sending')"
            ).scalar_one_or_none()
        return parse_iso(value)

    def pending_action(self, approval_id: str) -> DecisionAction | None:
        """The decision on one request the server has not answered yet (queued, sending or
        held); a queued veto wins over an earlier approve, else the latest one counts."""
        with self.reading() as conn:
            rows = conn.execute(text(
                "SELECT action FROM outbox WHERE approval_id = :a AND kind = 'decision' "
                "AND state IN ('queued', 'sending', 'held') ORDER BY seq"),
                {"a": approval_id}).all()
        actions = [DecisionAction(r[0]) for r in rows]
        if DecisionAction.VETO in actions:
            return DecisionAction.VETO
        return actions[-1] if actions else None

    def unsent_vetoes(self) -> list[tuple[str, str | None, datetime, int]]:
        """``(entry_id, approval_id, deadline, reminded bits)`` of queued vetoes."""
        with self.reading() as conn:
            rows = conn.exec_driver_sql(
                "SELECT id, approval_id, veto_deadline, reminded FROM outbox "
                "WHERE action = 'veto' AND state IN ('queued', 'sending', 'held') "
                "AND veto_deadline IS NOT NULL").all()
        return [(r[0], r[1], datetime.fromisoformat(r[2]), int(r[3])) for r in rows]

    def mark_reminded(self, entry_id: str, bits: int) -> None:
        with self.transaction() as conn:
            conn.execute(text("UPDATE outbox SET reminded = reminded | :b WHERE id = :id"),
                         {"b": bits, "id": entry_id})

    def prune_applied(self, before: datetime) -> int:
        with self.transaction() as conn:
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
