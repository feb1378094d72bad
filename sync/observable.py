"""Listeners of an observable object: the engine, the in-app banners, the app's services.

One listener that raises must not keep the others (a screen, the push banners) from
hearing of the change: it is logged and the next one is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec

P = ParamSpec("P")


class Listeners(Generic[P]):
    """``subscribe(listener) -> unsubscribe``; ``emit(*args)`` calls each listener."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._items: list[Callable[P, None]] = []
        self._log = logger
        self._what = what

    def subscribe(self, listener: Callable[P, None]) -> Callable[[], None]:
        self._items.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):  # twice is harmless
                self._items.remove(listener)

        return unsubscribe

    def emit(self, *args: P.args, **kwargs: P.kwargs) -> None:
        for listener in list(self._items):  # a listener may unsubscribe while called
            try:
                listener(*args, **kwargs)
            except Exception:
                self._log.exception("%s failed on %r", self._what, args)


def spawn_on(loop: asyncio.AbstractEventLoop | None,
             make: Callable[[], Coroutine[Any, Any, Any]],
             tasks: set[asyncio.Task[Any]]) -> None:
    """Run ``make()`` as a task on ``loop`` and keep it in ``tasks`` until it is done, from
    the loop's own thread or another (a client tells its listeners from the thread that
    changed it); nothing when there is no loop, or it is closed."""
    if loop is None or loop.is_closed():
        return

    def schedule() -> None:
        task = loop.create_task(make())
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        schedule()
    else:
        loop.call_soon_threadsafe(schedule)
