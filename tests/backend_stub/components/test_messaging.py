from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend_stub.clock import FakeClock
from backend_stub.components.errors import InvalidMessage
from backend_stub.components.messaging import (
    InProcessTransport,
    Message,
    MessageBus,
    Priority,
    RedisStreamTransport,
)
from backend_stub.components.observability import request_id_var
from backend_stub.components.resilience import DLQHandler
from backend_stub.components.security import HmacSigner

SIGNER = HmacSigner(b"bus-key" * 5)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Poll for something another thread (or process) does; asserts nothing about time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture(params=["in-process", pytest.param("redis", marks=pytest.mark.redis)])
def buses(request: pytest.FixtureRequest) -> Iterator[tuple[MessageBus, MessageBus | None]]:
    """A bus, and for Redis a second bus playing another stub process on the same stream."""
    if request.param == "in-process":
        bus = MessageBus(InProcessTransport(), signer=SIGNER, clock=FakeClock())
        yield bus, None
        bus.close()
        return
    client = request.getfixturevalue("redis_client")
    stream = request.getfixturevalue("redis_prefix") + "events"
    one = MessageBus(RedisStreamTransport(client, stream=stream, signer=SIGNER,
                                          block_ms=100), signer=SIGNER)
    two = MessageBus(RedisStreamTransport(client, stream=stream, signer=SIGNER,
                                          block_ms=100), signer=SIGNER)
    one.subscribe("*", lambda m: None, name="warm-up")  # starts the stream readers
    two.subscribe("*", lambda m: None, name="warm-up")
    yield one, two
    one.close()
    two.close()


def test_contract_publish_reaches_matching_subscribers(buses: tuple[MessageBus, Any]) -> None:
    bus, _ = buses
    exact: list[Message] = []
    glob: list[Message] = []
    other: list[Message] = []
    bus.subscribe("governance.approval.pending", exact.append, name="exact")
    bus.subscribe("governance.approval.*", glob.append, name="glob")
    bus.subscribe("governance.seed.*", other.append, name="other")
    sent = bus.publish("governance.approval.pending", {"approval_id": "a1"}, user_id="u1")
    assert bus.flush()
    assert [m.id for m in exact] == [sent.id] and [m.id for m in glob] == [sent.id]
    assert other == []
    wire = exact[0].to_dict()
    assert set(wire) == {"id", "type", "timestamp", "source", "data", "metadata", "signature"}
    assert wire["metadata"] == {"correlation_id": None, "causation_id": None, "user_id": "u1"}
    assert SIGNER.verify_event(wire)


@pytest.mark.redis
def test_other_processes_receive_what_one_publishes(redis_client: Any,
                                                     redis_prefix: str) -> None:
    stream = redis_prefix + "events"
    one, two = (MessageBus(RedisStreamTransport(redis_client, stream=stream, signer=SIGNER,
                                                block_ms=100), signer=SIGNER)
                for _ in range(2))
    got_one: list[Message] = []
    got_two: list[Message] = []
    one.subscribe("governance.*", got_one.append, name="sse-1")
    two.subscribe("governance.*", got_two.append, name="sse-2")
    sent = one.publish("governance.agent.violated", {"agent": "x"}, priority=Priority.HIGH)
    assert wait_until(lambda: len(got_two) == 1)
    one.flush()
    assert got_two[0].id == sent.id and got_two[0].signature == sent.signature
    assert got_two[0].priority is Priority.HIGH
    assert [m.id for m in got_one] == [sent.id]  # its own process: once, not twice
    one.close()
    two.close()


def test_correlation_id_defaults_to_the_request_being_served() -> None:
    bus = MessageBus()
    token = request_id_var.set("req-42")
    try:
        message = bus.publish("governance.approval.decided", {})
    finally:
        request_id_var.reset(token)
    assert message.correlation_id == "req-42"
    follow = message.caused("governance.seed.auto_approved", {"seed": "GEN-1"})
    assert follow.correlation_id == "req-42" and follow.causation_id == message.id
    assert Message(type="a.b", data={}).caused("a.c", {}).correlation_id is not None
    bus.close()


def test_priorities_deliver_higher_first() -> None:
    bus = MessageBus()
    gate = threading.Event()
    order: list[str] = []

    def handler(message: Message) -> None:
        if message.type == "test.block":
            gate.wait(5)
            return
        order.append(message.data["p"])

    bus.subscribe("test.*", handler)
    bus.publish("test.block", {})
    assert wait_until(lambda: bus._queue.qsize() == 0)  # the worker holds the blocker
    for p in (Priority.LOW, Priority.NORMAL, Priority.CRITICAL, Priority.HIGH, Priority.LOW):
        bus.publish("test.msg", {"p": p.name}, priority=p)
    gate.set()
    assert bus.flush()
    assert order == ["CRITICAL", "HIGH", "NORMAL", "LOW", "LOW"]
    bus.close()


