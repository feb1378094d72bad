"""Load: the real stub under 50 concurrent clients for 60 s, 127.0.0.1 only.

Each client is one governor's app: it reads approval lists and details, reads the
dashboard and posts decisions (``POST /v1/mobile/decisions``, a fresh id each time) in a
loop; a few more hold the event stream (``GET /v1/mobile/events``) open the whole time.
A 429 is honoured (the client waits ``Retry-After``) and counted apart; a 429 without
``Retry-After``, any other 4xx/5xx and any transport error is an error.

Figures: p50 / p95 / p99 latency (ms) per kind of request, requests per second, errors,
429s, events received; every stream opens at the event id stored last before the load
and, once the clients stop, is read until it has every event stored since (or
``LOAD_DRAIN_SECONDS``, 60 by default, pass): ``events_missing``, ``events_duplicated`` and
``streams_out_of_order`` compare the ids each stream received with the ids stored and
``streams_catch_up_s`` is how long that took after the clients stopped. The
baseline is the same reads by one client alone, measured first
in the same run, so ``approvals_p50_ms`` under load is also shown as a ratio to it.

Then the same load again through the balancer: HAProxy (``deploy/haproxy.cfg``) in front
of two replicas on one PostgreSQL database and Redis (``tests/support/replicas.py``); its
figures carry the prefix ``lb_`` (``lb_approvals_p95_ms``, ``lb_errors``, ...). It is
skipped, and says why, when PostgreSQL, Redis or haproxy is missing; ``LOAD_TOPOLOGY``
(``single``, ``replicated`` or ``both``, the default) picks the runs.

``python bench/load.py``; ``BENCH_SHORT=1`` runs about 10 s. ``LOAD_CLIENTS``,
``LOAD_SECONDS``, ``LOAD_STREAMS`` override the sizes. The per-address and per-token rate
limits are lifted (one generator stands in for 50 devices); ``LOAD_RATE_LIMITS=default``
keeps the stub's own (then 429s are expected, and honoured). The last line is one JSON object
``{"bench": "load", "figures", "targets", "baselines", "ok"}``.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import os
import random
import ssl
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

# ``python bench/NAME.py`` puts only bench/ on sys.path; the shared helpers are ``bench.*``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._stub import running_stub

SHORT = os.environ.get("BENCH_SHORT") == "1"
CLIENTS = int(os.environ.get("LOAD_CLIENTS", "50"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "10" if SHORT else "60"))
STREAMS = int(os.environ.get("LOAD_STREAMS", "5"))
DRAIN_SECONDS = float(os.environ.get("LOAD_DRAIN_SECONDS", "60"))
PENDING = 60 if SHORT else 200
BASELINE_SECONDS = 2.0 if SHORT else 5.0
TARGETS: dict[str, dict[str, float]] = {"errors": {"max": 0}, "events_missing": {"max": 0}}
KINDS = ("approvals", "approval", "dashboard", "decision")
WEIGHTS = (40, 25, 15, 20)


@dataclass
class LoadResult:
    """What a load run saw; ``figures()`` turns it into the bench's numbers."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[int] = field(default_factory=Counter)
    rate_limited: int = 0
    errors: list[str] = field(default_factory=list)
    events: int = 0
    streams_opened: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    # The ids stored during the run (after the streams' starting point), and those each
    # stream received, in the order received.
    published_ids: list[int] = field(default_factory=list)
    stream_ids: list[list[int]] = field(default_factory=list)
    # From the clients' stop until every stream held every stored id (or gave up).
    catch_up_seconds: float = 0.0

    def stream_problems(self) -> list[str]:
        """Each stream that did not receive every stored id exactly once, in order:
        what it missed (first ids), repeated or misordered."""
        problems = []
        stored = set(self.published_ids)
        for n, got in enumerate(self.stream_ids):
            missing = sorted(stored - set(got))
            repeated = sorted({i for i, c in Counter(got).items() if c > 1})
            if missing or repeated or got != sorted(got):
                problems.append(
                    f"stream {n}: received {len(got)} of {len(stored)} stored events; "
                    f"missing {len(missing)} {missing[:10]}, repeated {repeated[:10]}, "
                    f"in order: {got == sorted(got)}")
        return problems

    def error(self, what: str) -> None:
        self.errors.append(what)

    def figures(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        total = 0
        for kind in (*KINDS, "stream_open"):
            values = sorted(self.latencies.get(kind, []))
            total += len(values) if kind != "stream_open" else 0
            if not values:
                continue
            for p in (50, 95, 99):
                out[f"{kind}_p{p}_ms"] = round(percentile(values, p), 2)
        out["requests"] = total
        out["requests_per_s"] = round(total / self.seconds, 1) if self.seconds else 0.0
        out["errors"] = len(self.errors)
        out["rate_limited_429"] = self.rate_limited
        out["events_received"] = self.events
        out["streams_opened"] = self.streams_opened
        out["events_published"] = len(self.published_ids)
        stored = set(self.published_ids)
        out["events_missing"] = sum(len(stored - set(got)) for got in self.stream_ids)
        out["events_duplicated"] = sum(len(got) - len(set(got)) for got in self.stream_ids)
        out["streams_out_of_order"] = sum(got != sorted(got) for got in self.stream_ids)
        if self.stream_ids:
            out["streams_catch_up_s"] = round(self.catch_up_seconds, 2)
        out["decisions_applied"] = self.outcomes.get("applied", 0)
        out["decisions_rejected"] = self.outcomes.get("rejected", 0)
        return out


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for every simulated device. httpx builds a new one per client
    otherwise (loading the CA bundle, ~70 ms of CPU each on a loaded machine), which
    blocked this generator's event loop for seconds at the start of a run: the streams
    then opened late and the first seconds of load went unmeasured."""
    return ssl.create_default_context()


async def _timed(http: httpx.AsyncClient, result: LoadResult, kind: str, method: str,
                 path: str, deadline: float, **kwargs: Any) -> httpx.Response | None:
    started = time.perf_counter()
    try:
        response = await http.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        result.error(f"{kind}: {type(exc).__name__}: {exc}")
        return None
    elapsed = (time.perf_counter() - started) * 1000
    result.statuses[response.status_code] += 1
    if response.status_code == 429:
        retry_after = response.headers.get("retry-after")
        if retry_after is None:
            result.error(f"{kind}: 429 without Retry-After")
            return None
        result.rate_limited += 1
        wait = min(float(retry_after), max(0.0, deadline - time.monotonic()))
        await asyncio.sleep(wait)
        return None
    if response.status_code >= 400:
        result.error(f"{kind}: {method} {path} answered {response.status_code} "
                     f"{response.text[:200]}")
        return None
    result.latencies[kind].append(elapsed)
    return response


async def _client(url: str, token: str, approvals: list[dict[str, Any]], result: LoadResult,
                  deadline: float, rng: random.Random, kinds: tuple[str, ...] = KINDS,
                  weights: tuple[int, ...] = WEIGHTS) -> None:
    device = f"load-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30,
                                 verify=_tls()) as http:
        while time.monotonic() < deadline:
            kind = rng.choices(kinds, weights)[0]
            if kind == "approvals":
                status = rng.choice(["pending_approval", "approved", None])
                params: dict[str, Any] = {"limit": 20}
                if status:
                    params["status"] = status
                await _timed(http, result, kind, "GET", "/v1/mobile/approvals", deadline,
                             params=params)
            elif kind == "approval":
                target = rng.choice(approvals)
                await _timed(http, result, kind, "GET", f"/v1/mobile/approvals/{target['id']}",
                             deadline)
            elif kind == "dashboard":
                await _timed(http, result, kind, "GET", "/v1/mobile/dashboard", deadline)
            else:
                target = rng.choice(approvals)
                item: dict[str, Any] = {"id": str(uuid.uuid4()), "approval_id": target["id"],
                                        "device_id": device,
                                        "decided_at": datetime.now(UTC).isoformat()}
                if rng.random() < 0.3:
                    item.update(action="veto", category="safety", reason="load test veto")
                else:
                    item.update(action="approve", expected_version=target["version"],
                                comment="load test")
                response = await _timed(http, result, kind, "POST", "/v1/mobile/decisions",
                                        deadline, json={"decisions": [item]})
                if response is not None:
                    for r in response.json().get("data", []):
                        result.outcomes[str(r.get("outcome"))] += 1


@dataclass
class Drain:
    """What the streams are waiting for once the clients stop: ``last_id``, the id stored
    last (``None`` until known, with ``known`` set), for at most ``seconds``."""

    seconds: float = DRAIN_SECONDS
    last_id: int | None = None
    known: asyncio.Event = field(default_factory=asyncio.Event)


async def _stream(url: str, token: str, result: LoadResult, deadline: float,
                  after: int | None = None, drain: Drain | None = None) -> None:
    """Hold a stream open until ``deadline``; with ``drain``, then until it received the
    id stored last (or the drain's time ran out). Records the ids received."""
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    params = {"after": str(after)} if after is not None else None
    ids: list[int] = []
    arrived = asyncio.Event()

    async def read(response: httpx.Response) -> None:
        async for line in response.aiter_lines():
            if line.startswith("id:"):
                result.events += 1
                ids.append(int(line[3:].strip()))
                arrived.set()

    async with httpx.AsyncClient(base_url=url, headers=headers, verify=_tls(),
                                 timeout=httpx.Timeout(30, read=None)) as http:
        started = time.perf_counter()
        try:
            async with http.stream("GET", "/v1/mobile/events", params=params) as response:
                if response.status_code != 200:
                    await response.aread()
                    result.error(f"stream: answered {response.status_code}")
                    return
                result.latencies["stream_open"].append((time.perf_counter() - started) * 1000)
                result.streams_opened += 1
                # Reading runs on while this waits: cancelling a pending read would end
                # the response's line iterator.
                reader = asyncio.create_task(read(response))
                try:
                    await asyncio.wait({reader}, timeout=max(0.0, deadline - time.monotonic()))
                    if drain is not None and not reader.done():
                        await _drained(reader, ids, arrived, drain)
                    if reader.done():
                        reader.result()  # a transport error is raised here
                        if time.monotonic() < deadline - 1:
                            result.error("stream: closed by the server before the end")
                finally:
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
        except httpx.HTTPError as exc:
            result.error(f"stream: {type(exc).__name__}: {exc}")
        finally:
            result.stream_ids.append(ids)


async def _drained(reader: asyncio.Task[None], ids: list[int], arrived: asyncio.Event,
                   drain: Drain) -> None:
    """Wait until the stream received ``drain.last_id``, it ends, or the drain times out."""
    until = time.monotonic() + drain.seconds
    known = asyncio.create_task(drain.known.wait())
    try:
        await asyncio.wait({reader, known}, timeout=max(0.0, until - time.monotonic()),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        known.cancel()
    while (drain.last_id is not None and not reader.done()
           and (ids[-1] if ids else -1) < drain.last_id and time.monotonic() < until):
        arrived.clear()
        waiter = asyncio.create_task(arrived.wait())
        try:
            await asyncio.wait({reader, waiter}, timeout=max(0.0, until - time.monotonic()),
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()


async def _stored_ids(http: httpx.AsyncClient, after: int) -> list[int]:
    """The ids of every event stored after ``after``, in order (``/notifications`` pages;
    a 429 is waited out)."""
    ids: list[int] = []
    cursor = str(after)
    while True:
        response = await http.get("/v1/mobile/notifications",
                                  params={"after": cursor, "limit": 500})
        if response.status_code == 429:
            await asyncio.sleep(float(response.headers.get("retry-after", "1")))
            continue
        response.raise_for_status()
        page = response.json()
        ids += [int(item["id"]) for item in page["data"]]
        cursor = page["meta"].get("next_cursor")
        if not cursor:
            return ids


async def run_load(url: str, token: str, approvals: list[dict[str, Any]], *,
                   clients: int = CLIENTS, seconds: float = SECONDS, streams: int = STREAMS,
                   seed: int = 0, kinds: tuple[str, ...] = KINDS,
                   weights: tuple[int, ...] = WEIGHTS,
                   drain_seconds: float = DRAIN_SECONDS) -> LoadResult:
    """``clients`` request loops and ``streams`` open event streams for ``seconds``; the
    streams start after the event stored last before the run and, once the clients
    stop, are read until they have every event stored since (``drain_seconds`` at most)."""
    result = LoadResult()
    after = None
    drain = Drain(drain_seconds)
    if streams:
        async with httpx.AsyncClient(base_url=url, timeout=30,
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            before = await _stored_ids(http, 0)
        after = before[-1] if before else 0
    started = time.monotonic()
    deadline = started + seconds
    stream_tasks = [asyncio.create_task(_stream(url, token, result, deadline, after, drain))
                    for _ in range(streams)]
    try:
        await asyncio.gather(*(_client(url, token, approvals, result, deadline,
                                       random.Random(seed + i), kinds, weights)
                               for i in range(clients)))
        result.seconds = time.monotonic() - started
        if streams:
            assert after is not None
            async with httpx.AsyncClient(base_url=url, timeout=30, headers={
                    "Authorization": f"Bearer {token}"}) as http:
                result.published_ids = await _stored_ids(http, after)
            drain.last_id = result.published_ids[-1] if result.published_ids else after
            drain.known.set()
        stopped = time.monotonic()
        await asyncio.gather(*stream_tasks)
        result.catch_up_seconds = time.monotonic() - stopped
    finally:
        for task in stream_tasks:
            task.cancel()
        await asyncio.gather(*stream_tasks, return_exceptions=True)
    return result


async def prepare(url: str, pending: int = PENDING) -> tuple[str, list[dict[str, Any]]]:
    """Sign in as the demo governor (the app's own code path) and make ``pending``
    requests to decide on; returns the access token and every approval's id and version."""
    from sync.auth import Authenticator
    from sync.tokens import MemoryVault

    auth = Authenticator(url, vault=MemoryVault())
    try:
        await auth.sign_in_with_password("governor", "governor")
        token = await auth.access_token()
    finally:
        await auth.aclose()
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(pending):
            (await http.post("/v1/demo/scenario",
                             json={"event": "new_pending_approval"})).raise_for_status()
        approvals: list[dict[str, Any]] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = (await http.get("/v1/mobile/approvals", params=params)).json()
            approvals += [{"id": a["id"], "version": a["version"]} for a in page["data"]]
            cursor = page["meta"].get("next_cursor")
            if not cursor:
                break
    return token, approvals


def _limits_env() -> dict[str, str]:
    env: dict[str, str] = {}
    if os.environ.get("LOAD_RATE_LIMITS") != "default":
        # One load generator, one address and one token stand in for 50 devices: the
        # per-address and per-token limits would measure themselves, not the stub.
        env.update(GOVSTUB_REQUESTS_PER_MINUTE="100000000",
                   GOVSTUB_CLIENT_REQUESTS_PER_MINUTE="100000000")
    return env


def stub(data_dir: Path) -> AbstractContextManager[str]:
    return running_stub(data_dir, **_limits_env())


@contextmanager
def balanced_stub(work: Path, replicas: int = 2, env: dict[str, str] | None = None
                  ) -> Iterator[str]:
    """HAProxy in front of ``replicas`` stubs on a fresh PostgreSQL database and Redis;
    yields the balancer's URL. Raises ``Unavailable`` when a service is missing."""
    from tests.support.replicas import HAPROXY, ReplicatedStub
    from tests.support.services import (
        REDIS_URL,
        drop_postgres_database,
        fresh_postgres_database,
        reachable,
    )

    missing = [name for name, up in (("PostgreSQL", reachable("127.0.0.1", 5432)),
                                     ("Redis", reachable("127.0.0.1", 6379)),
                                     ("haproxy", os.access(HAPROXY, os.X_OK))) if not up]
    if missing:
        raise Unavailable(f"{' and '.join(missing)} not available")
    db_url = fresh_postgres_database()
    try:
        with ReplicatedStub(work, db_url=db_url, redis_url=REDIS_URL, replicas=replicas,
                            env={"GOVSTUB_LOG_LEVEL": "WARNING", **(env or {})}) as topology:
            yield topology.url
    finally:
        drop_postgres_database(db_url)


class Unavailable(RuntimeError):
    """The replicated topology cannot run here (a service is missing)."""


async def measure(url: str) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    token, approvals = await prepare(url)
    # Baseline: the same reads by one client alone, before the crowd arrives.
    alone = await run_load(url, token, approvals, clients=1, seconds=BASELINE_SECONDS,
                           streams=0, seed=99, kinds=("approvals", "approval"),
                           weights=(1, 1))
    loaded = await run_load(url, token, approvals)
    figures = loaded.figures()
    figures["clients"] = CLIENTS
    figures["seconds"] = round(loaded.seconds, 1)
    base = alone.figures()
    baselines: dict[str, Any] = {k: base[k] for k in ("approvals_p50_ms", "approval_p50_ms")
                                 if k in base}
    return figures, baselines, alone.errors + loaded.errors


def main() -> None:
    topology = os.environ.get("LOAD_TOPOLOGY", "both")
    figures: dict[str, Any] = {}
    baselines: dict[str, Any] = {}
    errors: list[str] = []
    if topology in ("single", "both"):
        with tempfile.TemporaryDirectory() as tmp, stub(Path(tmp) / "stub") as url:
            figures, baselines, errors = asyncio.run(measure(url))
    if topology in ("replicated", "both"):
        try:
            with tempfile.TemporaryDirectory() as tmp, \
                    balanced_stub(Path(tmp) / "topology", env=_limits_env()) as url:
                lb_figures, lb_baselines, lb_errors = asyncio.run(measure(url))
        except Unavailable as exc:
            print(f"through the balancer: skipped ({exc})")
        else:
            figures.update({f"lb_{k}": v for k, v in lb_figures.items()})
            baselines.update({f"lb_{k}": v for k, v in lb_baselines.items()})
            errors += [f"through the balancer: {e}" for e in lb_errors]
            TARGETS["lb_errors"] = {"max": 0}
            TARGETS["lb_events_missing"] = {"max": 0}
    for name, value in figures.items():
        print(f"{name}: {value}")
    for message in errors[:20]:
        print(f"error: {message}")
    ok = bool(figures) and all(figures.get(k, 0) == 0 for k in (
        "errors", "lb_errors", "events_missing", "lb_events_missing"))
    print(json.dumps({"bench": "load", "figures": figures, "targets": TARGETS,
                      "baselines": baselines, "ok": ok}))


if __name__ == "__main__":
    main()
