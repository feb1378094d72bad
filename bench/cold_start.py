"""Cold start: the governor app (server down, dashboard cached) to the dashboard visible in
headless Chromium, beside a bare Flet hello-world measured in the same run.

``python bench/cold_start.py``; ``BENCH_SHORT=1`` runs fewer rounds. Last line: one JSON
object ``{"bench": "cold_start", "figures", "targets", "ok"}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# ``python bench/NAME.py`` puts only bench/ on sys.path; the shared helpers are ``bench.*``.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._coldstart import cold_start_figures

TARGETS = {"cold_start_ratio": {"max": 1.3}}


def main() -> None:
    figures = cold_start_figures()
    for name, value in figures.items():
        print(f"{name}: {value}")
    ok = figures["cold_start_ratio"] <= TARGETS["cold_start_ratio"]["max"]
    print(json.dumps({"bench": "cold_start", "figures": figures, "targets": TARGETS,
                      "ok": ok}))


if __name__ == "__main__":
    main()