def test_a_flaky_subscriber_gets_the_message_at_least_once() -> None:
    bus = MessageBus()
    attempts: list[str] = []

    def flaky(message: Message) -> None:
        attempts.append(message.id)
        if len(attempts) < 3:
            raise ConnectionError("try again")

    bus.subscribe("x.y", flaky)
    bus.publish("x.y", {})
    assert bus.flush()
    assert len(attempts) == 3 and bus.dlq.size() == 0
    bus.close()


def test_a_subscriber_that_always_fails_lands_in_the_dlq_and_others_are_unaffected() -> None:
    sizes: list[int] = []
    bus = MessageBus(dlq=DLQHandler("messaging", on_change=lambda q, n: sizes.append(n)))
    good: list[Message] = []
    calls: list[int] = []

    def broken(message: Message) -> None:
        calls.append(1)
        raise RuntimeError("subscriber bug")

    bus.subscribe("governance.*", broken, name="broken")
    bus.subscribe("governance.*", good.append, name="good")
    for n in range(5):
        bus.publish("governance.approval.pending", {"n": n})
    assert bus.flush()
    assert [m.data["n"] for m in good] == [0, 1, 2, 3, 4]
    assert len(calls) == 5 * 3  # max_retries_before_dlq attempts each
    letters = bus.dlq.entries()
    assert len(letters) == 5 and sizes[-1] == 5
    assert letters[0].payload["subscriber"] == "broken"
    assert "RuntimeError: subscriber bug" in letters[0].error
    assert letters[0].payload["message"]["data"] == {"n": 0}


def test_dead_letters_can_be_replayed_once_the_subscriber_is_fixed() -> None:
    bus = MessageBus()
    fixed = threading.Event()
    received: list[Message] = []

    def sometimes(message: Message) -> None:
        if not fixed.is_set():
            raise RuntimeError("down")
        received.append(message)

    bus.subscribe("a.b", sometimes, name="worker")
    bus.publish("a.b", {"k": 1}, priority=Priority.HIGH)
    assert bus.flush() and bus.dlq.size() == 1
    fixed.set()
    assert bus.replay_dead_letters() == 1
    assert received[0].data == {"k": 1} and received[0].priority is Priority.HIGH
    assert bus.dlq.size() == 0
    bus.publish("a.b", {"k": 2})
    bus.flush()
    sub_gone = MessageBus(dlq=bus.dlq)
    bus.dlq.send({"subscriber": "gone", "priority": 2, "message": received[0].to_dict()},
                 "x", 3)
    assert sub_gone.replay_dead_letters() == 0  # nobody left to take it: it stays
    assert bus.dlq.size() == 1
    bus.close()
    sub_gone.close()


def test_unsubscribe_stops_delivery() -> None:
    bus = MessageBus()
    got: list[Message] = []
    sub = bus.subscribe("a.b", got.append)
    bus.publish("a.b", {})
    bus.flush()
    sub.unsubscribe()
    sub.unsubscribe()  # twice is harmless
    bus.publish("a.b", {})
    bus.flush()
    assert len(got) == 1
    bus.close()


def test_messages_must_follow_the_platform_format() -> None:
    bus = MessageBus()
    with pytest.raises(InvalidMessage, match="type"):
        bus.publish("Not A Type", {})
    with pytest.raises(InvalidMessage, match="metadata: is required"):
        Message.from_dict({"id": "1", "type": "a.b", "timestamp": "t", "source": "s",
                           "data": {}})
    bus.close()
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish("a.b", {})
    bus.close()


def test_on_publish_hook_and_unsigned_bus() -> None:
    seen: list[str] = []
    bus = MessageBus(on_publish=lambda m: seen.append(m.type), source="agent-x")
    message = bus.publish("a.b", {"n": 1}, message_id="42")
    assert seen == ["a.b"] and message.signature is None and message.source == "agent-x"
    assert message.id == "42" and "signature" not in message.to_dict()
    bus.close()


