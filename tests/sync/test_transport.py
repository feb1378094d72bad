"""Transport rules: no plain http to another machine, certificates always verified."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.api import ApiClient
from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.errors import InsecureTransport
from sync.rules import is_loopback
from sync.settings import GovernorSettings
from sync.store import LocalStore
from sync.tokens import MemoryVault
from sync.transport import certificate_hint, check_ca_bundle, check_server_url, tls_context
from tests.support.tls import make_pki

REMOTE = "http://governance.example.com:8000"


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000", "http://127.3.4.5", "http://localhost:9", "http://[::1]:8000",
    "http://LOCALHOST", "http://app.localhost:1", "https://governance.example.com",
    "https://10.0.0.5:8443",
])
def test_https_anywhere_and_plain_http_to_this_machine_are_allowed(url: str) -> None:
    assert check_server_url(url) == url


@pytest.mark.parametrize("url", [REMOTE, "http://10.0.0.5:8000", "http://[2001:db8::1]",
                                 "http://localhost.example.com", "http://128.0.0.1"])
def test_plain_http_to_another_machine_is_refused_naming_the_url_and_the_flag(url: str) -> None:
    with pytest.raises(InsecureTransport) as refused:
        check_server_url(url)
    message = str(refused.value)
    assert repr(url) in message
    assert "GOVERNOR_ALLOW_INSECURE_HTTP" in message and "--allow-insecure-http" in message


def test_development_may_allow_plain_http() -> None:
    assert check_server_url(REMOTE, allow_insecure_http=True) == REMOTE


@pytest.mark.parametrize("url", ["ftp://127.0.0.1", "127.0.0.1:8000", "http://", ""])
def test_a_url_that_is_not_http_is_refused(url: str) -> None:
    with pytest.raises(InsecureTransport, match="not an http"):
        check_server_url(url)


@given(st.ip_addresses())
def test_loopback_agrees_with_the_standard_library(address: object) -> None:
    import ipaddress

    ip = ipaddress.ip_address(str(address))
    assert is_loopback(str(ip)) == ip.is_loopback


def _common_name(cert: Mapping[str, Any]) -> str | None:
    """The subject's commonName. (typeshed types each field of a certificate as the union
    of every field's type, so the subject's pairs are read from an untyped mapping.)"""
    return dict(rdn[0] for rdn in cert["subject"]).get("commonName")


def test_the_tls_context_verifies_and_adds_the_enterprise_ca(tmp_path: Path) -> None:
    plain = tls_context()
    assert plain.verify_mode == ssl.CERT_REQUIRED and plain.check_hostname
    pki = make_pki(tmp_path)
    with_ca = tls_context(pki.ca_pem)
    subjects = [_common_name(c) for c in with_ca.get_ca_certs()]
    assert "Governor Test CA" in subjects and len(subjects) > 1  # added, not replacing


def test_an_unreadable_ca_bundle_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    for path in (bad, tmp_path / "missing.pem"):
        for check in (tls_context, check_ca_bundle):  # the context, and the app's start check
            with pytest.raises(InsecureTransport, match="GOVERNOR_CA_BUNDLE") as refused:
                check(path)
            assert str(path) in str(refused.value)


def test_the_start_check_passes_a_readable_bundle_and_none(tmp_path: Path) -> None:
    check_ca_bundle(None)
    check_ca_bundle(make_pki(tmp_path).ca_pem)


def test_the_certificate_hint_names_the_setting() -> None:
    cause = ssl.SSLCertVerificationError("certificate verify failed")
    error = httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED]")
    error.__cause__ = cause
    assert "GOVERNOR_CA_BUNDLE" in certificate_hint(error)
    assert certificate_hint(httpx.ConnectError("refused")) == ""


def test_the_authenticator_refuses_plain_http_to_another_machine() -> None:
    with pytest.raises(InsecureTransport, match="GOVERNOR_ALLOW_INSECURE_HTTP"):
        Authenticator(REMOTE, vault=MemoryVault())
    allowed = Authenticator(REMOTE, vault=MemoryVault(), allow_insecure_http=True)
    asyncio.run(allowed.aclose())


def test_the_api_client_refuses_plain_http_to_another_machine() -> None:
    auth = Authenticator("http://127.0.0.1:9", vault=MemoryVault())
    with pytest.raises(InsecureTransport):
        ApiClient(REMOTE, authenticator=auth)
    asyncio.run(auth.aclose())


def test_the_engine_refuses_before_touching_the_store(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "governor.db")
    bound = store.bind_server("http://127.0.0.1:9")
    auth = Authenticator("http://127.0.0.1:9", vault=MemoryVault())
    settings = GovernorSettings(server_url=REMOTE, data_dir=tmp_path, sync_interval=0)
    with pytest.raises(InsecureTransport):
        SyncEngine(settings, authenticator=auth, store=store)
    # The store still belongs to the old server: nothing was dropped or held.
    assert store.bind_server("http://127.0.0.1:9") is None and bound is None
    allowed = settings.model_copy(update={"allow_insecure_http": True})
    engine = SyncEngine(allowed, authenticator=auth, store=store)
    asyncio.run(engine.stop())
    asyncio.run(auth.aclose())


def test_the_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("GOVERNOR_ALLOW_INSECURE_HTTP", "1")
    monkeypatch.setenv("GOVERNOR_CA_BUNDLE", str(tmp_path / "ca.pem"))
    settings = GovernorSettings()
    assert settings.allow_insecure_http is True
    assert settings.ca_bundle == tmp_path / "ca.pem"
