"""The stub under load (``bench/load.py`` drives it): 50 concurrent clients reading
approvals, posting decisions and holding event streams. The slow tests assert only what
the issue asks of correctness under load: no errors other than 429s that carry
``Retry-After``, and every event stored during the run reaching every open stream exactly
once, in order (its ids compared with the stored ids; a stream that lags behind a loaded
machine is read on after the load, up to ``LOAD_DRAIN_SECONDS``). Speed is the benchmark's
business (``python -m bench --only load``)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import httpx
import pytest

from bench.load import LoadResult, _timed, balanced_stub, percentile, prepare, run_load
from tests.support.replicas import require_haproxy
from tests.support.services import require_service
from tests.support.stub_process import StubProcess


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) == 0.0


@pytest.mark.parametrize(("headers", "errors", "limited"),
                         [({"Retry-After": "0"}, 0, 1), ({}, 1, 0)])
def test_a_429_is_only_acceptable_with_retry_after(headers: dict[str, str], errors: int,
                                                   limited: int) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(429, headers=headers))

    async def scenario() -> LoadResult:
        result = LoadResult()
        async with httpx.AsyncClient(base_url="http://127.0.0.1", transport=transport) as http:
            await _timed(http, result, "approvals", "GET", "/v1/mobile/approvals",
                         time.monotonic() + 1)
        return result

    result = asyncio.run(scenario())
    assert len(result.errors) == errors and result.rate_limited == limited
    assert not result.latencies["approvals"]


def test_a_server_error_is_an_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(500, json={}))

    async def scenario() -> LoadResult:
        result = LoadResult()
        async with httpx.AsyncClient(base_url="http://127.0.0.1", transport=transport) as http:
            await _timed(http, result, "dashboard", "GET", "/v1/mobile/dashboard",
                         time.monotonic() + 1)
        return result

    assert asyncio.run(scenario()).figures()["errors"] == 1


def _assert_every_stream_got_every_event(result: LoadResult) -> None:
    figures = result.figures()
    assert figures["events_published"] > 0, figures
    assert len(result.stream_ids) == 5, figures
    assert not result.stream_problems(), (result.stream_problems(), figures)


def test_a_stream_that_missed_or_repeated_events_is_reported() -> None:
    result = LoadResult(published_ids=[4, 5, 6],
                        stream_ids=[[4, 5, 6], [4, 6], [4, 5, 5, 6], [5, 4, 6]])
    problems = result.stream_problems()
    assert [p.split(":")[0] for p in problems] == ["stream 1", "stream 2", "stream 3"]
    assert "missing 1 [5]" in problems[0] and "repeated [5]" in problems[1]
    assert "in order: False" in problems[2]
    figures = result.figures()
    assert (figures["events_missing"], figures["events_duplicated"],
            figures["streams_out_of_order"]) == (1, 1, 1)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fifty_clients_get_no_errors_but_429s_with_retry_after(tmp_path: Path) -> None:
    # The stub with its default settings (rate limit included): under load it may say
    # 429, and then it must say when to come back.
    stub = StubProcess(tmp_path / "stub", env={"GOVSTUB_LOG_LEVEL": "WARNING"}).start()
    seconds = float(os.environ.get("LOAD_TEST_SECONDS", "15"))
    try:
        async def scenario() -> LoadResult:
            token, approvals = await prepare(stub.url, pending=40)
            return await run_load(stub.url, token, approvals, clients=50, seconds=seconds,
                                  streams=5, seed=7)

        result = asyncio.run(scenario())
    finally:
        stub.stop()
    figures = result.figures()
    assert not result.errors, (result.errors[:10], figures)
    assert set(result.statuses) <= {200, 429}, result.statuses
    assert figures["requests"] > 0 and figures["streams_opened"] == 5, figures
    assert figures["decisions_applied"] > 0, figures
    _assert_every_stream_got_every_event(result)


@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.timeout(300)
def test_fifty_clients_through_the_balancer_get_no_errors_but_429s_with_retry_after(
        tmp_path: Path) -> None:
    """The same load through HAProxy against two replicas on one PostgreSQL and Redis,
    default rate limits (shared in Redis). 50 clients and 5 streams for LOAD_TEST_SECONDS
    (15 s by default; the benchmark runs 60 s)."""
    require_haproxy()
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("Redis", "127.0.0.1", 6379)
    seconds = float(os.environ.get("LOAD_TEST_SECONDS", "15"))
    with balanced_stub(tmp_path / "topology") as url:
        async def scenario() -> LoadResult:
            token, approvals = await prepare(url, pending=40)
            return await run_load(url, token, approvals, clients=50, seconds=seconds,
                                  streams=5, seed=11)

        result = asyncio.run(scenario())
    figures = result.figures()
    assert not result.errors, (result.errors[:10], figures)
    assert set(result.statuses) <= {200, 429}, result.statuses
    assert figures["requests"] > 0 and figures["streams_opened"] == 5, figures
    assert figures["decisions_applied"] > 0, figures
    _assert_every_stream_got_every_event(result)
