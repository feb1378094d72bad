from __future__ import annotations

from typing import Any

import pytest

from backend_stub.clock import FakeClock
from backend_stub.components import resilience
from backend_stub.components.errors import CircuitOpen
from backend_stub.components.resilience import (
    CircuitBreaker,
    CircuitState,
    DLQHandler,
    DLQStore,
    ErrorHandler,
    MemoryDLQStore,
    RetryPolicy,
    SqlDLQStore,
)
from backend_stub.db import Database


class Flaky:
    def __init__(self, failures: int, exc: type[Exception] = ConnectionError) -> None:
        self.failures = failures
        self.calls = 0
        self.exc = exc

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.exc(f"failure {self.calls}")
        return "ok"


# -- RetryPolicy ------------------------------------------------------------------------------


def test_retry_delays_grow_and_are_capped() -> None:
    policy = RetryPolicy(base_delay=1, max_delay=5, backoff_multiplier=2, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_retry_jitter_stays_within_its_band() -> None:
    policy = RetryPolicy(base_delay=10, max_delay=100, jitter=0.1)
    assert policy.delay(1, rand=lambda: 0.0) == pytest.approx(9.0)
    assert policy.delay(1, rand=lambda: 1.0) == pytest.approx(11.0)


@pytest.mark.parametrize("kwargs, field", [
    ({"max_attempts": 0}, "max_attempts"),
    ({"base_delay": 5, "max_delay": 1}, "delays"),
    ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
    ({"jitter": 2}, "jitter"),
])
def test_retry_policy_refuses_nonsense(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**kwargs)


def test_retryable_exceptions_accept_a_list() -> None:
    policy = RetryPolicy(retryable_exceptions=[KeyError])
    assert policy.is_retryable(KeyError()) and not policy.is_retryable(ValueError())


# -- ErrorHandler ------------------------------------------------------------------------------


def test_execute_retries_until_success() -> None:
    op = Flaky(2)
    assert ErrorHandler().execute(op) == "ok"
    assert op.calls == 3


def test_execute_gives_up_after_max_attempts_and_raises_the_last_error() -> None:
    op = Flaky(10)
    with pytest.raises(ConnectionError, match="failure 3"):
        ErrorHandler(RetryPolicy(max_attempts=3)).execute(op)


def test_execute_uses_fallback_and_reports_the_error() -> None:
    seen: list[BaseException] = []
    result = ErrorHandler().execute(Flaky(10), fallback=lambda: "rules", on_error=seen.append)
    assert result == "rules"
    assert len(seen) == 1 and "failure 3" in str(seen[0])


def test_non_retryable_errors_propagate_at_once() -> None:
    op = Flaky(1, exc=ValueError)
    handler = ErrorHandler(RetryPolicy(retryable_exceptions=[ConnectionError]))
    with pytest.raises(ValueError):
        handler.execute(op, fallback=lambda: "never")
    assert op.calls == 1


def test_waits_are_real_without_the_testing_switch() -> None:
    slept: list[float] = []
    handler = ErrorHandler(RetryPolicy(base_delay=0.5, jitter=0), sleep=slept.append)
    resilience.set_testing(False)
    try:
        assert handler.execute(Flaky(2)) == "ok"
    finally:
        resilience.set_testing(True)
    assert slept == [0.5, 1.0]
    assert resilience.is_testing()


def test_the_testing_switch_makes_waits_instant() -> None:
    slept: list[float] = []
    handler = ErrorHandler(RetryPolicy(base_delay=30), sleep=slept.append)
    assert handler.execute(Flaky(2)) == "ok"
    assert slept == []


def test_kill_switch_calls_the_operation_bare() -> None:
    op = Flaky(1)
    with pytest.raises(ConnectionError):
        ErrorHandler(enabled=False).execute(op, fallback=lambda: "no")
    assert op.calls == 1


def test_failures_go_to_the_dlq_with_their_payload() -> None:
    dlq = DLQHandler("failed_tasks")
    handler = ErrorHandler(dlq_handler=dlq, name="send-email")
    assert handler.execute(Flaky(10), fallback=lambda: None,
                           dlq_payload={"to": "a@b"}) is None
    (letter,) = dlq.entries()
    assert letter.payload == {"to": "a@b"} and letter.attempts == 3
    assert "ConnectionError: failure 3" in letter.error
    handler.execute(Flaky(10), fallback=lambda: None)
    assert dlq.entries()[1].payload == {"operation": "send-email"}


# -- CircuitBreaker ----------------------------------------------------------------------------


def test_breaker_opens_after_the_threshold_and_fails_fast() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=2, timeout=60, name="llm", clock=clock)
    handler = ErrorHandler(RetryPolicy(max_attempts=1), breaker)
    op = Flaky(100)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            handler.execute(op)
    assert breaker.state is CircuitState.OPEN
    with pytest.raises(CircuitOpen, match="circuit 'llm' is open after 2 consecutive failures"):
        handler.execute(op)
    assert op.calls == 2
    assert handler.execute(op, fallback=lambda: "cached") == "cached"
    assert breaker.retry_after() == pytest.approx(60)


