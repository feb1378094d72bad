from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from backend_stub.domain.modules import DirectoryModuleStore, InMemoryModuleStore
from backend_stub.domain.service import GovernanceService
from backend_stub.domain.wasm import build_module
from backend_stub.errors import NotFound

MODULE = build_module()
SHA = hashlib.sha256(MODULE).hexdigest()


def test_a_directory_store_moves_the_upload_in(tmp_path: Path) -> None:
    store = DirectoryModuleStore(tmp_path / "modules")
    upload = tmp_path / "upload.part"
    upload.write_bytes(MODULE)
    store.put(SHA, MODULE, upload)
    assert not upload.exists() and store.get(SHA) == MODULE
    again = tmp_path / "again.part"
    again.write_bytes(MODULE)
    store.put(SHA, MODULE, again)  # content-addressed: kept once, the copy removed
    assert not again.exists()
    assert [p.name for p in (tmp_path / "modules").iterdir()] == [f"{SHA}.wasm"]


def test_a_directory_store_writes_bytes_without_a_file(tmp_path: Path) -> None:
    store = DirectoryModuleStore(tmp_path / "modules")
    store.put(SHA, MODULE)
    assert store.get(SHA) == MODULE
    assert store.get("0" * 64) is None


def test_a_name_that_is_not_a_digest_is_refused(tmp_path: Path) -> None:
    store = DirectoryModuleStore(tmp_path / "modules")
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.put("../../etc/passwd", MODULE)
    with pytest.raises(ValueError, match="not a SHA-256"):
        store.get("A" * 64)


def test_the_in_memory_store_drops_the_source(tmp_path: Path) -> None:
    store = InMemoryModuleStore()
    upload = tmp_path / "upload.part"
    upload.write_bytes(MODULE)
    store.put(SHA, MODULE, upload)
    assert store.get(SHA) == MODULE and not upload.exists()


def test_a_submitted_module_comes_back_from_the_store(governance: GovernanceService) -> None:
    request, created = governance.submit_agent(
        submitter="submitter", agent_name="Tutor", agent_kind="industry",
        industry="education", capabilities=["file_read:/data/x"], wasm_module=MODULE,
        daily_token_budget=10, monthly_cost_usd=1.0)
    assert created and governance.get_module(request["id"]) == MODULE
    again, created = governance.submit_agent(
        submitter="submitter", agent_name="Tutor", agent_kind="industry",
        industry="education", capabilities=["file_read:/data/x"], wasm_module=MODULE,
        daily_token_budget=10, monthly_cost_usd=1.0)
    assert not created and again["id"] == request["id"]
    governance.modules = InMemoryModuleStore()  # another data directory
    with pytest.raises(NotFound, match="module store"):
        governance.get_module(request["id"])
