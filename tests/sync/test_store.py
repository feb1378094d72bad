"""The local store: migrations, schema, full-text search, the outbox's transactions."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sync import seed_rank
from sync import store as store_module
from sync.errors import StoreError
from sync.models import Attachment, DecisionAction, OutboxState
from sync.sealing import OutboxSealer, new_device_key
from sync.store import MIGRATIONS, LocalStore, Outcome, fts_query

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
                      store_module.OutboxRow, store_module.AttachmentRow,
                      store_module.ReceiptRow, store_module.SigningKeyRow):
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
    assert store.enqueue(entry_id="e2", kind="decision", payload={}, created_at=NOW).seq == 2


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


def test_a_seed_whose_text_changed_is_ranked_on_its_new_words() -> None:
    store = LocalStore()
    store.RANK_UP_TO = 1
    _seeds(store, ("GEN-1", "budget", "x"), ("GEN-2", "x", "budget"))
    assert [s["id"] for s in store.search_seeds("budget")] == ["GEN-1", "GEN-2"]
    # Same row, same version, other words: the words kept from the last search are not
    # the ones ranked now.
    store.upsert_seeds([{"id": "GEN-1", "title": "x", "description": "budget",
                         "version": 1},
                        {"id": "GEN-2", "title": "budget", "description": "x",
                         "version": 2}])
    assert [s["id"] for s in store.search_seeds("budget")] == ["GEN-2", "GEN-1"]


def test_the_words_kept_for_ranking_are_bounded() -> None:
    store = LocalStore()
    store.RANK_UP_TO, store.SPLITS_KEPT = 1, 2
    _seeds(store, ("GEN-1", "budget", "x"), ("GEN-2", "budget", "y"),
           ("GEN-3", "budget", "z"), ("GEN-4", "budget", "w"))
    first = [s["id"] for s in store.search_seeds("budget")]
    assert len(store._seed_splits) == 4  # kept past the bound until the next search
    assert [s["id"] for s in store.search_seeds("budget")] == first
    assert len(store._seed_splits) == 4  # cleared, then the same four split again
    assert first == ["GEN-4", "GEN-3", "GEN-2", "GEN-1"]


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


def test_the_entry_enqueue_returns_is_the_one_stored() -> None:
    """enqueue() builds its answer from what it wrote instead of reading it back."""
    store = LocalStore()
    deadline = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    store.set_meta("next_seq", "41")  # applied entries were pruned: the sequence goes on
    files = [Attachment(name="a", content_type="text/plain", data_base64="YQ==")]
    for entry_id, action, kwargs in (
            ("e1", DecisionAction.APPROVE, {"expected_version": 3}),
            ("e2", DecisionAction.VETO, {"veto_deadline": deadline, "attachments": files})):
        returned = store.enqueue(entry_id=entry_id, kind="decision", created_at=NOW,
                                 payload={"id": entry_id, "n": 1, "when": NOW},
                                 approval_id="REQ-1", action=action, sub="gov", **kwargs)
        assert returned == store.entry(entry_id)
    assert [e.seq for e in store.entries()] == [41, 42]


def test_a_taps_entry_keeps_its_payload_apart_from_the_callers() -> None:
    """A payload of plain values is handed back without a round trip through its text: as
    a copy, so what the caller does with its dict later changes nothing."""
    store = LocalStore()
    payload: dict[str, Any] = {"id": "e1", "action": "approve", "expected_version": 3,
                               "comment": None, "urgent": True}
    returned = store.enqueue(entry_id="e1", kind="decision", created_at=NOW,
                             payload=payload, approval_id="REQ-1",
                             action=DecisionAction.APPROVE, sub="gov")
    payload["comment"] = "changed afterwards"
    assert returned == store.entry("e1")
    assert returned.payload["comment"] is None


def _decision(store: LocalStore, entry_id: str) -> int:
    return store.enqueue(entry_id=entry_id, kind="decision", created_at=NOW,
                         payload={"id": entry_id}, approval_id="REQ-1",
                         action=DecisionAction.APPROVE, sub="gov").seq


def test_a_tap_writes_its_row_and_nothing_else() -> None:
    """The durable part of a tap is as small as it can be: no counter row rewritten, no
    receipt row (written when the server takes the decision), no copy of the request."""
    store = LocalStore()
    before = store._raw.total_changes
    _decision(store, "e1")
    assert store._raw.total_changes - before == 1


def test_only_vetoes_are_indexed_by_action_and_found_through_that_index() -> None:
    """An approve tap writes no entry into the vetoes' index; the claim and the reminders
    find vetoes through it, whatever the length of the queue of approvals."""
    store = LocalStore()
    _decision(store, "e1")
    store.enqueue(entry_id="v1", kind="decision", payload={"id": "v1"}, created_at=NOW,
                  approval_id="REQ-2", action=DecisionAction.VETO, sub="gov",
                  veto_deadline=NOW)
    db = store._raw
    assert db.execute("SELECT id FROM outbox INDEXED BY outbox_veto "
                      "WHERE action = 'veto'").fetchall() == [("v1",)]
    indexes = {r[1] for r in db.execute("PRAGMA index_list(outbox)")}
    assert "outbox_action" not in indexes and "outbox_veto" in indexes
    plan = [r[3] for r in db.execute("EXPLAIN QUERY PLAN " + store._CLAIM_VETOES,
                                     ("decision", "gov", "[]", 10))]
    assert "SCAN outbox USING INDEX outbox_veto" in plan
    assert [v[0] for v in store.unsent_vetoes()] == ["v1"]
    assert [c.id for c in store.claim("decision", 10, "gov", NOW)] == ["v1", "e1"]


def test_a_removed_newest_entry_never_gives_its_number_to_the_next() -> None:
    store = LocalStore()
    assert [_decision(store, "e1"), _decision(store, "e2")] == [1, 2]
    store.remove("e2", {OutboxState.QUEUED})
    assert _decision(store, "e3") == 3


def test_pruned_applied_entries_never_give_their_numbers_to_the_next() -> None:
    store = LocalStore()
    for entry_id in ("e1", "e2"):
        _decision(store, entry_id)
    store.claim("decision", 10, "gov", NOW)
    store.record_outcomes([Outcome("e1", applied=True), Outcome("e2", applied=True)], NOW)
    assert store.prune_applied(datetime(2026, 2, 1, tzinfo=UTC)) == 2
    assert _decision(store, "e3") == 3


def test_a_tap_whose_commit_fails_leaves_nothing_and_the_next_one_is_kept() -> None:
    store = LocalStore()

    def no_commit(action: int, arg: str | None, *_: object) -> int:
        refused = action == sqlite3.SQLITE_TRANSACTION and arg == "COMMIT"
        return sqlite3.SQLITE_DENY if refused else sqlite3.SQLITE_OK

    store._raw.set_authorizer(no_commit)
    with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
        _decision(store, "e1")
    store._raw.set_authorizer(None)
    assert store.entries() == []
    assert _decision(store, "e2") == 1
    assert [e.id for e in store.entries()] == ["e2"]


def test_a_closed_store_opens_again_when_used(tmp_path: Path) -> None:
    """As the pool's connections do: a status read after the engine stopped still answers."""
    store = LocalStore(tmp_path / "g.db")
    _decision(store, "e1")
    store.close()
    assert store.counts() == {"queued": 1}
    assert _decision(store, "e2") == 2
    store.close()


