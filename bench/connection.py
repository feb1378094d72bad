"""Connection truth: the real app in headless Chromium against the real stub process.

- ``offline_shown_s``: from the stub killed (SIGKILL, as a crash or a lost network) to the
  app showing "Offline", with no reload (target max 2).
- ``online_drained_s``: from the stub listening again on the same port to the app showing
  "Online" and a decision queued while it was away applied on the stub, as the stub itself
  reports (target max 2).
  ``online_shown_s`` (informational) is the part until "Online" shows.
- ``idle_requests_per_hour``: HTTP requests the signed-in, idle app makes while its event
  stream is live, heartbeats aside, counted by the stub itself (``http_requests_total`` of
  ``GET /metrics``, less the reads of it) over ``IDLE_S`` and scaled to an hour (max 6).

The issue states these three as absolute figures, so they are kept so. Beside them, for
information, the baselines the design sets: the probe's longest wait between two asks
(``probe_max_interval``), the time a periodic sync alone would take to notice (the sync
interval), and the requests per hour of that periodic sync without the event stream (one
full sync is 8 or so requests every 30 s). Medians of ``ROUNDS`` outages, worst beside.
``BENCH_SHORT=1`` does fewer rounds and a shorter idle window.
Last line: one JSON object ``{"bench": "connection", "figures", "targets", "baselines",
"ok"}``.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sync.settings import GovernorSettings
from tests.browser.harness import (
    DESKTOP,
    AppProcess,
    button,
    by_id,
    governor_token,
    launch_chromium,
    nav,
    open_app,
    sign_in,
    wait_for_text,
)
from tests.support.stub_process import StubProcess

SHORT = os.environ.get("BENCH_SHORT") == "1"
ROUNDS = 2 if SHORT else 4
IDLE_S = 30.0 if SHORT else 60.0
TARGETS: dict[str, dict[str, float]] = {
    "offline_shown_s": {"max": 2}, "online_drained_s": {"max": 2},
    "idle_requests_per_hour": {"max": 6}}
STATE_SAYS = """([needle]) => {
  const el = document.querySelector('[flt-semantics-identifier="connection-state"]');
  if (!el) return false;
  let t = (el.getAttribute('aria-label') || '') + ' ' + el.innerText;
  for (const c of el.querySelectorAll('[aria-label]')) t += ' ' + c.getAttribute('aria-label');
  return t.includes(needle);
}"""


def requests_answered(stub: StubProcess) -> float:
    """Every request the stub answered so far, but its own /metrics reads."""
    text = httpx.get(f"{stub.url}/metrics", timeout=10).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != "http_requests":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.labels.get("route") != "/metrics":
                total += sample.value
    return total


def stub_status(stub: StubProcess, token: str, approval_id: str) -> str | None:
    try:
        body = httpx.get(f"{stub.url}/v1/mobile/approvals/{approval_id}", timeout=2,
                         headers={"Authorization": f"Bearer {token}"}).json()
    except httpx.HTTPError:
        return None
    return str((body.get("data") or {}).get("status"))


def pending_ids(page: Any) -> list[str]:
    nav(page, "Approvals")
    button(page, "Pending").click()
    rows = page.locator('[flt-semantics-identifier^="approval-REQ"]')
    rows.first.wait_for()
    return [(r.get_attribute("flt-semantics-identifier") or "").removeprefix("approval-")
            for r in rows.all()]


def approve_offline(page: Any, approval_id: str) -> None:
    by_id(page, f"approval-{approval_id}").click()
    button(page, "Approve").click()
    button(page, "Confirm approval").click()
    wait_for_text(page, "connection-banner", "1 decision(s) wait")
    button(page, "Back to approvals").click()


def wait_state(page: Any, needle: str) -> None:
    page.wait_for_function(STATE_SAYS, arg=[needle], timeout=60_000, polling="raf")


def measure() -> tuple[dict[str, float], dict[str, float]]:
    from playwright.sync_api import sync_playwright

    offline_s: list[float] = []
    online_s: list[float] = []
    shown_s: list[float] = []  # of online_drained_s, until "Online" shows
    with tempfile.TemporaryDirectory(prefix="bench-connection-") as tmp:
        stub = StubProcess(Path(tmp) / "stub",
                           env={"GOVSTUB_DISABLE_RATE_LIMIT": "true"}).start()
        try:
            with AppProcess(["app", "--server", stub.url], data_dir=Path(tmp) / "app",
                            env={"GOVERNOR_STEP_UP_FOR_VETO": "false"}) as app, \
                    sync_playwright() as pw:
                browser = launch_chromium(pw)
                try:
                    page = open_app(browser, app.url, DESKTOP)
                    sign_in(page, "governor", "governor")
                    by_id(page, "figure-active-agents").wait_for()
                    wait_state(page, "Online")
                    ids = pending_ids(page)
                    token = governor_token(stub)  # the judge's key; it outlives restarts
                    nav(page, "Dashboard")
                    time.sleep(5)  # the first sync and the stream's opening settle
                    before = requests_answered(stub)
                    time.sleep(IDLE_S)
                    idle = requests_answered(stub) - before
                    nav(page, "Approvals")
                    for i in range(ROUNDS):
                        started = time.perf_counter()
                        stub.stop(kill=True)
                        wait_state(page, "Offline")
                        offline_s.append(time.perf_counter() - started)
                        approval_id = ids[i]
                        approve_offline(page, approval_id)
                        stub.start()
                        started = time.perf_counter()
                        wait_state(page, "Online")
                        shown_s.append(time.perf_counter() - started)
                        while stub_status(stub, token, approval_id) != "approved":
                            time.sleep(0.02)
                            if time.perf_counter() - started > 120:
                                raise RuntimeError(f"{approval_id} was never applied")
                        online_s.append(time.perf_counter() - started)
                finally:
                    browser.close()
        finally:
            stub.stop()
    settings = GovernorSettings()
    figures = {"offline_shown_s": round(statistics.median(offline_s), 2),
               "offline_shown_s_worst": round(max(offline_s), 2),
               "online_drained_s": round(statistics.median(online_s), 2),
               "online_drained_s_worst": round(max(online_s), 2),
               "online_shown_s": round(statistics.median(shown_s), 2),
               "idle_requests_per_hour": round(idle * 3600 / IDLE_S, 1)}
    baselines = {"offline_shown_s": settings.probe_max_interval,
                 "online_drained_s": settings.sync_interval,
                 "idle_requests_per_hour": 8 * 3600 / settings.sync_interval}
    return figures, baselines


def main() -> None:
    figures, baselines = measure()
    for name, value in figures.items():
        base = f" (baseline {baselines[name]})" if name in baselines else ""
        print(f"{name}: {value}{base}")
    ok = all(figures[name] <= target["max"] for name, target in TARGETS.items())
    print(json.dumps({"bench": "connection", "figures": figures, "targets": TARGETS,
                      "baselines": baselines, "ok": ok}))


if __name__ == "__main__":
    main()
