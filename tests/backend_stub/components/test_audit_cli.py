from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import text

from backend_stub.components.audit_cli import main
from backend_stub.components.migrations import MIGRATIONS
from backend_stub.components.security import (
    AuditLog,
    SqlAuditStore,
    derive_key,
    load_or_create_secret,
)
from backend_stub.db import Database


@pytest.fixture
def stub_data(tmp_path: Path) -> tuple[str, Path]:
    data_dir = tmp_path / "data"
    url = f"sqlite:///{tmp_path / 'stub.db'}"
    db = Database(url)
    db.migrate(MIGRATIONS)
    log = AuditLog(derive_key(load_or_create_secret(data_dir), "audit-log"), SqlAuditStore(db))
    for n in range(4):
        log.record("decision.applied", actor="governor", resource=f"approval:{n}")
    db.dispose()
    return url, data_dir


def run(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(argv), out=out), out.getvalue()


def test_verify_an_intact_log(stub_data: tuple[str, Path]) -> None:
    url, data_dir = stub_data
    assert run("verify", "--db", url, "--data-dir", str(data_dir)) == \
        (0, "audit log intact: 4 entries verified\n")


def test_verify_finds_an_edit(stub_data: tuple[str, Path]) -> None:
    url, data_dir = stub_data
    db = Database(url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE components_audit_log SET resource = 'approval:9' "
                          "WHERE seq = 2"))
    db.dispose()
    code, output = run("verify", "--db", url, "--data-dir", str(data_dir))
    assert code == 1
    assert "audit log TAMPERED" in output and "entry 2: its content was edited" in output


def test_verify_with_a_configured_key(stub_data: tuple[str, Path],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    url, data_dir = stub_data
    monkeypatch.setenv("GOVSTUB_SECRET_KEY", "some other secret key value")
    code, output = run("verify", "--db", url, "--data-dir", str(data_dir))
    assert code == 1 and "MAC does not match" in output  # the wrong key is detected


def test_verify_needs_a_key(tmp_path: Path, stub_data: tuple[str, Path]) -> None:
    url, _ = stub_data
    code, output = run("verify", "--db", url, "--data-dir", str(tmp_path / "empty"))
    assert code == 2 and "no GOVSTUB_SECRET_KEY" in output


def test_verify_needs_a_readable_log(tmp_path: Path, stub_data: tuple[str, Path]) -> None:
    _, data_dir = stub_data
    code, output = run("verify", "--db", f"sqlite:///{tmp_path / 'blank.db'}",
                       "--data-dir", str(data_dir))
    assert code == 2 and "cannot be read" in output


def test_verify_uses_the_data_dir_database_by_default(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSTUB_DATA_DIR", str(tmp_path))
    db = Database(f"sqlite:///{tmp_path / 'governance.db'}")
    db.migrate(MIGRATIONS)
    db.dispose()
    load_or_create_secret(tmp_path)
    assert run("verify") == (0, "audit log intact: 0 entries verified\n")
