"""What saving the settings screen changes, and what of it applies at once.

- Notification settings (on/off, quiet hours, the high-urgency override) apply at once
  (``governor_app.push.PushService.apply_preferences``).
- The sync interval applies at once: ``apply_sync_interval`` reschedules the engine's
  periodic sync.
- The server URL applies from the next start, by design: this device's cache, push cursor
  and outbox belong to the server they came from, so a live switch would show one
  server's requests as another's and could send decisions made for one to the other. A
  change is refused while decisions still wait to be sent, and the screen says to restart
  and sign in to the new server. At that start the engine finds its store cached another
  server and starts it afresh (``sync.store.LocalStore.bind_server``; a decision queued
  meanwhile for the old server is held, never sent to the new one).

No Flet here: tested with plain pytest.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from governor_app.preferences import Preferences
from sync.facade import GovernorClient

log = logging.getLogger(__name__)

NOTIFICATION_FIELDS = ("notifications", "quiet_hours", "quiet_start", "quiet_end",
                       "urgent_override")


def _same_server(a: str, b: str) -> bool:
    return a.strip().rstrip("/").lower() == b.strip().rstrip("/").lower()


@dataclass(frozen=True)
class SettingsChange:
    before: Preferences
    after: Preferences
    running_server: str  # the server this process talks to
    queued: int  # decisions waiting in the outbox

    @property
    def server_changed(self) -> bool:
        # Edited on this screen, and not to the server running now. A saved server that a
        # flag or variable overrides at start is not the governor's change.
        after = self.after.server_url
        return bool(after) and not _same_server(after, self.before.server_url) \
            and not _same_server(after, self.running_server)

    @property
    def interval_changed(self) -> bool:
        return self.after.sync_interval != self.before.sync_interval

    @property
    def notifications_changed(self) -> bool:
        before, after = asdict(self.before), asdict(self.after)
        return any(before[f] != after[f] for f in NOTIFICATION_FIELDS)

    def problems(self) -> dict[str, str]:
        problems = self.after.errors()
        if self.server_changed and self.queued and "server_url" not in problems:
            problems["server_url"] = (
                f"{self.queued} decision(s) still wait to be sent to {self.running_server}. "
                "They were made for that server: let them go (Outbox) or discard them "
                "before moving to another server.")
        return problems

    def message(self, interval_applied: bool) -> str:
        """The snack bar after saving: what took effect and what waits for a restart."""
        parts = ["Settings saved."]
        if self.notifications_changed:
            parts.append("Notification settings apply now.")
        if self.interval_changed:
            parts.append(f"Syncing every {self.after.sync_interval} s from now."
                         if interval_applied else
                         f"Syncing every {self.after.sync_interval} s from the next start.")
        if self.server_changed:
            parts.append(f"Restart the app to use {self.after.server_url.strip()}; you will "
                         f"sign in there. Until then it stays on {self.running_server}.")
        return " ".join(parts)


def running_interval(client: GovernorClient, default: int) -> int:
    """The interval the client syncs at now (a flag or variable may have set it at
    start), else ``default`` (the saved preference)."""
    seconds = client.sync_interval()
    return int(seconds) if seconds > 0 else default


def apply_sync_interval(client: GovernorClient, seconds: float) -> bool:
    """Reschedule the client's periodic sync now; ``False`` when it has none to change
    (the in-memory client, an engine started with periodic sync off, or the cold-start
    client before the engine takes over): the interval then applies at the next start."""
    try:
        return client.set_sync_interval(seconds)
    except Exception:  # never let a setting break the app; it applies at the next start
        log.exception("settings: rescheduling the periodic sync failed")
        return False
