from __future__ import annotations

from datetime import datetime
from pathlib import Path

from governor_app.preferences import (
    Preferences,
    PreferenceStore,
    in_quiet_hours,
    should_alert,
)
from sync.models import Notification

NIGHT = datetime(2026, 11, 21, 23, 30)
DAY = datetime(2026, 11, 21, 12, 0)


def n() -> Notification:
    return Notification(id="1", type="governance.approval.pending", timestamp=DAY)


def test_quiet_hours_wrap_past_midnight() -> None:
    prefs = Preferences(quiet_hours=True, quiet_start="22:00", quiet_end="07:00")
    assert in_quiet_hours(prefs, NIGHT)
    assert in_quiet_hours(prefs, datetime(2026, 11, 22, 6, 59))
    assert not in_quiet_hours(prefs, DAY)
    assert not in_quiet_hours(Preferences(quiet_hours=False), NIGHT)


def test_urgent_events_break_through_quiet_hours_when_allowed() -> None:
    prefs = Preferences(quiet_hours=True)
    assert not should_alert(prefs, n(), urgent=False, local_now=NIGHT)
    assert should_alert(prefs, n(), urgent=True, local_now=NIGHT)
    assert not should_alert(prefs.with_(urgent_override=False), n(), urgent=True,
                            local_now=NIGHT)
    assert should_alert(prefs, n(), urgent=False, local_now=DAY)
    assert not should_alert(prefs.with_(notifications=False), n(), urgent=True,
                            local_now=DAY)


def test_preferences_validate_and_persist(tmp_path: Path) -> None:
    bad = Preferences(quiet_start="25:99", server_url="ftp://x", sync_interval=1)
    assert set(bad.errors()) == {"quiet_start", "server_url", "sync_interval"}
    store = PreferenceStore(tmp_path / "prefs.json")
    store.save(Preferences(theme="dark", quiet_hours=True))
    assert PreferenceStore(tmp_path / "prefs.json").value.theme == "dark"
    (tmp_path / "prefs.json").write_text("{not json", encoding="utf-8")
    assert PreferenceStore(tmp_path / "prefs.json").value == Preferences()


def test_plain_http_to_another_machine_is_refused_at_save() -> None:
    remote = Preferences(server_url="http://governance.example.com")
    assert "https://" in remote.errors()["server_url"]
    for fine in ("https://governance.example.com", "http://127.0.0.1:8000",
                 "http://localhost:9", ""):
        assert "server_url" not in Preferences(server_url=fine).errors()
