"""Sign-in figures against the real stub (``governor-stub`` under uvicorn, 127.0.0.1 only).

- ``refresh_p95_ms``: a token refresh (rotation included) as the app does it
  (``sync.auth.Authenticator.refresh_after_401``), 95th percentile;
- ``validation_overhead_ratio``: ``GET /v1/mobile/dashboard`` with a bearer token on a stub
  validating it, over the same route on a second stub started with ``GOVSTUB_DISABLE_AUTH=1``
  in the same run; each round times one request on each, back to back (alternating which
  goes first), and the figure is the median over rounds of the per-round ratio. Both run
  with the API rate limit off (it would throttle the benchmark, and it counts per bearer
  token, which is not validation).
- ``validation_overhead_uncached_ratio``: the same, with a new token on every request (each
  a distinct token from a refresh, so the validator's verified-token cache never hits and
  every request pays the signature check);
- ``receipts_vs_tokens_ratio``: verifying 1,000 decision receipts offline as the client does
  (``sync.receipts.receipt_from_row``: the batch signature with the cached key set, the
  receipt's Merkle path, then what it names; each receipt checked alone, nothing cached)
  over verifying 1,000 distinct access tokens (``TokenValidator.decode``:
  signature, issuer, audience, lifetime) in the same run, one of each per round, alternating
  which goes first; the ratio of the medians over every sample (p95s printed beside).

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
from typing import Any

import httpx

# ``python bench/NAME.py`` puts only bench/ on sys.path; the shared helpers are ``bench.*``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._stub import running_stub
from sync.auth import Authenticator
from sync.tokens import MemoryVault

TARGETS: dict[str, dict[str, float]] = {"refresh_p95_ms": {"max": 20},
                                        "validation_overhead_ratio": {"max": 1.2},
                                        "validation_overhead_uncached_ratio": {"max": 1.5},
                                        "receipts_vs_tokens_ratio": {"max": 1.5}}
SHORT = os.environ.get("BENCH_SHORT") == "1"
REFRESHES = 60 if SHORT else 300
ROUNDS = 150 if SHORT else 600
WARMUP = 30
RECEIPTS = 1000


def stub(data_dir: Path, **env: str) -> AbstractContextManager[str]:
    # The API rate limit would throttle the benchmark itself, and it counts per bearer
    # token too, which is not the validation being measured: off in both stubs.
    return running_stub(data_dir, GOVSTUB_DISABLE_RATE_LIMIT="1", **env)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _refresh_timings(url: str) -> tuple[list[float], list[str]]:
    """Refresh timings, and every access token issued (all valid: rotation retires the
    refresh token, not the access tokens it issued)."""
    async with httpx.AsyncClient(timeout=10) as http:
        auth = Authenticator(url, vault=MemoryVault(), http=http)
        await auth.sign_in_with_password("governor", "governor")
        token = await auth.access_token()
        for _ in range(5):  # warm-up: connections, code paths
            token = await auth.refresh_after_401(token)
        timings = []
        tokens = [token]
        for i in range(max(REFRESHES, ROUNDS + WARMUP)):
            start = time.perf_counter()
            token = await auth.refresh_after_401(token)
            if i < REFRESHES:
                timings.append((time.perf_counter() - start) * 1000)
            tokens.append(token)
        await auth.aclose()
        return timings, tokens


def _validation_timings(auth_url: str, tokens: list[str], open_url: str
                        ) -> tuple[list[float], list[float]]:
    """``tokens``: one token for every request (cached validation), or a new one for each
    (uncached: at least ``WARMUP + ROUNDS`` distinct tokens)."""
    path = "/v1/mobile/dashboard"
    fresh = iter(tokens) if len(tokens) > 1 else None

    def bearer() -> dict[str, str]:
        return {"Authorization": f"Bearer {next(fresh) if fresh else tokens[0]}"}

    with httpx.Client(base_url=auth_url, timeout=10) as with_auth, \
            httpx.Client(base_url=open_url, timeout=10) as without:
        for client in (with_auth, without):
            for _ in range(WARMUP):
                response = client.get(path, headers=bearer() if client is with_auth else None)
                response.raise_for_status()
        on: list[float] = []
        off: list[float] = []
        for i in range(ROUNDS):
            pairs = [(with_auth, on), (without, off)]
            if i % 2:
                pairs.reverse()
            for client, sink in pairs:
                headers = bearer() if client is with_auth else None
                start = time.perf_counter()
                response = client.get(path, headers=headers)
                sink.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}: "
                                       f"{response.text[:200]}")
        return on, off


def _receipt_and_token_timings() -> tuple[list[float], list[float]]:
    """Offline checks, in this process: receipts signed by the stub's own signing code and
    kept in a client store, against access tokens issued by the stub's issuer and checked
    by its validator (a new validator: no token is in its cache)."""
    from backend_stub.domain.receipts import ReceiptSigner
    from backend_stub.oauth.access_tokens import TokenValidator
    from backend_stub.oauth.testing import make_test_app
    from sync.models import DecisionAction
    from sync.receipts import KeySet, decision_digest, receipt_from_row
    from sync.store import LocalStore, Outcome

    app = make_test_app()
    state = app.state
    signer = ReceiptSigner(state.keys, state.clock, issuer=state.settings.issuer)
    store = LocalStore()
    now = state.clock.now()
    claims: list[dict[str, Any]] = []
    for i in range(RECEIPTS):
        payload = {"id": f"d-{i}", "approval_id": f"REQ-{i:04d}", "action": "veto",
                   "category": "safety", "reason": f"reason {i}"}
        store.enqueue(entry_id=f"d-{i}", kind="decision", payload=payload, created_at=now,
                      approval_id=f"REQ-{i:04d}", action=DecisionAction.VETO, sub="governor")
        claims.append({"sub": "governor", "decision_id": f"d-{i}",
                       "approval_id": f"REQ-{i:04d}", "action": "veto",
                       "decision_digest": decision_digest(payload),
                       "applied_at": "2026-01-01T12:00:00Z", "approval_version": 2,
                       "audit": {"seq": i + 1, "hash": "0" * 64}})
    # As the stub answers them: batches of up to 500 decisions, one signature each.
    outcomes = [Outcome(c["decision_id"], applied=True, receipt=json.dumps(r))
                for start in range(0, RECEIPTS, 500)
                for c, r in zip(claims[start:start + 500],
                                signer.sign_receipts(claims[start:start + 500]),
                                strict=True)]
    store.record_outcomes(outcomes, now)
    store.save_signing_keys(state.keys.jwks(), now)
    rows = store.receipt_rows()
    keys = KeySet(store.signing_keys())
    tokens = [state.access_token_issuer.issue(sub="governor", username="governor",
                                              scopes=frozenset({"governance:read"}),
                                              client_id="governor-app").token
              for _ in range(RECEIPTS)]
    validator = TokenValidator(state.keys, state.oauth.store, state.clock,
                               issuer=state.settings.issuer)
    receipt_from_row(rows[0], keys)  # warm-up: the key parsed once, code paths loaded
    receipts_ms: list[float] = []
    tokens_ms: list[float] = []
    for i, (row, token) in enumerate(zip(rows, tokens, strict=True)):
        order = [0, 1] if i % 2 else [1, 0]
        for which in order:
            start = time.perf_counter()
            if which == 0:
                checked = receipt_from_row(row, keys)
                receipts_ms.append((time.perf_counter() - start) * 1000)
                if checked.status != "verified":
                    raise RuntimeError(f"receipt {row['decision_id']}: {checked.problem}")
            else:
                validator.decode(token)
                tokens_ms.append((time.perf_counter() - start) * 1000)
    store.close()
    state.db.dispose()
    return receipts_ms, tokens_ms


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-auth-") as tmp:
        root = Path(tmp)
        with stub(root / "auth") as auth_url, \
                stub(root / "open", GOVSTUB_DISABLE_AUTH="1") as open_url:
            refresh, tokens = asyncio.run(_refresh_timings(auth_url))
            on, off = _validation_timings(auth_url, tokens[-1:], open_url)
            on_new, off_new = _validation_timings(auth_url, tokens, open_url)
    receipts_ms, tokens_ms = _receipt_and_token_timings()

    # Each round times the two stubs back to back, so a round's ratio sees one load on the
    # machine; the median over rounds is robust to the bursts other processes cause.
    paired = statistics.median(a / b for a, b in zip(on, off, strict=True))
    paired_new = statistics.median(a / b for a, b in zip(on_new, off_new, strict=True))
    figures = {
        "refresh_p95_ms": round(_percentile(refresh, 0.95), 2),
        "validation_overhead_ratio": round(paired, 3),
        "validation_overhead_uncached_ratio": round(paired_new, 3),
        "receipts_vs_tokens_ratio": round(
            _percentile(receipts_ms, 0.5) / _percentile(tokens_ms, 0.5), 3),
    }
    rows = [
        ("token refresh (ms)", refresh),
        ("dashboard, token validated (ms)", on),
        ("dashboard, validation off (ms)", off),
        ("dashboard, new token each (ms)", on_new),
        ("dashboard, validation off, 2 (ms)", off_new),
        ("receipt checked offline (ms)", receipts_ms),
        ("access token checked (ms)", tokens_ms),
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
