"""The chaos tier: the real stub behind the fault proxy, the real sync engine, and the
judge (``harness.judge``) at the end of every run.

- ``test_faults_*``: the engine in this process; the proxy drops, delays, resets mid-
  response, answers bursts of 503 and commits-then-drops acknowledgements (token calls
  included); the stub is killed with SIGKILL and restarted mid-upload; its clock jumps
  forward (access tokens expire in the middle of a batch, veto windows close) and back (a
  restart forgets the jump).
- ``test_kill_9_*``: the client in a child process, killed with SIGKILL at random points
  while it uploads through the faulty proxy, restarted until its queue drains; the stub is
  killed and restarted now and then.

On the replicated topology (``tests/chaos/replicated.py``) a stub kill is a replica's,
clock jumps move every replica, and its disruptions (Redis restarted, a replica cut from
PostgreSQL) run beside uploads in both tests.

Each runs on every topology in ``TOPOLOGIES``; the judge (``harness.judge``) compares
content, and the report counts faults that matter (a delay the client waits out does not),
faults by kind and kills, per topology.

Knobs (environment): ``CHAOS_FAULTS`` (default 200 that matter), ``CHAOS_KILLS`` (default
50), ``CHAOS_SEED``, ``CHAOS_REPORT`` (a JSON file for the counts).
"""

from __future__ import annotations

import asyncio
import base64
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sync.engine import SyncEngine
from sync.errors import InvalidDecision, SignInRequired, SyncError
from sync.models import Attachment, OutboxState, VetoCategory
from sync.store import LocalStore
from tests.chaos.harness import (
    CLIENT_TIMEOUT,
    ROOT,
    ChaosWorld,
    Intent,
    SingleStub,
    Topology,
    audit_log_gaps,
    env_int,
    intents,
    judge,
    queue_decisions,
    seed,
    signed_in_engine,
    write_report,
)
from tests.chaos.replicated import Replicated

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


# Every topology the chaos tier runs on: name to a factory given a fresh folder.
TOPOLOGIES: dict[str, Callable[[Path], Topology]] = {"single-sqlite": SingleStub,
                                                     "replicated-postgres": Replicated}
# What a topology needs beyond the stub itself (markers select or leave it out).
NEEDS: dict[str, list[pytest.MarkDecorator]] = {
    "replicated-postgres": [pytest.mark.postgres, pytest.mark.redis]}


@pytest.fixture(params=[pytest.param(name, marks=NEEDS.get(name, []), id=name)
                        for name in TOPOLOGIES])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChaosWorld]:
    # A short access-token life: sessions renew many times during a run, through the proxy.
    w = ChaosWorld.start(TOPOLOGIES[request.param](tmp_path / "stub"), access_token_ttl=120)
    try:
        yield w
    finally:
        w.close()


async def _sign_in_again(engine: SyncEngine, counts: dict[str, int]) -> None:
    """The server ended the session (a refresh answer lost to the proxy makes the next
    refresh look like a stolen token's reuse): the governor signs in again."""
    for _ in range(50):
        try:
            await engine.sign_in_with_password("governor", "governor")
            counts["sign_ins_again"] += 1
            return
        except SyncError:
            counts["sign_in_failures"] += 1


async def _drive(engine: SyncEngine, counts: dict[str, int], attempts: int) -> None:
    """Upload until the queue is empty or ``attempts`` run out (faults may outlast them;
    what is left goes with the next round)."""
    for _ in range(attempts):
        if engine.account() is None or engine.status().needs_sign_in:
            await _sign_in_again(engine, counts)
        await engine.upload()
        counts["uploads"] += 1
        status = engine.status()
        if not status.pending_count and not status.held_count:
            return


def _evidence(rng: random.Random) -> list[Attachment]:
    """Zero to two small files, so the judge compares attachment digests too."""
    return [Attachment(name=f"evidence-{i}.txt", content_type="text/plain",
                       data_base64=base64.b64encode(rng.randbytes(rng.randrange(1, 2048)))
                       .decode()) for i in range(rng.randrange(3))]


def _decide_through_the_engine(engine: SyncEngine, rng: random.Random,
                               made: dict[str, Intent], n: int) -> None:
    """The governor deciding on what the cached lists show (the app's own path)."""
    for _ in range(n):
        pending = engine.approvals("pending")
        window = engine.approvals("veto_window")
        try:
            if window and rng.random() < 0.4:
                target = rng.choice(window)
                entry = engine.veto(target.id, VetoCategory.SAFETY, "chaos: unsafe egress",
                                    attachments=_evidence(rng))
            elif pending:
                target = rng.choice(pending)
                if rng.random() < 0.6:
                    entry = engine.approve(target.id, comment="chaos approve")
                else:
                    entry = engine.request_changes(target.id, "chaos: narrow the grants")
            else:
                return
        except InvalidDecision:
            continue  # already decided locally: the app would not offer the button
        except SignInRequired:
            return  # the session ended under the faults: the app asks to sign in first
        made.update(intents(engine.store, [entry.id]))


