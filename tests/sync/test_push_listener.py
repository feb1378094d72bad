"""The listener over HTTP: a real SSE server on 127.0.0.1 (the stub's router over an
in-memory log) for streaming, gap, resume and restarts; httpx.MockTransport for the
error answers a real server rarely gives."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from sync.errors import SignInRequired
from sync.push import (
    EVENT_KEY_PATH,
    Backoff,
    EventKey,
    InMemoryEventSink,
    PushListener,
    b64url,
    sign_event,
)
from tests.sync.push_fixtures import PushServer, wait_until


@pytest.fixture
def server() -> Iterator[PushServer]:
    srv = PushServer().start()
    try:
        yield srv
    finally:
        srv.stop()


async def token() -> str:
    return "governor"


def make_listener(url: str, sink: InMemoryEventSink | None = None,
                  **kwargs: Any) -> tuple[PushListener, httpx.AsyncClient, InMemoryEventSink]:
    client = httpx.AsyncClient(base_url=url)
    sink = sink or InMemoryEventSink()

    async def no_wait(_: float) -> None:
        await asyncio.sleep(0.01)

    kwargs.setdefault("sleep", no_wait)
    kwargs.setdefault("backoff", Backoff(base=0.01, cap=0.05))
    return PushListener(client, token, sink, **kwargs), client, sink


def ns(sink: InMemoryEventSink) -> list[int]:
    return [int(e.data["n"]) for e in sink.events]


async def running(listener: PushListener,
                  body: Callable[[], Awaitable[None]]) -> None:
    task = asyncio.create_task(listener.run())
    try:
        await body()
    finally:
        listener.stop()
        await asyncio.wait_for(task, 10)


def test_live_events_are_verified_stored_in_order_and_announced(server: PushServer) -> None:
    async def main() -> None:
        listener, client, sink = make_listener(server.url)
        announced: list[str] = []
        listener.on_event(lambda e: announced.append(e.id))

        async def body() -> None:
            await wait_until(lambda: listener.status.connected, what="connection")
            for n in range(1, 6):
                server.emit(n)
            await wait_until(lambda: len(sink.events) == 5, what="5 events")

        await running(listener, body)
        await client.aclose()
        assert ns(sink) == [1, 2, 3, 4, 5]
        assert announced == ["1", "2", "3", "4", "5"]
        assert sink.cursor == "5" and listener.status.key_id is not None
        assert listener.intake.counts.forged == 0

    asyncio.run(main())


def test_the_gap_is_filled_page_by_page_before_the_stream(server: PushServer) -> None:
    async def main() -> None:
        for n in range(1, 26):
            server.emit(n)
        sink = InMemoryEventSink()
        sink.cursor = "3"  # this device stored 1..3 before going offline
        listener, client, _ = make_listener(server.url, sink, page_limit=7)

        async def body() -> None:
            await wait_until(lambda: listener.status.connected, what="connection")
            server.emit(26)
            await wait_until(lambda: len(sink.events) == 23, what="the gap and one live")

        await running(listener, body)
        await client.aclose()
        assert ns(sink) == list(range(4, 27))

    asyncio.run(main())


def test_dropping_and_restarting_the_server_loses_nothing_and_duplicates_nothing(
        server: PushServer) -> None:
    async def main() -> None:
        listener, client, sink = make_listener(server.url)

        async def body() -> None:
            await wait_until(lambda: listener.status.connected, what="connection")
            for n in range(1, 11):
                server.emit(n)
            await wait_until(lambda: len(sink.events) == 10, what="first 10")
            server.stop()  # the connection drops
            await wait_until(lambda: not listener.status.connected, what="the drop")
            for n in range(11, 31):  # emitted while the client cannot hear
                server.emit(n)
            server.start()  # same port, same log
            await wait_until(lambda: len(sink.events) >= 30, what="resume")
            for n in range(31, 41):
                server.emit(n)
            await wait_until(lambda: len(sink.events) >= 40, what="live after resume")

        await running(listener, body)
        await client.aclose()
        assert ns(sink) == list(range(1, 41))
        assert listener.status.connects >= 2 and listener.status.failures >= 1

    asyncio.run(main())


def test_a_new_client_starts_from_the_beginning_of_the_gap(server: PushServer) -> None:
    async def main() -> None:
        server.emit(1)
        server.emit(2)
        listener, client, sink = make_listener(server.url)

        async def body() -> None:
            await wait_until(lambda: len(sink.events) == 2, what="history")

        await running(listener, body)
        await client.aclose()
        assert ns(sink) == [1, 2]

    asyncio.run(main())


def test_a_first_connection_stores_the_history_without_announcing_it(
        server: PushServer) -> None:
    """No cursor yet (a device signing in for the first time, its first sync racing the
    stream): the old events are history, stored for the notification centre, not news for
    banners; what arrives on the stream afterwards is announced."""
    async def main() -> None:
        for n in range(1, 4):
            server.emit(n)
        listener, client, sink = make_listener(server.url)
        announced: list[str] = []
        listener.on_event(lambda e: announced.append(e.id))

        async def body() -> None:
            await wait_until(lambda: listener.status.connected, what="connection")
            server.emit(4)
            await wait_until(lambda: len(sink.events) == 4, what="history and one live")

        await running(listener, body)
        await client.aclose()
        assert ns(sink) == [1, 2, 3, 4]
        assert announced == ["4"]

    asyncio.run(main())


def test_events_missed_while_the_device_had_a_cursor_are_announced(
        server: PushServer) -> None:
    async def main() -> None:
        for n in range(1, 6):
            server.emit(n)
        sink = InMemoryEventSink()
        sink.cursor = "3"  # stored 1..3, then offline while 4 and 5 happened
        listener, client, _ = make_listener(server.url, sink)
        announced: list[str] = []
        listener.on_event(lambda e: announced.append(e.id))

        async def body() -> None:
            await wait_until(lambda: len(sink.events) == 2, what="the gap")

        await running(listener, body)
        await client.aclose()
        assert announced == ["4", "5"]

    asyncio.run(main())


def test_a_silent_stream_is_taken_as_dead_and_reopened() -> None:
    srv = PushServer(heartbeat=30.0, poll=0.05).start()  # no heartbeat within the timeout

    async def main() -> None:
        listener, client, sink = make_listener(srv.url, heartbeat_timeout=0.3)
        errors: list[str | None] = []
        listener.on_status(lambda s: errors.append(s.last_error))

        async def body() -> None:
            await wait_until(lambda: listener.status.failures >= 1, what="the watchdog")
            # The stream opened again before the event: emitted earlier, it can come by
            # the reconnect's gap fill instead, with no second stream (seen under load).
            await wait_until(lambda: srv.connections >= 2, what="a second stream")
            srv.emit(1)
            await wait_until(lambda: len(sink.events) == 1, what="event after reconnect")

        await running(listener, body)
        await client.aclose()
        assert any("silent" in (e or "") for e in errors)
        assert srv.connections >= 2

    try:
        asyncio.run(main())
    finally:
        srv.stop()


def test_heartbeats_keep_a_quiet_stream_alive() -> None:
    srv = PushServer(heartbeat=0.05, poll=0.02).start()

    async def main() -> None:
        listener, client, _ = make_listener(srv.url, heartbeat_timeout=2.0)
        heard: set[Any] = set()

        async def body() -> None:
            await wait_until(lambda: listener.status.connected, what="connection")

            def beats() -> bool:
                heard.add(listener.status.last_heard_at)
                return len(heard) >= 20

            # Twenty heartbeats heard on one connection, no event in between.
            await wait_until(beats, 30, "twenty heartbeats")

        await running(listener, body)
        await client.aclose()
        assert listener.status.failures == 0 and srv.connections == 1

    try:
        asyncio.run(main())
    finally:
        srv.stop()


# --- answers a real server rarely gives: MockTransport --------------------------------------

KEY = EventKey("k1", b"0123456789abcdef0123456789abcdef")


def key_body() -> dict[str, Any]:
    return {"data": {"key_id": KEY.key_id, "alg": "HMAC-SHA256", "key": b64url(KEY.key)},
            "meta": {}}


def signed(n: int, key: EventKey = KEY) -> dict[str, Any]:
    return sign_event({"id": str(n), "type": "governance.approval.pending",
                       "timestamp": "2026-01-01T00:00:00Z", "source": "t",
                       "data": {"approval_id": f"APR-{n}", "n": n}, "metadata": {}},
                      key.key_id, key.key)


def sse(*events: tuple[str, dict[str, Any] | str]) -> bytes:
    out = ""
    for event_id, body in events:
        data = body if isinstance(body, str) else json.dumps(body)
        out += f"id: {event_id}\ndata: {data}\n\n"
    return out.encode()


Handler = Callable[[httpx.Request], httpx.Response]


def mock_listener(handler: Handler, **kwargs: Any
                  ) -> tuple[PushListener, InMemoryEventSink, list[float]]:
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)
        await asyncio.sleep(0)

    client = httpx.AsyncClient(base_url="http://stub.test",
                               transport=httpx.MockTransport(handler))
    sink = InMemoryEventSink()
    kwargs.setdefault("backoff", Backoff(base=1.0, cap=8.0, rng=lambda: 1.0))
    return PushListener(client, token, sink, sleep=fake_sleep, **kwargs), sink, delays


def routes(stream: Callable[[int], bytes], notifications: list[dict[str, Any]] | None = None
           ) -> tuple[Handler, list[str]]:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == EVENT_KEY_PATH:
            return httpx.Response(200, json=key_body())
        if request.url.path.endswith("/notifications"):
            after = request.url.params.get("after")
            items = [] if after else (notifications or [])
            return httpx.Response(200, json={"data": items, "meta": {"next_cursor": None}})
        attempt = calls.count(request.url.path)
        return httpx.Response(200, content=stream(attempt),
                              headers={"content-type": "text/event-stream"})
    return handler, calls


def run_until(listener: PushListener, done: Callable[[], bool]) -> None:
    async def main() -> None:
        task = asyncio.create_task(listener.run())
        try:
            await wait_until(done, what="listener progress")
        finally:
            listener.stop()
            await asyncio.wait_for(task, 5)
    asyncio.run(main())


def test_forged_and_replayed_events_on_the_stream_are_rejected() -> None:
    other = EventKey("k1", b"an attacker's guess at the key....")
    forged = signed(2, other)
    tampered = {**signed(3), "type": "governance.agent.violated"}
    replay = signed(1)

    def stream(attempt: int) -> bytes:
        if attempt > 1:
            return b""
        return sse(("1", signed(1)), ("2", forged), ("3", tampered), ("4", replay),
                   ("5", "not json"), ("6", signed(6)))

    handler, _ = routes(stream)
    listener, sink, _ = mock_listener(handler)
    run_until(listener, lambda: len(sink.events) == 2)
    assert [e.id for e in sink.events] == ["1", "6"]
    counts = listener.intake.counts
    assert (counts.forged, counts.duplicate, counts.malformed) == (2, 1, 1)
    assert sink.cursor == "6"


def test_events_in_the_gap_are_verified_too() -> None:
    handler, _ = routes(lambda _: b"", notifications=[signed(1), signed(2, EventKey(
        "k1", b"forged forged forged forged....")), signed(3)])
    listener, sink, _ = mock_listener(handler)
    run_until(listener, lambda: len(sink.events) == 2)
    assert [e.id for e in sink.events] == ["1", "3"]


def test_an_unknown_key_id_makes_the_listener_fetch_the_key_again() -> None:
    rotated = EventKey("k2", b"the rotated key, fetched later...")
    served = [KEY]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == EVENT_KEY_PATH:
            key = served[-1]
            return httpx.Response(200, json={"data": {"key_id": key.key_id,
                                                      "key": b64url(key.key)}})
        if request.url.path.endswith("/notifications"):
            return httpx.Response(200, json={"data": [], "meta": {}})
        served.append(rotated)
        return httpx.Response(200, content=sse(("1", signed(1, rotated))))

    listener, sink, _ = mock_listener(handler)
    run_until(listener, lambda: len(sink.events) == 1)
    assert listener.verifier.knows("k1") and listener.verifier.knows("k2")


def test_server_errors_are_retried_with_growing_backoff() -> None:
    failures = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == EVENT_KEY_PATH:
            failures["n"] += 1
            if failures["n"] <= 3:
                return httpx.Response(503, json={"error": {"code": "INTERNAL",
                                                           "message": "down"}})
            return httpx.Response(200, json=key_body())
        if request.url.path.endswith("/notifications"):
            return httpx.Response(200, json={"data": [signed(1)], "meta": {}})
        return httpx.Response(200, content=b"")

    listener, sink, delays = mock_listener(handler)
    run_until(listener, lambda: len(sink.events) == 1)
    assert delays[:3] == [1.0, 2.0, 4.0]
    assert listener.status.failures >= 3


def test_network_errors_are_retried() -> None:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == EVENT_KEY_PATH:
            return httpx.Response(200, json=key_body())
        if request.url.path.endswith("/notifications"):
            return httpx.Response(200, json={"data": [signed(1)], "meta": {}})
        raise httpx.ReadError("reset", request=request)

    listener, sink, _ = mock_listener(handler)
    run_until(listener, lambda: len(sink.events) == 1)
    assert "failed" in (listener.status.last_error or "") or listener.status.failures >= 2


def test_a_token_refused_twice_stops_the_listener_with_sign_in_required() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "INVALID_TOKEN", "message": "no"}})

    listener, _, delays = mock_listener(handler)

    async def main() -> None:
        await asyncio.wait_for(listener.run(), 5)

    with pytest.raises(SignInRequired):
        asyncio.run(main())
    assert len(delays) == 1  # retried once, in case the token had just expired
    assert "sign in" in (listener.status.last_error or "")


def test_a_token_provider_without_a_session_stops_the_listener_at_once() -> None:
    async def no_session() -> str:
        raise SignInRequired("No session is kept on this device; sign in.")

    client = httpx.AsyncClient(base_url="http://stub.test",
                               transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    listener = PushListener(client, no_session, InMemoryEventSink())
    with pytest.raises(SignInRequired):
        asyncio.run(listener.run())


@pytest.mark.parametrize(("path", "response", "error"), [
    (EVENT_KEY_PATH, httpx.Response(200, content=b"<html>"), "not JSON"),
    (EVENT_KEY_PATH, httpx.Response(200, json=[1]), "not an envelope"),
    (EVENT_KEY_PATH, httpx.Response(200, json={"data": {"alg": "x"}}), "RS256|update the app"),
    ("/v1/mobile/notifications", httpx.Response(200, json={"data": {"a": 1}}), "non-list"),
    ("/v1/mobile/notifications", httpx.Response(403, json={"error": {
        "code": "INSUFFICIENT_SCOPE", "message": "needs governance:read"}}), "INSUFFICIENT_SCOPE"),
    ("/v1/mobile/events", httpx.Response(404, text="nope"), "HTTP_ERROR"),
])
def test_bad_answers_are_reported_in_the_status_and_retried(
        path: str, response: httpx.Response, error: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            return response
        if request.url.path == EVENT_KEY_PATH:
            return httpx.Response(200, json=key_body())
        if request.url.path.endswith("/notifications"):
            return httpx.Response(200, json={"data": [], "meta": {}})
        return httpx.Response(200, content=b"")

    listener, _, _ = mock_listener(handler)
    statuses: list[str | None] = []
    listener.on_status(lambda s: statuses.append(s.last_error))
    run_until(listener, lambda: listener.status.failures >= 2)
    assert any(s and (error.split("|")[0] in s or error.split("|")[-1] in s)
               for s in statuses), statuses


def test_a_stream_the_server_closes_is_reopened_from_the_cursor() -> None:
    seen_last_ids: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == EVENT_KEY_PATH:
            return httpx.Response(200, json=key_body())
        if request.url.path.endswith("/notifications"):
            return httpx.Response(200, json={"data": [], "meta": {}})
        seen_last_ids.append(request.headers.get("last-event-id"))
        n = len(seen_last_ids)
        return httpx.Response(200, content=sse((str(n), signed(n))))

    listener, sink, _ = mock_listener(handler)
    run_until(listener, lambda: len(sink.events) >= 3)
    assert seen_last_ids[:3] == [None, "1", "2"]


def test_retry_field_sets_the_backoff_base() -> None:
    handler, _ = routes(lambda _: b"retry: 200\n\n" + sse(("1", signed(1))))
    listener, sink, _ = mock_listener(handler)
    run_until(listener, lambda: len(sink.events) == 1)
    assert listener.backoff.base == 0.2


def test_a_refused_token_is_refreshed_before_the_retry() -> None:
    tokens = {"current": "stale"}
    refreshed: list[str] = []

    async def current() -> str:
        return tokens["current"]

    async def refresh(rejected: str) -> str:
        refreshed.append(rejected)
        tokens["current"] = "fresh"
        return "fresh"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.headers["authorization"] != "Bearer fresh":
            return httpx.Response(401, json={"error": {"code": "INVALID_TOKEN",
                                                       "message": "revoked"}})
        if request.url.path == EVENT_KEY_PATH:
            return httpx.Response(200, json=key_body())
        if request.url.path.endswith("/notifications"):
            return httpx.Response(200, json={"data": [signed(1)], "meta": {}})
        return httpx.Response(200, content=b"")

    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    client = httpx.AsyncClient(base_url="http://stub.test",
                               transport=httpx.MockTransport(handler))
    sink = InMemoryEventSink()
    listener = PushListener(client, current, sink, refresh=refresh, sleep=no_wait)
    run_until(listener, lambda: len(sink.events) == 1)
    assert refreshed == ["stale"]


def test_a_refresh_that_needs_sign_in_stops_the_listener() -> None:
    async def refresh(rejected: str) -> str:
        raise SignInRequired("The refresh token was revoked; sign in again.")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"code": "INVALID_TOKEN", "message": "no"}})

    client = httpx.AsyncClient(base_url="http://stub.test",
                               transport=httpx.MockTransport(handler))
    listener = PushListener(client, token, InMemoryEventSink(), refresh=refresh)
    with pytest.raises(SignInRequired):
        asyncio.run(listener.run())


def test_cancelling_the_listener_closes_its_connection(server: PushServer) -> None:
    async def main() -> None:
        listener, client, _ = make_listener(server.url)
        task = asyncio.create_task(listener.run())
        await wait_until(lambda: listener.status.connected, what="connection")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The stream task went with it: nothing is left running but this one.
        await asyncio.sleep(0.05)
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []
        await client.aclose()

    asyncio.run(main())


def test_made_up_key_ids_do_not_flood_the_key_endpoint() -> None:
    key_calls: list[int] = []
    made_up = [signed(n, EventKey(f"fake-{n}", b"attacker key .................."))
               for n in range(1, 21)]

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == EVENT_KEY_PATH:
            key_calls.append(1)
            return httpx.Response(200, json=key_body())
        if request.url.path.endswith("/notifications"):
            return httpx.Response(200, json={"data": made_up, "meta": {}})
        return httpx.Response(200, content=b"")

    listener, _, _ = mock_listener(handler)
    run_until(listener, lambda: listener.intake.counts.forged >= 20)
    assert len(key_calls) <= 2  # the first key, and at most one refetch a minute


def test_a_heartbeat_that_carries_the_server_time_tells_it() -> None:
    from datetime import UTC, datetime

    stamps: list[datetime] = []
    handler, _ = routes(lambda _: b": heartbeat 2026-01-01T13:00:00.000Z\n\n"
                        b": heartbeat\n\n: heartbeat not-a-time\n\n" + sse(("1", signed(1))))
    listener, sink, _ = mock_listener(handler, server_time=stamps.append)
    run_until(listener, lambda: len(sink.events) == 1 and bool(stamps))
    # A bare or unreadable heartbeat still keeps the stream alive, and tells nothing.
    assert set(stamps) == {datetime(2026, 1, 1, 13, tzinfo=UTC)}


def test_wake_reconnects_at_once_instead_of_after_the_backoff() -> None:
    handler, calls = routes(lambda _: sse(("1", signed(1))))

    async def never(_: float) -> None:
        await asyncio.Event().wait()

    client = httpx.AsyncClient(base_url="http://stub.test",
                               transport=httpx.MockTransport(handler))
    sink = InMemoryEventSink()
    listener = PushListener(client, token, sink, sleep=never)

    async def main() -> None:
        task = asyncio.create_task(listener.run())
        try:
            await wait_until(lambda: calls.count("/v1/mobile/events") == 1
                             and not listener.status.connected, what="the first stream")
            listener.wake()
            await wait_until(lambda: calls.count("/v1/mobile/events") == 2,
                             what="a reconnect without waiting")
        finally:
            listener.stop()
            await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert len(sink.events) == 1  # the same event again is not stored twice
