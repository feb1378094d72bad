"""The one way a benchmark starts the real stub: a child process on a free loopback port.

Each ``bench/NAME.py`` imports it as ``bench._stub`` (the repository root is put on
``sys.path`` first, since ``python bench/NAME.py`` puts only ``bench/`` there).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_stub(data_dir: Path, **env: str) -> Iterator[str]:
    """The stub with demo data and quiet logs (plus ``env``); yields its URL, stops it after."""
    port = free_port()
    environ = {**os.environ, "GOVSTUB_DATA_DIR": str(data_dir), "GOVSTUB_LOG_LEVEL": "WARNING",
               "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend_stub.cli", "--host", "127.0.0.1", "--port", str(port),
         "--demo"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environ,
        cwd=ROOT)
    ready = threading.Event()
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "governance stub listening on" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        if not ready.wait(60):
            raise RuntimeError("the stub did not start:\n" + "".join(output[-20:]))
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[str]) -> None:
    """SIGTERM (a server finishes what it is doing), SIGKILL after 15 s."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
