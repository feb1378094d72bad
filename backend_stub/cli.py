"""``governor-stub``: run the governance stub (see the contract's "Starting the stub").

    governor-stub --host 127.0.0.1 --port 8000 [--db URL] [--redis URL] [--demo]
                  [--demo-activity SECONDS]
    governor-stub submit MODULE.wasm --capability GRANT --industry I --budget TOKENS
                  --monthly-cost USD [--server URL] [--username U --password P]
                  (see backend_stub.submit_cli)

Prints ``governance stub listening on http://HOST:PORT`` once it accepts requests, and
exits cleanly (committed data kept) on SIGTERM or SIGINT. ``--port 0`` picks a free port;
the line, the OAuth issuer and every absolute URL name the one picked (unless
``GOVSTUB_PUBLIC_URL`` says otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import socket
import sys
from collections.abc import Sequence
from types import FrameType
from typing import Any

import uvicorn
from pydantic import ValidationError

from backend_stub.errors import ConfigurationError
from backend_stub.settings import StubSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="governor-stub",
                                     description="Run the WAOOAW governance stub backend.")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind (default 8000; 0 picks one)")
    parser.add_argument("--db", dest="db_url",
                        help="database URL: sqlite:///PATH or postgresql+psycopg://USER@HOST/DB "
                             "(default: a SQLite file in the data directory)")
    parser.add_argument("--redis", dest="redis_url", help="redis://HOST:PORT/DB for the shared "
                        "L2 cache and event bus")
    parser.add_argument("--data-dir", help="where the SQLite file and keys live")
    parser.add_argument("--demo", action="store_true", default=None,
                        help="load the demo world and enable /v1/demo/*")
    parser.add_argument("--demo-activity", type=float, metavar="SECONDS",
                        help="with --demo: the platform acts on its own every SECONDS")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING ... (default INFO)")
    parser.add_argument("--tls-cert", help="serve HTTPS: the PEM certificate (chain) file")
    parser.add_argument("--tls-key", help="serve HTTPS: the PEM private key file")
    return parser


def settings_from(args: argparse.Namespace) -> StubSettings:
    overrides: dict[str, Any] = {k: v for k, v in vars(args).items() if v is not None}
    if overrides.get("demo_activity") and not (overrides.get("demo") or StubSettings().demo):
        raise ConfigurationError("--demo-activity needs --demo: the activity acts on the "
                                 "demo world.")
    return StubSettings(**overrides)


class _Server(uvicorn.Server):
    """Announces the contract's ready line once the socket accepts connections."""

    scheme = "http"

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            for server in getattr(self, "servers", []):
                for sock in server.sockets:
                    host, port = sock.getsockname()[:2]
                    print(f"governance stub listening on {self.scheme}://{host}:{port}",
                          flush=True)
                    return


def listen_on_any_port(host: str) -> socket.socket:
    """A socket bound to a free port on ``host``, for ``--port 0``: bound before the app is
    built, so its issuer and absolute URLs carry the port the system picked."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, 0), family=family)


def _already_handled(signum: int, frame: FrameType | None) -> None:
    """Placeholder handler: uvicorn already stopped the server for this signal."""


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["audit"]:  # governor-stub audit verify: the audit log's chain
        from backend_stub.components.audit_cli import main as audit_main

        return audit_main(argv[1:])
    if argv[:1] == ["submit"]:  # governor-stub submit MODULE.wasm: a request from a shell
        from backend_stub.submit_cli import main as submit_main

        return submit_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
    except (ValidationError, ConfigurationError) as exc:
        print(f"governor-stub: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sockets: list[socket.socket] | None = None
    if settings.port == 0:
        try:
            sockets = [listen_on_any_port(settings.host)]
        except OSError as exc:
            print(f"governor-stub: cannot listen on {settings.host!r} ({exc}); pass an "
                  "address of this machine with --host", file=sys.stderr)
            return 2
        settings = settings.model_copy(update={"port": sockets[0].getsockname()[1]})
    from backend_stub.app import create_app

    try:
        app = create_app(settings)
    except ConfigurationError as exc:
        for sock in sockets or ():
            sock.close()
        print(f"governor-stub: {exc}", file=sys.stderr)
        return 2
    # Everything built so far lives as long as the process: out of the collector's sight,
    # a full collection no longer walks it (one took ~60 ms in the middle of a request).
    gc.collect()
    gc.freeze()
    # A young collection every 700 net allocations (the default) ran ~45 times in a batch of
    # 500 decisions, each walking what the batch had built so far (~10 ms of a ~90 ms
    # batch); every 50,000 a batch runs without one. Cyclic garbage waits a little longer.
    gc.set_threshold(50_000, 10, 10)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_level=settings.log_level.lower(), access_log=False,
                            lifespan="on", timeout_graceful_shutdown=5,
                            ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key)
    server = _Server(config)
    server.scheme = settings.scheme
    # Open event streams end when the server stops, instead of holding the graceful
    # shutdown for its whole timeout (backend_stub.api.events_stream reads this).
    app.state.sse_closing = lambda: server.should_exit
    # uvicorn handles SIGTERM/SIGINT (finish in-flight requests, run shutdown) and then
    # re-raises the signal to the handler it found. A no-op one makes that a clean exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _already_handled)
    asyncio.run(server.serve(sockets=sockets))
    app.state.db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
