"""The stub's one typed settings object (env prefix ``GOVSTUB_``, CLI flags override)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("waooaw-governor-stub", "WAOOAW"))


class StubSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GOVSTUB_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    # None means a SQLite file in ``data_dir``; ``postgresql+psycopg://...`` runs on PostgreSQL.
    db_url: str | None = None
    redis_url: str | None = None
    # Prefix of this stub's Redis keys; by default a hash of the database URL, so that
    # replicas share Redis state when they share the database URL. Set it alike on replicas
    # that reach one database by different URLs.
    redis_namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    data_dir: Path = Field(default_factory=default_data_dir)
    demo: bool = False
    demo_activity: float | None = Field(default=None, gt=0)
    # The issuer and the base of every absolute URL; defaults to http(s)://host:port.
    public_url: str | None = None
    # Browser origins (scheme://host[:port]) allowed to call the API cross-origin (CORS),
    # comma-separated in GOVSTUB_CORS_ORIGINS; none by default.
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Serve HTTPS with this PEM certificate (chain) and private key (both or neither).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    # Key for event HMACs and attachment encryption; generated and kept in data_dir if unset.
    secret_key: SecretStr | None = None
    access_token_ttl: int = Field(default=900, gt=0)
    refresh_token_ttl: int = Field(default=30 * 24 * 3600, gt=0)
    # A confidential resource-server client allowed to call the introspection endpoint.
    # Without a configured secret one is generated at first start, kept in the database
    # (shared by every process on it) and written to data_dir/resource-server-client.json.
    introspection_client_id: str = "governance-rs"
    introspection_client_secret: SecretStr | None = None
    # Subjects who may read any decision's audit-log entry (others only their own).
    auditors: list[str] = Field(default_factory=lambda: ["auditor"])
    login_attempts_per_minute: int = Field(default=10, gt=0)
    # A new signing key takes over after this many days (the old one verifies until its
    # tokens expire); 0 turns automatic rotation off.
    signing_key_rotation_days: float = Field(default=30, ge=0)
    requests_per_minute: int = Field(default=6000, gt=0)
    # Per client address (several tokens may share one address, e.g. behind NAT).
    client_requests_per_minute: int = Field(default=12000, gt=0)
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    # OTLP/HTTP traces endpoint when otel_exporter is "otlp" (default http://127.0.0.1:4318/v1/traces).
    otel_endpoint: str | None = None
    log_level: str = "INFO"
    # Kill switches: each turns a core component into a pass-through.
    disable_cache: bool = False
    disable_metrics: bool = False
    disable_tracing: bool = False
    disable_rate_limit: bool = False
    disable_auth: bool = False  # only honoured by benchmarks measuring validation overhead
    # A comment line on every open event stream this often, so clients can tell quiet
    # from dead (they give up after three missed beats).
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=300)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        for origin in value if isinstance(value, list) else []:
            parts = urlsplit(origin)
            if (origin == "*" or parts.scheme not in ("http", "https") or not parts.netloc
                    or parts.path or parts.query or parts.fragment):
                raise ValueError(f"GOVSTUB_CORS_ORIGINS: {origin!r} is not an origin; list "
                                 "scheme://host[:port] values, comma-separated (no '*')")
        return value

    @field_validator("introspection_client_secret")
    @classmethod
    def _long_client_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("GOVSTUB_INTROSPECTION_CLIENT_SECRET is shorter than 16 "
                             "characters: set a longer one, or unset it to have one generated")
        return value

    @field_validator("db_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sqlite", "postgresql")):
            raise ValueError(
                f"GOVSTUB_DB_URL {value!r} is not supported: use sqlite:///PATH "
                "or postgresql+psycopg://USER@HOST/DB"
            )
        return value

    @model_validator(mode="after")
    def _tls_pair(self) -> StubSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key (GOVSTUB_TLS_CERT, GOVSTUB_TLS_KEY) "
                             "go together: give both, or neither for plain http")
        for name, path in (("--tls-cert", self.tls_cert), ("--tls-key", self.tls_key)):
            if path is not None and not path.is_file():
                raise ValueError(f"{name} {str(path)!r} is not a readable file; pass the PEM "
                                 "file's path")
        return self

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert is not None else "http"

    @property
    def issuer(self) -> str:
        return (self.public_url or f"{self.scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def database_url(self) -> str:
        if self.db_url:
            return self.db_url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.data_dir / 'governance.db'}"
