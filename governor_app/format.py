"""Words and numbers as the governor reads them: ages, countdowns, sizes, labels."""

from __future__ import annotations

from datetime import datetime, timedelta


def age(then: datetime | None, now: datetime) -> str:
    """How long ago, in the largest unit that reads naturally ("5 min ago")."""
    if then is None:
        return "never"
    seconds = int((now - then).total_seconds())
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds} s ago"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min ago"
    return f"{seconds // 86400} d ago"


def countdown(deadline: datetime | None, now: datetime) -> str:
    """Time left before a server deadline as H:MM:SS, or "closed" once it has passed."""
    if deadline is None:
        return "no veto window"
    left = deadline - now
    if left <= timedelta(0):
        return "closed"
    total = int(left.total_seconds())
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
    return moment.strftime("%d %b %H:%M UTC") if moment else "—"


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
