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

Knobs (environment): ``CHAOS_FAULTS`` (default 200), ``CHAOS_KILLS`` (default 50),
``CHAOS_SEED``, ``CHAOS_REPORT`` (a JSON file for the counts).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sync.engine import SyncEngine
from sync.errors import InvalidDecision, SignInRequired, SyncError
from sync.models import OutboxState, VetoCategory
from sync.store import LocalStore
from tests.chaos.harness import (
    ROOT,
    ChaosWorld,
    audit_log_gaps,
    env_int,
    judge,
    queue_decisions,
    seed,
    signed_in_engine,
    write_report,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[ChaosWorld]:
    # A short access-token life: sessions renew many times during a run, through the proxy.
    w = ChaosWorld.start(tmp_path / "stub", access_token_ttl=120)
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


def _decide_through_the_engine(engine: SyncEngine, rng: random.Random, made: list[str],
                               n: int) -> None:
    """The governor deciding on what the cached lists show (the app's own path)."""
    for _ in range(n):
        pending = engine.approvals("pending")
        window = engine.approvals("veto_window")
        try:
            if window and rng.random() < 0.4:
                target = rng.choice(window)
                entry = engine.veto(target.id, VetoCategory.SAFETY, "chaos: unsafe egress")
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
        made.append(entry.id)


@pytest.mark.timeout(900)
def test_faults_through_the_proxy_lose_nothing_and_double_nothing(
        world: ChaosWorld, tmp_path: Path) -> None:
    target_faults = env_int("CHAOS_FAULTS", 200)
    rng = random.Random(seed())
    counts = {"uploads": 0, "sign_ins_again": 0, "sign_in_failures": 0, "rounds": 0,
              "token_expiry_jumps": 0, "window_closing_jumps": 0, "stub_kills": 0,
              "downloads_failed": 0}
    world.new_pending(30)

    async def scenario() -> dict[str, Any]:
        data = tmp_path / "client"
        engine = await signed_in_engine(world.url, data, batch_size=4)
        await engine.sync_now()
        account = engine.account()
        assert account is not None
        sub, device = account.sub, engine.device_id
        made: list[str] = []
        world.proxy.random_faults(0.3, seed=seed())
        while world.proxy.total_injected < target_faults and counts["rounds"] < 400:
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
                made += queue_decisions(engine.store, approvals, sub, device, 3, rng, f"r{r}")
            side: list[Any] = []
            if r % 5 == 0:  # the access token dies between two batches of one upload
                side.append(asyncio.to_thread(world.jump_clock, 16 * 60))
                counts["token_expiry_jumps"] += 1
            if r % 13 == 0:  # veto windows close with vetoes still queued
                side.append(asyncio.to_thread(world.jump_clock, 25 * 3600))
                counts["window_closing_jumps"] += 1
            if r % 9 == 0:  # kill -9 mid-upload, back on the same port and data
                side.append(asyncio.to_thread(world.kill_and_restart_stub))
                counts["stub_kills"] += 1
            await asyncio.gather(_drive(engine, counts, 6), *side)
        world.proxy.heal()
        for _ in range(20):
            await _drive(engine, counts, 20)
            status = engine.status()
            if not status.pending_count and not status.held_count:
                break
        status = engine.status()
        audit = world.audit()
        verdict = judge(engine.store, made, audit, sub=sub, device_id=device)
        gaps = audit_log_gaps([str(r["idempotency_key"]) for r in audit
                               if r["device_id"] == device], world.security_audit_keys())
        figures = {"faults_injected": world.proxy.total_injected,
                   "security_audit_log_gaps": len(gaps), "gap_examples": gaps[:3],
                   "faults_by_kind": dict(world.proxy.injected),
                   "decisions": len(made), **verdict.as_dict(), **counts,
                   "rejected_shown": status.rejected_count}
        await engine.stop()
        await engine.auth.aclose()  # type: ignore[attr-defined]
        return figures

    figures = asyncio.run(scenario())
    write_report("proxy faults", figures)
    assert not figures["problems"], figures
    assert figures["faults_injected"] >= target_faults, figures
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
    made = queue_decisions(store, approvals, sub, device, 300, rng, "k0")
    store.close()
    world.proxy.random_faults(0.15, seed=seed() + 1)

    kills = drained_early = stub_kills = clock_jumps = 0
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
            stub_kills += 1
        if kills and kills % 17 == 0 and child.returncode == -signal.SIGKILL:
            world.jump_clock(16 * 60)  # the kept access token is now expired
            clock_jumps += 1
        if drained:
            # Drained before the kill landed: give it more to do, on the requests it
            # downloaded on the way out and on stale copies, so both outcomes keep coming.
            drained_early += 1
            world.new_pending(10)
            store = LocalStore(data / "governor.db")
            made += queue_decisions(store, store.approval_summaries(), sub, device, 30, rng,
                                    f"k{kills}-{drained_early}")
            store.close()

    world.proxy.heal()
    finished = subprocess.run(
        [sys.executable, "-m", "tests.chaos.client_worker", world.url, str(data), "50"],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "drained" in finished.stdout, finished.stdout + finished.stderr

    store = LocalStore(data / "governor.db")
    try:
        audit = world.audit()
        verdict = judge(store, made, audit, sub=sub, device_id=device)
        rejected_rows = store.counts().get("rejected", 0)
    finally:
        store.close()
    gaps = audit_log_gaps([str(r["idempotency_key"]) for r in audit
                           if r["device_id"] == device], world.security_audit_keys())
    figures = {"security_audit_log_gaps": len(gaps), "gap_examples": gaps[:3],
               "client_kills": kills, "stub_kills": stub_kills, "clock_jumps": clock_jumps,
               "drained_before_kill": drained_early,
               "faults_injected": world.proxy.total_injected,
               "faults_by_kind": dict(world.proxy.injected), "decisions": len(made),
               **verdict.as_dict(), "rejected_in_outbox": rejected_rows}
    write_report("kill -9", figures)
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
