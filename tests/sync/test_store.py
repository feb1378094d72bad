"""The local store: migrations, schema, full-text search, the outbox's transactions."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync import store as store_module
from sync.errors import StoreError
from sync.models import Attachment, DecisionAction, OutboxState
from sync.store import MIGRATIONS, LocalStore, fts_query

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_a_fresh_store_runs_every_migration_once(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "g.db")
    assert store.applied_migrations == [m.name for m in MIGRATIONS]
    store.close()
    again = LocalStore(tmp_path / "g.db")
    assert again.applied_migrations == []
    assert again.migration_names() == [m.name for m in MIGRATIONS]


def test_wal_and_foreign_keys_are_on(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "g.db")
    with store.reading() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_the_migrated_schema_matches_the_sqlmodel_tables() -> None:
    store = LocalStore()
    with store.reading() as conn:
        # Only the client's tables: the stub's SQLModel tables share the global metadata.
        for model in (store_module.SchemaMigration, store_module.MetaRow,
                      store_module.DashboardRow, store_module.ApprovalRow,
                      store_module.SeedRow, store_module.AgentRow, store_module.ViolationRow,
                      store_module.NotificationRow, store_module.SyncCursor,
                      store_module.OutboxRow, store_module.AttachmentRow):
            table = model.__table__  # type: ignore[union-attr]
            cols = {r[1] for r in conn.exec_driver_sql(f"PRAGMA table_info({table.name})")}
            assert cols == {c.name for c in table.columns}, table.name


def test_an_outbox_written_by_the_previous_schema_survives_the_upgrade(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    # The first release: only the initial migration, and its outbox rows written directly.
    LocalStore(path, migrations=MIGRATIONS[:1]).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO outbox (id, seq, kind, approval_id, action, payload, "
            "expected_version, veto_deadline, state, created_at, updated_at, sub) VALUES "
            "('old-1', 7, 'decision', 'APR-1', 'veto', '{\"id\": \"old-1\"}', 3, "
            "'2026-01-02T12:00:00+00:00', 'queued', '2026-01-01T12:00:00+00:00', "
            "'2026-01-01T12:00:00+00:00', 'sub-governor')")
        db.execute("INSERT INTO seed (id, version, status, title, description, body) VALUES "
                   "('GEN-1', 1, 'active', 'Old seed', 'kept', '{}')")
    store = LocalStore(path)
    assert store.applied_migrations == [m.name for m in MIGRATIONS[1:]]
    [entry] = store.entries({OutboxState.QUEUED})
    assert (entry.id, entry.seq, entry.action) == ("old-1", 7, DecisionAction.VETO)
    assert entry.veto_deadline == datetime(2026, 1, 2, 12, tzinfo=UTC)
    assert store.search_seeds("old") == [{}]  # the index was built over existing seeds
    new = store.enqueue(entry_id="new-1", kind="decision", payload={}, created_at=NOW)
    assert new.seq == 8


def test_an_unwritable_data_dir_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="data directory is writable"):
        LocalStore(blocker / "sub" / "g.db")


def test_device_id_is_generated_once_and_kept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "g.db")
    first = store.device_id()
    store.close()
    assert LocalStore(tmp_path / "g.db").device_id() == first
    assert store.device_id("configured") == "configured"


def test_seed_search_is_prefix_and_all_words_and_never_fails() -> None:
    store = LocalStore()
    store.upsert_seeds([
        {"id": "GEN-1", "title": "Healthcare read-only", "description": "file_read only"},
        {"id": "GEN-2", "title": "Finance budget cap", "description": "daily tokens 5000"},
        {"id": "GEN-3", "title": "Café agents", "description": "health checks"},
    ])
    assert [s["id"] for s in store.search_seeds("health")] == ["GEN-1", "GEN-3"]
    assert [s["id"] for s in store.search_seeds("finance ca")] == ["GEN-2"]
    assert store.search_seeds("fin cap") == []  # only the last word is a prefix
    assert [s["id"] for s in store.search_seeds("cafe")] == ["GEN-3"]
    assert store.search_seeds('"AND OR NEAR( -') == []
    assert len(store.search_seeds("")) == 3
    store.upsert_seeds([{"id": "GEN-1", "title": "Retail", "description": ""}])
    assert [s["id"] for s in store.search_seeds("health")] == ["GEN-3"]
    store.delete_seeds(["GEN-3"])
    assert store.search_seeds("health") == [] and store.seed_count() == 2
    assert fts_query("  ") is None


def test_attachments_go_with_their_entry() -> None:
    store = LocalStore()
    files = [Attachment(name="a", content_type="text/plain", data_base64="YQ==")]
    store.enqueue(entry_id="e1", kind="decision", payload={}, created_at=NOW,
                  attachments=files)
    assert store.attachments(["e1"])["e1"][0]["data_base64"] == "YQ=="
    store.remove("e1", {OutboxState.QUEUED})
    assert store.attachments(["e1"]) == {}
    with store.reading() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM attachment").scalar() == 0


def test_an_enqueue_that_fails_leaves_nothing_behind() -> None:
    store = LocalStore()
    store.enqueue(entry_id="e1", kind="decision", payload={}, created_at=NOW)
    with pytest.raises(Exception, match="UNIQUE"):
        store.enqueue(entry_id="e1", kind="decision", payload={}, created_at=NOW,
                      attachments=[Attachment(name="a", content_type="t", data_base64="")])
    assert len(store.entries()) == 1
    assert store.get_meta("next_seq") == "2"


def test_an_older_answer_never_overwrites_a_newer_approval() -> None:
    store = LocalStore()
    base = {"id": "A", "agent": {}, "requester": "r", "industry": "i"}
    store.upsert_approvals([{**base, "status": "approved", "version": 3}])
    store.upsert_approvals([{**base, "status": "pending_approval", "version": 2}])
    found = store.approval("A")
    assert found is not None and found[0]["version"] == 3


def test_a_large_seed_cache_answers_in_seed_order_without_ranking() -> None:
    store = LocalStore()
    store.RANK_UP_TO = 2
    store.upsert_seeds([
        {"id": "GEN-1", "title": "budget", "description": "budget budget budget"},
        {"id": "GEN-2", "title": "other", "description": "budget"},
        {"id": "GEN-3", "title": "budget cap", "description": ""},
    ])
    assert [s["id"] for s in store.search_seeds("budg", limit=2)] == ["GEN-1", "GEN-2"]
    store.RANK_UP_TO = 100
    assert [s["id"] for s in store.search_seeds("budget cap")] == ["GEN-3"]
