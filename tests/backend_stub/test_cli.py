from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
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


def test_port_0_listens_on_a_free_port_that_the_issuer_names(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVSTUB_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "backend_stub.cli", "--host", "127.0.0.1", "--port", "0",
         "--data-dir", str(tmp_path), "--log-level", "WARNING"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # ends (EOF) if the stub exits instead of starting
            lines.append(line)
            if "governance stub listening on" in line:
                break
        found = re.search(r"listening on (http://127\.0\.0\.1:(\d+))", "".join(lines))
        assert found, "".join(lines)
        url, port = found.group(1), int(found.group(2))
        assert port != 0
        metadata = httpx.get(f"{url}/.well-known/oauth-authorization-server", timeout=10)
        assert metadata.json()["issuer"] == url
        assert metadata.json()["token_endpoint"].startswith(url + "/")
    finally:
        proc.terminate()
        proc.wait(15)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == 0


def test_port_0_on_an_address_not_of_this_machine_exits_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--host", "192.0.2.1", "--port", "0", "--data-dir", str(tmp_path)]) == 2
    assert "cannot listen on '192.0.2.1'" in capsys.readouterr().err
