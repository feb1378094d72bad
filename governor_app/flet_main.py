"""Entry point for packaged builds (``flet build apk|ipa|linux|macos|windows``; see
``[tool.flet.app]`` in pyproject.toml): the same app, its settings from ``GOVERNOR_*``
variables and the run profile, in whatever view the build provides."""

from __future__ import annotations

import flet as ft

from governor_app.app import GovernorApp
from governor_app.cli import build_client, preference_store
from governor_app.profile import load_profile

_app: GovernorApp | None = None


async def main(page: ft.Page) -> None:
    global _app
    if _app is None:
        client = build_client(load_profile(), None)
        await client.start()
        _app = GovernorApp(client, preferences=preference_store(None))
    await _app.main(page)


if __name__ == "__main__":
    ft.run(main)
