"""The packaged entry point (``flet build``) is as safe as ``governor app``."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from governor_app.flet_main import packaged_app


@pytest.fixture
def packaged_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GOVERNOR_PROFILE", str(tmp_path / "no-profile.toml"))
    monkeypatch.setenv("GOVERNOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GOVERNOR_SERVER_URL", "http://127.0.0.1:9")  # nobody listens
    monkeypatch.setenv("GOVERNOR_SYNC_INTERVAL", "0")
    return tmp_path


def step_up_of_packaged_app() -> bool:
    async def main() -> bool:
        app = await packaged_app()
        try:
            step_up = app.step_up_for_veto
            return step_up() if callable(step_up) else step_up
        finally:
            await (await app.client()).stop()
    return asyncio.run(main())


def test_a_packaged_app_asks_for_the_password_before_a_veto(packaged_env: Path) -> None:
    assert step_up_of_packaged_app() is True


def test_the_settings_can_turn_the_step_up_off_as_for_governor_app(
        packaged_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVERNOR_STEP_UP_FOR_VETO", "false")
    assert step_up_of_packaged_app() is False
