"""Seeds written in bulk (an initial sync, a long delta): indexed once per write, not row by
row, and found by search exactly as when they are written one at a time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sync.errors import StoreError
from sync.store import LocalStore

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WORDS = ("healthcare", "finance", "budget", "sandbox", "ledger", "tutor", "routing", "veto")


def _seed(i: int, title: str | None = None) -> dict[str, Any]:
    return {"id": f"GEN-{i:05d}", "version": i,
            "title": title or f"{WORDS[i % len(WORDS)]} precedent {i}",
            "description": f"{WORDS[(i * 3) % len(WORDS)]} rules",
            "conditions": {"industry_in": [WORDS[(i * 5) % len(WORDS)]]}, "status": "active"}


def _fts_is_consistent(store: LocalStore) -> None:
    # FTS5 compares the index with the seed table, row by row, and raises when they differ.
    with store.transaction() as conn:
        conn.exec_driver_sql("INSERT INTO seed_fts (seed_fts, rank) VALUES ('integrity-check', 1)")


def _found(store: LocalStore, query: str) -> list[str]:
    return [s["id"] for s in store.search_seeds(query, limit=5000)]


def _has_insert_trigger(store: LocalStore) -> bool:
    with store.reading() as conn:
        return conn.exec_driver_sql("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                                    "AND name = 'seed_ai'").scalar_one() == 1


@pytest.mark.parametrize("size", [LocalStore.BULK_INDEX_ROWS - 1, LocalStore.BULK_INDEX_ROWS,
                                  3 * LocalStore.BULK_INDEX_ROWS])
def test_a_bulk_write_finds_what_row_by_row_writes_find(size: int) -> None:
    seeds = [_seed(i) for i in range(size)]
    bulk, one_by_one = LocalStore(), LocalStore()
    bulk.upsert_seeds(seeds)
    for seed in seeds:
        one_by_one.upsert_seeds([seed])
    for query in ("healthcare", "fin", "budget rules", "sandbox precedent 1", "rou", "nothing"):
        assert _found(bulk, query) == _found(one_by_one, query), query
    assert bulk.seed_count() == size
    _fts_is_consistent(bulk)
    assert _has_insert_trigger(bulk)


def test_a_bulk_write_over_cached_seeds_updates_their_index_and_adds_new_ones() -> None:
    store = LocalStore()
    store.upsert_seeds([_seed(i) for i in range(300)])
    changed = [_seed(i, title=f"renamed cafe {i}") for i in range(0, 300, 2)]
    new = [_seed(i) for i in range(300, 600)]
    store.apply_seed_delta(changed + new, ["GEN-00001"], "700", NOW)
    assert store.seed_count() == 599
    assert len(_found(store, "renamed")) == 150
    precedents = _found(store, "precedent")
    assert "GEN-00002" not in precedents and "GEN-00003" in precedents  # old title gone
    assert "GEN-00550" in precedents
    assert store.seed("GEN-00001") is None
    assert store.cursor("seeds").cursor == "700"
    _fts_is_consistent(store)
    # The trigger is back: a seed written alone afterwards is indexed too.
    store.upsert_seeds([_seed(900, title="zeppelin")])
    assert _found(store, "zeppelin") == ["GEN-00900"]


def test_an_id_repeated_in_one_write_keeps_its_last_version_and_a_sound_index() -> None:
    store = LocalStore()
    seeds = [_seed(i) for i in range(250)] + [_seed(7, title="last word zeppelin")]
    assert store.upsert_seeds(seeds) == 250
    assert store.seed("GEN-00007")["title"] == "last word zeppelin"  # type: ignore[index]
    assert _found(store, "zeppelin") == ["GEN-00007"]
    _fts_is_consistent(store)


@pytest.mark.parametrize("bad, message", [
    ({"title": "no id"}, "without an id"),
    ("GEN-9", "without an id"),
    ({"id": "GEN-9", "version": "v2"}, "not a number"),
])
def test_a_malformed_seed_refuses_its_write_and_loses_nothing_stored(
        tmp_path: Path, bad: Any, message: str) -> None:
    store = LocalStore(tmp_path / "g.db")
    store.apply_seed_delta([_seed(i) for i in range(300)], [], "300", NOW)
    for size in (3, 300):  # the row-by-row write and the bulk one
        page = [_seed(i, title="overwritten") for i in range(size)] + [bad]
        with pytest.raises(StoreError, match=message):
            store.apply_seed_delta(page, ["GEN-00010"], "999", NOW)
        assert store.seed_count() == 300
        assert store.cursor("seeds").cursor == "300"
        assert _found(store, "overwritten") == []
        assert _has_insert_trigger(store)
        _fts_is_consistent(store)
