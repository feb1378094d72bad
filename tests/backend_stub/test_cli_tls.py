"""``governor-stub --tls-cert/--tls-key``: HTTPS settings, and their error paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend_stub.cli import build_parser, main, settings_from
from tests.support.tls import make_pki


def test_the_tls_flags_make_an_https_issuer(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    settings = settings_from(build_parser().parse_args([
        "--port", "8443", "--tls-cert", str(pki.cert_pem), "--tls-key", str(pki.key_pem)]))
    assert settings.tls_cert == pki.cert_pem and settings.tls_key == pki.key_pem
    assert settings.issuer == "https://127.0.0.1:8443"


def test_without_tls_the_issuer_stays_http() -> None:
    assert settings_from(build_parser().parse_args(["--port", "8000"])).issuer == (
        "http://127.0.0.1:8000")


@pytest.mark.parametrize("which", ["cert", "key"])
def test_one_tls_file_without_the_other_exits_2(which: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_pki(tmp_path)
    path = pki.cert_pem if which == "cert" else pki.key_pem
    assert main([f"--tls-{which}", str(path)]) == 2
    assert "--tls-cert and --tls-key" in capsys.readouterr().err


def test_a_missing_tls_file_exits_2_naming_it(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_pki(tmp_path)
    missing = tmp_path / "nope.pem"
    assert main(["--tls-cert", str(missing), "--tls-key", str(pki.key_pem)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--tls-cert" in err
