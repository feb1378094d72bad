"""The client in a child process, for kill -9 runs: it resumes the session kept on disk and
drains the outbox in ``DATA`` through the proxy at ``URL``, signing in again when the
server ended the session (as the governor would). The parent kills it at random points.

    python -m tests.chaos.client_worker URL DATA

Prints ``uploading`` once it is about to send and ``drained`` when nothing is left.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from sync.engine import SyncEngine
from sync.errors import SyncError
from tests.chaos.harness import authenticator, client_settings, http_transport

MAX_ROUNDS = 2000  # a bound, so a client that never drains fails instead of hanging


async def main(url: str, data: Path, batch_size: int) -> int:
    auth = authenticator(url, data)
    engine = SyncEngine(client_settings(url, data, batch_size), authenticator=auth,
                        transport=http_transport())
    print("uploading", flush=True)
    try:
        for _ in range(MAX_ROUNDS):
            if auth.account() is None or engine.status().needs_sign_in:
                try:
                    await engine.sign_in_with_password("governor", "governor")
                    print("signed in again", flush=True)
                except SyncError:
                    continue
            await engine.upload()
            status = engine.status()
            if not status.pending_count and not status.held_count:
                # Learn what changed (new requests to decide on), then report.
                await engine.download()
                print("drained", flush=True)
                return 0
        print(f"not drained after {MAX_ROUNDS} rounds: {engine.status()}", flush=True)
        return 1
    finally:
        await engine.stop()
        await auth.aclose()


if __name__ == "__main__":
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    sys.exit(asyncio.run(main(sys.argv[1], Path(sys.argv[2]), batch)))
