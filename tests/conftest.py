from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import ci_gate
from tests.support.engine_leaks import EngineLeaks, failure
from tests.support.services import (
    REDIS_URL,
    drop_postgres_database,
    fresh_postgres_database,
    require_service,
)
from tests.support.stub_process import StubProcess


def pytest_configure(config: pytest.Config) -> None:
    # Under CI=true a skip not on ci_gate.ALLOWED_SKIPS fails the run.
    ci_gate.install(config)


_ENGINES = EngineLeaks()


@pytest.fixture(autouse=True, scope="session")
def _track_engines() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        _ENGINES.install(patch)
        yield


@pytest.fixture(autouse=True)
def _no_engine_left_pending(_track_engines: None) -> Iterator[None]:
    """Fails the test that leaves an engine's probe (or flush) pending on a loop it closed:
    otherwise a "Task was destroyed but it is pending!" at the end of the whole run."""
    yield
    leaks = _ENGINES.leaked()
    if leaks:
        pytest.fail(failure(leaks))


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (skips, or fails in CI, when unreachable)."""
    url = fresh_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def redis_url() -> str:
    """The machine's Redis (skips, or fails in CI, when unreachable)."""
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[StubProcess]:
    """The real stub with demo data, in its own process on a free loopback port."""
    proc = StubProcess(tmp_path / "stub").start()
    try:
        yield proc
    finally:
        proc.stop()
