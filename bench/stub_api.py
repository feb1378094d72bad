"""API figures of the governance stub on SQLite, beside a bare FastAPI baseline.

- ``get_approvals_p95_ratio``: p95 of ``GET /v1/mobile/approvals`` (bearer token checked,
  first page of 50, demo world) on the real stub, over the p95 of a bare FastAPI endpoint
  that returns the same envelope (the stub's own answer, captured once, with a fresh
  ``meta``). Both are separate uvicorn processes started here; each round times one request
  on each, back to back, alternating which goes first.
- ``batch_500_vs_limit_ratio`` (max 2): one ``POST /v1/mobile/decisions`` of 500 approvals
  (each a distinct pending request) with ``Prefer: return=minimal``, as the governor app's
  client sends its outbox (each result's request only ``{id, status, version, updated_at}``,
  receipts kept; see ``docs/api.md``), measured at the client, over the same body posted
  to the limit (``bench/_limit.py``: a bare FastAPI app that bulk-inserts the batch into
  SQLite with ``synchronous=FULL``), back to back, alternating which goes first; the
  ratio of the medians (p50) over every batch (10; 4 in short mode, where the figure is
  ``batch_500_x4_vs_limit_ratio``). Beside it, for information: ``batch_500_ms`` and
  ``limit_500_ms`` (p50), ``batch_500_p95_ms`` and ``limit_500_p95_ms``, and
  ``batch_500_full_ms``: the p50 of batches sent without the preference (the full answer:
  summary, pipeline and decision fields per request; FULL_BATCHES more batches, after the
  others). And ``batch_500_vs_orm_endpoint_ratio`` (``..._x4_...`` in short mode) with
  ``orm_endpoint_500_ms``: the same bodies to the decisions endpoint as FastAPI is
  usually written (``bench/_limit_orm.py``; information, no target: what the batch target
  means under the issue's own measure of "a bare FastAPI endpoint", 20,000 decisions a
  second).

The stub runs with its rate limit off (it would throttle the benchmark itself).
``python bench/stub_api.py``; ``BENCH_SHORT=1`` runs fewer rounds. The last line is one JSON
object ``{"bench": "stub_api", "figures", "targets", "ok"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make the project importable
    sys.path.insert(0, str(ROOT))

from bench._limit import running_limit  # noqa: E402
from bench._stub import stop_process  # noqa: E402

SHORT = os.environ.get("BENCH_SHORT") == "1"
ROUNDS = 150 if SHORT else 500
WARMUP = 30
BATCHES = 4 if SHORT else 10
# Fewer batches in short mode: that figure carries its sample count in its name.
BATCH_FIGURE = "batch_500_x4_vs_limit_ratio" if SHORT else "batch_500_vs_limit_ratio"
ORM_FIGURE = ("batch_500_x4_vs_orm_endpoint_ratio" if SHORT
              else "batch_500_vs_orm_endpoint_ratio")
TARGETS: dict[str, dict[str, float]] = {"get_approvals_p95_ratio": {"max": 2.0},
                                        BATCH_FIGURE: {"max": 2.0}}
BATCH_SIZE = 500
# Batches answered in full (no Prefer), for information beside the figure.
FULL_BATCHES = 2 if SHORT else 4
MINIMAL = {"Prefer": "return=minimal"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare(data_dir: Path) -> list[str]:
    """The demo world plus (BATCHES + FULL_BATCHES) x 500 pending requests; returns the
    pending ids."""
    from backend_stub.clock import SystemClock
    from backend_stub.db import Database
    from backend_stub.demo.world import GOOD_MODULE, load_demo_world
    from backend_stub.domain.migrations import MIGRATIONS
    from backend_stub.domain.service import GovernanceService

    db = Database(f"sqlite:///{data_dir / 'governance.db'}")
    db.migrate(MIGRATIONS)
    svc = GovernanceService(db, SystemClock())
    load_demo_world(svc)
    ids = [svc.submit_request(agent_name=f"Bench agent {i}", industry="retail",
                              agent_kind="industry", requester="bench",
                              capabilities=["file_read:/data/bench/*"], wasm_module=GOOD_MODULE,
                              daily_token_budget=10_000, monthly_cost_usd=10.0,
                              match_seeds=False)["id"]
           for i in range((BATCHES + FULL_BATCHES) * BATCH_SIZE)]
    db.dispose()
    return ids


@contextmanager
def process(args: list[str], env: dict[str, str], ready_url: str) -> Iterator[None]:
    """A child server, ready once ``ready_url`` answers; stopped with SIGTERM."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **env}, cwd=ROOT)
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True).start()
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[2:4]} did not start:\n" + "".join(output))
            try:
                httpx.get(ready_url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield
    finally:
        stop_process(proc)


def serve_baseline(port: int, body_file: str) -> None:
    """The baseline: a bare FastAPI endpoint answering the captured envelope."""
    import uuid
    from datetime import UTC, datetime

    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    captured = json.loads(Path(body_file).read_text())
    app = FastAPI()

    @app.get("/v1/mobile/approvals")
    def approvals() -> JSONResponse:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        return JSONResponse({"data": captured["data"],
                             "meta": {"request_id": uuid.uuid4().hex, "timestamp": now,
                                      "next_cursor": captured["meta"]["next_cursor"]}})

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def sign_in(url: str) -> str:
    from sync.auth import Authenticator
    from sync.tokens import MemoryVault

    async def run() -> str:
        auth = Authenticator(url, vault=MemoryVault())
        await auth.sign_in_with_password("governor", "governor")
        return str(await auth.access_token())

    return asyncio.run(run())


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def measure(work: Path) -> dict[str, Any]:
    data_dir = work / "stub"
    data_dir.mkdir()
    pending = prepare(data_dir)
    stub_port, base_port = _free_port(), _free_port()
    stub_url, base_url = f"http://127.0.0.1:{stub_port}", f"http://127.0.0.1:{base_port}"
    stub_env = {"GOVSTUB_DATA_DIR": str(data_dir), "GOVSTUB_DISABLE_RATE_LIMIT": "1",
                "GOVSTUB_LOG_LEVEL": "WARNING"}
    stub_args = [sys.executable, "-m", "backend_stub.cli", "--host", "127.0.0.1", "--port",
                 str(stub_port), "--demo"]
    with process(stub_args, stub_env, f"{stub_url}/v1/health"):
        token = sign_in(stub_url)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=stub_url, headers=headers, timeout=30) as stub:
            first = stub.get("/v1/mobile/approvals")
            first.raise_for_status()
            body_file = work / "approvals.json"
            body_file.write_text(first.text)
            base_args = [sys.executable, str(Path(__file__).resolve()), "--baseline",
                         str(base_port), str(body_file)]
            with process(base_args, {}, f"{base_url}/v1/mobile/approvals"), \
                    httpx.Client(base_url=base_url, timeout=30) as base:
                stub_ms: list[float] = []
                base_ms: list[float] = []
                for i in range(WARMUP + ROUNDS):
                    pair = [(stub, stub_ms), (base, base_ms)]
                    for client, samples in (pair if i % 2 else pair[::-1]):
                        started = time.perf_counter()
                        response = client.get("/v1/mobile/approvals")
                        elapsed = (time.perf_counter() - started) * 1000
                        assert response.status_code == 200, response.text
                        if i >= WARMUP:
                            samples.append(elapsed)
            batch_ms: list[float] = []
            limit_ms: list[float] = []
            full_ms: list[float] = []
            orm_ms: list[float] = []
            with running_limit(work / "limit") as limit_url, \
                    httpx.Client(base_url=limit_url, timeout=30) as limit, \
                    running_limit(work / "orm", orm=True) as orm_url, \
                    httpx.Client(base_url=orm_url, timeout=30) as orm:
                for n in range(BATCHES + FULL_BATCHES):
                    ids = pending[n * BATCH_SIZE:(n + 1) * BATCH_SIZE]
                    items = [{"id": f"bench-{n}-{i}", "approval_id": approval_id,
                              "action": "approve", "expected_version": 1,
                              "decided_at": "2026-01-01T00:00:00Z", "device_id": "bench"}
                             for i, approval_id in enumerate(ids)]
                    body = json.dumps({"decisions": items}).encode()
                    # The same body to each, back to back, alternating the order; the last
                    # FULL_BATCHES without the preference (the two limits are not timed).
                    full = n >= BATCHES
                    sides = [(stub, full_ms if full else batch_ms), (limit, limit_ms),
                             (orm, orm_ms)]
                    for client, samples in (sides if n % 2 else sides[::-1]):
                        started = time.perf_counter()
                        response = client.post(
                            "/v1/mobile/decisions", content=body,
                            headers={"Content-Type": "application/json",
                                     **({} if full or client is not stub else MINIMAL)})
                        if not (full and client is not stub):
                            samples.append((time.perf_counter() - started) * 1000)
                        outcomes = {r["outcome"] for r in response.json()["data"]}
                        assert outcomes == {"applied"}, outcomes
                        if client is stub:  # the answer asked for, minimal or full
                            approval = response.json()["data"][0]["approval"]
                            assert ("pipeline" in approval) is full, approval
    return {"stub_p95": p95(stub_ms), "base_p95": p95(base_ms),
            "stub_p50": statistics.median(stub_ms), "base_p50": statistics.median(base_ms),
            "batch_ms": batch_ms, "limit_ms": limit_ms, "full_ms": full_ms, "orm_ms": orm_ms}


