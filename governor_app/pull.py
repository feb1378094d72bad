"""Pull to refresh on a list (Flet 1.0.5 has no RefreshIndicator): a drag down past the
top of a list, reported by its scroll events as overscroll at the start, asks for one
refresh per gesture once it has gone far enough. No Flet here."""

from __future__ import annotations

# How far past the top (logical pixels) a drag must pull. The distance seen is a lower
# bound: a list's ``scroll_interval`` (100 ms on the approvals list) drops the events in
# between, each of which carries only its own frame's overscroll.
PULL_PX = 40.0


class PullGesture:
    """Fed each scroll event of one list; ``feed`` says when to refresh."""

    def __init__(self, threshold: float = PULL_PX) -> None:
        self.threshold = threshold
        self._pulled = 0.0
        self._fired = False

    def feed(self, event_type: str, overscroll: float | None) -> bool:
        """True once per gesture, when the pull past the top reaches the threshold."""
        if event_type in ("start", "end"):
            self._pulled = 0.0
            self._fired = False
            return False
        if event_type != "overscroll" or overscroll is None or overscroll >= 0:
            return False  # overscroll past the end is not a pull
        self._pulled -= overscroll
        if self._fired or self._pulled < self.threshold:
            return False
        self._fired = True
        return True
