"""Push against the real stub process: signed events from the domain reach the local store
once each, across a dropped connection, a stub restart and a client that was offline."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend_stub.api.events_stream import EventKeyEnvelope, SignedNotificationEnvelope
from sync.auth import Authenticator
from sync.push import (
    Backoff,
    EventIntake,
    LocalStoreSink,
    Outcome,
    PushListener,
)
from sync.store import LocalStore
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess
from tests.sync.push_fixtures import wait_until

SCENARIOS = ("new_pending_approval", "budget_80", "budget_95", "violation",
             "seed_auto_approval")


@pytest.fixture
def push_stub(tmp_path: Path) -> Iterator[StubProcess]:
    proc = StubProcess(tmp_path / "stub").start()
    try:
        yield proc
    finally:
        proc.stop()


async def signed_in(url: str, user: str = "governor") -> Authenticator:
    auth = Authenticator(url, vault=MemoryVault())
    await auth.sign_in_with_password(user, user)
    return auth


def scenario(stub: StubProcess, name: str) -> None:
    with stub.client() as client:
        response = client.post("/v1/demo/scenario", json={"event": name})
        assert response.status_code == 200, response.text


def server_ids(stub: StubProcess, token: str) -> list[str]:
    """Every event id the server holds, through the gap endpoint."""
    ids: list[str] = []
    after = 0
    with stub.client() as client:
        while True:
            body = client.get("/v1/mobile/notifications", params={"after": after, "limit": 500},
                              headers={"Authorization": f"Bearer {token}"}).json()
            ids += [item["id"] for item in body["data"]]
            if not body["meta"].get("next_cursor"):
                return ids
            after = int(body["meta"]["next_cursor"])


def stored_ids(store: LocalStore) -> list[str]:
    return [n["id"] for n, _ in store.notifications()]


async def run_listener(listener: PushListener, body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(listener.run())
    try:
        await body()
    finally:
        listener.stop()
        await asyncio.wait_for(task, 15)


def make(stub: StubProcess, auth: Authenticator, store: LocalStore
         ) -> tuple[PushListener, httpx.AsyncClient]:
    client = httpx.AsyncClient(base_url=stub.url)
    listener = PushListener(client, auth.access_token, LocalStoreSink(store),
                            backoff=Backoff(base=0.05, cap=0.5))
    return listener, client


def test_domain_events_arrive_signed_and_update_the_store(push_stub: StubProcess,
                                                          tmp_path: Path) -> None:
    async def main() -> None:
        auth = await signed_in(push_stub.url)
        store = LocalStore(tmp_path / "client.db")
        listener, client = make(push_stub, auth, store)
        types: list[str] = []
        listener.on_event(lambda e: types.append(e.type))

        async def body() -> None:
            await wait_until(lambda: listener.status.connected, 20, "connection")
            before = len(types)
            for name in SCENARIOS:
                scenario(push_stub, name)
            await wait_until(lambda: {"governance.approval.pending",
                                      "governance.agent.violated",
                                      "governance.seed.auto_approved",
                                      "governance.budget.threshold_exceeded"}
                             <= set(types[before:]), 20, "one event of each scenario")

        await run_listener(listener, body)
        token = await auth.access_token()
        await client.aclose()
        await auth.aclose()
        ids = stored_ids(store)
        assert sorted(ids, key=int) == server_ids(push_stub, token)
        assert listener.intake.counts.forged == 0 and listener.intake.counts.malformed == 0

    asyncio.run(main())


def test_a_stub_restart_and_an_offline_client_lose_nothing_and_duplicate_nothing(
        push_stub: StubProcess, tmp_path: Path) -> None:
    async def main() -> None:
        auth = await signed_in(push_stub.url)
        store = LocalStore(tmp_path / "client.db")
        listener, client = make(push_stub, auth, store)
        token = await auth.access_token()

        def converged() -> bool:
            return sorted(stored_ids(store), key=int) == server_ids(push_stub, token)

        async def online_then_restart() -> None:
            await wait_until(lambda: listener.status.connected, 20, "connection")
            for _ in range(3):
                scenario(push_stub, "new_pending_approval")
            push_stub.stop()  # the stream drops
            await wait_until(lambda: not listener.status.connected, 20, "the drop")
            push_stub.start()
            for _ in range(3):
                scenario(push_stub, "violation")
            await wait_until(lambda: listener.status.connected, 30, "reconnection")
            scenario(push_stub, "budget_95")
            await wait_until(converged, 30, "every event stored")

        await run_listener(listener, online_then_restart)
        assert listener.status.connects >= 2
        # The client goes offline while the platform goes on.
        for _ in range(4):
            scenario(push_stub, "seed_auto_approval")
        assert not converged()
        listener2, client2 = make(push_stub, auth, store)

        async def back_online() -> None:
            await wait_until(converged, 30, "the gap filled")

        await run_listener(listener2, back_online)
        ids = stored_ids(store)
        assert len(ids) == len(set(ids))
        assert listener.intake.counts.forged == listener2.intake.counts.forged == 0
        await client.aclose()
        await client2.aclose()
        await auth.aclose()

    asyncio.run(main())


def test_events_signed_for_another_account_or_replayed_are_rejected(
        push_stub: StubProcess, tmp_path: Path) -> None:
    async def main() -> None:
        governor = await signed_in(push_stub.url)
        auditor = await signed_in(push_stub.url, "auditor")
        scenario(push_stub, "violation")
        store = LocalStore(tmp_path / "client.db")
        listener, client = make(push_stub, governor, store)
        await listener.ensure_key()
        intake: EventIntake = listener.intake

        async def page(token: str) -> list[dict[str, Any]]:
            response = await client.get("/v1/mobile/notifications",
                                        headers={"Authorization": f"Bearer {token}"})
            return list(response.json()["data"])

        theirs = await page(await auditor.access_token())
        ours = await page(await governor.access_token())
        assert theirs and ours
        # What the OpenAPI document says the gap page and the key endpoint answer.
        raw = await client.get("/v1/mobile/notifications", headers={
            "Authorization": f"Bearer {await governor.access_token()}"})
        SignedNotificationEnvelope.model_validate(raw.json())
        raw_key = await client.get("/v1/mobile/events/key", headers={
            "Authorization": f"Bearer {await governor.access_token()}"})
        EventKeyEnvelope.model_validate(raw_key.json())
        # Genuine, but signed with the auditor's key: this device holds no such key.
        assert intake.take(theirs[-1]) is Outcome.FORGED
        # The auditor's key id with the governor's data: the signature does not match.
        assert intake.take({**ours[-1], "key_id": theirs[-1]["key_id"]}) is Outcome.FORGED
        tampered = {**ours[-1], "data": {**ours[-1]["data"], "tampered": True}}
        assert intake.take(tampered) is Outcome.FORGED
        assert intake.take(ours[-1]) is Outcome.ACCEPTED
        assert intake.take(ours[-1]) is Outcome.DUPLICATE  # a replay
        assert stored_ids(store) == [ours[-1]["id"]]
        key = (await client.get("/v1/mobile/events/key", headers={
            "Authorization": f"Bearer {await governor.access_token()}"})).json()["data"]
        assert key["alg"] == "HMAC-SHA256" and key["key_id"] == ours[-1]["key_id"]
        assert (await client.get("/v1/mobile/events/key")).status_code == 401
        await client.aclose()
        await governor.aclose()
        await auditor.aclose()

    asyncio.run(main())


def test_the_stream_resumes_from_last_event_id_and_refuses_a_bad_one(
        push_stub: StubProcess) -> None:
    async def main() -> None:
        auth = await signed_in(push_stub.url)
        token = await auth.access_token()
        scenario(push_stub, "budget_80")
        ids = server_ids(push_stub, token)
        headers = {"Authorization": f"Bearer {token}", "Last-Event-ID": ids[-2]}
        async with httpx.AsyncClient(base_url=push_stub.url, timeout=10) as client:
            async with client.stream("GET", "/v1/mobile/events", headers=headers) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                seen: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("id: "):
                        seen.append(line[4:])
                    if seen:
                        break
            assert seen == [ids[-1]]
            bad = await client.get("/v1/mobile/events", headers={
                "Authorization": f"Bearer {token}", "Last-Event-ID": "yesterday"})
            assert bad.status_code == 422
            assert bad.json()["error"]["code"] == "VALIDATION_FAILED"
        await auth.aclose()

    asyncio.run(main())


def test_the_stub_sends_heartbeats_at_the_configured_interval(tmp_path: Path) -> None:
    stub = StubProcess(tmp_path / "stub", env={"GOVSTUB_SSE_HEARTBEAT_SECONDS": "0.2"}).start()

    async def main() -> None:
        auth = await signed_in(stub.url)
        headers = {"Authorization": f"Bearer {await auth.access_token()}"}
        stamps: list[datetime] = []
        async with httpx.AsyncClient(base_url=stub.url, timeout=10) as client, \
                client.stream("GET", "/v1/mobile/events", headers=headers) as response:
            async for line in response.aiter_lines():
                if line.startswith(": heartbeat "):  # each carries the stub's time
                    stamps.append(datetime.fromisoformat(line.removeprefix(": heartbeat ")))
                    if len(stamps) == 3:
                        break
        assert len(stamps) == 3 and stamps == sorted(stamps)
        assert all(s.tzinfo is not None for s in stamps)
        await auth.aclose()

    try:
        asyncio.run(main())
    finally:
        stub.stop()


def test_a_veto_window_closing_within_the_hour_is_pushed(push_stub: StubProcess,
                                                        tmp_path: Path) -> None:
    async def main() -> None:
        auth = await signed_in(push_stub.url)
        store = LocalStore(tmp_path / "client.db")
        listener, client = make(push_stub, auth, store)
        closing: list[str] = []
        listener.on_event(lambda e: closing.append(str(e.approval_id))
                          if e.type == "governance.veto_window.closing" else None)

        async def body() -> None:
            await wait_until(lambda: listener.status.connected, 20, "connection")
            with push_stub.client() as demo:
                auto = demo.post("/v1/demo/scenario", json={"event": "seed_auto_approval"})
                approval_id = auto.json()["data"]["result"]["approval_id"]
                # 23 h later the 24 h window has less than an hour to run.
                demo.post("/v1/demo/clock", json={"advance_seconds": 23 * 3600 + 60})
            await wait_until(lambda: approval_id in closing, 30, "the closing notice")

        await run_listener(listener, body)
        await client.aclose()
        await auth.aclose()

    asyncio.run(main())
