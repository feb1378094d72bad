"""Run the real ``governor-stub`` in a child process on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from tests.support.services import free_port


class StubProcess:
    """Start, stop (SIGTERM or kill -9) and restart the stub, keeping its port and data."""

    def __init__(self, data_dir: Path, *, demo: bool = True, port: int | None = None,
                 extra_args: Sequence[str] = (), env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.demo = demo
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._reader = threading.Thread()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> StubProcess:
        args = [sys.executable, "-m", "backend_stub.cli", "--host", "127.0.0.1",
                "--port", str(self.port)]
        if self.demo:
            args.append("--demo")
        args += self.extra_args
        env = {**os.environ, "GOVSTUB_DATA_DIR": str(self.data_dir), **self.env}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env, start_new_session=True)
        ready = threading.Event()

        def _read() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                self.output.append(line)
                if "governance stub listening on" in line:
                    ready.set()

        self._reader = threading.Thread(target=_read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("stub did not start:\n" + "".join(self.output))
        return self

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # The reader sees EOF once the child is gone; close the pipe only after it has.
        self._reader.join(5)
        if self.proc.stdout is not None and not self._reader.is_alive():
            self.proc.stdout.close()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10)


async def access_token(url: str, username: str = "governor") -> str:
    """An access token of a demo account (its password is its name) on the stub at
    ``url``, signed in as the app does."""
    from sync.auth import Authenticator
    from sync.tokens import MemoryVault

    auth = Authenticator(url, vault=MemoryVault())
    try:
        await auth.sign_in_with_password(username, username)
        return await auth.access_token()
    finally:
        await auth.aclose()


@contextlib.contextmanager
def unthrottled_stub(data_dir: Path) -> Iterator[StubProcess]:
    """A demo stub with its rate limits off (a module of tests makes many requests),
    stopped afterwards."""
    proc = StubProcess(data_dir, env={"GOVSTUB_DISABLE_RATE_LIMIT": "true"}).start()
    try:
        yield proc
    finally:
        proc.stop()
