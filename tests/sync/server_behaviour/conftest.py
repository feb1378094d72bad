"""One suite of server behaviour over the in-process fake server (``sync.fake_server``)
and the real stub process: the engine's tests trust the fake, so whatever the fake says
of decisions, replays, veto windows, versions, listing and events must be what the stub
says. A difference found here is a bug in the fake (issue 14).

A ``Server`` is the HTTP client of the demo governor on one of them, with the world
building a test needs, done the way each side allows (the fake's methods; the stub's demo
routes)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import pytest

from sync.clock import FakeClock
from sync.fake_server import FakeServer
from tests.support.stub_process import StubProcess, access_token

T = TypeVar("T")
# The window a request is given when it is approved (the contract's 24 hours).
VETO_WINDOW = timedelta(hours=24)


@dataclass
class Server:
    """The governor's view of one server, and how a test builds its world there."""

    name: str
    http: httpx.AsyncClient  # signed in as the demo governor
    pending: Callable[[], Awaitable[str]]  # a fresh request waiting for approval
    auto_approved: Callable[[], Awaitable[str]]  # a fresh request in its veto window
    advance: Callable[[float], Awaitable[None]]  # move the server's clock on
    now: Callable[[], Awaitable[datetime]]  # the server's clock

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(f"/v1/mobile{path}", **kwargs)

    async def approval(self, approval_id: str) -> dict[str, Any]:
        response = await self.get(f"/approvals/{approval_id}")
        response.raise_for_status()
        return dict(response.json()["data"])

    async def decide(self, *items: dict[str, Any]) -> list[dict[str, Any]]:
        """``POST /decisions`` as the engine's outbox sends it; the results."""
        response = await self.http.post("/v1/mobile/decisions",
                                        json={"decisions": list(items)})
        response.raise_for_status()
        return list(response.json()["data"])


@dataclass
class Target:
    name: str
    open: Callable[[], Awaitable[Server]]

    def run(self, scenario: Callable[[Server], Awaitable[T]]) -> T:
        async def main() -> T:
            server = await self.open()
            try:
                return await scenario(server)
            finally:
                await server.http.aclose()
        return asyncio.run(main())


def _fake() -> Server:
    clock = FakeClock(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    fake = FakeServer(clock=clock, stamps_time=True)
    http = httpx.AsyncClient(transport=fake, base_url="http://fake.test",
                             headers={"Authorization": "Bearer tok-1"})
    made = iter(range(1, 10_000))

    async def pending() -> str:
        return str(fake.add_approval(f"REQ-F{next(made):04d}")["id"])

    async def auto_approved() -> str:
        record = fake.add_approval(f"REQ-F{next(made):04d}", "auto_approved",
                                   veto_deadline=clock.now() + VETO_WINDOW)
        return str(record["id"])

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    async def now() -> datetime:
        return clock.now()
    return Server("fake", http, pending, auto_approved, advance, now)


async def _bearer(stub: StubProcess) -> str:
    return f"Bearer {await access_token(stub.url)}"


async def _stub(stub: StubProcess) -> Server:
    http = httpx.AsyncClient(base_url=stub.url, timeout=30,
                             headers={"Authorization": await _bearer(stub)})

    async def scenario(event: str) -> str:
        response = await http.post("/v1/demo/scenario", json={"event": event})
        response.raise_for_status()
        return str(response.json()["data"]["result"]["approval_id"])

    async def pending() -> str:
        return await scenario("new_pending_approval")

    async def auto_approved() -> str:
        return await scenario("seed_auto_approval")

    async def advance(seconds: float) -> None:
        (await http.post("/v1/demo/clock", json={"advance_seconds": seconds})
         ).raise_for_status()
        # The token was issued on the stub's clock: past its lifetime, sign in again.
        http.headers["Authorization"] = await _bearer(stub)

    async def now() -> datetime:
        response = await http.get("/v1/health")
        return datetime.fromisoformat(response.json()["meta"]["timestamp"])
    return Server("stub", http, pending, auto_approved, advance, now)


@pytest.fixture(params=["fake", "stub"])
def server(request: pytest.FixtureRequest) -> Target:
    if request.param == "fake":
        async def open_fake() -> Server:
            return _fake()
        return Target("fake", open_fake)
    stub: StubProcess = request.getfixturevalue("stub")

    async def open_stub() -> Server:
        return await _stub(stub)
    return Target("stub", open_stub)
