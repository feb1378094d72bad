"""Token vaults: one contract suite over every implementation, then each one's specifics."""

from __future__ import annotations

import asyncio
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail
from keyring.errors import PasswordDeleteError

from sync.tokens import (
    EncryptedFileVault,
    KeyringVault,
    MemoryVault,
    SecureStorageVault,
    StoredTokens,
    TokenVault,
    default_vault,
    keyring_available,
)

TOKENS = StoredTokens(
    sub="governor", username="governor",
    scopes=frozenset({"governance:read", "veto:execute"}),
    access_token="eyJhbGciOiJSUzI1NiJ9.secret-access.sig",
    expires_at=datetime(2026, 1, 1, 12, 15, tzinfo=UTC),
    refresh_token="secret-refresh-token", issuer="http://127.0.0.1:8000",
)


class MemoryKeyring(KeyringBackend):
    priority = 10

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.entries:
            raise PasswordDeleteError("not found")
        del self.entries[(service, username)]


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


class FakeSecureStorage:
    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    async def get(self, key: str) -> str | None:
        return self.data.get(key)

    async def set(self, key: str, value: str) -> None:
        self.data[key] = value

    async def remove(self, key: str) -> None:
        self.data.pop(key, None)


@pytest.fixture(params=["memory", "file", "keyring"])
def vault(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TokenVault]:
    if request.param == "memory":
        yield MemoryVault()
    elif request.param == "file":
        yield EncryptedFileVault(tmp_path / "data" / "session.enc", tmp_path / "keys" / "k")
    else:
        previous = keyring.get_keyring()
        keyring.set_keyring(MemoryKeyring())
        try:
            yield KeyringVault("test")
        finally:
            keyring.set_keyring(previous)


# --- the contract ----------------------------------------------------------------------
def test_empty_vault_loads_none(vault: TokenVault) -> None:
    assert vault.load() is None


def test_round_trip(vault: TokenVault) -> None:
    vault.save(TOKENS)
    assert vault.load() == TOKENS


def test_save_replaces(vault: TokenVault) -> None:
    vault.save(TOKENS)
    ended = TOKENS.ended_copy()
    vault.save(ended)
    loaded = vault.load()
    assert loaded == ended and loaded is not None and loaded.ended
    assert loaded.refresh_token is None and loaded.sub == "governor"


def test_clear(vault: TokenVault) -> None:
    vault.save(TOKENS)
    vault.clear()
    assert vault.load() is None
    vault.clear()  # clearing twice is fine


# --- encrypted file --------------------------------------------------------------------
def test_file_holds_no_plain_text_and_is_private(tmp_path: Path) -> None:
    path, key = tmp_path / "data" / "session.enc", tmp_path / "keys" / "session.key"
    EncryptedFileVault(path, key).save(TOKENS)
    raw = path.read_bytes()
    for secret in (b"secret-access", b"secret-refresh-token", b"governor"):
        assert secret not in raw
    for file in (path, key):
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert key.parent != path.parent


def test_file_without_its_key_is_unreadable_not_fatal(tmp_path: Path) -> None:
    path, key = tmp_path / "s.enc", tmp_path / "keys" / "k"
    EncryptedFileVault(path, key).save(TOKENS)
    key.unlink()
    assert EncryptedFileVault(path, key).load() is None


def test_file_under_another_key_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "s.enc"
    EncryptedFileVault(path, tmp_path / "k1").save(TOKENS)
    EncryptedFileVault(tmp_path / "other.enc", tmp_path / "k2").save(TOKENS)
    assert EncryptedFileVault(path, tmp_path / "k2").load() is None


def test_tampered_file_is_unreadable(tmp_path: Path) -> None:
    path, key = tmp_path / "s.enc", tmp_path / "k"
    EncryptedFileVault(path, key).save(TOKENS)
    data = bytearray(path.read_bytes())
    data[40] ^= 1
    path.write_bytes(bytes(data))
    assert EncryptedFileVault(path, key).load() is None


def test_key_survives_and_is_reused(tmp_path: Path) -> None:
    path, key = tmp_path / "s.enc", tmp_path / "k"
    EncryptedFileVault(path, key).save(TOKENS)
    first_key = key.read_bytes()
    EncryptedFileVault(path, key).save(TOKENS)
    assert key.read_bytes() == first_key
    assert EncryptedFileVault(path, key).load() == TOKENS


