from __future__ import annotations

from sqlalchemy import inspect

from backend_stub.db import Database
from backend_stub.domain.migrations import MIGRATIONS


def test_migrations_run_once_each_and_build_every_table(stub_db_url: str) -> None:
    db = Database(stub_db_url)
    try:
        assert db.migrate(MIGRATIONS) == [m.name for m in MIGRATIONS]
        assert db.migrate(MIGRATIONS) == []
        tables = set(inspect(db.engine).get_table_names())
        assert {"agents", "approval_requests", "decisions", "seeds", "violations", "events",
                "idempotency_keys", "tombstones", "counters"} <= tables
        indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("decisions")}
        assert {"idx_decisions_device", "idx_decisions_sub"} <= indexes
    finally:
        db.dispose()


def test_a_later_migration_finds_what_an_older_database_lacks(stub_db_url: str) -> None:
    db = Database(stub_db_url)
    try:
        db.migrate(MIGRATIONS[:1])
        before = {ix["name"] for ix in inspect(db.engine).get_indexes("events")}
        assert "idx_events_correlation" not in before
        assert db.migrate(MIGRATIONS) == [m.name for m in MIGRATIONS[1:]]
        indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("events")}
        assert "idx_events_correlation" in indexes
    finally:
        db.dispose()