# --- WASM modules: validation and upload, each against reading + hashing the same bytes ---
WASM_TARGETS: dict[str, dict[str, float]] = {"validate_10mb_vs_hash_ratio": {"max": 3.0},
                                             "upload_50mb_vs_hash_ratio": {"max": 5.0}}
WASM_ROUNDS = 3 if SHORT else 7
UPLOAD_ROUNDS = 2 if SHORT else 5
# What the modules hold besides one data segment: a share of function bodies to validate.
VALIDATE_CODE_SHARE = float(os.environ.get("BENCH_WASM_CODE_SHARE", "0.1"))
UPLOAD_CODE_SHARE = float(os.environ.get("BENCH_WASM_UPLOAD_CODE_SHARE", "0.02"))


def big_module(size: int, code_share: float = 0.5, salt: int = 0) -> bytes:
    """A valid module of about ``size`` bytes: ``code_share`` of it function bodies that the
    validator must decode and type-check (``i32.const; drop`` runs), the rest one active
    data segment. ``salt`` changes the data (another SHA-256, the same work)."""
    from backend_stub.domain.wasm import MAGIC, _leb, _section

    body_ops = b"\x41\x01\x1a" * 1700  # ~5 KB of instructions per function
    body = _leb(0) + body_ops + b"\x0b"
    functions = int(size * code_share) // (len(body) + 3)
    data_size = size - functions * (len(body) + 3)
    types = _section(1, _leb(1) + b"\x60\x00\x00")
    funcs = _section(3, _leb(functions) + b"\x00" * functions)
    memory = _section(5, b"\x01\x00" + _leb((data_size >> 16) + 1))
    exports = _section(7, _leb(1) + _leb(6) + b"_start" + b"\x00\x00") if functions else b""
    code = _section(10, _leb(functions) + (_leb(len(body)) + body) * functions)
    payload = salt.to_bytes(8, "little") + b"\x5a" * max(data_size - 8, 0)
    data = _section(11, _leb(1) + b"\x00\x41\x00\x0b" + _leb(len(payload)) + payload)
    return MAGIC + b"\x01\x00\x00\x00" + types + funcs + memory + exports + code + data


