"""One ``GovernorClient`` suite over every implementation: the engine against the real
stub process, the in-memory client, and the cold-start client (over the engine, against
the same stub). A ``World`` opens a started client signed in as the demo governor and
makes a fresh pending request for a test to decide on, synced or announced by an event
(the stub's event stream, the in-memory client's ``announce``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sync.auth import Authenticator
from sync.cold_start import StartingClient
from sync.engine import SyncEngine
from sync.facade import GovernorClient
from sync.fakes import FakeGovernorClient
from sync.models import APPROVAL_PENDING
from sync.push import PushEvent
from sync.settings import GovernorSettings
from sync.store_reads import DATABASE_NAME
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess

T = TypeVar("T")


@dataclass
class World:
    """How one implementation is opened, and how a test gets a request to decide on."""

    name: str
    open_client: Callable[[], Awaitable[GovernorClient]]
    fresh_pending: Callable[[GovernorClient], Awaitable[str]]
    # A new pending request the server tells of by an event, not synced; its id.
    announce_pending: Callable[[GovernorClient], Awaitable[str]]

    def run(self, scenario: Callable[[GovernorClient], Awaitable[T]],
            username: str = "governor") -> T:
        async def main() -> T:
            client = await self.open_client()
            try:
                await client.sign_in_with_password(username, username)
                await client.sync_now()
                return await scenario(client)
            finally:
                await client.stop()
        return asyncio.run(main())


def _engine(stub: StubProcess, data_dir: Path) -> SyncEngine:
    settings = GovernorSettings(server_url=stub.url, data_dir=data_dir, sync_interval=0)
    return SyncEngine(settings, authenticator=Authenticator(stub.url, vault=MemoryVault()))


def _stub_announce(stub: StubProcess) -> Callable[[GovernorClient], Awaitable[str]]:
    async def announce(client: GovernorClient) -> str:
        def create() -> str:
            with stub.client() as http:
                body = http.post("/v1/demo/scenario",
                                 json={"event": "new_pending_approval"}).json()
            return str(body["data"]["result"]["approval_id"])
        return await asyncio.to_thread(create)
    return announce


def _stub_pending(stub: StubProcess) -> Callable[[GovernorClient], Awaitable[str]]:
    announce = _stub_announce(stub)

    async def fresh(client: GovernorClient) -> str:
        approval_id = await announce(client)
        await client.sync_now()
        return approval_id
    return fresh


async def _memory_pending(client: GovernorClient) -> str:
    return next(a.id for a in client.approvals("pending", limit=1000)
                if a.pending_decision is None)


async def _memory_announce(client: GovernorClient) -> str:
    assert isinstance(client, FakeGovernorClient)
    approval_id = await _memory_pending(client)
    await client.announce(PushEvent(
        id=f"EVT-{approval_id}", type=APPROVAL_PENDING, timestamp=client.now(),
        source="memory", data={"approval_id": approval_id}, metadata={},
        cursor=approval_id))
    return approval_id


@pytest.fixture(params=["memory", "engine", "cold_start"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    name: str = request.param
    if name == "memory":
        async def memory() -> GovernorClient:
            client = FakeGovernorClient(approvals=40, signed_in_as=None)
            await client.start()
            return client
        return World(name, memory, _memory_pending, _memory_announce)
    stub: StubProcess = request.getfixturevalue("stub")
    if name == "engine":
        async def engine() -> GovernorClient:
            client = _engine(stub, tmp_path / "engine")
            await client.start()
            return client
        return World(name, engine, _stub_pending(stub), _stub_announce(stub))

    async def cold_start() -> GovernorClient:
        # No store yet (a first run): the engine is built at once and every call goes
        # to it.
        client = StartingClient(lambda: _engine(stub, tmp_path / "engine"),
                                tmp_path / "engine" / DATABASE_NAME, stub.url)
        await client.start()
        return client
    return World(name, cold_start, _stub_pending(stub), _stub_announce(stub))


def caught(call: Callable[[], Any]) -> BaseException | None:
    """The exception ``call()`` raised, or None."""
    try:
        call()
    except Exception as exc:
        return exc
    return None
