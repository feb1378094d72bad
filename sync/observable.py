"""Listeners of an observable object: the engine, the in-app banners, the app's services.

One listener that raises must not keep the others (a screen, the push banners) from
hearing of the change: it is logged and the next one is called.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Generic, ParamSpec

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
