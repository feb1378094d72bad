from __future__ import annotations

from pathlib import Path

from sqlalchemy import insert, inspect, select, text

from backend_stub.clock import FakeClock
from backend_stub.db import Database
from backend_stub.domain import pipeline as pl
from backend_stub.domain.migrations import MIGRATIONS, UNREAD_INDEXES
from backend_stub.domain.models import ApprovalRequest
from backend_stub.domain.service import GovernanceService


def test_migrations_run_once_each_and_build_every_table(stub_db_url: str) -> None:
    db = Database(stub_db_url)
    try:
        assert db.migrate(MIGRATIONS) == [m.name for m in MIGRATIONS]
        assert db.migrate(MIGRATIONS) == []
        tables = set(inspect(db.engine).get_table_names())
        assert {"agents", "approval_requests", "decisions", "seeds", "violations", "events",
                "idempotency_keys", "tombstones", "counters"} <= tables
        indexes = {ix["name"] for table in ("decisions", "events")
                   for ix in inspect(db.engine).get_indexes(table)}
        # What a decision batch's rows need (by request, the event ids) and nothing more.
        assert "ix_decisions_approval_id" in indexes
        assert not indexes & set(UNREAD_INDEXES)
    finally:
        db.dispose()


def test_a_later_migration_finds_what_an_older_database_lacks(stub_db_url: str) -> None:
    db = Database(stub_db_url)
    try:
        db.migrate(MIGRATIONS[:1])
        before = {ix["name"] for ix in inspect(db.engine).get_indexes("events")}
        assert "idx_events_correlation" not in before
        assert db.migrate(MIGRATIONS[:3]) == [m.name for m in MIGRATIONS[1:3]]
        indexes = {ix["name"] for ix in inspect(db.engine).get_indexes("events")}
        assert "idx_events_correlation" in indexes
    finally:
        db.dispose()


def test_an_older_database_loses_the_indexes_nothing_reads(stub_db_url: str) -> None:
    """A database migrated before the unread indexes were dropped (every one of them
    built, ``ix_events_type`` by an older ``0001``) has none of them afterwards."""
    db = Database(stub_db_url)
    try:
        db.migrate(MIGRATIONS[:4])
        with db.engine.begin() as conn:
            conn.execute(text("CREATE INDEX ix_events_type ON events (type)"))
        built = {ix["name"] for table in ("decisions", "events")
                 for ix in inspect(db.engine).get_indexes(table)}
        assert set(UNREAD_INDEXES) <= built
        assert db.migrate(MIGRATIONS[:5]) == ["domain_0005_drop_unread_indexes"]
        left = {ix["name"] for table in ("decisions", "events")
                for ix in inspect(db.engine).get_indexes(table)}
        assert not left & set(UNREAD_INDEXES)
        assert "ix_decisions_approval_id" in left
    finally:
        db.dispose()


def test_an_older_database_moves_the_pipeline_evidence_apart(stub_db_url: str) -> None:
    """A request stored before migration 0006, its evidence inside its pipeline: after it,
    the row holds the stages alone and the request reads back as it was."""
    inline = pl.new_pipeline("governor_approval", FakeClock().now(),
                             lambda stage, when: {"review": {"stage": stage, "ok": True}})
    db = Database(stub_db_url)
    try:
        db.migrate(MIGRATIONS[:5])
        now = FakeClock().now()
        with db.engine.begin() as conn:
            conn.execute(insert(ApprovalRequest.__table__).values(  # type: ignore[attr-defined]
                id="REQ-0001", agent_id="AGT-0001", agent_name="Old", agent_kind="industry",
                requester="genesis", industry="education", status="pending_approval",
                stage="governor_approval", version=1, pipeline=inline, capabilities=[],
                budget={}, wasm_module=b"", wasm_report={}, seed_matches=[],
                closing_notified=False, created_at=now, updated_at=now))
        assert db.migrate(MIGRATIONS) == ["domain_0006_approval_evidence"]
        with db.engine.connect() as conn:
            stored = conn.execute(select(ApprovalRequest.pipeline)).scalar_one()  # type: ignore[call-overload]
        assert stored == pl.split(inline)[0]
        assert all(set(stage) == set(pl.STAGE_FIELDS) for stage in stored)
        read = GovernanceService(db, FakeClock()).get_approval("REQ-0001")
        assert read["pipeline"] == inline
    finally:
        db.dispose()


def test_stubs_starting_together_on_one_database_migrate_once(stub_db_url: str) -> None:
    """Four processes' worth of engines migrating at the same moment: each migration runs
    once, nobody fails, and every one finds the schema complete afterwards."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    databases = [Database(stub_db_url) for _ in range(4)]
    barrier = threading.Barrier(len(databases))

    def start(db: Database) -> list[str]:
        barrier.wait()
        return db.migrate(MIGRATIONS)

    try:
        with ThreadPoolExecutor(len(databases)) as pool:
            applied = list(pool.map(start, databases))
        assert sorted(name for names in applied for name in names) == sorted(
            m.name for m in MIGRATIONS)
        for db in databases:
            assert db.applied_migrations() == [m.name for m in MIGRATIONS]
    finally:
        for db in databases:
            db.dispose()


def test_engines_opening_one_new_sqlite_file_together_all_switch_it_to_wal(
        tmp_path: Path) -> None:
    """SQLite answers "database is locked" at once (no busy wait) to a connection asking for
    WAL while another is switching the same new file; four replicas starting together hit
    it about one time in four (CI). Each must wait for the switch instead."""
    import threading

    from sqlalchemy import text

    from backend_stub.db import make_engine

    failures: list[str] = []
    for round_ in range(40):
        url = f"sqlite:///{tmp_path / f'new-{round_}.db'}"
        barrier = threading.Barrier(4)

        def open_one(url: str = url, barrier: threading.Barrier = barrier) -> None:
            engine = make_engine(url)
            barrier.wait()
            try:
                with engine.connect() as conn:
                    mode = conn.execute(text("PRAGMA journal_mode")).scalar_one()
                    assert str(mode).lower() == "wal"
            except Exception as exc:  # collected: an assert in a thread is lost
                failures.append(repr(exc))
            finally:
                engine.dispose()

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []
