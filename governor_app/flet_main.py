"""Entry point for packaged builds (``flet build apk|ipa|linux|macos|windows``; see
``[tool.flet.app]`` in pyproject.toml): the same app, its settings from ``GOVERNOR_*``
variables and the run profile, in whatever view the build provides, and as safe as
``governor app``: a veto asks for the password again unless the settings turn it off."""

from __future__ import annotations

import flet as ft

from governor_app.app import GovernorApp
from governor_app.cli import app_data_dir, build_client, engine_settings, preference_store
from governor_app.profile import load_profile
from sync.facade import open_cold_start

_app: GovernorApp | None = None


async def packaged_app() -> GovernorApp:
    """The app as a packaged build runs it: the profile and ``GOVERNOR_*`` settings, the
    first screen from the engine's store (the engine is built after it), the step-up as the
    settings say (on unless turned off), preferences beside the data."""
    profile = load_profile()
    data_dir = app_data_dir()
    client = open_cold_start(lambda: build_client(profile, data_dir), data_dir,
                             profile.server_url)
    await client.start()
    return GovernorApp(client, preferences=preference_store(data_dir),
                       step_up_for_veto=engine_settings(profile, data_dir).step_up_for_veto,
                       server_url=profile.server_url)


async def main(page: ft.Page) -> None:
    global _app
    if _app is None:
        _app = await packaged_app()
    await _app.main(page)


if __name__ == "__main__":
    ft.run(main)
