"""The local store: migrations, schema, full-text search, the outbox's transactions."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sync import seed_rank
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


def _seeds(store: LocalStore, *rows: tuple[str, str, str]) -> None:
    store.upsert_seeds([{"id": i, "title": t, "description": d, "version": n}
                        for n, (i, t, d) in enumerate(rows, 1)])


def test_a_small_cache_ranks_by_bm25_title_over_description_then_newest() -> None:
    store = LocalStore()
    _seeds(store, ("GEN-1", "Other", "budget budget"), ("GEN-2", "Budget cap", "daily"),
           ("GEN-3", "Other", "budget budget"), ("GEN-4", "Retail", "no match"))
    # GEN-1 and GEN-3 tie on the score: the newer (higher version) comes first.
    assert [s["id"] for s in store.search_seeds("budg")] == ["GEN-2", "GEN-3", "GEN-1"]


def test_conditions_are_searched_and_weigh_under_the_title() -> None:
    store = LocalStore()
    store.upsert_seeds([
        {"id": "GEN-1", "title": "Clinic agents", "description": "",
         "conditions": {"industry_in": ["healthcare"]}, "version": 1},
        {"id": "GEN-2", "title": "Healthcare tutors", "description": "", "version": 2},
    ])
    assert [s["id"] for s in store.search_seeds("healthcare")] == ["GEN-2", "GEN-1"]
    store.RANK_UP_TO = 1
    assert [s["id"] for s in store.search_seeds("healthcare")] == ["GEN-2", "GEN-1"]


def test_a_large_cache_ranks_its_newest_matches_as_fts5_bm25_would() -> None:
    """Every seed holds the word, so FTS5's inverse document frequency is one constant
    factor: the ranking done in Python beyond RANK_UP_TO must give FTS5's own order."""
    store = LocalStore()
    _seeds(store, *[(f"GEN-{i}", " ".join(["cap"] * (i % 3) + ["budget"]),
                     " ".join(["budget"] * (i % 4) + ["x"] * (i % 5)))
                    for i in range(40)])
    ranked_by_fts5 = [s["id"] for s in store.search_seeds("budget", limit=40)]
    store.RANK_UP_TO = 10
    assert [s["id"] for s in store.search_seeds("budget", limit=40)] == ranked_by_fts5
    assert [s["id"] for s in store.search_seeds("budg", limit=40)] == ranked_by_fts5


def test_over_two_thousand_seeds_the_best_match_comes_first() -> None:
    store = LocalStore()
    rows = [(f"GEN-{i:05d}", f"Routine {i}", "read files daily") for i in range(2500)]
    rows[40] = ("GEN-BEST", "Sandbox escape precedent", "sandbox wasm memory import")
    for i in range(100, 2500, 25):  # newer seeds that mention it only in passing
        rows[i] = (f"GEN-{i:05d}", f"Routine {i}", "sandbox review later, daily")
    _seeds(store, *rows)
    assert store.seed_count() > store.RANK_UP_TO
    found = store.search_seeds("sandbox", limit=10)
    assert found[0]["id"] == "GEN-BEST"
    assert [s["id"] for s in found[1:3]] == ["GEN-02475", "GEN-02450"]  # then the newest
    assert store.search_seeds("sandbox esc")[0]["id"] == "GEN-BEST"
    assert [s["id"] for s in store.search_seeds("nothing here")] == []


def test_beyond_the_candidates_only_the_newest_matches_are_ranked() -> None:
    store = LocalStore()
    store.RANK_UP_TO, store.RANK_CANDIDATES = 2, 3
    _seeds(store, ("GEN-1", "budget", "budget budget"), ("GEN-2", "x", "budget"),
           ("GEN-3", "x", "budget"), ("GEN-4", "budget cap", "x"))
    # GEN-1, the best, is older than the three newest matches: it waits for more words.
    assert [s["id"] for s in store.search_seeds("budget", limit=2)] == ["GEN-4", "GEN-3"]
    assert [s["id"] for s in store.search_seeds("budget budg", limit=1)] == ["GEN-4"]


def test_seeds_cached_before_0007_are_searchable_by_their_conditions(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    LocalStore(path, migrations=[m for m in MIGRATIONS if m.name < "0007"]).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO seed (id, version, status, title, description, body) VALUES "
                   "('GEN-1', 3, 'active', 'Clinic rule', 'kept', "
                   "'{\"id\": \"GEN-1\", \"conditions\": {\"industry_in\": [\"healthcare\"]}}')")
    store = LocalStore(path)
    assert store.applied_migrations == [m.name for m in MIGRATIONS if m.name >= "0007"]
    assert [s["id"] for s in store.search_seeds("health")] == ["GEN-1"]
    assert [s["id"] for s in store.search_seeds("clinic")] == ["GEN-1"]
    store.delete_seeds(["GEN-1"])  # the index follows the table through the new triggers
    assert store.search_seeds("health") == []
    store.close()


def test_ranking_tokens_read_words_as_the_fts5_tokenizer_does() -> None:
    assert seed_rank.tokens("Café_Ärzte x2, HEALTH-care") == [
        "cafe", "arzte", "x2", "health", "care"]
    assert seed_rank.rank([], ["x"], (1.0,)) == []
    newer = seed_rank.Candidate(2, ("a",), version=5)
    older = seed_rank.Candidate(1, ("a",), version=4)
    assert seed_rank.rank([older, newer], ["--"], (1.0,)) == [2, 1]  # no words: newest


def test_a_store_bound_to_another_server_drops_its_cache_and_holds_the_old_queue() -> None:
    store = LocalStore()
    assert store.bind_server("http://a:1") is None  # first binding: adopted
    assert store.bind_server("http://a:1") is None  # same server: nothing changes
    store.upsert_approvals([{"id": "A", "agent": {}, "requester": "r", "industry": "i",
                             "status": "pending_approval", "version": 1}])
    store.set_meta("push_cursor", "42")
    store.set_cursor("seeds", cursor="7", synced_at=NOW)
    store.enqueue(entry_id="e1", kind="decision", payload={}, created_at=NOW, sub="g")

    switch = store.bind_server("http://b:2")
    assert switch is not None and (switch.previous, switch.current) == ("http://a:1",
                                                                        "http://b:2")
    assert store.approval("A") is None and store.get_meta("push_cursor") is None
    assert store.cursor("seeds").cursor is None
    held = {e.id: e for e in store.entries()}["e1"]
    assert held.state is OutboxState.HELD and held.error_code == "OTHER_SERVER"
    assert "http://a:1" in (held.error_message or "") and "discard" in (held.error_message or "")
    # Signing in on the new server with the same account does not release it.
    assert store.hold_foreign("g") == (0, 0)
    assert {e.id: e for e in store.entries()}["e1"].state is OutboxState.HELD

    back = store.bind_server("http://a:1")  # pointed back at its server: queued again
    assert back is not None and back.released == 1
    again = {e.id: e for e in store.entries()}["e1"]
    assert again.state is OutboxState.QUEUED and again.error_code is None
