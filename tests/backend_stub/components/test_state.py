from __future__ import annotations

import threading

import pytest

from backend_stub.clock import FakeClock
from backend_stub.components.errors import StateConflict, StateNotFound
from backend_stub.components.state import (
    MemoryStateStore,
    SqlStateStore,
    StateManager,
    StateStore,
    StateVersion,
)
from backend_stub.db import Database
from backend_stub.errors import VersionConflict


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> StateStore:
    if request.param == "memory":
        return MemoryStateStore()
    db: Database = request.getfixturevalue(f"{request.param}_db")
    return SqlStateStore(db)


def test_contract_save_load_versions(store: StateStore) -> None:
    states = StateManager(store, clock=FakeClock())
    assert states.version("wf") == 0
    assert states.save("wf", {"current_step": "approval", "retry_count": 0}) == 1
    assert states.save("wf", {"current_step": "approval", "retry_count": 1, "version": 99},
                       actor="governor", reason="retry") == 2
    assert states.load("wf") == {"current_step": "approval", "retry_count": 1, "version": 2}
    assert states.load("wf", version=1) == {"current_step": "approval", "retry_count": 0,
                                            "version": 1}


def test_contract_missing_state_and_version(store: StateStore) -> None:
    states = StateManager(store)
    with pytest.raises(StateNotFound, match="state 'nope' does not exist"):
        states.load("nope")
    states.save("s", {"a": 1})
    with pytest.raises(StateNotFound, match="state 's' version 5 does not exist"):
        states.load("s", version=5)


def test_contract_expected_version_conflict(store: StateStore) -> None:
    states = StateManager(store)
    states.save("req-1", {"status": "pending"})
    states.save("req-1", {"status": "approved"}, expected_version=1)
    with pytest.raises(StateConflict) as info:
        states.save("req-1", {"status": "vetoed"}, expected_version=1)
    assert info.value.current_version == 2
    assert isinstance(info.value, VersionConflict)  # the API renders it as 409
    assert info.value.details == {"current_version": 2}


def test_contract_audit_trail(store: StateStore) -> None:
    states = StateManager(store, clock=FakeClock())
    states.save("s", {"a": 1, "b": 2}, actor="alice", reason="create")
    states.save("s", {"a": 1, "b": 3, "c": 4}, actor="bob", reason="edit")
    states.save("s", {"a": 1}, actor="carol")
    trail = states.history("s")
    assert [t["changed"] for t in trail] == [["a", "b"], ["b", "c"], ["b", "c"]]
    assert [t["actor"] for t in trail] == ["alice", "bob", "carol"]
    assert trail[0]["reason"] == "create" and trail[0]["at"] == "2026-01-01T12:00:00.000Z"


def test_contract_atomic_update_from_many_threads(store: StateStore) -> None:
    states = StateManager(store)
    states.save("counter", {"n": 0})
    errors: list[BaseException] = []

    def bump() -> None:
        try:
            for _ in range(5):
                states.atomic_update("counter", lambda s: {**s, "n": s["n"] + 1},
                                     max_retries=200)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert states.load("counter") == {"n": 40, "version": 41}


def test_atomic_update_needs_existing_state_or_initial() -> None:
    states = StateManager()
    with pytest.raises(StateNotFound, match="pass initial="):
        states.atomic_update("x", lambda s: s)
    assert states.atomic_update("x", lambda s: {**s, "n": 1}, initial={"n": 0}) == \
        {"n": 1, "version": 1}


def test_atomic_update_gives_up_after_its_retries() -> None:
    states = StateManager()
    states.save("x", {"n": 0})

    def meddle(s: dict[str, int]) -> dict[str, int]:
        states.save("x", {"n": 100})  # someone else always gets in first
        return s

    with pytest.raises(StateConflict):
        states.atomic_update("x", meddle, max_retries=3)


def test_a_lost_race_in_the_store_is_a_conflict() -> None:
    class RacyStore(MemoryStateStore):
        def insert(self, record: StateVersion) -> bool:
            super().insert(record)  # the other writer's copy lands first
            return False

    with pytest.raises(StateConflict):
        StateManager(RacyStore()).save("s", {"a": 1})


def test_state_must_be_json() -> None:
    with pytest.raises(ValueError, match="state 's' is not JSON-compatible"):
        StateManager().save("s", {"when": object()})


def test_contract_mirroring_versions_numbered_elsewhere(store: StateStore) -> None:
    states = StateManager(store)
    assert states.save("approval:REQ-1", {"status": "approved"}, at_version=2) == 2
    assert states.save("approval:REQ-1", {"status": "vetoed"}, at_version=3,
                       actor="governor", reason="veto") == 3
    assert states.load("approval:REQ-1", version=2) == {"status": "approved", "version": 2}
    with pytest.raises(StateNotFound):
        states.load("approval:REQ-1", version=1)
    with pytest.raises(StateConflict):
        states.save("approval:REQ-1", {"status": "x"}, at_version=3)
    assert [t["version"] for t in states.history("approval:REQ-1")] == [2, 3]
