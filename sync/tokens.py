"""Where the client keeps its tokens: never in plain text.

``TokenVault`` is a three-method interface (``load``, ``save``, ``clear``) with these
implementations:

- ``KeyringVault``: the OS keychain (macOS Keychain, Windows Credential Locker, Secret
  Service on Linux) through ``keyring``;
- ``EncryptedFileVault``: a Fernet-encrypted file, its key in a separate file (mode 0600) kept
  in another directory than the database, so a copied database or backup reveals nothing;
- ``SecureStorageVault``: Flet's secure storage (``flet-secure-storage``) in built phone apps,
  or any async key-value store with ``get``/``set``/``remove``;
- ``MemoryVault``: in memory, for tests and for sessions that must not outlive the process.

``default_vault(data_dir)`` picks the keychain when a real backend exists, else the file.

Each vault also keeps the **device key** (``device_key()``): 32 random bytes that seal what
the governor typed or attached in the outbox (``sync.sealing``). Sign-out (``clear()``)
removes the session only; the device key stays, because entries another account queued on
this device are sealed with it and wait, held, for their author to sign in again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from platformdirs import user_config_dir

from sync.sealing import new_device_key

log = logging.getLogger("sync.tokens")

KEYRING_SERVICE = "waooaw-governor"


@dataclass(frozen=True)
class StoredTokens:
    """One session's tokens and what the client knows of its account.

    ``ended`` marks a session the server refused (revoked, reused or expired refresh token):
    the tokens are gone but who was signed in is kept, so work queued by that person is
    never sent under someone else's name.
    """

    sub: str
    username: str
    scopes: frozenset[str]
    access_token: str
    expires_at: datetime
    refresh_token: str | None = None
    ended: bool = False
    issuer: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def ended_copy(self) -> StoredTokens:
        return replace(self, access_token="", refresh_token=None, ended=True)

    def to_json(self) -> str:
        return json.dumps({
            "sub": self.sub, "username": self.username, "scopes": sorted(self.scopes),
            "access_token": self.access_token, "expires_at": self.expires_at.isoformat(),
            "refresh_token": self.refresh_token, "ended": self.ended, "issuer": self.issuer,
            "extra": self.extra,
        })

    @classmethod
    def from_json(cls, raw: str | bytes) -> StoredTokens:
        data = json.loads(raw)
        expires_at = datetime.fromisoformat(data["expires_at"])
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        return cls(
            sub=str(data["sub"]), username=str(data["username"]),
            scopes=frozenset(data.get("scopes", [])), access_token=str(data["access_token"]),
            expires_at=expires_at, refresh_token=data.get("refresh_token"),
            ended=bool(data.get("ended", False)), issuer=str(data.get("issuer", "")),
            extra=dict(data.get("extra", {})),
        )


class TokenVault(Protocol):
    def load(self) -> StoredTokens | None:
        """The stored session, or None (nothing stored, or unreadable)."""
        ...

    def save(self, tokens: StoredTokens) -> None: ...

    def clear(self) -> None:
        """Forget the session (sign-out); the device key stays."""
        ...

    def device_key(self) -> bytes:
        """This device's outbox key, made (and kept) on first use."""
        ...


