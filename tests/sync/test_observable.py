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
