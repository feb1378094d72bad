"""The replicated chaos topology's own faults do what the chaos tier counts them as: a
partition takes the replica out, a Redis restart empties a new server, a replica kill
brings up a new process that agrees with the others on the (jumped) time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis

from tests.chaos.harness import ChaosWorld, advance_clock
from tests.chaos.replicated import Replicated

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosWorld]:
    w = ChaosWorld.start(Replicated(tmp_path_factory.mktemp("replicated")))
    try:
        yield w
    finally:
        w.close()


def _topology(world: ChaosWorld) -> Replicated:
    assert isinstance(world.topology, Replicated)
    return world.topology


def _ready(url: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/ready", timeout=10)


def _until_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while _ready(url).status_code != 200:
        assert time.monotonic() < deadline, f"{url} is still not ready: {_ready(url).text}"
        time.sleep(0.2)


def test_a_partition_takes_the_replica_out_and_healing_brings_it_back(
        world: ChaosWorld) -> None:
    topology = _topology(world)
    replica = topology.stub.replicas[1]
    topology.relay.cut()
    try:
        topology.stub.wait_for(1, "DOWN")
        answer = _ready(replica.url)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "NOT_READY"
        # The other replica, on the direct URL, serves: the balancer still answers.
        assert _ready(topology.stub.replicas[0].url).status_code == 200
        assert httpx.get(f"{world.url}/v1/health", timeout=10).status_code == 200
    finally:
        topology.relay.heal()
    topology.stub.wait_for(1, "UP")
    assert topology.relay.refused >= 1


def test_a_redis_restart_is_a_new_empty_server(world: ChaosWorld) -> None:
    topology = _topology(world)
    client = redis.Redis.from_url(topology.redis.url)
    try:
        client.set("chaos2:marker", "kept?")
        before = client.info("server")["run_id"]
        world.disrupt("redis_restart")
        assert client.info("server")["run_id"] != before
        assert client.get("chaos2:marker") is None
    finally:
        client.close()
    assert world.disrupted["redis_restart"] == 1
    for replica in topology.stub.replicas:
        _until_ready(replica.url)


def test_a_killed_replica_is_a_new_process_on_the_others_time(world: ChaosWorld) -> None:
    topology = _topology(world)
    world.jump_clock(3600)
    old = [r.proc.pid if r.proc else None for r in topology.stub.replicas]
    world.kill_and_restart_stub()
    new = [r.proc.pid if r.proc else None for r in topology.stub.replicas]
    assert sum(n != o for n, o in zip(new, old, strict=True)) == 1, (old, new)
    assert topology.stub.server_status() == {"stub1": "UP", "stub2": "UP"}
    times = [advance_clock(r.url, 0) for r in topology.stub.replicas]
    assert all(t > datetime.now(UTC) + timedelta(minutes=50) for t in times), times
    assert abs(times[0] - times[1]) < timedelta(minutes=5), times


def test_an_unknown_disruption_is_named_with_the_ones_there_are(world: ChaosWorld) -> None:
    with pytest.raises(KeyError, match=r"has no disruption 'flood'.*postgres_partition"):
        world.disrupt("flood")
    assert "flood" not in world.disrupted


def test_the_database_url_reaches_postgres_directly(world: ChaosWorld) -> None:
    """The judge's road to the data does not cross the relay that partitions a replica."""
    topology = _topology(world)
    assert f":{topology.relay.port}/" not in topology.database_url
    assert world.server().approvals, "the demo data is in the database the judge reads"


def test_replicas_start_on_the_topologys_own_redis(world: ChaosWorld) -> None:
    topology = _topology(world)
    for replica in topology.stub.replicas:
        assert replica.env["GOVSTUB_REDIS_URL"] == topology.redis.url
        assert replica.env["GOVSTUB_REDIS_NAMESPACE"].startswith("chaos-")
    assert not topology.redis.url.endswith(":6379/0")
