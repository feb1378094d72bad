"""The push hub follows the service's batch publisher: one wake-up per commit."""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

import pytest

from backend_stub.api.events_stream import EventHub


class Service:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[list[dict[str, Any]]] = []
        self.publish = self.one
        self.publish_many = self.many

    def one(self, message: dict[str, Any]) -> None:
        self.sent.append([message])

    def many(self, messages: list[dict[str, Any]]) -> None:
        if self.fail:
            raise RuntimeError("bus down")
        self.sent.append(messages)


def test_the_events_of_one_commit_wake_the_streams_once() -> None:
    svc, hub = Service(), EventHub()
    hub.follow_publisher(svc)
    svc.publish_many([{"id": "1"}, {"id": "2"}, {"id": "x"}])
    assert svc.sent == [[{"id": "1"}, {"id": "2"}, {"id": "x"}]]
    assert hub.version == 1
    assert [i for i, _ in hub.recent_after(0, 10)] == [1, 2]  # "x" is no event id


def test_the_hub_is_woken_even_when_the_batch_publisher_fails() -> None:
    svc, hub = Service(fail=True), EventHub()
    hub.follow_publisher(svc)
    with pytest.raises(RuntimeError, match="bus down"):
        svc.publish_many([{"id": "1"}])
    assert hub.version == 1 and [i for i, _ in hub.recent_after(0, 10)] == [1]


def test_a_service_without_a_batch_publisher_keeps_none() -> None:
    svc, hub = Service(), EventHub()
    svc.publish_many = None  # type: ignore[assignment]
    hub.follow_publisher(svc)
    assert svc.publish_many is None
    svc.publish({"id": "1"})
    assert hub.version == 1


def test_a_waiting_stream_is_woken_once_by_a_burst_of_notifications() -> None:
    hub = EventHub()

    async def main() -> int:
        loop = asyncio.get_running_loop()
        scheduled: list[object] = []
        original = loop.call_soon_threadsafe

        def counting(callback: Any, *args: Any) -> Any:
            scheduled.append(callback)
            return original(callback, *args)

        with patch.object(loop, "call_soon_threadsafe", counting):
            waiter = asyncio.create_task(hub.wait(5, hub.version))
            await asyncio.sleep(0)
            for n in range(500):  # one per event of a batch, as the bus delivers them
                hub.notify({"id": str(n + 1)})
            assert await waiter is True
        return len(scheduled)

    assert asyncio.run(main()) == 1
    assert hub.version == 500
