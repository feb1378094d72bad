"""``governor app`` refuses a plain-http server on another machine before any window opens;
``--allow-insecure-http`` allows it for development."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from governor_app import cli
from governor_app.errors import GovernorAppError

REMOTE = "http://governance.example.com:8000"


def test_governor_app_refuses_a_remote_plain_http_server(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOVERNOR_ALLOW_INSECURE_HTTP", raising=False)
    code = cli.main(["app", "--server", REMOTE, "--data-dir", str(tmp_path), "--web",
                     "--profile", str(tmp_path / "none.toml")])
    assert code == 2
    err = capsys.readouterr().err
    assert REMOTE in err and "--allow-insecure-http" in err


def test_the_flag_allows_it_for_development(tmp_path: Path) -> None:
    profile = cli.app_profile(None, cli.preference_store(tmp_path), server=REMOTE, env={})
    with pytest.raises(GovernorAppError, match="GOVERNOR_ALLOW_INSECURE_HTTP"):
        cli.check_transport(profile, tmp_path)
    cli.check_transport(replace(profile, allow_insecure_http=True), tmp_path)
    assert cli.engine_settings(replace(profile, allow_insecure_http=True),
                               tmp_path).allow_insecure_http