def test_a_whole_listing_forgets_only_what_was_cached_before_it_was_asked_for() -> None:
    """A request cached from its push event while a listing was on its way is not in that
    listing, and must not be forgotten by it (found in tests/e2e/test_push_engine.py: the
    banner's Approve met "not cached"); the next listing judges it."""
    def request(ident: str) -> dict[str, object]:
        return {"id": ident, "agent": {}, "requester": "r", "industry": "i",
                "status": "pending_approval", "version": 1}

    def pushed(ident: str) -> None:
        store.apply_event({"id": f"ev-{ident}", "timestamp": NOW.isoformat()},
                          request(ident), None)

    store = LocalStore()
    store.upsert_approvals([request("SYNCED")])
    pushed("EARLY")
    asked = store.listing_mark()
    pushed("LATE")  # while the listing is on its way
    store.upsert_approvals([request("LISTED")], replace_all=True, asked_at=asked)
    assert store.approval("SYNCED") is None and store.approval("EARLY") is None
    assert store.approval("LATE") is not None and store.approval("LISTED") is not None
    store.upsert_approvals([request("LISTED")], replace_all=True,
                           asked_at=store.listing_mark())
    assert store.approval("LATE") is None  # the next listing, asked for after it, judges
    store.upsert_approvals([], replace_all=True)  # no mark: every unlisted one goes
    assert store.approval("LISTED") is None


def _sealed_store() -> LocalStore:
    key = new_device_key()
    return LocalStore(sealer=OutboxSealer(lambda: key))


def _request(version: int, **fields: Any) -> dict[str, Any]:
    return {"id": "REQ-1", "status": "pending_approval", "version": version,
            "agent": {"id": "A", "name": "Agent"}, "requester": "ops",
            "industry": "retail", **fields}


def _seen_rows(store: LocalStore) -> list[tuple[str, str, str | None]]:
    return store._raw.execute(
        "SELECT entry_id, body, approval_id FROM decision_seen ORDER BY entry_id").fetchall()


def test_a_tap_copies_nothing_and_the_request_as_cached_is_the_one_seen() -> None:
    store = _sealed_store()
    store.upsert_approvals([_request(1)])
    _decision(store, "e1")
    assert _seen_rows(store) == []
    assert store.seen("e1") == _request(1)
    assert store.seen("gone") is None


def test_a_new_version_under_a_queued_decision_keeps_the_request_as_seen_sealed() -> None:
    store = _sealed_store()
    store.save_approval_detail(_request(1, notes="secret stage note"))
    _decision(store, "e1")
    store.upsert_approvals([_request(2, requester="finance")])
    assert store.seen("e1") == _request(1, notes="secret stage note")
    [(entry_id, body, approval_id)] = _seen_rows(store)
    assert (entry_id, approval_id) == ("e1", "REQ-1")
    assert "secret stage note" not in body  # kept as the row held it: sealed
    store.upsert_approvals([_request(3, requester="legal")])
    assert store.seen("e1") == _request(1, notes="secret stage note")  # the first change


