"""The event stream under starvation: every event reaches every open stream exactly once,
in id order, however it was announced and even while the process's shared thread pools
(the event loop's default executor, AnyIO's pool of the sync routes) are saturated.

Nothing here is timed: a stream is read until it has every published id or a generous
deadline passes, and a failure names the ids that are missing or repeated."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio.to_thread
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend_stub.api.events_stream import (
    EventHub,
    EventSigner,
    MemoryEventLog,
    StreamSettings,
    event_frames,
)

SIGNER = EventSigner(b"s" * 32)
# A long deadline only bounds a failing run; a passing one ends when the ids are in.
DEADLINE_S = 60.0
# How an event is announced: with its message (the service, after its commit), by a bare
# wake-up (the bus, for another process's commit), not at all (the poll finds it), or
# announced while an earlier one was not (a gap: the stream must read the table).
MODES = ("message", "bare", "silent", "gap")


def _ids(chunk: bytes) -> list[int]:
    return [int(line[4:]) for line in chunk.decode().splitlines() if line.startswith("id: ")]


async def _read_until(frames: AsyncIterator[bytes], wanted: list[int]) -> list[int]:
    """Every id the stream sends until it has sent the last of ``wanted`` (or the
    deadline passes, then what came)."""
    received: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not wanted or not received or received[-1] < wanted[-1]:
        left = deadline - loop.time()
        if left <= 0:
            break
        try:
            chunk = await asyncio.wait_for(anext(frames), left)
        except TimeoutError:
            break
        received += _ids(chunk)
    return received


def _publish(log: MemoryEventLog, hub: EventHub, modes: list[str]) -> list[int]:
    """Store one event per mode and announce it that way; returns the ids in order."""
    ids: list[int] = []
    held: list[dict[str, Any]] = []
    for n, mode in enumerate(modes):
        event_id = log.append({"type": "approval.created", "data": {"n": n}})
        message = log.after(event_id - 1, 1)[0][1]
        ids.append(event_id)
        if mode == "message":
            hub.notify_many([message])
        elif mode == "bare":
            hub.notify()
        elif mode == "gap":
            held.append(message)  # announced only after the next one: out of order
            continue
        if held:
            hub.notify_many([message])
            held.clear()
    return ids


def _report(published: list[int], streams: list[list[int]]) -> str:
    lines = []
    for n, got in enumerate(streams):
        missing = sorted(set(published) - set(got))
        repeated = sorted({i for i in got if got.count(i) > 1})
        lines.append(f"stream {n}: missing {missing}, repeated {repeated}, "
                     f"in order: {got == sorted(got)}")
    return "; ".join(lines)


async def _saturated(run: Callable[[], Any]) -> Any:
    """Run ``run()`` while every worker of the loop's default executor is blocked and
    every token of AnyIO's default limiter is taken (what 50 clients' requests do)."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    shared = ThreadPoolExecutor(2, thread_name_prefix="jammed")
    loop.set_default_executor(shared)
    jams = [loop.run_in_executor(None, release.wait) for _ in range(2)]
    limiter = anyio.to_thread.current_default_thread_limiter()
    borrowers = [object() for _ in range(int(limiter.total_tokens))]
    for borrower in borrowers:
        await limiter.acquire_on_behalf_of(borrower)
    try:
        # Proof that the shared pool is really saturated: a job sent to it waits.
        probe = asyncio.ensure_future(asyncio.to_thread(lambda: "ran"))
        result = await run()
        assert not probe.done(), "the default executor was not saturated"
        return result
    finally:
        release.set()
        for borrower in borrowers:
            limiter.release_on_behalf_of(borrower)
        await asyncio.gather(*jams)
        await probe
        shared.shutdown()


async def _close(frames: AsyncIterator[bytes]) -> None:
    """Close a stream body as the server does when its client leaves (``event_frames`` is
    an async generator, typed as the iterator the response takes)."""
    assert isinstance(frames, AsyncGenerator)
    await frames.aclose()


async def _stream_everything(modes: list[str], streams: int, poll: float,
                             starve: bool) -> tuple[list[int], list[list[int]]]:
    log, hub = MemoryEventLog(), EventHub(readers=2)
    stream_settings = StreamSettings(heartbeat_interval=3600, poll_interval=poll)

    async def run() -> tuple[list[int], list[list[int]]]:
        frames = [event_frames(log, hub, SIGNER, "governor", 0, stream_settings)
                  for _ in range(streams)]
        for f in frames:  # each stream sends its preamble before any event exists
            assert _ids(await anext(f)) == []
        published: list[int] = []
        # Commits happen on other threads; the streams wait on the event loop.
        publisher = threading.Thread(target=lambda: published.extend(
            _publish(log, hub, modes)))
        publisher.start()
        await asyncio.get_running_loop().run_in_executor(hub_free_pool, publisher.join)
        received = await asyncio.gather(*(_read_until(f, published) for f in frames))
        for f in frames:
            await _close(f)
        return published, list(received)

    hub_free_pool = ThreadPoolExecutor(1, thread_name_prefix="join")
    try:
        return await (_saturated(run) if starve else run())
    finally:
        hub.close()
        hub_free_pool.shutdown()


def test_an_event_reaches_open_streams_while_the_shared_thread_pools_are_saturated() -> None:
    modes = ["message", "bare", "silent", "gap", "message", "message", "silent"]
    published, received = asyncio.run(_stream_everything(modes, streams=3, poll=0.05,
                                                         starve=True))
    assert published == list(range(1, len(modes) + 1))
    assert all(got == published for got in received), _report(published, received)


def test_a_stream_reads_the_table_on_the_hubs_threads_not_the_default_executor() -> None:
    log, hub = MemoryEventLog(), EventHub()
    log.append({"type": "approval.created", "data": {}})

    async def main() -> str:
        return await _saturated(lambda: hub.read(lambda: threading.current_thread().name))

    try:
        assert asyncio.run(main()).startswith("event-stream")
    finally:
        hub.close()


def test_a_closed_hub_reads_again_on_new_threads() -> None:
    hub = EventHub()
    log = MemoryEventLog()
    log.append({"type": "approval.created", "data": {}})

    async def main() -> tuple[int, int]:
        first = await hub.read(log.latest_id)
        hub.close()
        return first, len(await hub.read(log.after, 0, 10))

    try:
        assert asyncio.run(main()) == (1, 1)
    finally:
        hub.close()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(MODES), min_size=1, max_size=40))
def test_every_event_arrives_exactly_once_in_order_on_every_stream(modes: list[str]) -> None:
    published, received = asyncio.run(_stream_everything(modes, streams=2, poll=0.01,
                                                         starve=False))
    assert all(got == published for got in received), _report(published, received)


@pytest.mark.parametrize("batch", [1, 3])
def test_a_backlog_larger_than_a_page_arrives_whole_and_in_order(batch: int) -> None:
    log, hub = MemoryEventLog(), EventHub()
    for n in range(10):
        log.append({"type": "approval.created", "data": {"n": n}})

    async def main() -> list[int]:
        frames = event_frames(log, hub, SIGNER, "governor", 2,
                              StreamSettings(heartbeat_interval=3600, poll_interval=0.01,
                                             batch=batch))
        await anext(frames)
        got = await _read_until(frames, list(range(3, 11)))
        await _close(frames)
        return got

    try:
        assert asyncio.run(main()) == list(range(3, 11))
    finally:
        hub.close()
