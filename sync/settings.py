"""The client's one typed settings object (environment prefix ``GOVERNOR_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path(user_data_dir("waooaw-governor", appauthor=False))


class GovernorSettings(BaseSettings):
    """Where the client talks to, where it keeps its data, and how often it syncs.

    ``device_id`` is normally left unset: the engine generates one the first time and keeps
    it in the local database, so a device keeps its identity across restarts.
    """

    model_config = SettingsConfigDict(env_prefix="GOVERNOR_", extra="ignore")

    server_url: str = "http://127.0.0.1:8000"
    data_dir: Path = Field(default_factory=_default_data_dir)
    sync_interval: float = 30.0  # seconds between periodic syncs; 0 turns them off
    device_id: str | None = None
    step_up_for_veto: bool = True
    dashboard_ttl: float = 300.0  # seconds before the cached dashboard is shown as stale
    request_timeout: float = 10.0
    batch_size: int = 500  # the contract's maximum for POST /decisions

    # Notification preferences
    notifications_enabled: bool = True
    quiet_hours_start: str | None = None  # "22:00", local time
    quiet_hours_end: str | None = None  # "07:00"
    quiet_hours_allow_urgent: bool = True  # veto deadlines still break through
    notify_budget_alerts: bool = True
    notify_violations: bool = True

    theme: Literal["system", "light", "dark"] = "system"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "governor.db"