def _read_and_hash(path: Path) -> float:
    import hashlib

    started = time.perf_counter()
    hashlib.sha256(path.read_bytes()).hexdigest()
    return time.perf_counter() - started


def measure_validation(work: Path) -> dict[str, float]:
    """Median (read + validate_module) over median (read + SHA-256) of one 10 MB module."""
    from backend_stub.domain.wasm import validate_module

    path = work / "module-10mb.wasm"
    path.write_bytes(big_module(10 * 1024 * 1024, code_share=VALIDATE_CODE_SHARE))
    report = validate_module(path.read_bytes())  # warm: engines built, file cached
    assert report.spec_outcome == "valid", report.issues
    hash_s, validate_s = [], []
    for _ in range(WASM_ROUNDS):
        hash_s.append(_read_and_hash(path))
        started = time.perf_counter()
        validate_module(path.read_bytes())
        validate_s.append(time.perf_counter() - started)
    return {"validate_10mb_ms": statistics.median(validate_s) * 1000,
            "hash_10mb_ms": statistics.median(hash_s) * 1000}


def measure_upload(work: Path) -> dict[str, float]:
    """Median time of ``POST /v1/agents`` with a 50 MB module (sign-in excluded; each round
    a module with another SHA-256, so each is a new request) over median read + SHA-256."""
    from backend_stub.domain.wasm import MAX_MODULE_BYTES
    from backend_stub.submit_cli import sign_in
    from bench._stub import running_stub

    size = MAX_MODULE_BYTES - 64
    data_dir = work / "stub-upload"
    data_dir.mkdir()
    upload_s, hash_s = [], []
    with running_stub(data_dir, GOVSTUB_DISABLE_RATE_LIMIT="1") as url, \
            httpx.Client(timeout=300) as client:
        token = sign_in(client, url + "/", "submitter", "submitter")["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        fields = {"industry": "retail", "daily_token_budget": "10000",
                  "monthly_cost_usd": "10", "capability": "file_read:/data/bench/*"}
        for n in range(UPLOAD_ROUNDS + 1):  # the first round warms the route up
            path = work / f"module-50mb-{n}.wasm"
            path.write_bytes(big_module(size, code_share=UPLOAD_CODE_SHARE, salt=n))
            seconds = _read_and_hash(path)
            with path.open("rb") as handle:
                started = time.perf_counter()
                answer = client.post(f"{url}/v1/agents", headers=headers,
                                     data={**fields, "name": f"Bench upload {n}"},
                                     files={"module": (path.name, handle, "application/wasm")})
                elapsed = time.perf_counter() - started
            assert answer.status_code == 201, answer.text[:500]
            assert answer.json()["data"]["wasm_report"]["spec_outcome"] == "valid"
            path.unlink()
            if n:
                upload_s.append(elapsed)
                hash_s.append(seconds)
    return {"upload_50mb_ms": statistics.median(upload_s) * 1000,
            "hash_50mb_ms": statistics.median(hash_s) * 1000}