def test_async_stream_for_sse() -> None:
    bus = MessageBus()

    async def consume() -> list[str]:
        stream = bus.stream("governance.*")
        bus.publish("governance.approval.pending", {"n": 1})
        bus.publish("other.thing", {})
        bus.publish("governance.approval.decided", {"n": 2})
        first = await stream.get(timeout=5)
        second = await stream.__anext__()
        nothing = await stream.get(timeout=0.01)
        stream.close()
        assert nothing is None and first is not None
        assert stream.__aiter__() is stream
        return [first.type, second.type]

    assert asyncio.run(consume()) == ["governance.approval.pending",
                                      "governance.approval.decided"]
    bus.close()


def test_a_full_stream_drops_instead_of_stalling_the_bus() -> None:
    bus = MessageBus()
    others: list[Message] = []

    async def consume() -> int:
        stream = bus.stream("*", maxsize=1)
        bus.subscribe("*", others.append, name="other")
        for n in range(3):
            bus.publish("a.b", {"n": n})
        bus.flush()
        await asyncio.sleep(0.05)
        size = stream._queue.qsize()
        stream.close()
        return size

    assert asyncio.run(consume()) == 1
    assert len(others) == 3
    bus.close()


# -- Redis chaos ---------------------------------------------------------------------------------


def test_forged_and_malformed_stream_entries_are_dropped(redis_client: Any,
                                                         redis_prefix: str) -> None:
    stream = redis_prefix + "events"
    bus = MessageBus(RedisStreamTransport(redis_client, stream=stream, signer=SIGNER,
                                          block_ms=100), signer=SIGNER)
    got: list[Message] = []
    bus.subscribe("*", got.append)
    forged = Message(type="governance.approval.decided", data={"evil": True}).to_dict()
    forged["signature"] = "00" * 32
    redis_client.xadd(stream, {"origin": "elsewhere", "priority": 2, "body": json.dumps(forged)})
    redis_client.xadd(stream, {"origin": "elsewhere", "body": "{not json"})
    good = SIGNER.sign_event(Message(type="a.b", data={"ok": 1}).to_dict())
    redis_client.xadd(stream, {"origin": "elsewhere", "priority": 2, "body": json.dumps(good)})
    assert wait_until(lambda: len(got) == 1)
    bus.flush()
    assert [m.data for m in got] == [{"ok": 1}]
    bus.close()


def test_redis_stopped_mid_run_keeps_local_delivery(own_redis: Any) -> None:
    import redis

    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    bus = MessageBus(RedisStreamTransport(client, signer=SIGNER, block_ms=100), signer=SIGNER)
    got: list[Message] = []
    bus.subscribe("*", got.append)
    bus.publish("a.b", {"n": 1})
    own_redis.stop()
    for n in range(2, 6):
        bus.publish("a.b", {"n": n})  # no error reaches the publisher
    assert bus.flush()
    assert [m.data["n"] for m in got] == [1, 2, 3, 4, 5]
    bus.close()
    client.close()


def test_a_bus_can_start_while_redis_is_down(own_redis: Any) -> None:
    import redis

    client = redis.Redis.from_url(own_redis.url, socket_timeout=0.2, socket_connect_timeout=0.2)
    own_redis.stop()
    bus = MessageBus(RedisStreamTransport(client, block_ms=100))
    got: list[Message] = []
    bus.subscribe("*", got.append)
    bus.publish("a.b", {})
    assert bus.flush() and len(got) == 1
    bus.close()
    client.close()


def test_a_stored_platform_message_is_published_as_is() -> None:
    bus = MessageBus(signer=SIGNER)
    got: list[Message] = []
    bus.subscribe("governance.*", got.append)
    stored = {"id": "17", "type": "governance.approval.pending", "timestamp": "t",
              "source": "governance-stub", "data": {"approval_id": "a1"},
              "metadata": {"correlation_id": "r1", "causation_id": None, "user_id": None}}
    sent = bus.publish(stored)
    bus.flush()
    assert got[0].id == "17" and got[0].correlation_id == "r1"
    assert SIGNER.verify_event(sent.to_dict())
    with pytest.raises(InvalidMessage):
        bus.publish({"type": "x"})
    bus.close()


def _stored(n: int) -> dict[str, Any]:
    return {"id": str(n), "type": "governance.approval.decided", "timestamp": "t",
            "source": "governance-stub", "data": {"approval_id": f"a{n}"},
            "metadata": {"correlation_id": "r1", "causation_id": f"k{n}", "user_id": "u1"}}


