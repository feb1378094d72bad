"""Exactly once and shared limits across stub replicas on one PostgreSQL and one Redis,
behind HAProxy: what a deployment that outgrew one machine relies on."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sync.auth import Authenticator
from sync.tokens import MemoryVault
from tests.replicated.conftest import REQUESTS_PER_MINUTE
from tests.support.replicas import ReplicatedStub

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def sign_in(url: str) -> dict[str, str]:
    async def run() -> str:
        auth = Authenticator(url, vault=MemoryVault())
        await auth.sign_in_with_password("governor", "governor")
        return str(await auth.access_token())

    return {"Authorization": f"Bearer {asyncio.run(run())}"}


def new_pending(topology: ReplicatedStub) -> dict[str, Any]:
    """A fresh pending approval (the demo platform's scenario), read back in full."""
    with topology.client() as client:
        made = client.post("/v1/demo/scenario", json={"event": "new_pending_approval"})
        assert made.status_code == 200, made.text
        approval_id = made.json()["data"]["result"]["approval_id"]
        detail = client.get(f"/v1/mobile/approvals/{approval_id}",
                            headers=sign_in(topology.url))
    assert detail.status_code == 200, detail.text
    data: dict[str, Any] = detail.json()["data"]
    assert data["status"] == "pending_approval"
    return data


def database_rows(topology: ReplicatedStub, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    url = topology.replicas[0].env["GOVSTUB_DB_URL"].replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(url) as conn:
        return list(conn.execute(sql, params).fetchall())


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_one_key_sent_16_times_at_once_across_two_replicas_is_applied_once(
        topology: ReplicatedStub) -> None:
    headers = sign_in(topology.url)
    approval = new_pending(topology)
    key = f"same-{uuid.uuid4().hex}"
    clients = [httpx.Client(base_url=r.url, timeout=30) for r in topology.replicas]
    try:
        def send(client: httpx.Client) -> httpx.Response:
            return client.post(f"/v1/mobile/approvals/{approval['id']}/approve",
                               json={"expected_version": approval["version"],
                                     "comment": "once"},
                               headers={**headers, "Idempotency-Key": key})

        answers = at_once([partial(send, c) for c in clients * 8])
    finally:
        for client in clients:
            client.close()
    statuses = [a.status_code for a in answers]
    assert statuses == [200] * 16, [a.text for a in answers if a.status_code != 200]
    first = [a for a in answers if "idempotent-replayed" not in a.headers]
    assert len(first) == 1  # one applied it; fifteen are its replay, byte for byte
    assert {a.content for a in answers} == {first[0].content}
    assert database_rows(topology, "SELECT count(*) FROM decisions "
                         "WHERE idempotency_key = %(k)s", k=key) == [(1,)]
    assert json.loads(first[0].content)["data"]["status"] == "approved"


def test_replicas_started_together_migrated_once_and_loaded_the_demo_once(
        topology: ReplicatedStub) -> None:
    duplicated = database_rows(topology, "SELECT name FROM schema_migrations "
                               "GROUP BY name HAVING count(*) > 1")
    assert duplicated == []
    # Each replica's start-up found every migration applied, by itself or the other.
    names = {n for (n,) in database_rows(topology, "SELECT name FROM schema_migrations")}
    assert any(n.startswith("domain_") for n in names)
    assert any(n.startswith("oauth_") for n in names)
    from backend_stub.demo.world import SEEDS

    assert database_rows(topology, "SELECT count(*) FROM seeds") == [(len(SEEDS),)]
    for replica in topology.replicas:
        assert not any("Traceback" in line for line in replica.output), replica.output


@contextmanager
def stream(url: str, headers: dict[str, str], last_event_id: int
           ) -> Iterator[queue.Queue[tuple[int, dict[str, Any]]]]:
    """An SSE stream read on a thread: (id, message) frames arrive in the queue."""
    frames: queue.Queue[tuple[int, dict[str, Any]]] = queue.Queue()
    connected = threading.Event()
    stop = threading.Event()

    def read() -> None:
        with httpx.Client(timeout=httpx.Timeout(10, read=30)) as client, client.stream(
                "GET", f"{url}/v1/mobile/events",
                headers={**headers, "Last-Event-ID": str(last_event_id)}) as response:
            assert response.status_code == 200
            event_id: int | None = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    connected.set()
                if stop.is_set():
                    return
                if line.startswith("id: "):
                    event_id = int(line[4:])
                elif line.startswith("data: ") and event_id is not None:
                    frames.put((event_id, json.loads(line[6:])))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert connected.wait(30), "the event stream did not open"
    try:
        yield frames
    finally:
        stop.set()


def next_decided(frames: queue.Queue[tuple[int, dict[str, Any]]], approval_id: str
                 ) -> list[tuple[int, dict[str, Any]]]:
    """Frames up to the decision event of ``approval_id`` (each at most 30 s after the last)."""
    seen = []
    while True:
        event_id, message = frames.get(timeout=30)
        seen.append((event_id, message))
        if (message["type"] == "governance.approval.decided"
                and message["data"]["approval_id"] == approval_id):
            return seen


def test_an_event_from_one_replica_reaches_a_stream_on_the_other_and_resumes_there(
        topology: ReplicatedStub) -> None:
    headers = sign_in(topology.url)
    one, two = new_pending(topology), new_pending(topology)
    a, b = topology.replicas
    with httpx.Client(base_url=a.url, timeout=30) as client:
        last = client.get("/v1/mobile/notifications", params={"after": 0, "limit": 1},
                          headers=headers).json()["meta"]["last_event_id"]
    with stream(b.url, headers, last) as frames:
        with httpx.Client(base_url=a.url, timeout=30) as client:
            decided = client.post(f"/v1/mobile/approvals/{one['id']}/approve",
                                  json={"expected_version": one["version"]},
                                  headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
            assert decided.status_code == 200, decided.text
        seen = next_decided(frames, one["id"])
    resume_after = seen[-1][0]
    # The stream on B has gone; the client reconnects to A with the last id it saw.
    with httpx.Client(base_url=b.url, timeout=30) as client:
        decided = client.post(f"/v1/mobile/approvals/{two['id']}/approve",
                              json={"expected_version": two["version"]},
                              headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
        assert decided.status_code == 200, decided.text
    with stream(a.url, headers, resume_after) as frames:
        resumed = next_decided(frames, two["id"])
    ids = [i for i, _ in seen + resumed]
    assert ids == sorted(set(ids)), "an event was repeated or out of order"
    assert resumed[0][0] > resume_after
    stored = [i for (i,) in database_rows(
        topology, "SELECT id FROM events WHERE id > %(a)s AND id <= %(b)s ORDER BY id",
        a=last, b=ids[-1])]
    assert ids == stored  # nothing in between was skipped


def test_the_login_limiter_holds_across_replicas(topology: ReplicatedStub) -> None:
    from tests.backend_stub.oauth.conftest import ALL, CHALLENGE, REDIRECT

    limit = 10  # GOVSTUB_LOGIN_ATTEMPTS_PER_MINUTE's default
    # The auditor's account: the other tests sign in as the governor, whom this blocks not.
    # A client address of its own (uvicorn trusts X-Forwarded-For from loopback).
    address = {"X-Forwarded-For": f"10.{uuid.uuid4().int % 250}.7.9"}

    def login(replica: int, password: str) -> httpx.Response:
        with httpx.Client(base_url=topology.replicas[replica].url, timeout=30) as client:
            return client.post("/oauth/authorize", headers=address, data={
                "response_type": "code", "client_id": "governor-app",
                "redirect_uri": REDIRECT, "scope": ALL, "state": "st",
                "code_challenge": CHALLENGE, "code_challenge_method": "S256",
                "username": "auditor", "password": password}, follow_redirects=False)

    for attempt in range(limit):  # alternately on each replica: half the limit each
        assert login(attempt % 2, "guess").status_code == 401
    for replica in (0, 1):
        blocked = login(replica, "auditor")  # even the right password waits
        assert blocked.status_code == 429, blocked.text
        assert int(blocked.headers["retry-after"]) > 0


def test_a_rate_limit_holds_across_replicas(topology: ReplicatedStub) -> None:
    headers = sign_in(topology.url)
    clients = [httpx.Client(base_url=r.url, timeout=30, headers=headers)
               for r in topology.replicas]
    try:
        answers = [clients[i % 2].get("/v1/mobile/dashboard")
                   for i in range(REQUESTS_PER_MINUTE + 10)]
    finally:
        for client in clients:
            client.close()
    statuses = [a.status_code for a in answers]
    # The first window starts with the first request: all of them fall inside it.
    assert statuses.count(200) == REQUESTS_PER_MINUTE, statuses
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) == 10
    for answer in refused:
        assert int(answer.headers["retry-after"]) > 0
        assert answer.json()["error"]["code"] == "RATE_LIMITED"


def test_kill_9_of_a_replica_behind_haproxy_and_the_client_keeps_working(
        own_topology: ReplicatedStub) -> None:
    topology = own_topology
    headers = sign_in(topology.url)
    approvals = [new_pending(topology) for _ in range(3)]
    with topology.client(headers=headers) as client:
        assert client.get("/v1/mobile/dashboard").status_code == 200
        # No waiting for the health check: connections refused by the dead replica are
        # retried on the other by HAProxy (``option redispatch``).
        topology.kill(0, wait=False)
        for approval in approvals[:2]:
            answer = client.post(f"/v1/mobile/approvals/{approval['id']}/approve",
                                 json={"expected_version": approval["version"]},
                                 headers={"Idempotency-Key": f"k-{approval['id']}"})
            assert answer.status_code == 200, answer.text
            assert client.get("/v1/mobile/approvals").status_code == 200
        topology.wait_for(0, "DOWN")
        assert topology.server_status()[topology.server_name(1)] == "UP"
        # Back again: it rejoins and serves; the decisions made meanwhile are there.
        topology.restart(0)
        with httpx.Client(base_url=topology.replicas[0].url, headers=headers,
                          timeout=30) as direct:
            for approval in approvals[:2]:
                detail = direct.get(f"/v1/mobile/approvals/{approval['id']}").json()["data"]
                assert detail["status"] == "approved"
        last = approvals[2]
        answer = client.post(f"/v1/mobile/approvals/{last['id']}/approve",
                             json={"expected_version": last["version"]},
                             headers={"Idempotency-Key": f"k-{last['id']}"})
        assert answer.status_code == 200, answer.text


def test_the_sync_engine_uploads_exactly_once_while_a_replica_is_killed(
        own_topology: ReplicatedStub, tmp_path: Path) -> None:
    """The real client through the balancer, in small batches, with kill -9 of a replica
    during the upload: every decision is applied once or rejected with a code, none lost."""
    from sync.engine import SyncEngine
    from sync.models import OutboxState
    from sync.settings import GovernorSettings

    topology = own_topology
    for _ in range(24):
        new_pending(topology)

    async def scenario() -> list[Any]:
        auth = Authenticator(topology.url, vault=MemoryVault())
        await auth.sign_in_with_password("governor", "governor")
        engine = SyncEngine(GovernorSettings(server_url=topology.url,
                                             data_dir=tmp_path / "client", sync_interval=0,
                                             batch_size=3), authenticator=auth)
        await engine.sync_now()
        pending = engine.approvals("pending")
        assert len(pending) >= 24
        for approval in pending[:24]:
            engine.approve(approval.id, comment="through the balancer")
        upload = asyncio.create_task(engine.upload())
        await asyncio.sleep(0)  # the first batch is on its way
        await asyncio.to_thread(topology.kill, 0, wait=False)
        await upload
        for _ in range(30):  # a batch cut by the kill is retried on the next upload
            if not engine.outbox({OutboxState.QUEUED, OutboxState.SENDING}):
                break
            await engine.upload()
        entries = engine.outbox()
        await engine.stop()
        return entries

    entries = asyncio.run(scenario())
    assert len(entries) == 24
    counts = dict(database_rows(topology, "SELECT idempotency_key, count(*) FROM decisions "
                                "WHERE idempotency_key IS NOT NULL GROUP BY idempotency_key"))
    for entry in entries:
        assert entry.state == OutboxState.APPLIED, entry  # fresh approvals: all apply
        assert counts.get(entry.id) == 1, entry.id
