from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from sync.api import FakeAuthenticator
from sync.clock import FakeClock
from sync.engine import SyncEngine
from sync.fake_server import FakeServer
from sync.models import Account
from sync.settings import GovernorSettings
from sync.store import LocalStore
from tests.support.stub_process import StubProcess, unthrottled_stub

T = TypeVar("T")

GOVERNOR = Account(sub="sub-governor", username="governor",
                   scopes=frozenset({"governance:read", "governance:write", "veto:execute"}))
AUDITOR = Account(sub="sub-auditor", username="auditor",
                  scopes=frozenset({"governance:read"}))
OTHER = Account(sub="sub-other", username="other",
                scopes=frozenset({"governance:read", "governance:write", "veto:execute"}))


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


class World:
    """An engine wired to a fake server sharing one fake clock."""

    def __init__(self, store: LocalStore | None = None) -> None:
        self.clock = FakeClock()
        self.server = FakeServer(clock=self.clock)
        self.auth = FakeAuthenticator(GOVERNOR)
        self.store = store or LocalStore()
        self.engine = self.new_engine()

    def new_engine(self) -> SyncEngine:
        return SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=0,
                                           device_id="dev-test"),
                          authenticator=self.auth, store=self.store, transport=self.server,
                          clock=self.clock, rng=random.Random(0))

    def seed_world(self, n: int = 3) -> None:
        for i in range(n):
            self.server.add_approval(f"APR-{i}")
        self.server.add_approval("APR-W", "approved",
                                 veto_deadline=self.clock.now() + timedelta(hours=2))
        run(self.engine.download())


@pytest.fixture
def world() -> World:
    w = World()
    w.seed_world()
    return w


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StubProcess]:
    """One demo stub for the module (each test makes its own requests): the
    behaviour suites of the client and of the server run over it."""
    with unthrottled_stub(tmp_path_factory.mktemp("stub")) as proc:
        yield proc