def wasm_figures(work: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(figures, raw measures in ms) of the two WASM module figures."""
    raw = {**measure_validation(work), **measure_upload(work)}
    return ({"validate_10mb_vs_hash_ratio": round(raw["validate_10mb_ms"]
                                                  / raw["hash_10mb_ms"], 3),
             "upload_50mb_vs_hash_ratio": round(raw["upload_50mb_ms"]
                                                / raw["hash_50mb_ms"], 3)}, raw)


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        serve_baseline(int(sys.argv[2]), sys.argv[3])
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-stub-api-") as tmp:
        raw = measure(Path(tmp))
        wasm, wasm_raw = wasm_figures(Path(tmp))
    TARGETS.update(WASM_TARGETS)
    batch_p50, limit_p50 = statistics.median(raw["batch_ms"]), statistics.median(raw["limit_ms"])
    figures = {"get_approvals_p95_ratio": round(raw["stub_p95"] / raw["base_p95"], 3),
               BATCH_FIGURE: round(batch_p50 / limit_p50, 3),
               "batch_500_ms": round(batch_p50, 1),
               "batch_500_p95_ms": round(p95(raw["batch_ms"]), 1),
               "limit_500_ms": round(limit_p50, 1),
               "limit_500_p95_ms": round(p95(raw["limit_ms"]), 1),
               "batch_500_full_ms": round(statistics.median(raw["full_ms"]), 1),
               ORM_FIGURE: round(
                   batch_p50 / statistics.median(raw["orm_ms"]), 3),
               "orm_endpoint_500_ms": round(statistics.median(raw["orm_ms"]), 1), **wasm}
    ok = all(figures[name] <= target["max"] for name, target in TARGETS.items())
    print(f"stub_api ({'short' if SHORT else 'full'}: {ROUNDS} rounds, {BATCHES} batches)")
    print(f"{'measure':<34}{'value':>12}")
    print(f"{'GET /approvals p50 stub (ms)':<34}{raw['stub_p50']:>12.2f}")
    print(f"{'GET /approvals p50 bare (ms)':<34}{raw['base_p50']:>12.2f}")
    print(f"{'GET /approvals p95 stub (ms)':<34}{raw['stub_p95']:>12.2f}")
    print(f"{'GET /approvals p95 bare (ms)':<34}{raw['base_p95']:>12.2f}")
    print(f"{'batches of 500, stub (ms)':<34}{', '.join(f'{v:.0f}' for v in raw['batch_ms']):>12}")
    print(f"{'batches of 500, limit (ms)':<34}{', '.join(f'{v:.0f}' for v in raw['limit_ms']):>12}")
    print(f"{'batches of 500, FastAPI+ORM (ms)':<34}"
          f"{', '.join(f'{v:.0f}' for v in raw['orm_ms']):>12}")
    print(f"{'batches of 500, full answer (ms)':<34}"
          f"{', '.join(f'{v:.0f}' for v in raw['full_ms']):>12}")
    for name, value in wasm_raw.items():
        print(f"{name:<34}{value:>12.1f}")
    print(f"{'figure':<34}{'value':>12}{'target':>10}{'met':>6}")
    for name, target in TARGETS.items():
        met = figures[name] <= target["max"]
        print(f"{name:<34}{figures[name]:>12}{'<= ' + str(target['max']):>10}"
              f"{'yes' if met else 'NO':>6}")
    print(json.dumps({"bench": "stub_api", "figures": figures, "targets": TARGETS, "ok": ok}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
