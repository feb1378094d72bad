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


@dataclass(frozen=True)
class Migration:
    name: str
    apply: Callable[[Connection], None]


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


# orjson for JSON columns: a 500-decision batch writes ~1,500 JSON values in one transaction.
_JSON = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


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
                cur.execute("PRAGMA journal_mode=WAL")
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
        """Apply the migrations not yet recorded, in order; returns the names applied now."""
        applied_now: list[str] = []
        done = set(self.applied_migrations())
        for migration in migrations:
            if migration.name in done:
                continue
            with self.engine.begin() as conn:
                migration.apply(conn)
                conn.execute(
                    text("INSERT INTO schema_migrations (name) VALUES (:n)"),
                    {"n": migration.name},
                )
            applied_now.append(migration.name)
        return applied_now

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
