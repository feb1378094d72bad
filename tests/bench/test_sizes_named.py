"""A figure from a smaller (short-mode) run carries its size in its name (issue #17)."""

from __future__ import annotations

import importlib
import re
from types import ModuleType

import pytest


def _load(monkeypatch: pytest.MonkeyPatch, short: bool) -> ModuleType:
    monkeypatch.setenv("BENCH_SHORT", "1" if short else "0")
    import bench.sync

    return importlib.reload(bench.sync)


def test_short_mode_names_carry_the_size(monkeypatch: pytest.MonkeyPatch) -> None:
    full = _load(monkeypatch, short=False)
    assert full.named("drain_vs_limit_ratio") == "drain_vs_limit_ratio"
    assert "drain_vs_limit_ratio" in full.TARGETS
    short = _load(monkeypatch, short=True)
    assert short.named("drain_vs_limit_ratio") == "drain_2k_vs_limit_ratio"
    for name, short_name in short.SHORT_NAMES.items():
        assert short_name != name and re.search(r"(^|_)(2k|20k)(_|$)", short_name), short_name
    # No target of a sized figure keeps its full-size name in short mode.
    assert not set(short.TARGETS) & set(short.SHORT_NAMES)
    _load(monkeypatch, short=False)