def _key_text(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _key_bytes(text: str | bytes | None) -> bytes | None:
    if not text:
        return None
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        return None
    return key if len(key) == 32 else None


class MemoryVault:
    def __init__(self, tokens: StoredTokens | None = None,
                 device_key: bytes | None = None) -> None:
        self.tokens = tokens
        self.saves = 0
        self._device_key = device_key

    def device_key(self) -> bytes:
        if self._device_key is None:
            self._device_key = new_device_key()
        return self._device_key

    def load(self) -> StoredTokens | None:
        return self.tokens

    def save(self, tokens: StoredTokens) -> None:
        self.tokens = tokens
        self.saves += 1

    def clear(self) -> None:
        self.tokens = None


def _parse(raw: str | bytes | None, where: str) -> StoredTokens | None:
    if raw is None:
        return None
    try:
        return StoredTokens.from_json(raw)
    except (ValueError, KeyError, TypeError):
        # A damaged entry means signing in again, never a crash at start-up.
        log.warning("the stored session in %s is unreadable; sign in again", where)
        return None


class KeyringVault:
    """The OS keychain. ``account`` separates sessions for different servers."""

    def __init__(self, account: str = "default", service: str = KEYRING_SERVICE) -> None:
        self.account = account
        self.service = service

    def load(self) -> StoredTokens | None:
        import keyring
        from keyring.errors import KeyringError

        try:
            raw = keyring.get_password(self.service, self.account)
        except KeyringError as exc:
            log.warning("the keychain could not be read (%s); sign in again", exc)
            return None
        return _parse(raw, f"the keychain entry {self.service}/{self.account}")

    def save(self, tokens: StoredTokens) -> None:
        import keyring

        keyring.set_password(self.service, self.account, tokens.to_json())

    def device_key(self) -> bytes:
        import keyring

        name = f"{self.account}.device-key"
        key = _key_bytes(keyring.get_password(self.service, name))
        if key is None:
            key = new_device_key()
            keyring.set_password(self.service, name, _key_text(key))
        return key

    def clear(self) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(self.service, self.account)


def _write_private(path: Path, data: bytes) -> None:
    """Write atomically, readable by the owner only from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    os.chmod(path, 0o600)


class EncryptedFileVault:
    """Tokens encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under a key kept in
    ``key_path``, which should live in another directory than the database."""

    def __init__(self, path: Path, key_path: Path) -> None:
        self.path = Path(path)
        self.key_path = Path(key_path)

    def _fernet(self, create: bool) -> Fernet | None:
        if not self.key_path.exists():
            if not create:
                return None
            _write_private(self.key_path, Fernet.generate_key())
        return Fernet(self.key_path.read_bytes().strip())

    def load(self) -> StoredTokens | None:
        if not self.path.exists():
            return None
        try:
            fernet = self._fernet(create=False)
            if fernet is None:
                log.warning("the token key %s is missing; sign in again", self.key_path)
                return None
            raw = fernet.decrypt(self.path.read_bytes())
        except (InvalidToken, ValueError, OSError):
            log.warning("the token file %s cannot be decrypted; sign in again", self.path)
            return None
        return _parse(raw, str(self.path))

    def save(self, tokens: StoredTokens) -> None:
        fernet = self._fernet(create=True)
        assert fernet is not None
        _write_private(self.path, fernet.encrypt(tokens.to_json().encode("utf-8")))

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    @property
    def device_key_path(self) -> Path:
        return self.path.with_name("device-key.enc")

    def device_key(self) -> bytes:
        """Kept beside the session file, encrypted with the same key (in ``key_path``)."""
        fernet = self._fernet(create=True)
        assert fernet is not None
        if self.device_key_path.exists():
            try:
                key = _key_bytes(fernet.decrypt(self.device_key_path.read_bytes()))
            except InvalidToken:
                key = None
            if key is not None:
                return key
            log.warning("the device key %s cannot be opened; a new one is made (entries "
                        "sealed with the old one are held)", self.device_key_path)
        key = new_device_key()
        _write_private(self.device_key_path, fernet.encrypt(_key_text(key).encode()))
        return key


class AsyncKeyValueStore(Protocol):
    """Flet's ``SecureStorage`` shape (flet-secure-storage)."""

    def get(self, key: str) -> Awaitable[str | None]: ...

    def set(self, key: str, value: str) -> Awaitable[Any]: ...

    def remove(self, key: str) -> Awaitable[Any]: ...


class SecureStorageVault:
    """Adapts an async secure store (Flet's secure storage in built phone apps) to the
    synchronous ``TokenVault``: ``await open()`` reads once at start-up, then reads come
    from memory and writes go through in the background (``await flush()`` waits)."""

    def __init__(self, storage: AsyncKeyValueStore, key: str = "governor.session") -> None:
        self.storage = storage
        self.key = key
        self._tokens: StoredTokens | None = None
        self._device_key: bytes | None = None
        self._pending: list[asyncio.Task[Any]] = []

    async def open(self) -> None:
        self._tokens = _parse(await self.storage.get(self.key), "secure storage")
        self._device_key = _key_bytes(await self.storage.get(f"{self.key}.device-key"))

    def device_key(self) -> bytes:
        if self._device_key is None:
            self._device_key = new_device_key()
            self._write(self.storage.set(f"{self.key}.device-key",
                                         _key_text(self._device_key)))
        return self._device_key

    def load(self) -> StoredTokens | None:
        return self._tokens

    def save(self, tokens: StoredTokens) -> None:
        self._tokens = tokens
        self._write(self.storage.set(self.key, tokens.to_json()))

    def clear(self) -> None:
        self._tokens = None
        self._write(self.storage.remove(self.key))

    def _write(self, op: Awaitable[Any]) -> None:
        async def run() -> Any:
            return await op

        self._pending.append(asyncio.get_running_loop().create_task(run()))

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


def keyring_available() -> bool:
    """True when ``keyring`` has a real, secure backend (not the fail or null ones)."""
    try:
        import keyring
        from keyring.backends import fail

        backend = keyring.get_keyring()
    except Exception:  # a broken keyring configuration means "not available"
        return False
    if isinstance(backend, fail.Keyring):
        return False
    backends = getattr(backend, "backends", None)  # the chainer wraps the real ones
    if backends is not None and not backends:
        return False
    priority = getattr(backend, "priority", 1)
    if not (priority and float(priority) > 0):
        return False
    try:
        # A backend can be installed yet unusable (Secret Service without a D-Bus session).
        backend.get_password(KEYRING_SERVICE, "availability-probe")
    except Exception:
        return False
    return True


def default_key_dir() -> Path:
    return Path(user_config_dir("waooaw-governor", appauthor=False))


def default_vault(data_dir: Path, *, key_dir: Path | None = None,
                  account: str = "default") -> TokenVault:
    """The keychain when the OS has one; else an encrypted file in ``data_dir`` whose key
    lives in ``key_dir`` (the user's config directory by default)."""
    if keyring_available():
        return KeyringVault(account)
    key_dir = key_dir or default_key_dir()
    return EncryptedFileVault(Path(data_dir) / "session.enc", key_dir / "session.key")