def test_from_dict_with_a_signer_signs_the_platform_form_over_any_old_signature() -> None:
    body = {**_stored(1), "signature": "stale", "extra": "dropped",
            "metadata": {**_stored(1)["metadata"], "extra": "dropped"}}
    message = Message.from_dict(body, signer=SIGNER)
    assert message.signature != "stale"
    assert message.to_dict() == {**_stored(1), "signature": message.signature}
    assert SIGNER.verify_event(message.to_dict())
    assert Message.from_dict(body).signature == "stale"  # without a signer, kept as sent


def test_contract_publish_many_delivers_each_signed_in_order(
        buses: tuple[MessageBus, MessageBus | None]) -> None:
    bus, other = buses
    got: list[Message] = []
    elsewhere: list[Message] = []
    bus.subscribe("governance.*", got.append, name="here")
    if other is not None:
        other.subscribe("governance.*", elsewhere.append, name="there")
    counted: list[str] = []
    bus.on_publish = lambda m: counted.append(m.id)
    sent = bus.publish_many([_stored(n) for n in range(1, 6)])
    assert bus.flush()
    assert [m.id for m in sent] == [m.id for m in got] == ["1", "2", "3", "4", "5"]
    assert counted == ["1", "2", "3", "4", "5"]
    assert all(SIGNER.verify_event(m.to_dict()) for m in got)
    if other is not None:  # another process gets them too, in order
        assert wait_until(lambda: len(elsewhere) == 5)
        assert [m.id for m in elsewhere] == ["1", "2", "3", "4", "5"]
    assert bus.publish_many([]) == []


def test_publish_many_publishes_nothing_when_one_message_is_malformed() -> None:
    bus = MessageBus(signer=SIGNER)
    got: list[Message] = []
    bus.subscribe("*", got.append)
    with pytest.raises(InvalidMessage, match="type"):
        bus.publish_many([_stored(1), {**_stored(2), "type": "Not A Type"}])
    assert bus.flush() and got == []
    bus.close()
    with pytest.raises(RuntimeError, match="closed"):
        bus.publish_many([_stored(3)])


def test_publish_many_keeps_local_delivery_when_the_transport_fails() -> None:
    class Down(InProcessTransport):
        def publish_many(self, messages: Any) -> None:
            raise ConnectionError("redis down")

    bus = MessageBus(Down(), signer=SIGNER)
    got: list[Message] = []
    bus.subscribe("*", got.append)
    bus.publish_many([_stored(1), _stored(2)])
    assert bus.flush() and [m.id for m in got] == ["1", "2"]
    bus.close()


def _platform_messages() -> st.SearchStrategy[dict[str, Any]]:
    """Well-formed messages, and each bent in one place (a wrong type, a missing or empty
    field, a type off the pattern)."""
    junk: st.SearchStrategy[object] = st.one_of(
        st.none(), st.integers(), st.just(""), st.just([]), st.just({}))
    good = st.fixed_dictionaries({
        "id": st.text(min_size=1, max_size=6), "timestamp": st.text(min_size=1, max_size=6),
        "source": st.text(min_size=1, max_size=6), "data": st.just({"k": 1}),
        "type": st.sampled_from(["a.b", "governance.approval.decided", "a_1.b_2.c"]),
        "metadata": st.fixed_dictionaries({}, optional={
            name: st.one_of(st.none(), st.text(max_size=4))
            for name in ("correlation_id", "causation_id", "user_id")})},
        optional={"signature": st.text(max_size=6)})
    bad_kinds = st.sampled_from(["A.b", "a", "a..b", "a.b.", " a.b", "a.b\n", "a-b.c"])
    bad_meta = st.sampled_from(["correlation_id", "causation_id", "user_id"]).flatmap(
        lambda name: junk.filter(lambda v: v is not None).map(lambda v: {name: v}))

    def bent(body: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        keys = sorted(body)
        return st.one_of(
            st.just(body),
            st.sampled_from(keys).map(lambda k: {n: v for n, v in body.items() if n != k}),
            st.tuples(st.sampled_from(keys), junk).map(lambda kv: {**body, kv[0]: kv[1]}),
            bad_kinds.map(lambda kind: {**body, "type": kind}),
            bad_meta.map(lambda meta: {**body, "metadata": meta}))

    return good.flatmap(bent)


@given(_platform_messages())
@settings(max_examples=400, deadline=None)
def test_the_fast_format_check_agrees_with_the_schema(body: dict[str, Any]) -> None:
    from backend_stub.components.messaging import _MESSAGE_VALIDATOR, _conforms

    assert _conforms(body) == (_MESSAGE_VALIDATOR.validate(body) == [])
