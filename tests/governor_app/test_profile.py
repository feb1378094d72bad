from __future__ import annotations

from pathlib import Path

import pytest

from governor_app.errors import ProfileError
from governor_app.profile import REPO_ROOT, load_profile


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flet.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_repository_profile_is_readable() -> None:
    profile = load_profile(REPO_ROOT / "flet.toml", env={})
    assert profile.host == "127.0.0.1"
    assert profile.assets_dir == REPO_ROOT / "assets"
    assert (profile.assets_dir / "icon.png").exists()


def test_flags_beat_variables_beat_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[app]\nport = 9000\nview = "desktop"\n'
                           '[sync]\nserver_url = "http://file"\nsync_interval = 60\n')
    profile = load_profile(path, env={"GOVERNOR_SERVER_URL": "http://env",
                                      "GOVERNOR_APP_PORT": "9100"})
    assert (profile.server_url, profile.port, profile.view) == ("http://env", 9100, "desktop")
    assert profile.sync_interval == 60
    profile = load_profile(path, env={"GOVERNOR_SERVER_URL": "http://env"},
                           server_url="http://flag", port=None)
    assert (profile.server_url, profile.port) == ("http://flag", 9000)


def test_missing_file_gives_defaults(tmp_path: Path) -> None:
    profile = load_profile(tmp_path / "absent.toml", env={})
    assert profile.port == 0 and profile.view == "auto"


def test_assets_dir_is_relative_to_the_profile(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path, '[app]\nassets_dir = "art"\n'), env={})
    assert profile.assets_dir == tmp_path / "art"


@pytest.mark.parametrize(("text", "env", "words"), [
    ("[app\n", {}, "not valid TOML"),
    ("", {"GOVERNOR_APP_PORT": "eighty"}, "GOVERNOR_APP_PORT"),
    ('[app]\nview = "tv"\n', {}, "not one of auto, desktop, web"),
])
def test_bad_profiles_say_what_to_fix(tmp_path: Path, text: str, env: dict[str, str],
                                      words: str) -> None:
    with pytest.raises(ProfileError, match=words):
        load_profile(write(tmp_path, text), env=env)
