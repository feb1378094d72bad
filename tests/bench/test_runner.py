from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import last_json_line, main, met, table


def test_last_json_line_takes_the_final_object() -> None:
    out = 'table\n{"not": "this"}\nmore\n{"bench": "x", "ok": true}\n'
    assert last_json_line(out) == {"bench": "x", "ok": True}


def test_last_json_line_rejects_garbage() -> None:
    assert last_json_line("no json here") is None
    assert last_json_line("{broken") is None


@pytest.mark.parametrize(
    ("value", "target", "expected"),
    [(1.0, {"max": 1.3}, True), (1.4, {"max": 1.3}, False), (6000, {"min": 5000}, True),
     (10, {"min": 50}, False)],
)
def test_met(value: float, target: dict[str, float], expected: bool) -> None:
    assert met(value, target) is expected


def test_table_marks_misses_and_failures() -> None:
    text = table([
        {"bench": "a", "figures": {"r": 1.5, "info": 3}, "targets": {"r": {"max": 1.3}}},
        {"bench": "b", "error": "exit 1"},
    ])
    assert "NO" in text and "(failed)" in text and "max 1.3" in text


def test_unknown_benchmark_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--only", "no_such_bench"])
    assert "no benchmark named no_such_bench" in capsys.readouterr().err


def test_runner_writes_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.__main__ as runner

    fake = tmp_path / "fake.py"
    fake.write_text('import json\nprint("hello")\nprint(json.dumps({"bench": "fake", '
                    '"figures": {"x": 1}, "targets": {"x": {"max": 2}}, "ok": True}))\n')
    monkeypatch.setattr(runner, "HERE", tmp_path)
    out = tmp_path / "r.json"
    assert runner.main(["--only", "fake", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["results"][0]["figures"] == {"x": 1}
    assert report["mode"] == "full" and report["short"] is False
    assert report["commit"] and "load_start" in report and "load_end" in report
    assert out.with_suffix(".md").read_text().startswith(f"Run {report['date']}, commit ")


def test_a_short_run_writes_its_own_report(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The short mode's report never lands in latest.json, the full run's."""
    import bench.__main__ as runner

    (tmp_path / "fake.py").write_text(
        'import json, os\nprint(json.dumps({"bench": "fake", "figures": {"short": '
        'os.environ["BENCH_SHORT"]}, "ok": True}))\n')
    monkeypatch.setattr(runner, "HERE", tmp_path)
    assert runner.main(["--short", "--only", "fake"]) == 0
    assert not (tmp_path / "results" / "latest.json").exists()
    report = json.loads((tmp_path / "results" / "latest-short.json").read_text())
    assert report["mode"] == "short" and report["results"][0]["figures"] == {"short": "1"}
    assert "short mode" in (tmp_path / "results" / "latest-short.md").read_text()
