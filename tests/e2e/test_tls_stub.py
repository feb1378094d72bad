"""Signing in over TLS: the real stub serving HTTPS (``--tls-cert``/``--tls-key``) with a
certificate from a CA the test makes; the client trusts it only through
``GOVERNOR_CA_BUNDLE`` (``GovernorSettings.ca_bundle``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.errors import ServerUnreachable
from sync.settings import GovernorSettings
from sync.tokens import MemoryVault
from sync.transport import tls_context
from tests.support.stub_process import StubProcess
from tests.support.tls import TestPki, make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_stub(pki: TestPki, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[tuple[StubProcess, str]]:
    stub = StubProcess(tmp_path_factory.mktemp("tls-stub"), extra_args=[
        "--tls-cert", str(pki.cert_pem), "--tls-key", str(pki.key_pem)])
    stub.start()
    try:
        yield stub, f"https://127.0.0.1:{stub.port}"
    finally:
        stub.stop()


def test_the_stub_announces_https(tls_stub: tuple[StubProcess, str]) -> None:
    stub, url = tls_stub
    assert any(f"listening on {url}" in line for line in stub.output)


def test_sign_in_and_sync_over_tls_with_the_enterprise_ca(
        tls_stub: tuple[StubProcess, str], pki: TestPki, tmp_path: Path) -> None:
    _, url = tls_stub
    settings = GovernorSettings(server_url=url, data_dir=tmp_path, sync_interval=0,
                                ca_bundle=pki.ca_pem)

    async def go() -> int:
        auth = Authenticator(url, vault=MemoryVault(), tls=tls_context(settings.ca_bundle))
        account = await auth.sign_in_with_password("governor", "governor")
        assert account.username == "governor"
        engine = SyncEngine(settings, authenticator=auth)
        try:
            await engine.sync_now()
            return len(engine.approvals())
        finally:
            await engine.stop()
            await auth.aclose()

    assert asyncio.run(go()) > 0  # the demo world's requests came over TLS


def test_a_server_certificate_from_an_unknown_ca_is_refused(
        tls_stub: tuple[StubProcess, str], tmp_path: Path) -> None:
    _, url = tls_stub
    other = make_pki(tmp_path / "other", ca_name="Some Other CA")

    async def sign_in(ca: Path | None) -> None:
        auth = Authenticator(url, vault=MemoryVault(), tls=tls_context(ca))
        try:
            await auth.sign_in_with_password("governor", "governor")
        finally:
            await auth.aclose()

    for ca in (None, other.ca_pem):  # the public roots alone, or another enterprise CA
        with pytest.raises(ServerUnreachable, match="certificate") as refused:
            asyncio.run(sign_in(ca))
        assert "GOVERNOR_CA_BUNDLE" in str(refused.value)
