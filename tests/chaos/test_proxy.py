"""The fault proxy itself: each fault does what the chaos tier relies on."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.chaos.proxy import FaultProxy, ServerAnswer


class _Upstream(BaseHTTPRequestHandler):
    def answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _Counter(_Upstream):
    commits = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        type(self).commits += 1
        self.answer(200, b'{"ok": true}')


def _proxied(handler: type[_Upstream]) -> Iterator[FaultProxy]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = FaultProxy("127.0.0.1", server.server_address[1], delay_s=0.05).start()
    try:
        yield p
    finally:
        p.stop()
        server.shutdown()


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    _Counter.commits = 0
    yield from _proxied(_Counter)


def _post(p: FaultProxy) -> httpx.Response:
    return httpx.post(p.url + "/x", json={"a": 1}, timeout=5,
                      headers={"connection": "close"})


def test_relays_unchanged_without_faults(proxy: FaultProxy) -> None:
    assert _post(proxy).json() == {"ok": True}
    assert _Counter.commits == 1 and proxy.total_injected == 0


def test_drop_never_reaches_the_server(proxy: FaultProxy) -> None:
    proxy.inject("drop")
    with pytest.raises(httpx.TransportError):
        _post(proxy)
    assert _Counter.commits == 0 and proxy.injected["drop"] == 1


def test_error_5xx_answers_without_the_server(proxy: FaultProxy) -> None:
    proxy.inject("error_5xx", 2)
    assert _post(proxy).status_code == 503
    assert _post(proxy).status_code == 503
    assert _Counter.commits == 0


def test_lose_ack_commits_but_client_hears_nothing(proxy: FaultProxy) -> None:
    proxy.inject("lose_ack")
    with pytest.raises(httpx.TransportError):
        _post(proxy)
    assert _Counter.commits == 1


def test_reset_mid_response(proxy: FaultProxy) -> None:
    proxy.inject("reset")
    with pytest.raises(httpx.TransportError):
        _post(proxy)
    assert _Counter.commits == 1


def test_delay_still_delivers(proxy: FaultProxy) -> None:
    proxy.inject("delay")
    assert _post(proxy).status_code == 200
    assert proxy.injected["delay"] == 1


def test_random_faults_are_counted_and_heal(proxy: FaultProxy) -> None:
    proxy.random_faults(1.0, kinds=("error_5xx",), seed=1)
    assert _post(proxy).status_code == 503
    proxy.heal()
    assert _post(proxy).status_code == 200
    assert proxy.total_injected == 1


class _Decisions(_Upstream):
    """Answers a decisions batch: the first item applied, the rest rejected."""

    def do_POST(self) -> None:
        items = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        body: dict[str, Any]
        if self.path != "/v1/mobile/decisions":
            status, body = 409, {"error": {"code": "IDEMPOTENCY_KEY_REUSED"}}
        else:
            status, body = 200, {"data": [
                {"id": d["id"], "outcome": "applied"} if i == 0 else
                {"id": d["id"], "outcome": "rejected", "error": {"code": "ALREADY_DECIDED"}}
                for i, d in enumerate(items["decisions"])]}
        self.answer(status, json.dumps(body).encode())


@pytest.fixture
def decisions_proxy() -> Iterator[FaultProxy]:
    yield from _proxied(_Decisions)


def _decide(p: FaultProxy, *ids: str) -> httpx.Response:
    return httpx.post(p.url + "/v1/mobile/decisions", timeout=5,
                      json={"decisions": [{"id": i} for i in ids]},
                      headers={"connection": "close"})


def test_answers_keep_what_the_server_said_per_decision(decisions_proxy: FaultProxy) -> None:
    assert _decide(decisions_proxy, "k1", "k2").status_code == 200
    assert decisions_proxy.answers == {"k1": [ServerAnswer(200, "applied", None)],
                                       "k2": [ServerAnswer(200, "rejected", "ALREADY_DECIDED")]}


def test_answers_keep_what_the_client_never_heard_but_not_the_proxys_503(
        decisions_proxy: FaultProxy) -> None:
    decisions_proxy.inject("lose_ack")
    decisions_proxy.inject("error_5xx")
    decisions_proxy.inject("reset")
    for _ in range(3):
        with contextlib.suppress(httpx.TransportError):
            _decide(decisions_proxy, "k1")
    # Two answers from the server (one lost, one cut short); the 503 was the proxy's own.
    assert decisions_proxy.answers == {"k1": [ServerAnswer(200, "applied", None)] * 2}


def test_answers_keep_a_refusal_under_an_idempotency_key(decisions_proxy: FaultProxy) -> None:
    response = httpx.post(decisions_proxy.url + "/v1/mobile/seeds", json={"title": "x"},
                          headers={"Idempotency-Key": "s1", "connection": "close"}, timeout=5)
    assert response.status_code == 409
    assert decisions_proxy.answers == {
        "s1": [ServerAnswer(409, "refused", "IDEMPOTENCY_KEY_REUSED")]}


def test_delays_shorter_than_the_clients_timeout_do_not_matter(proxy: FaultProxy) -> None:
    proxy.inject("delay")
    proxy.inject("drop")
    for _ in range(2):
        with contextlib.suppress(httpx.TransportError):
            _post(proxy)
    assert proxy.total_injected == 2
    assert proxy.faults_that_matter(client_timeout=5.0) == 1
    assert proxy.harmless_delays(client_timeout=5.0) == 1
    assert proxy.faults_that_matter(client_timeout=0.01) == 2
