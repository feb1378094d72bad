"""Words and numbers as the governor reads them: ages, countdowns, sizes, labels."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from sync import rules


def age(then: datetime | None, now: datetime) -> str:
    """How long ago, in the largest unit that reads naturally ("5 min ago")."""
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 10:
        return "just now"
    return f"{_span(seconds)} ago"


def _span(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d"


def countdown(deadline: datetime | None, now: datetime) -> str:
    """Time left before a server deadline as H:MM:SS, or "closed" once it has passed."""
    if deadline is None:
        return "no veto window"
    if not rules.window_open(deadline, now):
        return "closed"
    total = int((deadline - now).total_seconds())
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d} left"


def countdown_short(deadline: datetime | None, now: datetime) -> str:
    """The same to the minute while an hour or more is left ("23 h 04 min left"), to the
    second in the last hour: for lists, where a per-second tick of every row would redraw
    the list every second."""
    if deadline is None or deadline - now < timedelta(hours=1):
        return countdown(deadline, now)
    total = int((deadline - now).total_seconds())
    return f"{total // 3600} h {total % 3600 // 60:02d} min left"


def short_time(moment: datetime | None) -> str:
    """The moment on the device's clock face, with its zone ("03 Dec 18:20 CET")."""
    if moment is None:
        return "—"
    local = moment.astimezone()  # a naive moment is the device's own time already
    return local.strftime("%d %b %H:%M ") + (local.tzname() or "")


def moment(value: datetime | str | None, now: datetime) -> str:
    """A moment as the governor reads it: relative, then on the device's clock
    ("5 min ago, 03 Dec 18:20 CET"; "in 2 h 4 min, ..."). Accepts the server's ISO 8601
    strings (as they come in error details); one that does not parse is said as such."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return f"an unreadable time ({value!r})"
    if value.tzinfo is None:
        value = value.replace(tzinfo=now.tzinfo)
    ahead = int((value - now).total_seconds())
    relative = age(value, now) if ahead <= 0 else f"in {_span(max(ahead, 1))}"
    return f"{relative}, {short_time(value)}"


def size(num_bytes: int) -> str:
    if num_bytes < 1024:
        return f"{num_bytes} B"
    if num_bytes < 1024 * 1024:
        return f"{num_bytes / 1024:.1f} KB"
    return f"{num_bytes / 1024 / 1024:.1f} MB"


def percent(fraction: float) -> str:
    return f"{fraction * 100:.0f} %"


def humanise(token: str) -> str:
    """``genesis_certification`` -> ``Genesis certification``."""
    text = token.replace("_", " ").replace(".", " ")
    return text[:1].upper() + text[1:]


# Words for the server's tokens. A token missing here falls back to ``humanise``.
DECISIONS = {"approve": "approved", "request_changes": "changes requested",
             "veto": "vetoed"}
INDUSTRIES = {"coe": "Centre of Excellence", "public_sector": "Public sector"}


def decision(action: object) -> str:
    """A decision the server reports (``request_changes``) as words ("changes
    requested"); an enum is read by its value."""
    token = str((action.value if isinstance(action, Enum) else action) or "")
    return DECISIONS.get(token, humanise(token).lower() or "decided")


def industry(token: str) -> str:
    """``coe`` -> ``Centre of Excellence``; ``public_sector`` -> ``Public sector``."""
    return INDUSTRIES.get(token, humanise(token))


def amount(value: object, unit: str = "") -> str:
    """A budget figure: thousands grouped, no ``.0`` on whole numbers (``2000.0`` ->
    ``2,000``), cents kept on money (``12.5`` with unit ``USD`` -> ``12.50 USD``). Text
    that is no number is shown as it is."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return str(value)
    try:
        number = float(value)
    except ValueError:
        return str(value)
    if number != number or number in (float("inf"), float("-inf")):
        return str(value)
    if number.is_integer():
        text = f"{int(number):,}"
    else:
        text = f"{number:,.2f}" if unit == "USD" else f"{number:,.2f}".rstrip("0")
    return f"{text} {unit}" if unit else text


def budget_item(key: str, value: object) -> tuple[str, str]:
    """One line of a request's budget: ``max_monthly_cost_usd: 2000.0`` ->
    ``("Max monthly cost", "2,000 USD")``."""
    unit = "USD" if key.endswith("_usd") else ""
    label = humanise(key.removesuffix("_usd")) if unit else humanise(key)
    return label, amount(value, unit)
