"""The runner's baseline and ratio columns and the README table (``latest.md``)."""

from __future__ import annotations

from bench.__main__ import as_markdown, table


def test_a_reported_baseline_shows_with_its_ratio() -> None:
    text = table([{"bench": "load", "figures": {"approvals_p50_ms": 200.0, "errors": 0},
                   "targets": {"errors": {"max": 0}},
                   "baselines": {"approvals_p50_ms": 4.0}}])
    header, _, first, second = text.splitlines()
    assert header.split() == ["bench", "figure", "value", "baseline", "ratio", "target",
                              "met"]
    assert first.split() == ["load", "approvals_p50_ms", "200", "4", "50"]
    assert second.split() == ["load", "errors", "0", "max", "0", "yes"]


def test_a_zero_or_missing_baseline_gives_no_ratio() -> None:
    text = table([{"bench": "x", "figures": {"a": 1.0, "b": 2.0}, "baselines": {"a": 0}}])
    rows = [line.split() for line in text.splitlines()[2:]]
    assert rows == [["x", "a", "1", "0"], ["x", "b", "2"]]


def test_the_readme_table_names_its_commit_date_machine_and_mode() -> None:
    report = {"date": "2026-11-21T06:00:00+00:00", "machine": "box x86_64 2 cores",
              "commit": "abc123", "short": False, "load_start": "1.00 0.50 0.20",
              "load_end": "2.00 1.00 0.50", "results": [{"bench": "x", "figures": {"a": 1}}]}
    text = as_markdown(report)
    assert text.startswith("Run 2026-11-21T06:00:00+00:00, commit abc123, on box x86_64 "
                           "2 cores (full mode; load average 1.00 0.50 0.20 at the start")
    assert "```\nfull mode: the sizes" in text and "x  " in text


def test_a_short_run_is_never_shown_as_a_full_one() -> None:
    report = {"date": "2026-11-21T06:00:00+00:00", "machine": "box", "short": True,
              "results": [{"bench": "x", "figures": {"a": 1}}]}
    text = as_markdown(report)
    assert "(short mode: indicative, reduced sizes)" in text
    assert "```\nshort mode (BENCH_SHORT=1)" in text
    assert "full mode" not in text
