"""Small helpers the components share: time from a clock, canonical JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from backend_stub.clock import Clock


def timer_from(clock: Clock | None) -> Callable[[], float]:
    """Seconds as a float: the clock's when one is given (tests and the demo move it),
    else the monotonic clock (never jumps backwards)."""
    if clock is None:
        return time.monotonic
    return lambda: clock.now().timestamp()


def canonical_json(value: Any) -> str:
    """The one byte-exact JSON form signatures and hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
