"""Fixtures for the core components' contract suites.

Each contract suite is parametrised over the implementations: ``memory``, ``sqlite``,
``postgres`` (the machine's PostgreSQL, a fresh database per test) and ``redis`` (the
machine's Redis, a unique key prefix per test). The server-backed ones skip with a reason
when the server is unreachable, and fail in CI.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from backend_stub.components import resilience
from backend_stub.components.migrations import MIGRATIONS
from backend_stub.db import Database
from tests.support.services import free_port, reachable


@pytest.fixture(autouse=True)
def _instant_waits() -> Iterator[None]:
    """Retries never sleep in these tests (the components' testing switch)."""
    with resilience.instant_waits():
        yield


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'components.db'}")
    db.migrate(MIGRATIONS)
    yield db
    db.dispose()


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    db.migrate(MIGRATIONS)
    yield db
    db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_db(request: pytest.FixtureRequest) -> Database:
    """Every SQL dialect the stub runs on."""
    db: Database = request.getfixturevalue(f"{request.param}_db")
    return db


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix no other test uses; its keys are deleted afterwards (never FLUSHALL)."""
    prefix = f"test-components:{uuid.uuid4().hex[:12]}:"
    yield prefix
    for key in redis_client.scan_iter(match=prefix + "*", count=500):
        redis_client.delete(key)


class OwnRedis:
    """A private ``redis-server`` child process, for tests that stop Redis mid-run."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> OwnRedis:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            if reachable("127.0.0.1", self.port, timeout=0.1):
                return self
            time.sleep(0.025)
        raise RuntimeError(f"redis-server on port {self.port} did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    import shutil

    if shutil.which("redis-server") is None:
        from tests.support.services import in_ci

        if in_ci():
            pytest.fail("redis-server is not installed; CI needs it for the chaos tests")
        pytest.skip("redis-server is not installed; install it to run the Redis chaos tests")
    server = OwnRedis().start()
    yield server
    server.stop()
