"""Sign-in figures against the real stub (``governor-stub`` under uvicorn, 127.0.0.1 only).

- ``refresh_p95_ms``: a token refresh (rotation included) as the app does it
  (``sync.auth.Authenticator.refresh_after_401``), 95th percentile;
- ``validation_overhead_ratio``: ``GET /v1/mobile/dashboard`` with a bearer token on a stub
  validating it, over the same route on a second stub started with ``GOVSTUB_DISABLE_AUTH=1``
  in the same run; each round times one request on each, back to back (alternating which
  goes first), and the figure is the median over rounds of the per-round ratio. Both run
  with the API rate limit off (it would throttle the benchmark, and it counts per bearer
  token, which is not validation).

``python bench/auth.py``; ``BENCH_SHORT=1`` runs fewer rounds. The last line is one JSON
object ``{"bench": "auth", "figures", "targets", "ok"}``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx

# ``python bench/NAME.py`` puts only bench/ on sys.path; the shared helpers are ``bench.*``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._stub import running_stub
from sync.auth import Authenticator
from sync.tokens import MemoryVault

TARGETS: dict[str, dict[str, float]] = {"refresh_p95_ms": {"max": 20},
                                        "validation_overhead_ratio": {"max": 1.2}}
SHORT = os.environ.get("BENCH_SHORT") == "1"
REFRESHES = 60 if SHORT else 300
ROUNDS = 150 if SHORT else 600
WARMUP = 30


def stub(data_dir: Path, **env: str) -> AbstractContextManager[str]:
    # The API rate limit would throttle the benchmark itself, and it counts per bearer
    # token too, which is not the validation being measured: off in both stubs.
    return running_stub(data_dir, GOVSTUB_DISABLE_RATE_LIMIT="1", **env)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _refresh_timings(url: str) -> tuple[list[float], str]:
    async with httpx.AsyncClient(timeout=10) as http:
        auth = Authenticator(url, vault=MemoryVault(), http=http)
        await auth.sign_in_with_password("governor", "governor")
        token = await auth.access_token()
        for _ in range(5):  # warm-up: connections, code paths
            token = await auth.refresh_after_401(token)
        timings = []
        for _ in range(REFRESHES):
            start = time.perf_counter()
            token = await auth.refresh_after_401(token)
            timings.append((time.perf_counter() - start) * 1000)
        await auth.aclose()
        return timings, token


def _validation_timings(auth_url: str, token: str, open_url: str
                        ) -> tuple[list[float], list[float]]:
    path = "/v1/mobile/dashboard"
    with httpx.Client(base_url=auth_url, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as with_auth, \
            httpx.Client(base_url=open_url, timeout=10) as without:
        for client in (with_auth, without):
            for _ in range(WARMUP):
                response = client.get(path)
                response.raise_for_status()
        on: list[float] = []
        off: list[float] = []
        for i in range(ROUNDS):
            pairs = [(with_auth, on), (without, off)]
            if i % 2:
                pairs.reverse()
            for client, sink in pairs:
                start = time.perf_counter()
                response = client.get(path)
                sink.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}: "
                                       f"{response.text[:200]}")
        return on, off


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        root = Path(tmp)
        with stub(root / "auth") as auth_url, \
                stub(root / "open", GOVSTUB_DISABLE_AUTH="1") as open_url:
            refresh, token = asyncio.run(_refresh_timings(auth_url))
            on, off = _validation_timings(auth_url, token, open_url)

    # Each round times the two stubs back to back, so a round's ratio sees one load on the
    # machine; the median over rounds is robust to the bursts other processes cause.
    paired = statistics.median(a / b for a, b in zip(on, off, strict=True))
    figures = {
        "refresh_p95_ms": round(_percentile(refresh, 0.95), 2),
        "validation_overhead_ratio": round(paired, 3),
    }
    rows = [
        ("token refresh (ms)", refresh),
        ("dashboard, token validated (ms)", on),
        ("dashboard, validation off (ms)", off),
    ]
    print(f"{'measurement':34} {'n':>5} {'p50':>8} {'p95':>8} {'max':>8}")
    for name, values in rows:
        print(f"{name:34} {len(values):5d} {_percentile(values, 0.5):8.2f} "
              f"{_percentile(values, 0.95):8.2f} {max(values):8.2f}")
    print(f"ratio of the medians (for comparison): "
          f"{statistics.median(on) / statistics.median(off):.3f}")
    print()
    for name, value in figures.items():
        limit = TARGETS[name]["max"]
        print(f"{name}: {value} (max {limit}) {'ok' if value <= limit else 'OVER'}")
    ok = all(figures[name] <= TARGETS[name]["max"] for name in TARGETS)
    print(json.dumps({"bench": "auth", "figures": figures, "targets": TARGETS, "ok": ok}))


if __name__ == "__main__":
    main()
