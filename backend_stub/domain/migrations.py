"""The domain's named migrations, applied once each by ``Database.migrate``.

A migration that has shipped is never edited; a schema change is a new migration. Those
after the first check what exists, because ``0001`` builds the tables from the current
models and a fresh database may therefore already have what a later one adds.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text
from sqlmodel import SQLModel

from backend_stub.db import Migration
from backend_stub.domain.models import DOMAIN_TABLES


def _initial(conn: Connection) -> None:
    SQLModel.metadata.create_all(conn, tables=DOMAIN_TABLES)


def _audit_indexes(conn: Connection) -> None:
    # Audit queries ask "what did this device / person decide"; keep them off a table scan.
    existing = {ix["name"] for ix in inspect(conn).get_indexes("decisions")}
    for name, column in (("idx_decisions_device", "device_id"), ("idx_decisions_sub", "sub")):
        if name not in existing:
            conn.execute(text(f"CREATE INDEX {name} ON decisions ({column})"))


def _event_correlation_index(conn: Connection) -> None:
    existing = {ix["name"] for ix in inspect(conn).get_indexes("events")}
    if "idx_events_correlation" not in existing:
        conn.execute(text("CREATE INDEX idx_events_correlation ON events (correlation_id)"))


MIGRATIONS: list[Migration] = [
    Migration("domain_0001_initial", _initial),
    Migration("domain_0002_audit_indexes", _audit_indexes),
    Migration("domain_0003_event_correlation_index", _event_correlation_index),
]
