"""deploy/prometheus: the alerting rules pass promtool's checks and unit tests, and every
metric (and label) they use is one a real stub exports at /metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_stub_process import token_for
from tests.support.services import in_ci
from tests.support.stub_process import StubProcess

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
# Seed 000's thresholds and the metric each alert reads.
EXPECTED = {"ComponentErrorRateHigh": ("http_requests_total", "0.01"),
            "CacheHitRateLow": ("cache_hits_total", "0.5"),
            "BudgetUtilisationHigh": ("budget_utilisation_ratio", "0.9")}
_FUNCTIONS = {"sum", "rate", "by", "without", "avg", "max", "min", "count", "irate",
              "increase", "on", "ignoring"}


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        if in_ci():
            pytest.fail("promtool is missing; .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, cwd=RULES,
                          timeout=120, check=False)


def alerts() -> dict[str, str]:
    groups = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def selectors(expr: str) -> dict[str, set[str]]:
    """Each metric an expression reads, with the label names its selectors name."""
    found: dict[str, set[str]] = {}
    without_groupings = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)
    for name, labels in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?",
                                   re.sub(r"\[[^\]]*\]", "", without_groupings)):
        if name in _FUNCTIONS:
            continue
        found.setdefault(name, set()).update(re.findall(r"([a-zA-Z_]\w*)\s*!?[=~]", labels))
    return found


def test_the_rules_pass_promtool_check() -> None:
    checked = run("check", "rules", "alerts.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 3 rules found" in checked.stdout


def test_the_rules_fire_past_their_thresholds_and_not_below() -> None:
    tested = run("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_each_alert_reads_its_metric_at_seed_000s_threshold() -> None:
    rules = alerts()
    assert set(rules) == set(EXPECTED)
    for alert, (metric, threshold) in EXPECTED.items():
        assert set(selectors(rules[alert])) == {metric}, alert
        assert re.search(rf"[<>]\s*{re.escape(threshold)}\s*$", rules[alert].strip()), alert


def test_every_metric_and_label_the_rules_use_is_exported_by_a_real_stub(
        tmp_path: Path) -> None:
    stub = StubProcess(tmp_path / "stub").start()
    try:
        token = token_for(stub)
        with stub.client() as client:
            for _ in range(2):  # a miss, then a hit: the cache's counter has samples
                board = client.get("/v1/mobile/dashboard",
                                   headers={"Authorization": f"Bearer {token}"})
                assert board.status_code == 200, board.text
            scraped = client.get("/metrics").text
    finally:
        stub.stop()
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    used: dict[str, set[str]] = {}
    for expr in alerts().values():
        for metric, labels in selectors(expr).items():
            used.setdefault(metric, set()).update(labels)
    assert used == {"http_requests_total": {"status"}, "cache_hits_total": {"level"},
                    "budget_utilisation_ratio": set()}
    for metric, labels in used.items():
        assert metric in exported, f"{metric} is not in the stub's /metrics"
        assert labels <= exported[metric], f"{metric} lacks labels {labels - exported[metric]}"
    assert "agent" in exported["budget_utilisation_ratio"]  # the rule's summary names it
