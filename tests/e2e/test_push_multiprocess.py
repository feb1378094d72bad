"""Two stub processes on one PostgreSQL database (and Redis): a governor streaming from one
hears every event the other commits, signed with the same key, and can move between them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sync.auth import Authenticator
from sync.push import Backoff, InMemoryEventSink, PushListener
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess
from tests.sync.push_fixtures import wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SECRET = "multi-process-push-secret-0123456789"


def test_events_committed_by_another_process_reach_the_stream(
        tmp_path: Path, postgres_url: str, redis_url: str) -> None:
    args = ["--db", postgres_url, "--redis", redis_url]
    first = StubProcess(tmp_path / "a", extra_args=args)
    # One deployment: one secret and one issuer, so tokens and event keys hold on both.
    env = {"GOVSTUB_SECRET_KEY": SECRET, "GOVSTUB_PUBLIC_URL": first.url}
    first.env = env
    second = StubProcess(tmp_path / "b", extra_args=args, env=env)
    first.start()
    second.start()
    try:
        async def main() -> None:
            auth = Authenticator(first.url, vault=MemoryVault())
            await auth.sign_in_with_password("governor", "governor")
            client = httpx.AsyncClient(base_url=first.url)
            sink = InMemoryEventSink()
            listener = PushListener(client, auth.access_token, sink,
                                    backoff=Backoff(base=0.05, cap=0.5))
            task = asyncio.create_task(listener.run())
            try:
                await wait_until(lambda: listener.status.connected, 30, "connection")
                before = len(sink.events)
                with second.client() as other:
                    for _ in range(5):
                        assert other.post("/v1/demo/scenario",
                                          json={"event": "violation"}).status_code == 200
                await wait_until(lambda: len(sink.events) >= before + 5, 30,
                                 "events from the other process")
                assert listener.intake.counts.forged == 0
                # The same account gets the same key from either process.
                token = await auth.access_token()
                keys = [httpx.get(f"{stub.url}/v1/mobile/events/key", headers={
                    "Authorization": f"Bearer {token}"}).json()["data"]["key_id"]
                    for stub in (first, second)]
                assert keys[0] == keys[1] == listener.status.key_id
            finally:
                listener.stop()
                await asyncio.wait_for(task, 15)
                await client.aclose()
            # The device moves to the other process (a load balancer's choice): it resumes
            # from its cursor there, verifies with the same key, and stores no duplicate.
            with first.client() as one:
                for _ in range(3):
                    one.post("/v1/demo/scenario", json={"event": "violation"})
            held = len(sink.events)
            client2 = httpx.AsyncClient(base_url=second.url)
            listener2 = PushListener(client2, auth.access_token, sink,
                                     backoff=Backoff(base=0.05, cap=0.5))
            task2 = asyncio.create_task(listener2.run())
            try:
                await wait_until(lambda: len(sink.events) >= held + 3, 30, "the gap")
            finally:
                listener2.stop()
                await asyncio.wait_for(task2, 15)
                await client2.aclose()
                await auth.aclose()
            ids = [e.id for e in sink.events]
            assert len(ids) == len(set(ids)) and listener2.intake.counts.forged == 0

        asyncio.run(main())
    finally:
        second.stop()
        first.stop()
