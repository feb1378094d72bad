"""Run every benchmark in bench/ and print one table.

``python -m bench [--short] [--only NAME ...] [--out PATH]``

Each ``bench/NAME.py`` runs alone in its own process and ends its output with one JSON
line ``{"bench", "figures", "targets", "ok"}``; this runner collects those lines, prints
figure / target / met for every figure, and writes them all as JSON
(``bench/results/latest.json`` by default) so that runs can be compared.
``--short`` sets ``BENCH_SHORT=1``: benchmarks shrink their sizes (CI uses it; the
figures are then indicative, never asserted).
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


def table(results: list[dict[str, Any]]) -> str:
    """One row per figure: its value, the baseline the bench measured it against (when it
    reports ``baselines``: figure -> value, e.g. the same thing alone or without a feature)
    and the ratio to it, the target and whether it is met."""
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
    return "\n".join(lines)


def as_markdown(report: dict[str, Any]) -> str:
    """The table as the README shows it, with the date and the machine it came from."""
    mode = " (short mode: indicative)" if report.get("short") else ""
    return (f"Run {report['date']} on {report['machine']}{mode}:\n\n```\n"
            f"{table(report['results'])}\n```\n")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="smaller sizes (CI)")
    parser.add_argument("--only", nargs="*", default=None, help="benchmark names to run")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per benchmark")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    args = parser.parse_args(argv)
    names = args.only or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)}; known: {', '.join(discover())}")
    results = []
    for name in names:
        print(f"running bench/{name}.py ...", flush=True)
        results.append(run_one(name, short=args.short, timeout=args.timeout))
    print()
    print(table(results))
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cores "
                   f"python {platform.python_version()}",
        "short": args.short,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    markdown = args.out.with_suffix(".md")
    markdown.write_text(as_markdown(report))
    print(f"\nwritten to {args.out} and {markdown} (the README's table)")
    return 0 if all(r.get("ok") for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
