"""The app's run profile: ``flet.toml``, overridden by ``GOVERNOR_*`` variables and flags.

Flet never reads ``flet.toml`` itself; the launcher does, so the same file describes how
``governor app`` and ``governor demo`` run the app on this machine.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from governor_app.errors import ProfileError

View = Literal["auto", "desktop", "web"]
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class AppProfile:
    view: View = "auto"
    host: str = "127.0.0.1"
    port: int = 0
    assets_dir: Path = REPO_ROOT / "assets"
    web_renderer: str = "auto"
    route_url_strategy: str = "path"
    server_url: str = "http://127.0.0.1:8000"
    sync_interval: float = 30.0
    allow_insecure_http: bool = False  # --allow-insecure-http (development only)


# GOVERNOR_* variable -> (profile field, parser)
_ENV: dict[str, tuple[str, type]] = {
    "GOVERNOR_APP_VIEW": ("view", str),
    "GOVERNOR_APP_HOST": ("host", str),
    "GOVERNOR_APP_PORT": ("port", int),
    "GOVERNOR_ASSETS_DIR": ("assets_dir", Path),
    "GOVERNOR_WEB_RENDERER": ("web_renderer", str),
    "GOVERNOR_SERVER_URL": ("server_url", str),
    "GOVERNOR_SYNC_INTERVAL": ("sync_interval", float),
}


def default_profile_path() -> Path:
    """``GOVERNOR_PROFILE`` when set, else ``flet.toml`` in the current directory, else the
    one beside the package (a source checkout)."""
    explicit = os.environ.get("GOVERNOR_PROFILE")
    if explicit:
        return Path(explicit)
    here = Path.cwd() / "flet.toml"
    return here if here.exists() else REPO_ROOT / "flet.toml"


def load_profile(path: Path | None = None, env: Mapping[str, str] | None = None,
                 **overrides: Any) -> AppProfile:
    """Read ``path`` (missing file: defaults), then ``env``, then non-None ``overrides``."""
    path = path or default_profile_path()
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"The run profile {str(path)!r} is not valid TOML ({exc}); "
                               "fix it or point GOVERNOR_PROFILE at another file.") from exc
        app = data.get("app", {})
        sync = data.get("sync", {})
        if not isinstance(app, dict) or not isinstance(sync, dict) or not isinstance(
                app.get("assets_dir", ""), str):
            raise ProfileError(f"The run profile {str(path)!r} needs [app] and [sync] tables "
                               "(assets_dir a path string); fix it or point GOVERNOR_PROFILE "
                               "at another file.")
        for key in ("view", "host", "port", "web_renderer", "route_url_strategy"):
            if key in app:
                values[key] = app[key]
        if "assets_dir" in app:
            values["assets_dir"] = (path.parent / app["assets_dir"]).resolve()
        for key in ("server_url", "sync_interval"):
            if key in sync:
                values[key] = sync[key]
    for name, (key, parse) in _ENV.items():
        raw = env.get(name)
        if raw:
            try:
                values[key] = parse(raw)
            except ValueError as exc:
                raise ProfileError(f"{name}={raw!r} is not a valid {parse.__name__}; "
                                   "fix or unset the variable.") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    profile = replace(AppProfile(), **values)
    if profile.view not in ("auto", "desktop", "web"):
        raise ProfileError(f"view {profile.view!r} is not one of auto, desktop, web; "
                           "fix flet.toml or GOVERNOR_APP_VIEW.")
    return profile
