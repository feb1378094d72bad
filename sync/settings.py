"""The client's one typed settings object (environment prefix ``GOVERNOR_``)."""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sync import rules
from sync.store_reads import DATABASE_NAME


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
    step_up_for_veto: bool = rules.STEP_UP_FOR_VETO
    dashboard_ttl: float = rules.DASHBOARD_TTL_S
    request_timeout: float = 10.0
    batch_size: int = 500  # the contract's maximum for POST /decisions
    # Plain http:// to a server that is not this machine is refused unless this is set
    # (development only); https certificates are always verified, against the public roots
    # plus the PEM CAs of ``ca_bundle`` (an enterprise CA). See sync/transport.py.
    allow_insecure_http: bool = False
    ca_bundle: Path | None = None

    # The governor's own choices (theme, notifications, quiet hours) are not settings of
    # the engine: the app keeps them (governor_app.preferences) and hands the engine what
    # it needs (``AlertPreferences``). Fields for them here were read by nothing.

    # While the event stream is live it tells of every change: the periodic sync then only
    # runs this often, as a safety net (seconds).
    safety_sync_interval: float = 900.0
    # Once the server seems lost, GET /v1/health every probe_interval seconds, doubling to
    # at most probe_max_interval (short: the app shows "online" within 2 s of its return).
    probe_interval: float = 0.5
    probe_max_interval: float = 1.0
    probe_timeout: float = 1.0
    # TEST-ONLY: shift the device clock by this many seconds, to show that nothing the app
    # says depends on it (tests/browser/test_connection.py). Leave 0 in real use.
    clock_skew_s: float = 0.0

    @property
    def database_path(self) -> Path:
        return self.data_dir / DATABASE_NAME
