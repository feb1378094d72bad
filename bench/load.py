"""Load: the real stub under 50 concurrent clients for 60 s, 127.0.0.1 only.

Each client is one governor's app: it reads approval lists and details, reads the
dashboard and posts decisions (``POST /v1/mobile/decisions``, a fresh id each time) in a
loop; a few more hold the event stream (``GET /v1/mobile/events``) open the whole time.
A 429 is honoured (the client waits ``Retry-After``) and counted apart; a 429 without
``Retry-After``, any other 4xx/5xx and any transport error is an error.

Figures: p50 / p95 / p99 latency (ms) per kind of request, requests per second, errors,
429s, events received; the baseline is the same reads by one client alone, measured first
in the same run, so ``approvals_p50_ms`` under load is also shown as a ratio to it.

``python bench/load.py``; ``BENCH_SHORT=1`` runs about 10 s. ``LOAD_CLIENTS``,
``LOAD_SECONDS``, ``LOAD_STREAMS`` override the sizes. The per-address and per-token rate
limits are lifted (one generator stands in for 50 devices); ``LOAD_RATE_LIMITS=default``
keeps the stub's own (then 429s are expected, and honoured). The last line is one JSON object
``{"bench": "load", "figures", "targets", "baselines", "ok"}``.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from contextlib import AbstractContextManager
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
PENDING = 60 if SHORT else 200
BASELINE_SECONDS = 2.0 if SHORT else 5.0
TARGETS: dict[str, dict[str, float]] = {"errors": {"max": 0}}
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
        out["decisions_applied"] = self.outcomes.get("applied", 0)
        out["decisions_rejected"] = self.outcomes.get("rejected", 0)
        return out


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


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
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http:
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


async def _stream(url: str, token: str, result: LoadResult, deadline: float) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=url, headers=headers,
                                 timeout=httpx.Timeout(30, read=None)) as http:
        started = time.perf_counter()
        try:
            async with http.stream("GET", "/v1/mobile/events") as response:
                if response.status_code != 200:
                    await response.aread()
                    result.error(f"stream: answered {response.status_code}")
                    return
                result.latencies["stream_open"].append((time.perf_counter() - started) * 1000)
                result.streams_opened += 1
                lines = response.aiter_lines()
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return
                    try:
                        line = await asyncio.wait_for(anext(lines), left)
                    except TimeoutError:
                        return
                    except StopAsyncIteration:
                        if time.monotonic() < deadline - 1:
                            result.error("stream: closed by the server before the end")
                        return
                    if line.startswith("id:"):
                        result.events += 1
        except httpx.HTTPError as exc:
            result.error(f"stream: {type(exc).__name__}: {exc}")


async def run_load(url: str, token: str, approvals: list[dict[str, Any]], *,
                   clients: int = CLIENTS, seconds: float = SECONDS, streams: int = STREAMS,
                   seed: int = 0, kinds: tuple[str, ...] = KINDS,
                   weights: tuple[int, ...] = WEIGHTS) -> LoadResult:
    """``clients`` request loops and ``streams`` open event streams for ``seconds``."""
    result = LoadResult()
    started = time.monotonic()
    deadline = started + seconds
    tasks = [_client(url, token, approvals, result, deadline, random.Random(seed + i),
                     kinds, weights) for i in range(clients)]
    tasks += [_stream(url, token, result, deadline) for _ in range(streams)]
    await asyncio.gather(*tasks)
    result.seconds = time.monotonic() - started
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


def stub(data_dir: Path) -> AbstractContextManager[str]:
    env: dict[str, str] = {}
    if os.environ.get("LOAD_RATE_LIMITS") != "default":
        # One load generator, one address and one token stand in for 50 devices: the
        # per-address and per-token limits would measure themselves, not the stub.
        env.update(GOVSTUB_REQUESTS_PER_MINUTE="100000000",
                   GOVSTUB_CLIENT_REQUESTS_PER_MINUTE="100000000")
    return running_stub(data_dir, **env)


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
    with tempfile.TemporaryDirectory() as tmp, stub(Path(tmp) / "stub") as url:
        figures, baselines, errors = asyncio.run(measure(url))
    for name, value in figures.items():
        print(f"{name}: {value}")
    for message in errors[:20]:
        print(f"error: {message}")
    ok = figures["errors"] == 0
    print(json.dumps({"bench": "load", "figures": figures, "targets": TARGETS,
                      "baselines": baselines, "ok": ok}))


if __name__ == "__main__":
    main()