def test_breaker_half_opens_after_timeout_and_closes_after_good_probes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, half_open_requests=2, clock=clock)
    breaker.record_failure()
    assert not breaker.allow()
    clock.advance(31)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.retry_after() == 0
    assert breaker.allow() and breaker.allow()
    assert not breaker.allow()  # only two probes at a time
    breaker.record_success()
    assert breaker.state is CircuitState.HALF_OPEN
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_a_failed_probe_reopens_the_breaker() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, timeout=30, clock=clock)
    breaker.record_failure()
    clock.advance(31)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN


def test_success_resets_the_failure_count_and_reset_closes() -> None:
    breaker = CircuitBreaker(failure_threshold=2)
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is CircuitState.CLOSED
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN
    breaker.reset()
    assert breaker.state is CircuitState.CLOSED and breaker.allow()


def test_breaker_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)


def test_breaker_without_clock_uses_monotonic_time() -> None:
    breaker = CircuitBreaker(failure_threshold=1, timeout=0)
    breaker.record_failure()
    assert breaker.allow()  # timeout 0: straight to half-open


# -- DLQ contract: memory, SQLite, PostgreSQL ---------------------------------------------------


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def dlq_store(request: pytest.FixtureRequest) -> DLQStore:
    if request.param == "memory":
        return MemoryDLQStore()
    db: Database = request.getfixturevalue(f"{request.param}_db")
    return SqlDLQStore(db)


def test_dlq_contract_send_list_count_discard(dlq_store: DLQStore) -> None:
    sizes: list[tuple[str, int]] = []
    dlq = DLQHandler("q1", store=dlq_store, clock=FakeClock(),
                     on_change=lambda q, n: sizes.append((q, n)))
    other = DLQHandler("q2", store=dlq_store)
    first = dlq.send({"n": 1, "nested": {"ü": [1]}}, ValueError("bad"), 3)
    dlq.send({"n": 2}, "plain reason", 1)
    other.send({"n": 3}, "x", 1)
    assert dlq.size() == 2 and other.size() == 1
    entries = dlq.entries()
    assert [e.payload["n"] for e in entries] == [1, 2]
    assert entries[0].payload == {"n": 1, "nested": {"ü": [1]}}
    assert entries[0].error == "ValueError: bad" and entries[1].error == "plain reason"
    assert dlq.discard(first.id) is True
    assert dlq.discard(first.id) is False
    assert dlq.size() == 1
    assert sizes[-1] == ("q1", 1)


def test_dlq_contract_replay(dlq_store: DLQStore) -> None:
    dlq = DLQHandler("q", store=dlq_store)
    dlq.send({"n": 1}, "x", 3)
    dlq.send({"n": 2}, "x", 3)
    taken: list[int] = []

    def handler(payload: dict[str, Any]) -> None:
        if payload["n"] == 2:
            raise RuntimeError("still broken")
        taken.append(payload["n"])

    result = dlq.replay(handler)
    assert result.replayed == 1 and len(result.failed) == 1
    assert taken == [1] and dlq.size() == 1


def test_dlq_refuses_zero_retries() -> None:
    with pytest.raises(ValueError, match="max_retries_before_dlq"):
        DLQHandler("q", max_retries_before_dlq=0)
