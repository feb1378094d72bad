"""The pure parts of push: SSE framing, signatures, intake (dedupe, forgery), backoff."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backend_stub.api.events_stream import EventSigner
from sync.push import (
    Backoff,
    EventIntake,
    EventKey,
    EventVerifier,
    InMemoryEventSink,
    Outcome,
    PushError,
    PushEvent,
    SseFrame,
    SseParser,
    Verdict,
    b64url,
    canonical_event_bytes,
    sign_event,
)

KEY = EventKey("k1", b"0123456789abcdef0123456789abcdef")


def message(event_id: str = "1", **data: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "governance.approval.pending",
            "timestamp": "2026-01-01T12:00:00.000Z", "source": "stub",
            "data": {"approval_id": "APR-1", **data},
            "metadata": {"correlation_id": "APR-1", "causation_id": None, "user_id": None}}


def feed_all(parser: SseParser, text: str) -> list[SseFrame]:
    frames = []
    for line in text.split("\n"):
        frame = parser.feed(line)
        if frame is not None:
            frames.append(frame)
    return frames


# --- SSE framing -------------------------------------------------------------------------

def test_parser_reads_ids_data_and_multiline_data() -> None:
    frames = feed_all(SseParser(), "id: 7\ndata: {\"a\":\ndata: 1}\n\nid: 8\ndata: x\n\n")
    assert [(f.id, f.data) for f in frames] == [("7", '{"a":\n1}'), ("8", "x")]


def test_parser_counts_comments_as_heartbeats_and_yields_nothing_for_them() -> None:
    parser = SseParser()
    assert feed_all(parser, ": heartbeat\n\n: heartbeat\n\n") == []
    assert parser.heartbeats == 2


def test_parser_keeps_the_last_id_for_frames_without_one() -> None:
    frames = feed_all(SseParser(), "id: 3\ndata: a\n\ndata: b\n\n")
    assert [f.id for f in frames] == ["3", "3"]


def test_parser_reports_retry_and_event_names_and_ignores_unknown_fields() -> None:
    frames = feed_all(SseParser(), "retry: 250\n\nevent: ping\nfoo: bar\ndata: 1\n\n")
    assert frames[0] == SseFrame(event="retry", retry_ms=250)
    assert frames[1].event == "ping" and frames[1].data == "1"


def test_parser_ignores_ids_with_nul_and_non_numeric_retry() -> None:
    frames = feed_all(SseParser(), "id: a\0b\nretry: soon\ndata: x\n\n")
    assert frames == [SseFrame(data="x")]


def test_parser_accepts_fields_without_space_after_colon() -> None:
    assert feed_all(SseParser(), "id:5\ndata:y\n\n") == [SseFrame(data="y", id="5")]


# --- signatures --------------------------------------------------------------------------

def test_a_signed_event_verifies() -> None:
    assert EventVerifier([KEY]).verify(sign_event(message(), KEY.key_id, KEY.key)) \
        is Verdict.VALID


@pytest.mark.parametrize("field", ["type", "data", "id", "key_id", "timestamp"])
def test_any_change_to_a_signed_event_breaks_the_signature(field: str) -> None:
    signed = sign_event(message(), KEY.key_id, KEY.key)
    tampered = {**signed, field: {"x": 1} if field == "data" else "other"}
    verdict = EventVerifier([KEY]).verify(tampered)
    assert verdict in (Verdict.BAD_SIGNATURE, Verdict.UNKNOWN_KEY)


def test_unsigned_unknown_key_and_garbage_signatures_are_refused() -> None:
    verifier = EventVerifier([KEY])
    assert verifier.verify(message()) is Verdict.UNSIGNED
    other = sign_event(message(), "k2", b"another key that nobody gave us!")
    assert verifier.verify(other) is Verdict.UNKNOWN_KEY
    assert verifier.verify({**sign_event(message(), "k1", KEY.key), "signature": "!!"}) \
        is Verdict.BAD_SIGNATURE
    wrong_key = sign_event(message(), "k1", b"not the key of k1 at all........")
    assert verifier.verify(wrong_key) is Verdict.BAD_SIGNATURE


def test_canonical_form_ignores_key_order_and_the_signature() -> None:
    a = {"b": 1, "a": {"y": 2, "x": "é"}, "signature": "s"}
    b = {"a": {"x": "é", "y": 2}, "b": 1}
    assert canonical_event_bytes(a) == canonical_event_bytes(b)
    assert canonical_event_bytes(b) == '{"a":{"x":"é","y":2},"b":1}'.encode()


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.integers(), st.text(max_size=8),
                                                      st.none(), st.booleans()), max_size=6))
def test_stub_and_client_agree_on_what_is_signed(data: dict[str, Any]) -> None:
    """The stub's signer and the client's verifier are separate code; they must agree."""
    signer = EventSigner(b"a stub secret of enough length")
    subject = signer.key_for("governor")
    event = signer.sign({**message(), "data": data}, "governor")
    verifier = EventVerifier([EventKey(subject.key_id, subject.key)])
    assert verifier.verify(event) is Verdict.VALID
    assert event["key_id"] == subject.key_id


def test_stub_keys_differ_per_subject_so_one_cannot_forge_for_another() -> None:
    signer = EventSigner(b"a stub secret of enough length")
    governor, auditor = signer.key_for("governor"), signer.key_for("auditor")
    assert governor.key != auditor.key and governor.key_id != auditor.key_id
    forged = sign_event(message(), governor.key_id, auditor.key)
    assert EventVerifier([EventKey(governor.key_id, governor.key)]).verify(forged) \
        is Verdict.BAD_SIGNATURE


def test_stub_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        EventSigner(b"short")


def test_event_key_from_api() -> None:
    key = EventKey.from_api({"key_id": "k", "alg": "HMAC-SHA256", "key": b64url(b"abc")})
    assert key == EventKey("k", b"abc")
    with pytest.raises(PushError, match="only verifies"):
        EventKey.from_api({"key_id": "k", "alg": "RS256", "key": "x"})
    with pytest.raises(PushError, match="malformed"):
        EventKey.from_api({"alg": "HMAC-SHA256"})


# --- event parsing ---------------------------------------------------------------------------

def test_push_event_parses_and_names_its_approval() -> None:
    event = PushEvent.parse(message("5"), cursor="5")
    assert event.id == "5" and event.cursor == "5" and event.approval_id == "APR-1"
    assert event.timestamp.tzinfo is not None
    assert event.to_notification().id == "5"


def test_push_event_falls_back_to_the_correlation_id_for_the_approval() -> None:
    raw = {**message(), "data": {}}
    assert PushEvent.parse(raw).approval_id == "APR-1"
    raw = {**message(), "type": "governance.agent.violated", "data": {}}
    assert PushEvent.parse(raw).approval_id is None
    raw = {**message(), "data": {"approval": {"id": "APR-9"}}}
    assert PushEvent.parse(raw).approval_id == "APR-9"


@pytest.mark.parametrize(("change", "error"), [
    ({"id": None}, "no id"), ({"id": ""}, "no id"), ({"type": ""}, "no type"),
    ({"timestamp": 5}, "no timestamp"), ({"data": [1]}, "not an object"),
    ({"timestamp": "yesterday"}, "Invalid isoformat"),
])
def test_push_event_parse_names_what_is_wrong(change: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        PushEvent.parse({**message(), **change})


def test_naive_timestamps_are_taken_as_utc() -> None:
    event = PushEvent.parse({**message(), "timestamp": "2026-01-01T12:00:00"})
    assert event.timestamp.utcoffset() is not None


# --- intake ----------------------------------------------------------------------------------

def intake() -> tuple[EventIntake, InMemoryEventSink]:
    sink = InMemoryEventSink()
    return EventIntake(sink, EventVerifier([KEY])), sink


def test_intake_stores_a_genuine_event_once_and_announces_it() -> None:
    take, sink = intake()
    seen: list[str] = []
    take.on_event(lambda e: seen.append(e.id))
    event = sign_event(message("1"), KEY.key_id, KEY.key)
    assert take.take(event, "1") is Outcome.ACCEPTED
    assert take.take(event, "1") is Outcome.DUPLICATE
    assert [e.id for e in sink.events] == ["1"] and seen == ["1"] and sink.cursor == "1"


def test_a_replayed_event_under_a_new_stream_id_is_dropped() -> None:
    take, sink = intake()
    event = sign_event(message("1"), KEY.key_id, KEY.key)
    take.take(event, "1")
    assert take.take(event, "99") is Outcome.DUPLICATE
    assert sink.cursor == "1"


def test_the_sink_remembers_past_the_in_memory_window() -> None:
    sink = InMemoryEventSink()
    take = EventIntake(sink, EventVerifier([KEY]), recent_ids=2)
    events = [sign_event(message(str(i)), KEY.key_id, KEY.key) for i in range(1, 5)]
    for e in events:
        take.take(e)
    assert take.take(events[0]) is Outcome.DUPLICATE
    assert len(sink.events) == 4


def test_forged_and_malformed_events_are_neither_stored_nor_announced() -> None:
    take, sink = intake()
    seen: list[str] = []
    take.on_event(lambda e: seen.append(e.id))
    forged = {**sign_event(message("1"), KEY.key_id, KEY.key), "type": "governance.x"}
    assert take.take(forged) is Outcome.FORGED
    assert take.take(message("2")) is Outcome.FORGED
    bad = sign_event({**message("3"), "timestamp": None}, KEY.key_id, KEY.key)
    assert take.take(bad) is Outcome.MALFORMED
    assert sink.events == [] and seen == [] and sink.cursor is None
    assert (take.counts.forged, take.counts.malformed) == (2, 1)


def test_a_failing_observer_does_not_lose_the_event_for_the_others() -> None:
    take, sink = intake()
    seen: list[str] = []

    def boom(_: PushEvent) -> None:
        raise RuntimeError("observer bug")

    take.on_event(boom)
    take.on_event(lambda e: seen.append(e.id))
    assert take.take(sign_event(message("1"), KEY.key_id, KEY.key)) is Outcome.ACCEPTED
    assert seen == ["1"] and len(sink.events) == 1


def test_unsubscribe_stops_announcements() -> None:
    take, _ = intake()
    seen: list[str] = []
    off = take.on_event(lambda e: seen.append(e.id))
    off()
    take.take(sign_event(message("1"), KEY.key_id, KEY.key))
    assert seen == []


def test_intake_asks_for_an_unknown_key() -> None:
    take, _ = intake()
    assert take.needs_key({"key_id": "k9"}) == "k9"
    assert take.needs_key({"key_id": "k1"}) is None
    assert take.needs_key({}) is None


# --- backoff ---------------------------------------------------------------------------------

def test_backoff_grows_to_the_cap_with_full_jitter_and_resets() -> None:
    backoff = Backoff(base=0.5, cap=4.0, rng=lambda: 1.0)
    assert [backoff.next_delay() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5
    assert Backoff(base=1.0, rng=lambda: 0.0).next_delay() == 0.0


def test_frames_serialise_as_the_stub_sends_them() -> None:
    from backend_stub.api.events_stream import _frame

    parser = SseParser()
    frames = feed_all(parser, _frame(4, message("4")).decode())
    assert frames[0].id == "4" and json.loads(frames[0].data)["id"] == "4"


# --- the stub's wake-ups ---------------------------------------------------------------------

def test_a_notification_between_read_and_wait_is_not_missed() -> None:
    import asyncio

    from backend_stub.api.events_stream import EventHub

    async def main() -> None:
        hub = EventHub()
        seen = hub.version
        hub.notify()  # arrives after the stream read the table, before it waits
        await asyncio.wait_for(hub.wait(60, seen), 5)  # returns at once
        waiter = asyncio.create_task(hub.wait(60, hub.version))
        await asyncio.sleep(0)
        hub.notify()
        await asyncio.wait_for(waiter, 5)

    asyncio.run(main())


def test_the_hub_follows_the_services_publisher_even_when_it_fails() -> None:
    from backend_stub.api.events_stream import EventHub

    class Service:
        def __init__(self) -> None:
            self.publish = self.boom

        def boom(self, message: dict[str, Any]) -> None:
            raise RuntimeError("bus down")

    svc = Service()
    hub = EventHub()
    hub.follow_publisher(svc)
    with pytest.raises(RuntimeError):
        svc.publish({"id": "1"})
    assert hub.version == 1
    plain = Service()
    plain.publish = None  # type: ignore[assignment]
    hub.follow_publisher(plain)
    plain.publish({"id": "2"})
    assert hub.version == 2


def test_the_hub_follows_the_bus_once_when_there_is_one() -> None:
    from types import SimpleNamespace

    from backend_stub.api.events_stream import EventHub

    class Bus:
        def __init__(self) -> None:
            self.handlers: list[Any] = []

        def subscribe(self, pattern: str, handler: Any, *, name: str | None = None) -> None:
            assert pattern == "governance.*"
            self.handlers.append(handler)

    hub = EventHub()
    hub.follow_bus(SimpleNamespace(state=SimpleNamespace()))  # type: ignore[arg-type]
    bus = Bus()
    app = SimpleNamespace(state=SimpleNamespace(bus=bus))
    hub.follow_bus(app)  # type: ignore[arg-type]
    hub.follow_bus(app)  # type: ignore[arg-type]
    assert len(bus.handlers) == 1
    bus.handlers[0]({"type": "governance.agent.violated"})
    assert hub.version == 1

    class Broken:
        def subscribe(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("bus down")

    other = EventHub()
    other.follow_bus(SimpleNamespace(state=SimpleNamespace(bus=Broken())))  # type: ignore[arg-type]
    assert other.version == 0


def test_the_hub_wakes_on_the_components_message_bus() -> None:
    """The real MessageBus (in-process transport): a governance message wakes the streams."""
    import time as _time
    from types import SimpleNamespace

    from backend_stub.api.events_stream import EventHub
    from backend_stub.components.messaging import MessageBus

    bus = MessageBus()
    hub = EventHub()
    hub.follow_bus(SimpleNamespace(state=SimpleNamespace(bus=bus)))  # type: ignore[arg-type]
    try:
        bus.publish("governance.agent.violated", {"agent_id": "a"})
        bus.publish("other.thing", {})
        deadline = _time.monotonic() + 10
        while hub.version < 1 and _time.monotonic() < deadline:
            _time.sleep(0.01)
        assert hub.version == 1
    finally:
        bus.close()


def test_published_events_are_served_from_the_hub_only_without_a_gap() -> None:
    from backend_stub.api.events_stream import EventHub

    hub = EventHub(recent=3)
    for n in (5, 6, 7):
        hub.notify({"id": str(n), "type": "t"})
    assert [i for i, _ in hub.recent_after(4, 10)] == [5, 6, 7]
    assert [i for i, _ in hub.recent_after(5, 1)] == [6]
    assert hub.recent_after(3, 10) == []  # 4 is not in the hub: read the table
    assert hub.recent_after(7, 10) == []
    hub.notify({"id": "9", "type": "t"})  # 8 came from elsewhere (or was rolled back)
    assert [i for i, _ in hub.recent_after(5, 10)] == [6, 7]
    assert hub.recent_after(7, 10) == []
    hub.notify()  # a wake-up without a message (the bus, a test)
    hub.notify({"id": "x"})
    assert hub.version == 6
