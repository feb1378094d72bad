"""``deploy/``: the recipe a user follows starts what the tests use."""

from __future__ import annotations

import csv
import io
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.replicas import DEPLOY, HAPROXY, render_config, require_haproxy
from tests.support.services import REDIS_URL, free_port, require_service


def test_the_template_gets_one_server_per_replica_and_health_checks_on_ready() -> None:
    config = render_config("127.0.0.1:8080", "127.0.0.1:8404",
                           ["127.0.0.1:8001", "127.0.0.1:8002", "10.0.0.3:8000"])
    assert "{{" not in config
    servers = [line.split() for line in config.splitlines()
               if line.strip().startswith("server ")]
    assert servers == [["server", "stub1", "127.0.0.1:8001"],
                       ["server", "stub2", "127.0.0.1:8002"],
                       ["server", "stub3", "10.0.0.3:8000"]]
    assert "option httpchk GET /v1/ready" in config
    assert "timeout tunnel" in config  # event streams outlive ordinary requests


def test_a_bad_replica_address_is_refused_with_what_to_write() -> None:
    done = subprocess.run([sys.executable, str(DEPLOY / "render_haproxy.py"), "stub-one"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "'stub-one' is not HOST:PORT" in done.stderr and done.stdout == ""


def test_the_script_refuses_to_start_without_a_shared_database() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSTUB_")}
    done = subprocess.run(["bash", str(DEPLOY / "run-replicas.sh"), "2"], env=env,
                          capture_output=True, text=True, check=False, timeout=30)
    assert done.returncode != 0
    assert "GOVSTUB_DB_URL" in done.stderr


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_run_replicas_starts_a_balanced_stub_and_stops_it_all(postgres_url: str,
                                                            tmp_path: Path) -> None:
    require_haproxy()
    require_service("Redis", "127.0.0.1", 6379)
    lb, stats, base = free_port(), free_port(), free_port()
    # Two consecutive free ports for the replicas (the script numbers them from a base).
    while True:
        try:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", base + 1))
            break
        except OSError:
            base = free_port()
    env = {**os.environ, "GOVSTUB_DB_URL": postgres_url, "GOVSTUB_REDIS_URL": REDIS_URL,
           "GOVSTUB_SECRET_KEY": secrets.token_urlsafe(32),
           "GOVERNOR_LB_BIND": f"127.0.0.1:{lb}", "GOVERNOR_LB_STATS": f"127.0.0.1:{stats}",
           "REPLICA_BASE_PORT": str(base), "WORK_DIR": str(tmp_path / "work"),
           "STUB": f"{sys.executable} -m backend_stub.cli", "HAPROXY": HAPROXY,
           "PYTHON": sys.executable, "GOVSTUB_LOG_LEVEL": "WARNING"}
    script = subprocess.Popen(["bash", str(DEPLOY / "run-replicas.sh"), "2", "--demo"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    try:
        ready = None
        for _ in range(600):  # up to a minute for both replicas and the balancer
            try:
                ready = httpx.get(f"http://127.0.0.1:{lb}/v1/ready", timeout=1)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert script.poll() is None, script.stdout.read() if script.stdout else ""
            time.sleep(0.1)
        assert ready is not None and ready.status_code == 200
        for port in (base, base + 1):
            assert httpx.get(f"http://127.0.0.1:{port}/v1/ready", timeout=5).status_code == 200
        # HAProxy checks both and sends to both.
        for _ in range(100):
            table = httpx.get(f"http://127.0.0.1:{stats}/stats;csv", timeout=5).text
            rows = list(csv.DictReader(io.StringIO(table.lstrip("# "))))
            status = {r["svname"]: r["status"] for r in rows if r["pxname"] == "stubs"}
            if status.get("stub1") == status.get("stub2") == "UP":
                break
            time.sleep(0.1)
        assert status["stub1"] == status["stub2"] == "UP", status
        issuer = httpx.get(f"http://127.0.0.1:{lb}/.well-known/oauth-authorization-server",
                           timeout=5).json()["issuer"]
        assert issuer == f"http://127.0.0.1:{lb}"  # the public URL is the balancer's
    finally:
        # The script's own trap stops the replicas and HAProxy it started.
        script.send_signal(signal.SIGTERM)
        try:
            output = script.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            os.killpg(script.pid, signal.SIGKILL)  # its own process group, nothing else
            output = script.communicate(timeout=10)[0]
            pytest.fail(f"run-replicas.sh did not stop on SIGTERM:\n{output}")
    for port in (lb, base, base + 1):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2)
    assert "balancer on" in output
