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
chaos run can prove how many faults it survived. A ``delay`` shorter than the client's
timeout changes nothing the client sees: ``faults_that_matter(timeout)`` leaves those out.

The proxy also keeps what the server really answered for every decision it relayed
(``answers``: the decision id or ``Idempotency-Key`` to each answer, with its outcome and
error code), whether or not the client heard it: a rejection the client shows must be one
of these, never one it made up from a 503 the proxy injected.

HTTP/1.1 with one request per connection is assumed (clients under test send
``Connection: close`` or close after each response): the request is read whole, and so is
the response to a decision or to a ``reset`` / ``lose_ack``; anything else is streamed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Literal, Self

FaultKind = Literal["drop", "delay", "reset", "error_5xx", "lose_ack"]
FAULT_KINDS: tuple[FaultKind, ...] = ("drop", "delay", "reset", "error_5xx", "lose_ack")

_503 = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        b"content-length: 2\r\nconnection: close\r\n\r\n{}")
DECISIONS_PATH = b"/v1/mobile/decisions"


@dataclass(frozen=True)
class ServerAnswer:
    """What the server answered for one decision in one request: ``outcome`` is the item's
    (``applied``, ``replayed``, ``rejected``) or ``refused`` when the whole request was
    refused; ``code`` the item's or the envelope's error code (None when there is none)."""

    status: int
    outcome: str
    code: str | None


class LoopServer:
    """A TCP server on 127.0.0.1 (port chosen by the OS) whose asyncio loop runs in a
    thread of its own, so synchronous tests can start, steer and stop it."""

    port: int
    _loop: asyncio.AbstractEventLoop | None
    _server: asyncio.Server | None
    _thread: threading.Thread | None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        raise NotImplementedError

    async def _closing(self) -> None:
        """What to close beside the server when it stops (nothing by default)."""

    def start(self) -> Self:
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

        self._thread = threading.Thread(target=_run, daemon=True, name=type(self).__name__)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start listening in 10 s")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop = self._loop

        async def _close() -> None:
            if self._server is not None:
                self._server.close()
            await self._closing()
            loop.stop()

        asyncio.run_coroutine_threadsafe(_close(), loop)
        if self._thread is not None:
            self._thread.join(10)
        self._loop = None


class FaultProxy(LoopServer):
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
        self.answers: dict[str, list[ServerAnswer]] = {}

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

    def harmless_delays(self, client_timeout: float) -> int:
        """Delays the client waits out without noticing (shorter than its timeout)."""
        return self.injected["delay"] if self.delay_s < client_timeout else 0

    def faults_that_matter(self, client_timeout: float) -> int:
        """Injected faults the client can see: all but the delays it waits out."""
        return self.total_injected - self.harmless_delays(client_timeout)

    def _record(self, request: bytes, response: bytes) -> None:
        keys, answers = _decision_answers(request, response)
        with self._lock:
            for key in keys:
                self.answers.setdefault(key, []).append(answers.get(key, ServerAnswer(
                    _status(response), "unanswered", None)))

    def _next_fault(self) -> FaultKind | None:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
            if self._rate and self._rng.random() < self._rate:
                return self._rng.choice(self._kinds)
            return None

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
            request = await _read_request(reader)
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            try:
                up_writer.write(request)
                await up_writer.drain()
                decision = _is_decision(request)
                if fault in ("reset", "lose_ack") or decision:
                    response = await _read_response(up_reader)
                    if decision:
                        self._record(request, response)
                    if fault == "reset":
                        writer.write(response[: max(1, len(response) // 2)])
                        await writer.drain()
                        _abort(writer)
                    elif fault != "lose_ack":
                        writer.write(response)
                        await writer.drain()
                    return
                await _pipe_both(reader, writer, up_reader, up_writer)
            finally:
                up_writer.close()
        except (ConnectionError, asyncio.IncompleteReadError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


def _is_decision(request: bytes) -> bool:
    """A decision: a POST to the decisions route or any POST under an Idempotency-Key."""
    head = request.split(b"\r\n\r\n", 1)[0].lower()
    line = head.split(b"\r\n", 1)[0]
    return line.startswith(b"post ") and (
        line.split(b" ")[1].split(b"?")[0].startswith(DECISIONS_PATH)
        or b"\r\nidempotency-key:" in head)


def _status(response: bytes) -> int:
    try:
        return int(response.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def _json_body(message: bytes) -> Any:
    head, _, body = message.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = _dechunk(body)
    try:
        return json.loads(body)
    except ValueError:
        return None


def _dechunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2:]
    return out


def _decision_answers(request: bytes, response: bytes
                      ) -> tuple[list[str], dict[str, ServerAnswer]]:
    """The decision keys a request carried and the server's answer for each."""
    head = request.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    keys = [line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
            if line.lower().startswith("idempotency-key:")]
    body = _json_body(request)
    items = body.get("decisions") if isinstance(body, dict) else None
    if isinstance(items, list):
        keys += [str(i["id"]) for i in items if isinstance(i, dict) and "id" in i]
    status = _status(response)
    answer = _json_body(response)
    answers: dict[str, ServerAnswer] = {}
    data = answer.get("data") if isinstance(answer, dict) else None
    if 200 <= status < 300 and isinstance(data, list):
        for item in data:
            if isinstance(item, dict) and "id" in item:
                found = item.get("error")
                code = found.get("code") if isinstance(found, dict) else None
                answers[str(item["id"])] = ServerAnswer(status, str(item.get("outcome")), code)
        return keys, answers
    error = answer.get("error") if isinstance(answer, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    outcome = "applied" if 200 <= status < 300 else "refused"
    return keys, {key: ServerAnswer(status, outcome, code) for key in keys}


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
