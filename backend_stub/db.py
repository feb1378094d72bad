"""The stub's database: SQLite (WAL) by default, PostgreSQL through ``--db``.

The schema is created and evolved only by named migrations, recorded in
``schema_migrations`` so that each runs once per database. Each feature package owns its
migrations (``backend_stub.domain.migrations.MIGRATIONS``,
``backend_stub.oauth.migrations.MIGRATIONS``, ...) and the names are global.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.pool import StaticPool
from sqlmodel import Session, create_engine

# PostgreSQL advisory lock keys (``Database.exclusive``) of start-up work.
MIGRATION_LOCK_ID = 0x676F766D  # "govm"
DEMO_WORLD_LOCK_ID = 0x676F7664  # "govd"


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Connection], None]


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# orjson for JSON columns: a 500-decision batch writes ~1,500 JSON values in one transaction.
_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


# How long a connection waits for another to finish making a new database file WAL.
WAL_SWITCH_WAIT_S = 30.0


def _set_wal(cur: Any) -> None:
    """Put the database in WAL mode (kept in the file: a no-op once any connection did).

    SQLite answers "database is locked" at once, without its busy handler, when another
    connection is switching the same new file at that moment (replicas that start
    together on one file; found in CI's tests/backend_stub/test_migrations.py): wait for
    that switch instead of failing the start."""
    import sqlite3
    import time

    deadline = time.monotonic() + WAL_SWITCH_WAIT_S
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        in_memory = url in ("sqlite://", "sqlite:///:memory:")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 30},
                                  **_JSON}
        if in_memory:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if not in_memory:
                _set_wal(cur)
            # FULL: a committed decision survives kill -9 and power loss alike.
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **_JSON)


def hold_write_lock(conn: Connection) -> None:
    """Begin ``conn``'s transaction now, holding SQLite's write lock (``BEGIN IMMEDIATE``).

    The SQLite driver begins a transaction only at the first INSERT or UPDATE, leaving the
    reads before it outside; a transaction whose reads must stay true until it commits
    (the audit log's head, extended by a batch of decisions) calls this first. A no-op on
    PostgreSQL, and on a connection in a transaction already (an in-memory database
    shares one connection).
    """
    if conn.dialect.name != "sqlite":
        return
    driver: Any = conn.connection.driver_connection
    if not driver.in_transaction:
        driver.execute("BEGIN IMMEDIATE")


class Database:
    """An engine plus the migration runner; pass one to everything that stores state."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def applied_migrations(self) -> list[str]:
        with self.engine.begin() as conn:
            self._ensure_table(conn)
            rows = conn.execute(text("SELECT name FROM schema_migrations ORDER BY id"))
            return [r[0] for r in rows]

    def migrate(self, migrations: Sequence[Migration]) -> list[str]:
        """Apply the migrations not yet recorded, in order; returns the names applied now.

        Safe when several stub processes start together on one database: on PostgreSQL
        they take turns (an advisory lock), and each finds what the one before applied.
        """
        applied_now: list[str] = []
        with self.exclusive(MIGRATION_LOCK_ID):
            done = set(self.applied_migrations())
            for migration in migrations:
                if migration.name in done:
                    continue
                with self.engine.begin() as conn:
                    hold_write_lock(conn)
                    if self._recorded(conn, migration.name):
                        continue  # another process was first
                    migration.apply(conn)
                    conn.execute(
                        text("INSERT INTO schema_migrations (name) VALUES (:n)"),
                        {"n": migration.name},
                    )
                applied_now.append(migration.name)
        return applied_now

    @staticmethod
    def _recorded(conn: Connection, name: str) -> bool:
        return conn.execute(text("SELECT 1 FROM schema_migrations WHERE name = :n"),
                            {"n": name}).first() is not None

    @contextmanager
    def exclusive(self, lock_id: int) -> Iterator[None]:
        """One stub process at a time on this PostgreSQL database runs the block (start-up
        work such as migrating or loading the demo world); a no-op on SQLite, where
        migrations rely on the file's write lock instead (``migrate``)."""
        if self.is_sqlite:
            yield
            return
        # A session-level lock on a connection of its own, held while other connections
        # do the work; it goes with the connection if this process dies.
        with self.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": lock_id})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": lock_id})
                conn.commit()

    @staticmethod
    def _ensure_table(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            ddl = ("CREATE TABLE IF NOT EXISTS schema_migrations (id SERIAL PRIMARY KEY, "
                   "name VARCHAR(200) UNIQUE NOT NULL, applied_at TIMESTAMPTZ DEFAULT now())")
        else:
            ddl = ("CREATE TABLE IF NOT EXISTS schema_migrations (id INTEGER PRIMARY KEY "
                   "AUTOINCREMENT, name VARCHAR(200) UNIQUE NOT NULL, "
                   "applied_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
        conn.execute(text(ddl))

    def dispose(self) -> None:
        self.engine.dispose()
