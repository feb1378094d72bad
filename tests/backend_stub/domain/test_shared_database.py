"""Two services on one database, as two stub replicas are: each key answered once.

Each service has its own ``Database`` (its own engine and connection pool) and its own
process-wide lock, so nothing but the database orders them, exactly as between two
``governor-stub`` processes. Run on SQLite and on PostgreSQL (``stub_db_url``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlmodel import col

from backend_stub.clock import FakeClock
from backend_stub.db import Database
from backend_stub.domain.migrations import MIGRATIONS
from backend_stub.domain.models import Decision, IdempotencyRecord, Seed
from backend_stub.domain.service import (
    PLATFORM,
    DecisionCommand,
    DecisionResult,
    GovernanceService,
)
from tests.backend_stub.domain.test_service import GOV, seed, submit

T = TypeVar("T")
SENDS = 16


@pytest.fixture
def replicas(stub_db_url: str) -> Iterator[tuple[GovernanceService, GovernanceService]]:
    clock = FakeClock()
    first, second = Database(stub_db_url), Database(stub_db_url)
    first.migrate(MIGRATIONS)
    try:
        yield GovernanceService(first, clock), GovernanceService(second, clock)
    finally:
        first.dispose()
        second.dispose()


def at_once(calls: list[Callable[[], T]]) -> list[T]:
    """Run every call at the same moment (a barrier), each in its own thread."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], T]) -> T:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def count(svc: GovernanceService, model: Any) -> int:
    with svc.db.session() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def test_one_key_sent_at_once_to_two_replicas_is_applied_once_and_replayed(
        replicas: tuple[GovernanceService, GovernanceService]) -> None:
    a, b = replicas
    request = submit(a)
    command = DecisionCommand("k-16", request["id"], "approve", expected_version=1,
                              device_id="phone", comment="ship it")
    results: list[list[DecisionResult]] = at_once(
        [partial(svc.decide, GOV, [command]) for svc in [a, b] * (SENDS // 2)])
    outcomes = [r for [r] in results]
    assert sorted(r.outcome for r in outcomes) == ["applied"] + ["replayed"] * (SENDS - 1)
    [applied] = [r for r in outcomes if r.outcome == "applied"]
    for result in outcomes:
        assert result.error is None, result.error
        assert (result.status_code, result.body) == (200, applied.body)
    assert count(a, Decision) == 1
    assert a.get_approval(request["id"])["status"] == "approved"


def test_a_batch_and_a_single_send_of_the_same_keys_on_two_replicas(
        replicas: tuple[GovernanceService, GovernanceService]) -> None:
    a, b = replicas
    commands = [DecisionCommand(f"batch-{i}", submit(a)["id"], "approve", expected_version=1)
                for i in range(20)]
    # The batch in one order on one replica, reversed on the other: claims are taken in
    # key order, so neither waits for the other in a cycle.
    first, second = at_once([lambda: a.decide(GOV, commands),
                             lambda: b.decide(GOV, list(reversed(commands)))])
    by_key = {r.key: r for r in second}
    for result in first:
        other = by_key[result.key]
        assert {result.outcome, other.outcome} == {"applied", "replayed"}
        assert result.body == other.body and result.status_code == other.status_code == 200
    assert count(a, Decision) == 20


def test_one_key_for_two_approvals_at_once_is_refused_on_one_not_a_server_error(
        replicas: tuple[GovernanceService, GovernanceService]) -> None:
    a, b = replicas
    one, two = submit(a), submit(a)
    [[x], [y]] = at_once([
        lambda: a.decide(GOV, [DecisionCommand("shared", one["id"], "approve",
                                               expected_version=1)]),
        lambda: b.decide(GOV, [DecisionCommand("shared", two["id"], "approve",
                                               expected_version=1)])])
    assert sorted(r.outcome for r in (x, y)) == ["applied", "rejected"]
    [rejected] = [r for r in (x, y) if r.outcome == "rejected"]
    assert rejected.error is not None and rejected.error.code == "IDEMPOTENCY_KEY_REUSED"
    assert count(a, Decision) == 1


def test_a_rejected_decision_leaves_no_claim_behind(
        replicas: tuple[GovernanceService, GovernanceService]) -> None:
    a, b = replicas
    request = submit(a)
    [first] = a.decide(GOV, [DecisionCommand("one", request["id"], "approve",
                                             expected_version=1)])
    [refused] = b.decide(GOV, [DecisionCommand("two", request["id"], "approve",
                                               expected_version=2)])
    assert first.outcome == "applied"
    assert refused.error is not None and refused.error.code == "ALREADY_DECIDED"
    with a.db.session() as session:
        keys = session.execute(select(col(IdempotencyRecord.key))).scalars().all()
    assert keys == ["one"]  # "two" is judged again when resent; no placeholder is left
    # And a key whose decision was refused can be used for a new one.
    other = submit(b)
    [again] = a.decide(GOV, [DecisionCommand("two", other["id"], "approve",
                                             expected_version=1)])
    assert again.outcome == "applied"


def test_a_seed_created_at_once_on_two_replicas_under_one_key_exists_once(
        replicas: tuple[GovernanceService, GovernanceService]) -> None:
    a, b = replicas
    fields: dict[str, Any] = dict(key="seed-1", title="Education", description="d",
                                  conditions={"industry_in": ["education"]},
                                  auto_approve=True)
    answers = at_once([partial(svc.create_seed, PLATFORM, **fields) for svc in [a, b] * 4])
    assert sorted(replayed for _, _, replayed in answers) == [False] + [True] * 7
    assert {(status, repr(body)) for status, body, _ in answers} == {
        (201, repr(answers[0][1]))}
    assert count(a, Seed) == 1


def test_event_ids_are_committed_in_order_across_replicas(
        replicas: tuple[GovernanceService, GovernanceService]) -> None:
    """A reader that only ever asks for events after the last id it saw (a stream resuming
    with Last-Event-ID) sees every event two replicas write at once."""
    a, b = replicas
    requests = [submit(a) for _ in range(24)]
    seen: list[int] = []
    done = threading.Event()

    def tail() -> None:
        cursor = 0
        while True:
            finished = done.is_set()
            items, _ = b.notifications(after=cursor, limit=500)
            seen.extend(int(item["id"]) for item in items)
            if items:
                cursor = int(items[-1]["id"])
            elif finished:
                return

    reader = threading.Thread(target=tail)
    reader.start()
    try:
        at_once([partial(svc.decide, GOV, [DecisionCommand(
            f"e-{r['id']}", r["id"], "approve", expected_version=1)])
            for svc, r in zip([a, b] * 12, requests, strict=True)])
    finally:
        done.set()
        reader.join(60)
    with a.db.session() as session:
        stored = session.execute(text("SELECT id FROM events ORDER BY id")).scalars().all()
    assert seen == stored


def test_vetoes_at_once_on_two_replicas_both_count_in_the_seed_metrics(
        replicas: tuple[GovernanceService, GovernanceService]) -> None:
    a, b = replicas
    created = seed(a)
    # Agents of their own: a shared agent row would order the two transactions anyway.
    requests = [submit(a, agent_name=f"Tutor {i}") for i in range(8)]  # all match the seed
    at_once([partial(svc.decide, GOV, [DecisionCommand(
        f"veto-{r['id']}", r["id"], "veto", category="safety", reason="r")])
        for svc, r in zip([a, b] * 4, requests, strict=True)])
    metrics = b.get_seed(created["id"])["metrics"]
    assert (metrics["matches"], metrics["vetoes"]) == (8, 8)
