"""The fault proxy itself: each fault does what the chaos tier relies on."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.chaos.proxy import FaultProxy


class _Counter(BaseHTTPRequestHandler):
    commits = 0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        type(self).commits += 1
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    _Counter.commits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = FaultProxy("127.0.0.1", server.server_address[1], delay_s=0.05).start()
    try:
        yield p
    finally:
        p.stop()
        server.shutdown()


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