def test_a_request_dropped_under_a_refused_decision_keeps_the_request_as_seen() -> None:
    store = _sealed_store()
    store.upsert_approvals([_request(1)])
    _decision(store, "e1")
    store.claim("decision", 10, "gov", NOW)
    store.record_outcomes([Outcome("e1", applied=False, error_code="VERSION_CONFLICT")], NOW)
    store.upsert_approvals([], replace_all=True)
    assert store.approval("REQ-1") is None
    assert store.seen("e1") == _request(1)


def test_a_stale_detail_is_seen_as_approval_gives_it() -> None:
    store = _sealed_store()
    store.save_approval_detail(_request(1, pipeline=["submitted"]))
    store.upsert_approvals([_request(2, status="approved")])  # the detail is now stale
    _decision(store, "e1")
    expected = store.approval("REQ-1")
    store.upsert_approvals([_request(3, status="vetoed")])
    assert expected is not None and store.seen("e1") == expected[0]
    assert store.seen("e1") == _request(2, status="approved", pipeline=["submitted"])


def test_a_change_after_the_decision_was_applied_keeps_nothing() -> None:
    store = _sealed_store()
    store.upsert_approvals([_request(1)])
    _decision(store, "e1")
    store.claim("decision", 10, "gov", NOW)
    store.record_outcomes([Outcome("e1", applied=True, approval=_request(2))], NOW)
    assert _seen_rows(store) == []


def test_a_slim_answer_refusing_a_decision_keeps_the_request_as_seen() -> None:
    store = _sealed_store()
    store.upsert_approvals([_request(1)])
    _decision(store, "e1")
    store.claim("decision", 10, "gov", NOW)
    store.record_outcomes([Outcome("e1", applied=False, error_code="ALREADY_DECIDED",
                                   approval={"id": "REQ-1", "status": "approved",
                                             "version": 2, "updated_at": "t2"})],
                          NOW)
    assert store.seen("e1") == _request(1)
    found = store.approval("REQ-1")
    assert found is not None and found[0] == _request(2, status="approved", updated_at="t2")


def test_a_store_made_before_the_copy_moved_after_the_update_keeps_copying(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    names = [m.name for m in MIGRATIONS]
    LocalStore(path, migrations=MIGRATIONS[:names.index("0015_decision_seen_after_update")]
               ).close()
    store = LocalStore(path)
    assert store.applied_migrations == ["0015_decision_seen_after_update"]
    [sql] = store._raw.execute("SELECT sql FROM sqlite_master "
                               "WHERE name = 'approval_seen_update'").fetchone()
    assert " AFTER UPDATE OF version " in sql
    store.upsert_approvals([_request(1)])
    _decision(store, "e1")
    store.upsert_approvals([_request(2, requester="finance")])
    assert [r[0] for r in _seen_rows(store)] == ["e1"]
    assert store.seen("e1") == _request(1)


def test_the_request_as_seen_copied_at_the_tap_by_earlier_versions_still_reads() -> None:
    store = _sealed_store()
    store.upsert_approvals([_request(2)])
    _decision(store, "e1")
    as_seen = _request(1, decision_note="typed then")
    # What versions before 0013 wrote with every tap: the fields sealed for the entry.
    store._raw.execute("INSERT INTO decision_seen (entry_id, body) VALUES ('e1', ?)",
                       (store._sealed_json(as_seen, "seen/e1"),))
    assert "typed then" not in _seen_rows(store)[0][1]
    assert store.seen("e1") == as_seen


def test_the_basis_of_a_decision_is_read_from_the_columns_with_the_owners_pending() -> None:
    store = LocalStore()
    store.upsert_approvals([_request(4, status="approved",
                                     veto_deadline="2026-01-02T13:00:00+01:00")])
    assert store.decision_basis("REQ-2") is None
    basis = store.decision_basis("REQ-1")
    assert basis == ("approved", 4, datetime(2026, 1, 2, 12, tzinfo=UTC), None)
    for entry_id, action, sub in (("e1", DecisionAction.APPROVE, "gov"),
                                  ("e2", DecisionAction.REQUEST_CHANGES, "gov"),
                                  ("e3", DecisionAction.VETO, "other")):
        store.enqueue(entry_id=entry_id, kind="decision", payload={"id": entry_id},
                      created_at=NOW, approval_id="REQ-1", action=action, sub=sub)
    store.serve("gov")
    # The latest of the owner's counts (as ``pending_action``); another account's is not
    # the owner's to see.
    assert store.decision_basis("REQ-1").pending == DecisionAction.REQUEST_CHANGES  # type: ignore[union-attr]
    assert store.pending_action("REQ-1") == DecisionAction.REQUEST_CHANGES
    store.serve("other")
    assert store.decision_basis("REQ-1").pending == DecisionAction.VETO  # type: ignore[union-attr]
