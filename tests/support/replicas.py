"""The replicated topology: N ``governor-stub`` replicas on one PostgreSQL and one Redis,
behind HAProxy configured from ``deploy/haproxy.cfg`` (the file a deployment uses).

    with ReplicatedStub(tmp_path, db_url=postgres_url, redis_url=redis_url) as topology:
        topology.url                  # the balancer: what clients use (the public URL)
        topology.replicas[0].url      # one replica, directly
        topology.kill(0)              # kill -9 replica 0; returns once HAProxy sees it down
        topology.restart(0)           # start it again on its port; returns once it is up
        topology.server_status()      # {"stub1": "UP", "stub2": "DOWN", ...}

Every replica has its own port and data directory and the same database, Redis, secret
and public URL. Replicas start together (``start(together=True)``), as a deployment's do.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import httpx
import pytest

from tests.support.services import free_port, in_ci
from tests.support.stub_process import StubProcess

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"


def require_haproxy() -> None:
    """Skip (fail in CI) when Debian's haproxy is not installed."""
    if os.access(HAPROXY, os.X_OK):
        return
    message = "haproxy is not installed (apt-get install haproxy)"
    if in_ci():
        pytest.fail(f"{message}; CI requires it (.ci/run installs it)")
    pytest.skip(message)


def render_config(bind: str, stats: str, replicas: Sequence[str]) -> str:
    """``deploy/haproxy.cfg`` rendered by ``deploy/render_haproxy.py``, run as a user would."""
    done = subprocess.run([sys.executable, str(DEPLOY / "render_haproxy.py"), "--bind", bind,
                           "--stats", stats, *replicas], capture_output=True, text=True,
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"render_haproxy.py failed: {done.stderr.strip()}")
    return done.stdout


class Balancer:
    """HAProxy in the foreground (``-db``) on loopback, with its stats page."""

    def __init__(self, work: Path, replicas: Sequence[str], *, port: int | None = None
                 ) -> None:
        self.port = port or free_port()
        self.stats_port = free_port()
        self.config = work / "haproxy.cfg"
        self.config.write_text(render_config(f"127.0.0.1:{self.port}",
                                             f"127.0.0.1:{self.stats_port}", replicas))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / "haproxy.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", str(self.config)],
                               capture_output=True, text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy rejects {self.config}:\n{check.stdout}{check.stderr}")
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)],
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited:\n" + self.log.read_text())
            try:
                httpx.get(f"http://127.0.0.1:{self.stats_port}/stats", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("haproxy did not start listening:\n" + self.log.read_text())

    def server_status(self) -> dict[str, str]:
        """Each server's state as HAProxy sees it: ``UP``, ``DOWN``, ``UP 1/2`` ..."""
        response = httpx.get(f"http://127.0.0.1:{self.stats_port}/stats;csv", timeout=5)
        response.raise_for_status()
        rows = csv.DictReader(io.StringIO(response.text.lstrip("# ")))
        return {row["svname"]: row["status"] for row in rows
                if row["pxname"] == "stubs" and row["svname"] not in ("FRONTEND", "BACKEND")}

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


class ReplicatedStub:
    """Start N replicas behind HAProxy; kill -9 one, restart it, stop all."""

    def __init__(self, work: Path, *, db_url: str, redis_url: str | None, replicas: int = 2,
                 demo: bool = True, extra_args: Sequence[str] = (),
                 env: dict[str, str] | None = None,
                 replica_env: Sequence[dict[str, str]] = ()) -> None:
        """``env`` goes to every replica; ``replica_env[i]`` to replica ``i`` only, over it
        (e.g. its own ``GOVSTUB_DB_URL`` through a fault-injecting proxy to the same
        database, to partition that replica from PostgreSQL)."""
        if replicas < 1:
            raise ValueError("a replicated stub needs at least one replica")
        if len(replica_env) > replicas:
            raise ValueError(f"replica_env names {len(replica_env)} replicas; there are "
                             f"{replicas}")
        work.mkdir(parents=True, exist_ok=True)
        ports = [free_port() for _ in range(replicas)]
        self.balancer = Balancer(work, [f"127.0.0.1:{p}" for p in ports])
        # One Redis namespace for the topology, whatever URL each replica reaches the
        # database by (replica_env may route one through a proxy).
        shared = {"GOVSTUB_DB_URL": db_url, "GOVSTUB_PUBLIC_URL": self.balancer.url,
                  "GOVSTUB_SECRET_KEY": secrets.token_urlsafe(32),
                  "GOVSTUB_REDIS_NAMESPACE": f"replicated-{secrets.token_hex(6)}",
                  **(env or {})}
        if redis_url:
            shared["GOVSTUB_REDIS_URL"] = redis_url
        own = [*replica_env, *({} for _ in range(replicas - len(replica_env)))]
        self.replicas = [StubProcess(work / f"replica-{i}", demo=demo, port=port,
                                     extra_args=extra_args, env={**shared, **extra})
                         for i, (port, extra) in enumerate(zip(ports, own, strict=True), 1)]

    @property
    def url(self) -> str:
        return self.balancer.url

    def server_name(self, index: int) -> str:
        return f"stub{index + 1}"

    def start(self, *, together: bool = True, timeout: float = 60.0) -> ReplicatedStub:
        """Start every replica (at the same moment when ``together``), then HAProxy, and
        return once HAProxy sees all of them up."""
        try:
            if together:
                errors: list[BaseException] = []

                def start(replica: StubProcess) -> None:
                    try:
                        replica.start(timeout)
                    except BaseException as exc:  # reported below, in this thread
                        errors.append(exc)

                threads = [threading.Thread(target=start, args=(r,)) for r in self.replicas]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                if errors:
                    raise errors[0]
            else:
                for replica in self.replicas:
                    replica.start(timeout)
            self.balancer.start()
            for index in range(len(self.replicas)):
                self.wait_for(index, "UP", timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def server_status(self) -> dict[str, str]:
        return self.balancer.server_status()

    def wait_for(self, index: int, status: str, timeout: float = 30.0) -> None:
        """Return once HAProxy reports replica ``index`` as ``status`` (``UP``/``DOWN``)."""
        name = self.server_name(index)
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            seen = self.server_status().get(name, "")
            if seen == status:
                return
            time.sleep(0.1)
        raise TimeoutError(f"HAProxy still reports {name} as {seen!r}, not {status!r}, "
                           f"after {timeout} s; see {self.balancer.log}")

    def kill(self, index: int, *, wait: bool = True) -> None:
        """kill -9 replica ``index``; with ``wait``, return once HAProxy has marked it down."""
        self.replicas[index].stop(kill=True)
        if wait:
            self.wait_for(index, "DOWN")

    def restart(self, index: int, *, wait: bool = True) -> None:
        """Start replica ``index`` again (same port and data); with ``wait``, until it is up."""
        self.replicas[index].stop()
        self.replicas[index].start()
        if wait:
            self.wait_for(index, "UP")

    def stop(self) -> None:
        self.balancer.stop()
        for replica in self.replicas:
            replica.stop()

    def client(self, **kwargs: object) -> httpx.Client:
        """A client of the balancer."""
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def __enter__(self) -> ReplicatedStub:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()
