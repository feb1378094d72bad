"""The cuttable TCP relay: it relays bytes, a cut resets live connections and refuses new
ones, a heal relays again."""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from tests.chaos.partition import TcpRelay


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def relay() -> Iterator[TcpRelay]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    relay = TcpRelay("127.0.0.1", server.server_address[1]).start()
    try:
        yield relay
    finally:
        relay.stop()
        server.shutdown()
        server.server_close()


def _connect(relay: TcpRelay) -> socket.socket:
    return socket.create_connection(("127.0.0.1", relay.port), timeout=5)


def _echo(conn: socket.socket, data: bytes) -> bytes:
    conn.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = conn.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def test_relays_bytes_unchanged(relay: TcpRelay) -> None:
    payload = bytes(range(256)) * 1000
    with _connect(relay) as conn:
        assert _echo(conn, payload) == payload


def test_a_cut_resets_live_connections_and_refuses_new_ones(relay: TcpRelay) -> None:
    live = _connect(relay)
    assert _echo(live, b"before") == b"before"
    relay.cut()
    assert relay.is_cut and relay.cuts == 1
    with live, pytest.raises(OSError):
        # The reset may land on the send or on the read; nothing is relayed either way.
        live.sendall(b"after")
        if not live.recv(16):
            raise ConnectionResetError("closed by the cut")
    with _connect(relay) as refused, pytest.raises(OSError):
        refused.sendall(b"while cut")
        if not refused.recv(16):
            raise ConnectionResetError("closed by the cut")
    assert relay.refused >= 1


def test_heal_relays_again(relay: TcpRelay) -> None:
    relay.cut()
    relay.heal()
    assert not relay.is_cut
    with _connect(relay) as conn:
        assert _echo(conn, b"healed") == b"healed"


def test_cut_before_start_says_what_to_do() -> None:
    with pytest.raises(RuntimeError, match=r"call start\(\) before cut\(\)"):
        TcpRelay("127.0.0.1", 1).cut()