# --- keyring ---------------------------------------------------------------------------
def test_keyring_entry_is_per_account(memory_keyring: MemoryKeyring) -> None:
    KeyringVault("server-a").save(TOKENS)
    assert KeyringVault("server-b").load() is None
    assert ("waooaw-governor", "server-a") in memory_keyring.entries


def test_damaged_keyring_entry_means_sign_in_again(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.entries[("waooaw-governor", "default")] = "{not json"
    assert KeyringVault().load() is None


def test_default_vault_prefers_the_keychain(memory_keyring: MemoryKeyring, tmp_path: Path
                                            ) -> None:
    assert keyring_available()
    assert isinstance(default_vault(tmp_path, key_dir=tmp_path / "keys"), KeyringVault)


def test_default_vault_falls_back_to_the_encrypted_file(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        assert not keyring_available()
        vault = default_vault(tmp_path / "data", key_dir=tmp_path / "keys")
    finally:
        keyring.set_keyring(previous)
    assert isinstance(vault, EncryptedFileVault)
    assert vault.key_path.parent == tmp_path / "keys"
    assert vault.path.parent == tmp_path / "data"


# --- flet secure storage ---------------------------------------------------------------
def test_secure_storage_vault() -> None:
    storage = FakeSecureStorage()

    async def go() -> Any:
        vault = SecureStorageVault(storage)
        await vault.open()
        assert vault.load() is None
        vault.save(TOKENS)
        await vault.flush()
        assert StoredTokens.from_json(storage.data["governor.session"]) == TOKENS
        again = SecureStorageVault(storage)
        await again.open()
        assert again.load() == TOKENS
        again.clear()
        await again.flush()
        return storage.data

    assert asyncio.run(go()) == {}


def test_naive_expiry_is_read_as_utc() -> None:
    raw = TOKENS.to_json().replace("+00:00", "")
    assert StoredTokens.from_json(raw).expires_at.tzinfo is not None


class BrokenKeyring(MemoryKeyring):
    def get_password(self, service: str, username: str) -> str | None:
        from keyring.errors import KeyringError

        raise KeyringError("no D-Bus session")


def test_unusable_keychain_is_not_chosen(tmp_path: Path) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(BrokenKeyring())
    try:
        assert not keyring_available()
        assert isinstance(default_vault(tmp_path, key_dir=tmp_path / "k"), EncryptedFileVault)
        assert KeyringVault().load() is None  # and reading it never raises
    finally:
        keyring.set_keyring(previous)


def test_flets_secure_storage_has_the_shape_the_vault_needs() -> None:
    import inspect

    from flet_secure_storage import SecureStorage

    for name in ("get", "set", "remove"):
        assert inspect.iscoroutinefunction(getattr(SecureStorage, name)), name
    vault = SecureStorageVault(SecureStorage())  # type-checks against AsyncKeyValueStore
    assert vault.load() is None


def test_the_device_key_is_made_once_and_outlives_sign_out(vault: TokenVault) -> None:
    key = vault.device_key()
    assert len(key) == 32 and vault.device_key() == key
    vault.save(TOKENS)
    vault.clear()  # sign-out forgets the session only
    assert vault.load() is None and vault.device_key() == key


def test_secure_storage_keeps_the_device_key_across_restarts() -> None:
    storage = FakeSecureStorage()

    async def scenario() -> tuple[bytes, bytes]:
        first = SecureStorageVault(storage)
        await first.open()
        key = first.device_key()
        await first.flush()
        again = SecureStorageVault(storage)
        await again.open()
        return key, again.device_key()

    key, reopened = asyncio.run(scenario())
    assert key == reopened and len(key) == 32


def test_a_damaged_device_key_file_is_replaced_and_says_so(tmp_path: Path) -> None:
    vault = EncryptedFileVault(tmp_path / "data" / "session.enc", tmp_path / "keys" / "k")
    key = vault.device_key()
    vault.device_key_path.write_bytes(b"garbage")
    assert vault.device_key() != key  # entries sealed with the old key are held
