"""Entry point for packaged builds (``flet build apk|ipa|linux|macos|windows``; see
``[tool.flet.app]`` in pyproject.toml): the same app, its settings from ``GOVERNOR_*``
variables and the run profile, in whatever view the build provides."""

from __future__ import annotations

import flet as ft

from governor_app.app import GovernorApp
from governor_app.cli import app_data_dir, build_client, preference_store
from governor_app.profile import load_profile
from governor_app.startup import SNAPSHOT_NAME, StartingClient

_app: GovernorApp | None = None


async def main(page: ft.Page) -> None:
    global _app
    if _app is None:
        profile = load_profile()
        # The first screen from the app's snapshot; the engine is built after it.
        client = StartingClient(lambda: build_client(profile, None),
                                app_data_dir() / SNAPSHOT_NAME, profile.server_url)
        await client.start()
        _app = GovernorApp(client, preferences=preference_store(None))
    await _app.main(page)


if __name__ == "__main__":
    ft.run(main)
