"""Run every benchmark in bench/ and print one table.

``python -m bench [--short] [--only NAME ...] [--out PATH]``

Each ``bench/NAME.py`` runs alone in its own process and ends its output with one JSON
line ``{"bench", "figures", "targets", "ok"}``; this runner collects those lines, prints
figure / target / met for every figure, and writes them all as JSON
(``bench/results/latest.json`` by default) so that runs can be compared.
``--short`` sets ``BENCH_SHORT=1``: benchmarks shrink their sizes (CI uses it; the
figures are then indicative, never asserted), a figure from a smaller run carries its size
in its name (``drain_2k_vs_limit_ratio``), the table's first line says ``short mode``, and
the report goes to ``bench/results/latest-short.json`` (and ``.md``) unless ``--out`` says
otherwise: ``latest.json``, the one committed beside the README's table, is a full run's.
Every report names the commit (``+dirty`` with uncommitted changes), date, machine, mode
and the load average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_"))


def last_json_line(output: str) -> dict[str, Any] | None:
    for line in reversed(output.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def run_one(name: str, *, short: bool, timeout: float) -> dict[str, Any]:
    env = {**os.environ, "BENCH_SHORT": "1" if short else "0"}
    started = time.monotonic()
    try:
        proc = subprocess.run([sys.executable, str(HERE / f"{name}.py")], capture_output=True,
                              text=True, env=env, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return {"bench": name, "error": f"timed out after {timeout:.0f} s", "ok": False}
    elapsed = time.monotonic() - started
    result = last_json_line(proc.stdout)
    if proc.returncode != 0 or result is None:
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        return {"bench": name, "error": f"exit {proc.returncode}", "output_tail": tail,
                "ok": False, "seconds": round(elapsed, 1)}
    result["seconds"] = round(elapsed, 1)
    return result


def met(value: float, target: dict[str, float]) -> bool:
    if "max" in target and value > target["max"]:
        return False
    return not ("min" in target and value < target["min"])


def table(results: list[dict[str, Any]], *, short: bool | None = None) -> str:
    """One row per figure: its value, the baseline the bench measured it against (when it
    reports ``baselines``: figure -> value, e.g. the same thing alone or without a feature)
    and the ratio to it, the target and whether it is met. With ``short`` given, a first
    line names the mode, so a short run is never taken for a full one."""
    rows = [("bench", "figure", "value", "baseline", "ratio", "target", "met")]
    for result in results:
        if "error" in result:
            rows.append((result["bench"], "(failed)", result["error"], "", "", "", "no"))
            continue
        figures: dict[str, Any] = result.get("figures", {})
        targets: dict[str, dict[str, float]] = result.get("targets", {})
        baselines: dict[str, Any] = result.get("baselines", {})
        for figure, value in figures.items():
            base = baselines.get(figure)
            ratio = ""
            if isinstance(base, int | float) and isinstance(value, int | float) and base:
                ratio = f"{value / base:.3g}"
            base_text = _fmt(base) if base is not None else ""
            target = targets.get(figure)
            if target is None:
                rows.append((result["bench"], figure, _fmt(value), base_text, ratio, "", ""))
                continue
            bound = " ".join(f"{k} {v:g}" for k, v in target.items())
            ok = isinstance(value, int | float) and met(float(value), target)
            rows.append((result["bench"], figure, _fmt(value), base_text, ratio, bound,
                         "yes" if ok else "NO"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if short is not None:
        lines.insert(0, MODE_LINE[short])
    return "\n".join(lines)


MODE_LINE = {True: "short mode (BENCH_SHORT=1): reduced sizes, figures indicative, "
                   "named by the size they were measured at",
             False: "full mode: the sizes the figures are named for"}


def commit() -> str:
    """The commit the run measured, ``+dirty`` when the tree has uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, cwd=HERE.parent, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=HERE.parent, timeout=10,
                               check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "unknown"


def as_markdown(report: dict[str, Any]) -> str:
    """The table as the README shows it, with the commit, date, machine and mode."""
    short = bool(report.get("short"))
    mode = "short mode: indicative, reduced sizes" if short else "full mode"
    load = (f"; load average {report['load_start']} at the start, {report['load_end']} at "
            "the end" if "load_start" in report else "")
    return (f"Run {report['date']}, commit {report.get('commit', 'unknown')}, on "
            f"{report['machine']} ({mode}{load}):\n\n```\n"
            f"{table(report['results'], short=short)}\n```\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="smaller sizes (CI)")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names to run")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/latest.json, or latest-short.json "
                             "with --short")
    args = parser.parse_args(argv)
    names = args.only or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; known: {', '.join(discover())}")
    out: Path = args.out or HERE / "results" / ("latest-short.json" if args.short
                                                  else "latest.json")
    started = {"commit": commit(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
               "load_start": load_average()}
    results = []
    for name in names:
        print(f"running bench/{name}.py ...", flush=True)
        results.append(run_one(name, short=args.short, timeout=args.timeout))
    print()
    print(table(results, short=args.short))
    report = {
        **started,
        "load_end": load_average(),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores "
                   f"python {platform.python_version()}",
        "short": args.short,
        "mode": "short" if args.short else "full",
        "results": results,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    markdown = out.with_suffix(".md")
    markdown.write_text(as_markdown(report))
    print(f"\nwritten to {out} and {markdown}"
          + (" (short mode: not the README's table)" if args.short else " (the README's table)"))
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
