from __future__ import annotations

from pathlib import Path

import pytest

from backend_stub.cli import build_parser, main, settings_from
from backend_stub.errors import ConfigurationError


def test_flags_become_settings(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--host", "127.0.0.1", "--port", "0", "--demo",
                                      "--demo-activity", "2.5", "--data-dir", str(tmp_path),
                                      "--db", "sqlite:///x.db"])
    settings = settings_from(args)
    assert settings.port == 0 and settings.demo and settings.demo_activity == 2.5
    assert settings.db_url == "sqlite:///x.db" and settings.data_dir == tmp_path


def test_unset_flags_leave_the_environment_in_charge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSTUB_PORT", "9123")
    assert settings_from(build_parser().parse_args([])).port == 9123


def test_demo_activity_needs_demo() -> None:
    with pytest.raises(ConfigurationError, match="--demo-activity needs --demo"):
        settings_from(build_parser().parse_args(["--demo-activity", "1"]))


@pytest.mark.parametrize("argv, message", [
    (["--db", "mysql://nope"], "GOVSTUB_DB_URL"),
    (["--demo-activity", "1"], "--demo-activity needs --demo"),
    (["--port", "70000"], "port"),
])
def test_bad_settings_exit_2_with_a_message(argv: list[str], message: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
