"""The plain-sqlite3 reads the store shares with the cold start, and the account the
engine records for it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sync import store_reads
from sync.store import MIGRATIONS, LocalStore
from tests.sync.conftest import GOVERNOR, World, run


def test_the_reads_know_the_current_schema() -> None:
    # A new migration must be named here too: the cold start reads only a store the
    # engine has migrated to the schema these reads are written for.
    assert MIGRATIONS[-1].name == store_reads.SCHEMA


def test_the_cold_start_imports_none_of_the_engine_s_libraries() -> None:
    code = ("import sys, sync.cold_start; "
            "print(sorted(m for m in ('sqlalchemy', 'sqlmodel', 'authlib', 'httpx', "
            "'cryptography') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_a_store_opened_read_only_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "governor.db"
    LocalStore(path).close()
    db = store_reads.open_read_only(path, 0.1)
    try:
        assert store_reads.schema_current(db)
        with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
            db.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
    finally:
        db.close()
    with pytest.raises(sqlite3.OperationalError):
        store_reads.open_read_only(tmp_path / "missing.db", 0.1)  # never created


def test_a_store_never_migrated_has_no_current_schema(tmp_path: Path) -> None:
    path = tmp_path / "plain.db"
    sqlite3.connect(path).close()
    db = store_reads.open_read_only(path, 0.1)
    try:
        assert not store_reads.schema_current(db)
    finally:
        db.close()


def test_the_kept_account_is_an_object_or_null(tmp_path: Path) -> None:
    store = LocalStore()
    with store._peeking() as db:
        assert store_reads.kept_account(db) == (False, None)  # no version recorded it
    store.keep_account(None)
    with store._peeking() as db:
        assert store_reads.kept_account(db) == (True, None)
    store.set_meta(store_reads.ACCOUNT_META, "[1]")
    with store._peeking() as db, pytest.raises(ValueError, match="not an object"):
        store_reads.kept_account(db)


def test_the_engine_records_who_it_serves_for_the_next_cold_start(world: World) -> None:
    def kept() -> str | None:
        return world.store.get_meta(store_reads.ACCOUNT_META)

    assert kept() == store_reads.account_text(GOVERNOR.model_dump())
    run(world.engine.sign_out())
    assert kept() == "null"
    run(world.engine.sign_in_with_password("governor", "governor"))
    assert kept() == store_reads.account_text(GOVERNOR.model_dump())


def test_a_session_the_server_ends_is_recorded_as_the_vault_has_it(world: World) -> None:
    world.engine.approve("APR-0")
    world.store.set_meta(store_reads.ACCOUNT_META, "null")  # out of step on purpose
    world.server.expire_tokens(world.auth.generation)
    world.auth.refuse_refresh = True
    run(world.engine.upload())
    assert world.engine.status().needs_sign_in
    account = world.auth.account()
    assert world.store.get_meta(store_reads.ACCOUNT_META) == store_reads.account_text(
        account.model_dump() if account else None)


def test_server_identity_names_one_server_one_way() -> None:
    assert store_reads.server_identity(" HTTP://Host:8000/ ") == "http://host:8000"
