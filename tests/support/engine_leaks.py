"""The suite's guard against engines left running: a ``SyncEngine`` task (its probe, a
flush, a catch-up) still pending when its event loop is closed can never finish; it is
only destroyed later, wherever the garbage collector happens to run, and asyncio logs
"Task was destroyed but it is pending!" at the end of the run, far from the test that
left it. The guard names that test instead (``tests/conftest.py``).

Cheap: the engines built are kept in a weak set, and after each test only those still
alive are looked at; a pending task on a closed loop is a leak, never a false alarm
(``asyncio.run`` cancels what is left before it closes its loop)."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

import pytest

from sync.engine import SyncEngine

TASKS = ("_probe_task", "_flush_task", "_catch_up_task")


class EngineLeaks:
    """Tracks the ``SyncEngine`` instances built while installed."""

    def __init__(self) -> None:
        self._engines: weakref.WeakSet[SyncEngine] = weakref.WeakSet()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        original = SyncEngine.__init__
        engines = self._engines

        def tracked(engine: SyncEngine, *args: Any, **kwargs: Any) -> None:
            original(engine, *args, **kwargs)
            engines.add(engine)

        monkeypatch.setattr(SyncEngine, "__init__", tracked)

    def track(self, engine: SyncEngine) -> None:
        """Watch one engine built otherwise (the guard's own tests)."""
        self._engines.add(engine)

    def leaked(self) -> list[str]:
        """What is pending on a closed loop, once per engine (it is then forgotten)."""
        found = []
        for engine in list(self._engines):
            pending = [name for name in TASKS if _stranded(getattr(engine, name, None))]
            if pending:
                self._engines.discard(engine)
                found.append(f"{engine.settings.server_url}: {', '.join(pending)}")
        return found


def _stranded(task: asyncio.Task[None] | None) -> bool:
    return task is not None and not task.done() and task.get_loop().is_closed()


def failure(leaks: list[str]) -> str:
    return ("The test left SyncEngine task(s) pending on an event loop it closed: "
            f"{'; '.join(leaks)}. Await engine.stop() on that loop before closing it "
            "(or run the loop with asyncio.run, which cancels what is left).")
