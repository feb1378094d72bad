"""The chaos tier's replicated topology: two ``governor-stub`` replicas on one fresh
PostgreSQL database and a Redis of their own, behind HAProxy (``ReplicatedStub``).

Besides ``kill_one()`` (kill -9 of one replica, in turn, started again on its port), it
offers the disruptions a single process cannot have (``disruptions()``):

- ``redis_restart``: its own ``redis-server`` (started here on a free port, never the
  machine's shared one) is killed and started again, empty (``--save ""``);
- ``postgres_partition``: the second replica reaches PostgreSQL through a ``TcpRelay``,
  cut for ``PARTITION_S`` seconds (every connection reset, new ones refused), then healed.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
import redis
from sqlalchemy import make_url

from tests.chaos.harness import advance_clock
from tests.chaos.partition import TcpRelay
from tests.support.replicas import ReplicatedStub, require_haproxy
from tests.support.services import (
    drop_postgres_database,
    free_port,
    fresh_postgres_database,
    in_ci,
    require_service,
)

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
PARTITION_S = 3.0  # long enough for HAProxy to take the replica out (3 failed checks)


def require_redis_server() -> None:
    """Skip (fail in CI) when the ``redis-server`` binary is not installed."""
    if shutil.which("redis-server") or Path(REDIS_SERVER).exists():
        return
    message = "redis-server is not installed (apt-get install redis-server)"
    if in_ci():
        pytest.fail(f"{message}; CI requires it")
    pytest.skip(message)


class RedisServer:
    """``redis-server`` as a child process on a free loopback port, without persistence."""

    def __init__(self, work: Path) -> None:
        self.port = free_port()
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> RedisServer:
        self.work.mkdir(parents=True, exist_ok=True)
        with (self.work / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--daemonize", "no",
                 "--dir", str(self.work)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        try:
            while True:
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on port {self.port} did not start; "
                                       f"see {self.work / 'redis.log'}")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """kill -9: it keeps nothing on disk, so there is nothing to shut down cleanly."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()  # nothing to flush: it keeps nothing on disk (--save "")
            self.proc.wait(10)
        self.proc = None

    def restart(self) -> None:
        """kill -9 and start again on the same port: everything it held is gone."""
        self.stop()
        self.start()
        self.restarts += 1


class Replicated:
    """Two replicas on one fresh PostgreSQL database and their own Redis, behind HAProxy;
    the second replica reaches PostgreSQL through a ``TcpRelay`` that can be cut."""

    name = "replicated-postgres"

    def __init__(self, work: Path, replicas: int = 2) -> None:
        require_haproxy()
        require_redis_server()
        require_service("PostgreSQL", "127.0.0.1", 5432)
        self.work = work
        self._database_url = fresh_postgres_database()
        self.redis = RedisServer(work / "redis")
        direct = make_url(self._database_url)
        self.relay = TcpRelay(direct.host or "127.0.0.1", direct.port or 5432).start()
        relayed = direct.set(host="127.0.0.1", port=self.relay.port)
        try:
            self.stub = ReplicatedStub(
                work / "replicas", db_url=self._database_url, redis_url=self.redis.url,
                replicas=replicas,
                env={"GOVSTUB_REDIS_NAMESPACE": f"chaos-{secrets.token_hex(6)}"},
                replica_env=[{}, {"GOVSTUB_DB_URL": relayed.render_as_string(
                    hide_password=False)}])
        except BaseException:
            self.relay.stop()
            drop_postgres_database(self._database_url)
            raise
        self._next_kill = 0
        # The clock jumps so far: a restarted replica is moved on by as much, so the
        # replicas agree on the time as a deployment's machines do (NTP).
        self.clock_offset = 0.0
        # One disruption at a time: a replica restarted while cut from PostgreSQL (or
        # while Redis restarts) could not migrate and start, which is not the point.
        self._one_at_a_time = threading.Lock()

    @property
    def address(self) -> tuple[str, int]:
        """The balancer's: known before start (the fault proxy's upstream)."""
        return "127.0.0.1", self.stub.balancer.port

    @property
    def control_url(self) -> str:
        return self.stub.replicas[0].url

    @property
    def database_url(self) -> str:
        return self._database_url

    def start(self, env: Mapping[str, str]) -> None:
        try:
            self.redis.start()
            for replica in self.stub.replicas:  # env holds no database or Redis URL
                replica.env = {**replica.env, **env}
            self.stub.start()
        except BaseException:
            self.close()
            raise

    def kill_one(self) -> None:
        """kill -9 of one replica (each in turn), started again on its port and moved on
        to the others' time; returns once HAProxy sees it up."""
        with self._one_at_a_time:
            index = self._next_kill % len(self.stub.replicas)
            self._next_kill += 1
            self.stub.kill(index, wait=False)
            self.stub.restart(index)
            if self.clock_offset:
                advance_clock(self.stub.replicas[index].url, self.clock_offset)

    def jump_clock(self, seconds: float) -> None:
        """Move every replica's demo clock by ``seconds``."""
        with self._one_at_a_time:
            self.clock_offset += seconds
            for replica in self.stub.replicas:
                advance_clock(replica.url, seconds)

    def restart_redis(self) -> None:
        with self._one_at_a_time:
            self.redis.restart()

    def partition_from_postgres(self) -> None:
        """Cut the second replica from PostgreSQL for ``PARTITION_S`` seconds, then heal."""
        with self._one_at_a_time:
            self.relay.cut()
            try:
                time.sleep(PARTITION_S)
            finally:
                self.relay.heal()

    def disruptions(self) -> dict[str, Callable[[], None]]:
        return {"redis_restart": self.restart_redis,
                "postgres_partition": self.partition_from_postgres}

    def close(self) -> None:
        if self.stub is not None:
            self.stub.stop()
        self.relay.stop()
        self.redis.stop()
        drop_postgres_database(self._database_url)
