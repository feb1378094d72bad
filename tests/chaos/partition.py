"""A TCP relay that can be cut and healed: one replica's road to PostgreSQL.

Unlike ``FaultProxy`` (HTTP, one request per connection), this relays any protocol byte
for byte. ``cut()`` resets every live connection and refuses new ones (accepted and reset
at once), as a network partition seen by the side that notices it; ``heal()`` relays again.

    relay = TcpRelay("127.0.0.1", 5432).start()
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:{relay.port}/name"
    relay.cut(); ...; relay.heal()
"""

from __future__ import annotations

import asyncio
import contextlib

from tests.chaos.proxy import LoopServer, _abort, _pipe


class TcpRelay(LoopServer):
    """Relays 127.0.0.1:``port`` to ``upstream``; ``cut()`` partitions, ``heal()`` mends."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.cuts = 0
        self.refused = 0  # connections reset while cut
        self._cut = False
        self._live: set[asyncio.StreamWriter] = set()
        self._loop = None
        self._server = None
        self._thread = None

    @property
    def is_cut(self) -> bool:
        return self._cut

    def _call(self, action: str) -> None:
        if self._loop is None:
            raise RuntimeError(f"the TCP relay to {self.upstream} is not running; call "
                               f"start() before {action}()")

        async def _apply() -> None:
            if action == "cut":
                self._cut = True
                self.cuts += 1
                for writer in list(self._live):
                    _abort(writer)
                self._live.clear()
            else:
                self._cut = False

        asyncio.run_coroutine_threadsafe(_apply(), self._loop).result(10)

    def cut(self) -> None:
        """Reset every connection through the relay and refuse new ones until ``heal()``."""
        self._call("cut")

    def heal(self) -> None:
        self._call("heal")

    async def _closing(self) -> None:
        for writer in list(self._live):
            _abort(writer)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.refused += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer)
            return
        self._live.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer),
                                 return_exceptions=True)
        finally:
            self._live.discard(writer)
            self._live.discard(up_writer)
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

