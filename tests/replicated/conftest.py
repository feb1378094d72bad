"""The replicated topology for these tests: two stub replicas on one fresh PostgreSQL
database and the machine's Redis, behind HAProxy (``tests/support/replicas.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.replicas import ReplicatedStub, require_haproxy
from tests.support.services import (
    REDIS_URL,
    drop_postgres_database,
    fresh_postgres_database,
    require_service,
)

# Low enough that the rate-limit test reaches it in a few requests; each test signs in
# for a token of its own, so they do not share the per-token count.
REQUESTS_PER_MINUTE = 40


def _topology(work: Path, **kwargs: object) -> Iterator[ReplicatedStub]:
    require_haproxy()
    require_service("Redis", "127.0.0.1", 6379)
    db_url = fresh_postgres_database()
    try:
        with ReplicatedStub(work, db_url=db_url, redis_url=REDIS_URL,
                            **kwargs) as topology:  # type: ignore[arg-type]
            yield topology
    finally:
        drop_postgres_database(db_url)


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicatedStub]:
    """Shared by a module's tests that leave every replica running."""
    yield from _topology(tmp_path_factory.mktemp("topology"),
                         env={"GOVSTUB_REQUESTS_PER_MINUTE": str(REQUESTS_PER_MINUTE)})


@pytest.fixture
def own_topology(tmp_path: Path) -> Iterator[ReplicatedStub]:
    """A topology for one test that kills or restarts replicas (no per-token limit)."""
    yield from _topology(tmp_path / "topology", env={"GOVSTUB_DISABLE_RATE_LIMIT": "true"})