@pytest.mark.timeout(900)
def test_faults_through_the_proxy_lose_nothing_and_double_nothing(
        world: ChaosWorld, tmp_path: Path) -> None:
    target_faults = env_int("CHAOS_FAULTS", 200)
    rng = random.Random(seed())
    counts = {"uploads": 0, "sign_ins_again": 0, "sign_in_failures": 0, "rounds": 0,
              "token_expiry_jumps": 0, "window_closing_jumps": 0, "downloads_failed": 0}
    world.new_pending(30)

    async def scenario() -> dict[str, Any]:
        data = tmp_path / "client"
        engine = await signed_in_engine(world.url, data, batch_size=4)
        await engine.sync_now()
        account = engine.account()
        assert account is not None
        sub, device = account.sub, engine.device_id
        made: dict[str, Intent] = {}
        disruptions = sorted(world.topology.disruptions())
        world.proxy.random_faults(0.3, seed=seed())
        while (world.proxy.faults_that_matter(CLIENT_TIMEOUT) < target_faults
               and counts["rounds"] < 400):
            counts["rounds"] += 1
            r = counts["rounds"]
            await asyncio.to_thread(world.new_pending, 2)
            if engine.account() is None or engine.status().needs_sign_in:
                await _sign_in_again(engine, counts)
            if not await engine.download():
                counts["downloads_failed"] += 1
            _decide_through_the_engine(engine, rng, made, 3)
            # Stale copies of what the client last saw: these conflict, or hit a closed
            # window, and must come back as shown rejections, never as silence.
            approvals = engine.store.approval_summaries()
            if approvals:
                made.update(intents(engine.store, queue_decisions(
                    engine.store, approvals, sub, device, 3, rng, f"r{r}")))
            side: list[Any] = []
            if r % 5 == 0:  # the access token dies between two batches of one upload
                side.append(asyncio.to_thread(world.jump_clock, 16 * 60))
                counts["token_expiry_jumps"] += 1
            if r % 13 == 0:  # veto windows close with vetoes still queued
                side.append(asyncio.to_thread(world.jump_clock, 25 * 3600))
                counts["window_closing_jumps"] += 1
            if r % 9 == 0:  # kill -9 mid-upload, back on the same port and data
                side.append(asyncio.to_thread(world.kill_and_restart_stub))
            if disruptions and r % 4 == 2:  # Redis restarted, a replica cut from its database
                side.append(asyncio.to_thread(world.disrupt,
                                              disruptions[(r // 4) % len(disruptions)]))
            await asyncio.gather(_drive(engine, counts, 6), *side)
        world.proxy.heal()
        for _ in range(20):
            await _drive(engine, counts, 20)
            status = engine.status()
            if not status.pending_count and not status.held_count:
                break
        status = engine.status()
        server = world.server()
        verdict = judge(engine.store, made, server, world.proxy.answers)
        gaps = audit_log_gaps([str(d.key) for d in server.decisions if d.device_id == device],
                              world.security_audit_keys())
        figures = {**world.figures(CLIENT_TIMEOUT),
                   "security_audit_log_gaps": len(gaps), "gap_examples": gaps[:3],
                   "decisions": len(made), **verdict.as_dict(), **counts,
                   "rejected_shown": status.rejected_count}
        await engine.stop()
        await engine.auth.aclose()  # type: ignore[attr-defined]
        return figures

    figures = asyncio.run(scenario())
    write_report(f"proxy faults [{world.topology.name}]", figures)
    assert not figures["problems"], figures
    assert figures["faults_that_matter"] >= target_faults, figures
    assert figures["applied"] + figures["rejected"] == figures["decisions"], figures
    # Every rejection is shown: the status counts it and each one has its code.
    assert figures["rejected_shown"] == figures["rejected"], figures
    assert figures["applied"] > 0 and figures["rejected"] > 0, figures
    assert set(figures["faults_by_kind"]) == {"drop", "delay", "reset", "error_5xx",
                                              "lose_ack"}, figures


def _worker(world: ChaosWorld, data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.chaos.client_worker", world.url, str(data), "3"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


@pytest.mark.timeout(900)
def test_kill_9_of_client_and_stub_under_faults_loses_nothing(
        world: ChaosWorld, tmp_path: Path) -> None:
    target_kills = env_int("CHAOS_KILLS", 50)
    rng = random.Random(seed() + 1)
    data = tmp_path / "client"
    data.mkdir()
    world.new_pending(40)

    async def prepare() -> tuple[list[dict[str, Any]], str, str]:
        engine = await signed_in_engine(world.url, data, batch_size=3)
        await engine.sync_now()
        account = engine.account()
        assert account is not None
        approvals = engine.store.approval_summaries()
        device = engine.device_id
        await engine.stop()
        await engine.auth.aclose()  # type: ignore[attr-defined]
        return approvals, account.sub, device

    approvals, sub, device = asyncio.run(prepare())
    store = LocalStore(data / "governor.db")
    made = intents(store, queue_decisions(store, approvals, sub, device, 300, rng, "k0"))
    store.close()
    world.proxy.random_faults(0.15, seed=seed() + 1)

    kills = drained_early = clock_jumps = 0
    disruptions = sorted(world.topology.disruptions())
    background = ThreadPoolExecutor(1, thread_name_prefix="disruption")
    disrupting: Future[None] | None = None
    started = time.monotonic()
    while kills < target_kills:
        assert time.monotonic() - started < 700, f"only {kills} kills in 700 s"
        child = _worker(world, data)
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == "uploading", child.stderr.read() if child.stderr else ""
        time.sleep(rng.uniform(0.0, 0.5))
        drained = child.poll() is not None
        if not drained:
            child.send_signal(signal.SIGKILL)
            kills += 1
        child.wait(30)
        if kills and kills % 10 == 0 and child.returncode == -signal.SIGKILL:
            world.kill_and_restart_stub()
        if (disruptions and kills % 5 == 3 and child.returncode == -signal.SIGKILL
                and (disrupting is None or disrupting.done())):
            # Under the next client's upload: Redis restarted, or a replica cut off.
            if disrupting is not None:
                disrupting.result()  # raises what went wrong in the last one
            disrupting = background.submit(world.disrupt,
                                           disruptions[(kills // 5) % len(disruptions)])
        if kills and kills % 17 == 0 and child.returncode == -signal.SIGKILL:
            world.jump_clock(16 * 60)  # the kept access token is now expired
            clock_jumps += 1
        if drained:
            # Drained before the kill landed: give it more to do, on the requests it
            # downloaded on the way out and on stale copies, so both outcomes keep coming.
            drained_early += 1
            world.new_pending(10)
            store = LocalStore(data / "governor.db")
            made.update(intents(store, queue_decisions(
                store, store.approval_summaries(), sub, device, 30, rng,
                f"k{kills}-{drained_early}")))
            store.close()

    background.shutdown()
    if disrupting is not None:
        disrupting.result()
    world.proxy.heal()
    finished = subprocess.run(
        [sys.executable, "-m", "tests.chaos.client_worker", world.url, str(data), "50"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "drained" in finished.stdout, finished.stdout + finished.stderr

    store = LocalStore(data / "governor.db")
    try:
        server = world.server()
        verdict = judge(store, made, server, world.proxy.answers)
        rejected_rows = store.counts().get("rejected", 0)
    finally:
        store.close()
    gaps = audit_log_gaps([str(d.key) for d in server.decisions if d.device_id == device],
                          world.security_audit_keys())
    figures = {**world.figures(CLIENT_TIMEOUT),
               "security_audit_log_gaps": len(gaps), "gap_examples": gaps[:3],
               "client_kills": kills, "clock_jumps": clock_jumps,
               "drained_before_kill": drained_early, "decisions": len(made),
               **verdict.as_dict(), "rejected_in_outbox": rejected_rows}
    write_report(f"kill -9 [{world.topology.name}]", figures)
    assert not verdict.problems, figures
    assert kills >= target_kills, figures
    assert verdict.applied > 0 and verdict.rejected > 0, figures
    assert rejected_rows == verdict.rejected, figures


def test_a_lost_refresh_answer_ends_the_session_but_loses_nothing(world: ChaosWorld,
                                                                   tmp_path: Path) -> None:
    """What the proxy run showed, step by step: the stub rotates the refresh token, its
    answer is lost, the client's next refresh presents the old token, and reuse detection
    (RFC 9700) revokes the family. The session ends; the queued decision is held, never
    sent as anyone else, and goes once when the governor signs in again."""

    async def scenario() -> None:
        engine = await signed_in_engine(world.url, tmp_path / "client", batch_size=4)
        await engine.sync_now()
        target = engine.approvals("pending")[0]
        await asyncio.to_thread(world.jump_clock, 16 * 60)  # the access token is now dead
        # First connection (the decision, refused 401) unharmed; the second (the refresh)
        # commits on the stub and its answer is lost.
        world.proxy.inject("delay")
        world.proxy.inject("lose_ack")
        entry = engine.approve(target.id, comment="after a lost refresh")
        await engine.upload()
        if engine._flush_task is not None:
            await engine._flush_task
        assert world.proxy.injected["lose_ack"] == 1
        await engine.upload()  # the old refresh token: reuse, the family is revoked
        status = engine.status()
        assert status.needs_sign_in and engine.account() is None, status
        held = engine.store.entry(entry.id)
        assert held is not None and held.state in (OutboxState.HELD, OutboxState.QUEUED)
        assert entry.id not in {r["idempotency_key"] for r in world.audit()}
        await engine.sign_in_with_password("governor", "governor")
        await engine.upload()
        if engine._flush_task is not None:
            await engine._flush_task
        done = engine.store.entry(entry.id)
        assert done is not None and done.state == OutboxState.APPLIED, done
        keys = [r["idempotency_key"] for r in world.audit()]
        assert keys.count(entry.id) == 1
        await engine.stop()
        await engine.auth.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())
