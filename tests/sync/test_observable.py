from __future__ import annotations

import logging

import pytest

from sync.observable import Listeners


def test_a_failing_listener_is_logged_and_the_others_still_hear(
        caplog: pytest.LogCaptureFixture) -> None:
    heard: list[str] = []
    listeners: Listeners[[str]] = Listeners(logging.getLogger("t"), "a test listener")

    def broken(topic: str) -> None:
        raise RuntimeError("view gone")

    listeners.subscribe(broken)
    unsubscribe = listeners.subscribe(heard.append)
    listeners.emit("status")
    assert heard == ["status"]
    assert "a test listener failed on ('status',)" in caplog.text
    unsubscribe()
    unsubscribe()  # twice is harmless
    listeners.emit("outbox")
    assert heard == ["status"]


def test_a_listener_may_unsubscribe_while_it_is_called() -> None:
    calls: list[str] = []
    listeners: Listeners[[]] = Listeners(logging.getLogger("t"), "x")

    def once() -> None:
        calls.append("once")
        unsubscribe()

    unsubscribe = listeners.subscribe(once)
    listeners.subscribe(lambda: calls.append("always"))
    listeners.emit()
    listeners.emit()
    assert calls == ["once", "always", "always"]


def test_spawn_on_runs_the_task_from_the_loops_thread_or_another_and_forgets_it_done(
        ) -> None:
    import asyncio
    import threading

    from sync.observable import spawn_on

    ran: list[str] = []
    tasks: set[asyncio.Task[object]] = set()

    async def work(name: str) -> None:
        ran.append(name)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        spawn_on(loop, lambda: work("same thread"), tasks)
        other = threading.Thread(target=spawn_on,
                                 args=(loop, lambda: work("other thread"), tasks))
        other.start()
        await asyncio.to_thread(other.join)
        while len(ran) < 2 or tasks:
            await asyncio.sleep(0)

    asyncio.run(main())
    assert sorted(ran) == ["other thread", "same thread"] and tasks == set()
    closed = asyncio.new_event_loop()
    closed.close()
    spawn_on(closed, lambda: work("never"), tasks)  # nothing, no error
    spawn_on(None, lambda: work("never"), tasks)
    assert "never" not in ran and tasks == set()
