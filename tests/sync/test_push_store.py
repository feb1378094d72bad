"""``LocalStoreSink``: pushed events land in the real local store, with the approval they
change and the cursor, and survive a restart of the client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.push import (
    EventIntake,
    EventKey,
    EventVerifier,
    LocalStoreSink,
    Outcome,
    PushEvent,
    approval_update,
    sign_event,
)
from sync.store import LocalStore

KEY = EventKey("k1", b"0123456789abcdef0123456789abcdef")


def raw(event_id: str, type_: str, **data: Any) -> dict[str, Any]:
    return {"id": event_id, "type": type_, "timestamp": "2026-01-01T12:00:00.000Z",
            "source": "stub", "data": data, "metadata": {"correlation_id": "r"}}


def summary(version: int = 3, status: str = "pending_approval") -> dict[str, Any]:
    return {"id": "APR-1", "agent": {"name": "Ledger Bot"}, "requester": "ops",
            "industry": "finance", "status": status, "version": version,
            "veto_deadline": None, "created_at": "2026-01-01T10:00:00+00:00"}


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "client.db")


def test_a_decision_made_elsewhere_updates_the_cached_approval_at_once(
        store: LocalStore) -> None:
    store.upsert_approvals([summary(version=3)])
    sink = LocalStoreSink(store)
    intake = EventIntake(sink, EventVerifier([KEY]))
    event = sign_event(raw("7", "governance.approval.decided", approval_id="APR-1",
                           status="vetoed", version=4, decided_by="alice",
                           veto_deadline=None), KEY.key_id, KEY.key)
    assert intake.take(event, "7") is Outcome.ACCEPTED
    fields, _ = store.approval("APR-1")  # type: ignore[misc]
    assert fields["status"] == "vetoed" and fields["version"] == 4
    assert fields["decided_by"] == "alice"
    assert sink.push_cursor() == "7" and sink.has_event("7")
    assert [n["id"] for n, _ in store.notifications()] == ["7"]


def test_the_cursor_and_the_seen_ids_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "client.db"
    first = LocalStoreSink(LocalStore(path))
    first.apply_event(PushEvent.parse(raw("3", "governance.agent.violated"), "3"))
    again = LocalStoreSink(LocalStore(path))
    assert again.push_cursor() == "3" and again.has_event("3")
    intake = EventIntake(again, EventVerifier([KEY]))
    assert intake.take(sign_event(raw("3", "governance.agent.violated"), KEY.key_id,
                                  KEY.key)) is Outcome.DUPLICATE


def test_a_new_pending_request_is_cached_so_it_can_be_approved_offline(
        store: LocalStore) -> None:
    sink = LocalStoreSink(store)
    sink.apply_event(PushEvent.parse(raw("1", "governance.approval.pending",
                                         approval_id="APR-9", agent_name="Scout",
                                         industry="retail", requester="ops"), "1"))
    fields, is_detail = store.approval("APR-9")  # type: ignore[misc]
    assert fields["status"] == "pending_approval" and fields["version"] == 1
    assert fields["agent"]["name"] == "Scout" and not is_detail


def test_a_pending_event_never_overwrites_what_is_held(store: LocalStore) -> None:
    store.upsert_approvals([summary(version=5, status="approved")])
    LocalStoreSink(store).apply_event(PushEvent.parse(raw(
        "1", "governance.approval.pending", approval_id="APR-1"), "1"))
    fields, _ = store.approval("APR-1")  # type: ignore[misc]
    assert fields["status"] == "approved" and fields["version"] == 5


def test_approval_update_ignores_stale_and_unrelated_events() -> None:
    cached = summary(version=5)
    stale = PushEvent.parse(raw("1", "governance.approval.decided", approval_id="APR-1",
                                status="approved", version=4))
    assert approval_update(stale, cached) is None
    no_version = PushEvent.parse(raw("1", "governance.approval.decided",
                                     approval_id="APR-1", status="approved"))
    assert approval_update(no_version, cached) is None
    unknown = PushEvent.parse(raw("1", "governance.approval.decided", approval_id="APR-2",
                                  status="approved", version=9))
    assert approval_update(unknown, None) is None
    budget = PushEvent.parse(raw("1", "governance.budget.threshold_exceeded",
                                 agent_id="A", threshold=80))
    assert approval_update(budget, None) is None
