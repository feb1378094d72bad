"""Fixtures for the governance stub's own tests (the OAuth and components suites have theirs).

``stub_db_url`` runs a test on SQLite and on PostgreSQL: the same contract, both databases
(PostgreSQL skips with a reason when unreachable, and is mandatory in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from backend_stub.clock import FakeClock
from backend_stub.db import Database
from backend_stub.domain.migrations import MIGRATIONS
from backend_stub.domain.service import GovernanceService


@pytest.fixture(params=[
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
])
def stub_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'governance.db'}"


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def governance(fake_clock: FakeClock, tmp_path: Path) -> Iterator[GovernanceService]:
    """A service on a fresh SQLite file, with its published events in ``.published``."""
    db = Database(f"sqlite:///{tmp_path / 'domain.db'}")
    db.migrate(MIGRATIONS)
    published: list[dict[str, object]] = []
    svc = GovernanceService(db, fake_clock, publish=published.append)
    svc.published = published  # type: ignore[attr-defined]
    yield svc
    db.dispose()
