"""The judge itself: it must see every way a run can go wrong, or a green chaos run
proves nothing."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest

from sync.models import OutboxState
from sync.store import LocalStore, Outcome
from tests.chaos.harness import judge, queue_decisions

SUB, DEVICE = "governor", "dev-1"
APPROVALS = [{"id": f"REQ-{i}", "version": 1} for i in range(3)]


def _row(key: str | None, approval: str = "REQ-0", action: str = "veto",
         device: str = DEVICE, sub: str = SUB) -> dict[str, Any]:
    return {"approval_id": approval, "action": action, "sub": sub, "device_id": device,
            "client_id": "governor-app", "idempotency_key": key, "request_id": "r"}


@pytest.fixture
def store() -> LocalStore:
    return LocalStore()


def _made(store: LocalStore, n: int = 3) -> list[str]:
    return queue_decisions(store, APPROVALS, SUB, DEVICE, n, random.Random(1), "t")


def _settle(store: LocalStore, applied: list[str], rejected: list[str]) -> None:
    now = datetime.now(UTC)
    store.record_outcomes([Outcome(i, applied=True) for i in applied]
                          + [Outcome(i, applied=False, error_code="ALREADY_DECIDED",
                                     error_message="decided elsewhere") for i in rejected],
                          now)


def test_a_clean_history_passes(store: LocalStore) -> None:
    a, b, c = _made(store)
    _settle(store, [a, b], [c])
    verdict = judge(store, [a, b, c], [_row(a, "REQ-0"), _row(b, "REQ-1"),
                                       _row(None, device="demo")], sub=SUB, device_id=DEVICE)
    assert not verdict.problems and verdict.applied == 2 and verdict.rejected == 1


def test_a_duplicate_is_caught(store: LocalStore) -> None:
    a, b, c = _made(store)
    _settle(store, [a, b], [c])
    verdict = judge(store, [a, b, c], [_row(a, "REQ-0"), _row(a, "REQ-0"), _row(b, "REQ-1")],
                    sub=SUB, device_id=DEVICE)
    assert any("2 times" in p for p in verdict.problems)


def test_a_lost_decision_is_caught(store: LocalStore) -> None:
    a, b, c = _made(store)
    _settle(store, [a, b], [c])
    verdict = judge(store, [a, b, c], [_row(a, "REQ-0")], sub=SUB, device_id=DEVICE)
    assert any(b in p and "0 times" in p for p in verdict.problems)
    store.remove(c, {OutboxState.REJECTED})
    verdict = judge(store, [a, b, c], [_row(a), _row(b, "REQ-1")], sub=SUB, device_id=DEVICE)
    assert any(p.startswith(f"lost: {c}") for p in verdict.problems)


def test_a_rejection_the_server_applied_is_caught(store: LocalStore) -> None:
    a, b, c = _made(store)
    _settle(store, [a, b], [c])
    verdict = judge(store, [a, b, c], [_row(a), _row(b, "REQ-1"), _row(c, "REQ-2")],
                    sub=SUB, device_id=DEVICE)
    assert any(c in p and "rejected on the client" in p for p in verdict.problems)


def test_an_entry_still_queued_or_unknown_to_the_client_is_caught(store: LocalStore) -> None:
    a, b, c = _made(store)
    _settle(store, [a], [c])
    verdict = judge(store, [a, b, c], [_row(a), _row("ghost", "REQ-1")], sub=SUB,
                    device_id=DEVICE)
    assert any(b in p and "still queued" in p for p in verdict.problems)
    assert any("ghost" in p and "never made" in p for p in verdict.problems)


def test_applied_as_someone_else_or_twice_on_one_request_is_caught(store: LocalStore) -> None:
    a, b, c = _made(store)
    _settle(store, [a, b, c], [])
    verdict = judge(store, [a, b, c], [_row(a, "REQ-0", "approve", sub="intruder"),
                                       _row(b, "REQ-0", "approve"), _row(c, "REQ-1")],
                    sub=SUB, device_id=DEVICE)
    assert any("intruder" in p for p in verdict.problems)
    assert any("REQ-0 was decided inconsistently" in p for p in verdict.problems)


def test_a_rejection_without_a_message_is_caught(store: LocalStore) -> None:
    (a,) = _made(store, 1)
    store.record_outcomes([Outcome(a, applied=False, error_code="", error_message="")],
                          datetime.now(UTC))
    verdict = judge(store, [a], [], sub=SUB, device_id=DEVICE)
    assert any("without a code" in p for p in verdict.problems)
