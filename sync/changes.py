"""What changed on a request between the version a governor decided on and the server's
current one: the fields a version conflict is about, each as it was seen and as it is now.

Compared on the request as cached (the server's JSON), field by field; the bookkeeping that
changes with every version (the version itself, timestamps of the change) is left out, as
is this device's own pending decision."""

from __future__ import annotations

import json
from typing import Any

from sync.models import FieldChange

BOOKKEEPING = frozenset({"version", "updated_at", "pending_decision"})
# A list item named by the first of these it has (a pipeline stage, a seed match ...).
_ITEM_NAMES = ("stage", "id", "seed_id", "name", "kind")
_LONGEST = 120


def _short(text: str) -> str:
    # Three dots, not U+2026: the app's bundled font has no ellipsis glyph.
    return text if len(text) <= _LONGEST else text[:_LONGEST - 3] + "..."


def _item(value: Any) -> str:
    if isinstance(value, dict):
        name = next((str(value[k]) for k in _ITEM_NAMES if value.get(k) is not None), None)
        status = value.get("status")
        if name is not None:
            return f"{name} {status}" if isinstance(status, str) else name
        return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return str(value)


def in_words(value: Any) -> str:
    """A field's value, short enough for a line on a phone."""
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, list):
        return _short(", ".join(_item(v) for v in value))
    return _short(_item(value))


def changed_fields(seen: dict[str, Any], now: dict[str, Any]) -> list[FieldChange]:
    """The fields of ``now`` that differ from ``seen``, in name order."""
    names = sorted((set(seen) | set(now)) - BOOKKEEPING)
    return [FieldChange(field=n, seen=in_words(seen.get(n)), now=in_words(now.get(n)))
            for n in names if seen.get(n) != now.get(n)]
