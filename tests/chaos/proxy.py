"""A fault-injecting TCP proxy on 127.0.0.1, between the client and the stub.

It relays bytes unchanged, except when told to inject a fault into the next connections:

- ``drop``: accept and close at once (the request never reaches the server);
- ``delay``: hold the request ``delay_s`` seconds before relaying it;
- ``reset``: relay the request, then send the client half the response and reset;
- ``error_5xx``: answer ``503`` itself, without contacting the server;
- ``lose_ack``: relay the request and read the whole response, then close the client's
  connection without a byte: the server committed, the client never heard.

Faults are queued (``inject(kind, count)``) or drawn at random per connection
(``random_faults(rate, kinds, seed)``) and every injection is counted in ``injected``, so a
chaos run can prove how many faults it survived. HTTP/1.1 with one request per connection
is assumed for ``reset`` and ``lose_ack`` (clients under test send ``Connection: close``
or the proxy forces it by closing after each response).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter, deque
from typing import Literal

FaultKind = Literal["drop", "delay", "reset", "error_5xx", "lose_ack"]
FAULT_KINDS: tuple[FaultKind, ...] = ("drop", "delay", "reset", "error_5xx", "lose_ack")

_503 = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"content-length: 2\r\nconnection: close\r\n\r\n{}")


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int, *, delay_s: float = 0.5) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay_s = delay_s
        self.injected: Counter[str] = Counter()
        self.connections = 0
        self._queue: deque[FaultKind] = deque()
        self._rate = 0.0
        self._kinds: tuple[FaultKind, ...] = FAULT_KINDS
        self._rng = random.Random(0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.port = 0

    # --- control ------------------------------------------------------------------------
    def inject(self, kind: FaultKind, count: int = 1) -> None:
        with self._lock:
            self._queue.extend([kind] * count)

    def random_faults(self, rate: float, kinds: tuple[FaultKind, ...] = FAULT_KINDS,
                      seed: int = 0) -> None:
        with self._lock:
            self._rate, self._kinds, self._rng = rate, kinds, random.Random(seed)

    def heal(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rate = 0.0

    @property
    def total_injected(self) -> int:
        return sum(self.injected.values())

    def _next_fault(self) -> FaultKind | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._rate and self._rng.random() < self._rate:
                return self._rng.choice(self._kinds)
            return None

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> FaultProxy:
        ready = threading.Event()

        def _run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._handle, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=_run, daemon=True, name="fault-proxy")
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            loop.stop()

        asyncio.run_coroutine_threadsafe(_close(), loop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- relaying ------------------------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        fault = self._next_fault()
        try:
            if fault is not None:
                self.injected[fault] += 1
            if fault == "drop":
                return
            if fault == "error_5xx":
                await _read_request(reader)
                writer.write(_503)
                await writer.drain()
                return
            if fault == "delay":
                await asyncio.sleep(self.delay_s)
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            try:
                if fault in ("reset", "lose_ack"):
                    request = await _read_request(reader)
                    up_writer.write(request)
                    await up_writer.drain()
                    response = await _read_response(up_reader)
                    if fault == "reset":
                        writer.write(response[: max(1, len(response) // 2)])
                        await writer.drain()
                        _abort(writer)
                    return
                await _pipe_both(reader, writer, up_reader, up_writer)
            finally:
                up_writer.close()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if transport is not None:
        transport.abort()


async def _read_headers(reader: asyncio.StreamReader) -> tuple[bytes, int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
        if name.strip().lower() == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return head, length, chunked


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head, length, _ = await _read_headers(reader)
    body = await reader.readexactly(length) if length else b""
    return head + body


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head, length, chunked = await _read_headers(reader)
    if chunked:
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.strip().split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                return head + body
    body = await reader.readexactly(length) if length else b""
    return head + body


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
    finally:
        with contextlib.suppress(Exception):
            dst.write_eof()


async def _pipe_both(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     up_reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter) -> None:
    await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer),
                         return_exceptions=True)
