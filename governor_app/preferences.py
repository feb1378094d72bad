"""The governor's preferences on this device: theme, notifications, quiet hours, the sync
interval, and the server URL used from the next start.

Kept as a small JSON file beside the app's data (or in memory when no path is given);
``load`` never fails: a missing or unreadable file gives the defaults.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, time
from pathlib import Path
from typing import Any, Literal

from sync import rules
from sync.models import Notification

Theme = Literal["light", "dark", "system"]


@dataclass(frozen=True)
class Preferences:
    theme: Theme = "light"
    notifications: bool = True
    quiet_hours: bool = False
    quiet_start: str = "22:00"  # local time, HH:MM
    quiet_end: str = "07:00"
    urgent_override: bool = True  # budget 95 % and violations break through quiet hours
    server_url: str = ""  # empty: the profile's
    sync_interval: int = 30

    def with_(self, **changes: Any) -> Preferences:
        return replace(self, **changes)

    def errors(self) -> dict[str, str]:
        errors: dict[str, str] = {}
        for name, value in (("quiet_start", self.quiet_start), ("quiet_end", self.quiet_end)):
            if parse_time(value) is None:
                errors[name] = f"{value!r} is not a time; write it as HH:MM."
        if self.server_url.strip() and not self.server_url.strip().lower().startswith(
                ("http://", "https://")):
            errors["server_url"] = "The server URL starts with http:// or https://."
        elif self.server_url.strip() and not rules.secure_url(self.server_url.strip()):
            # The engine would refuse it at the next start (the same rule).
            errors["server_url"] = ("Plain http:// only reaches this machine: use the "
                                    "server's https:// URL.")
        if not 5 <= self.sync_interval <= 3600:
            errors["sync_interval"] = "Sync every 5 to 3,600 seconds."
        return errors


def parse_time(text: str) -> time | None:
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        return None


def in_quiet_hours(prefs: Preferences, local_now: datetime) -> bool:
    if not prefs.quiet_hours:
        return False
    start, end = parse_time(prefs.quiet_start), parse_time(prefs.quiet_end)
    if start is None or end is None:
        return False
    return rules.is_quiet(start, end, local_now.time().replace(tzinfo=None))


def should_alert(prefs: Preferences, notification: Notification, urgent: bool,
                 local_now: datetime) -> bool:
    """Whether a new event interrupts the governor (a snack bar / OS notification)."""
    if notification.read or not prefs.notifications:
        return False
    if in_quiet_hours(prefs, local_now):
        return urgent and prefs.urgent_override
    return True


class PreferenceStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._value = self.load()

    @property
    def value(self) -> Preferences:
        return self._value

    @property
    def saved(self) -> bool:
        """Whether the governor has saved settings (else ``value`` is all defaults)."""
        return self.path is not None and self.path.exists()

    def load(self) -> Preferences:
        if self.path is None or not self.path.exists():
            return Preferences()
        with contextlib.suppress(OSError, ValueError, TypeError):
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):  # "null" or a list: not ours, start afresh
                return Preferences()
            known = {f.name for f in fields(Preferences)}
            return Preferences(**{k: v for k, v in raw.items() if k in known})
        return Preferences()

    def save(self, prefs: Preferences) -> None:
        self._value = prefs
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(asdict(prefs), indent=2), encoding="utf-8")
            tmp.replace(self.path)
