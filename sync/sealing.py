"""Data at rest on the device: what the governor typed or attached, sealed in the outbox,
and the free-text secrets of the server data cached beside it (``seal_secrets``).

A veto's reason, a comment and attachments are encrypted with AES-256-GCM under the device
key, which lives in the token vault (keychain, secure storage, encrypted file or memory),
never in the database. A sealed value is ``sealed:v1:`` + base64(nonce || ciphertext+tag);
the entry's id is the associated data, so a sealed payload moved onto another entry does
not open. Values without the prefix are clear text written by earlier versions and are
read as they are (they still send).
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from sync.errors import DeviceKeyError

# cryptography is imported where a key is used, not with the module: the cold start reads
# the store through ``open_secrets`` with no key (sealed values left out) before the
# engine is built, and importing it there cost ~20 ms of the app's start.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "sealed:v1:"
KEY_BYTES = 32

# The keys of cached server JSON whose values are free text a governor wrote (or evidence
# they attached): veto and change reasons, comments, the stage notes and decision note that
# quote them, attachments. Wherever they occur (a pipeline stage, the dashboard's recent
# vetoes, a notification's data) their values are sealed; everything else stays in clear.
SECRET_KEYS = frozenset({"reason", "comment", "notes", "decision_note", "attachments"})
# A row's secret values are sealed together, once per row (one AES-GCM operation, not one
# per stage note): each is replaced by ``{"$sealed": i}`` and the list of them is sealed
# under ``"$secrets"`` at the row's top level (dicts: no text a server sends can be
# mistaken for one).
SEALED_KEY = "$sealed"
SECRETS_KEY = "$secrets"
# The row's top-level keys that hold sealed values (so a merge can tell, without opening
# anything, whether the values it brings replace every sealed one: ``overlay``).
SEALED_IN_KEY = "$sealed_in"
_ROW_KEYS = frozenset({SECRETS_KEY, SEALED_IN_KEY})
# What a value the device key does not open reads as (kept sealed in the database).
UNREADABLE = "[sealed with a device key this device no longer holds: not shown]"


def new_device_key() -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


class OutboxSealer:
    """Seals and opens outbox values with the device key, fetched once from
    ``key_source`` (the vault) when first needed."""

    def __init__(self, key_source: Callable[[], bytes]) -> None:
        self._source = key_source
        self._aead: AESGCM | None = None

    def _key(self) -> AESGCM:
        if self._aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            key = self._source()
            if len(key) != KEY_BYTES:
                raise ValueError(f"the device key is {len(key)} bytes; AES-256 needs "
                                 f"{KEY_BYTES}")
            self._aead = AESGCM(key)
        return self._aead

    def seal(self, text: str, entry_id: str, part: int | str | None = None) -> str:
        """``text`` sealed for ``entry_id`` (``part``: the entry's attachment number)."""
        nonce = os.urandom(12)
        sealed = self._key().encrypt(nonce, text.encode(), _bound(entry_id, part))
        return PREFIX + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, entry_id: str, part: int | str | None = None) -> str:
        """The clear text of ``stored``; raises ``DeviceKeyError`` naming the entry when
        this device's key does not open it."""
        if not is_sealed(stored):
            return stored  # written in clear by an earlier version
        from cryptography.exceptions import InvalidTag

        try:
            raw = base64.b64decode(stored[len(PREFIX):], validate=True)
            return self._key().decrypt(raw[:12], raw[12:], _bound(entry_id, part)).decode()
        except (InvalidTag, binascii.Error, ValueError) as exc:
            what = "Outbox entry" if part is None else f"Attachment {part} of outbox entry"
            raise DeviceKeyError(
                f"{what} {entry_id!r} was sealed with a device key this device no "
                "longer holds (the keychain or key file was reset or replaced), or it was "
                "altered. It is held, not sent and not deleted: restore the device key "
                "(keychain entry or key file) to send it, or discard it.", entry_id) from exc


def seal_secrets(body: Any, sealer: OutboxSealer | None, bound: str) -> Any:
    """``body`` (a cached server JSON object) with the value of every ``SECRET_KEYS`` key,
    at any depth, sealed for ``bound`` (the row it is stored in). Values sealed earlier in
    this row and not replaced (placeholders left by a merge) are carried over. With no
    sealer (a store opened without the device key) nothing is sealed."""
    if sealer is None or not isinstance(body, dict):
        return body
    values: list[Any] = []
    earlier: list[list[Any] | None] = []  # the row's earlier values, opened when needed

    def carried(index: int) -> Any:
        if not earlier:
            earlier.append(_open_values(body.get(SECRETS_KEY), sealer, bound))
        found = earlier[0]
        return found[index] if found is not None and index < len(found) else UNREADABLE

    def secret(value: Any) -> Any:
        if isinstance(value, dict) and len(value) == 1:
            index = _placeholder(value)
            if index is not None:
                value = carried(index)
        if value is None:
            return None
        values.append(value)
        return {SEALED_KEY: len(values) - 1}

    # Every cached row is walked once per write (a batch's answers: 500 rows), so the
    # walk is plain loops: scalars (most of a row) and empty secrets are copied without a
    # call, and only a dict of one key can be a placeholder.
    def walk_dict(value: dict[str, Any]) -> Any:
        if len(value) == 1 and _placeholder(value) is not None:
            return secret(value)
        return {k: (None if v is None else secret(v)) if k in SECRET_KEYS
                else walk_dict(v) if type(v) is dict
                else walk_list(v) if type(v) is list else v
                for k, v in value.items()}

    def walk_list(value: list[Any]) -> list[Any]:
        return [walk_dict(v) if type(v) is dict else walk_list(v) if type(v) is list else v
                for v in value]

    sealed: dict[str, Any] = {}
    holding: list[str] = []
    for k, v in body.items():
        if k in _ROW_KEYS:
            continue
        before = len(values)
        sealed[k] = secret(v) if k in SECRET_KEYS else walk_dict(v) if type(v) is dict \
            else walk_list(v) if type(v) is list else v
        if len(values) > before:
            holding.append(k)
    if values:
        sealed[SECRETS_KEY] = sealer.seal(orjson.dumps(values).decode(), bound)
        sealed[SEALED_IN_KEY] = holding
    return sealed


def overlay(stored: dict[str, Any], change: dict[str, Any]) -> dict[str, Any] | None:
    """``stored`` (a sealed row as read) with ``change`` (sealed by ``seal_secrets`` for
    the same row) laid over it, without opening or sealing anything, when ``change``
    replaces every top-level key that holds a sealed value of ``stored``; else None (the
    caller merges and seals the result, opening what it carries over)."""
    if SECRETS_KEY in stored:
        held = stored.get(SEALED_IN_KEY)
        if not isinstance(held, list) or not set(held) <= change.keys():
            return None
    merged = {**stored, **change}
    if SECRETS_KEY not in change:
        merged.pop(SECRETS_KEY, None)
        merged.pop(SEALED_IN_KEY, None)
    return merged


def _placeholder(value: Any) -> int | None:
    if isinstance(value, dict) and len(value) == 1:
        index = value.get(SEALED_KEY)
        if isinstance(index, int):
            return index
    return None


def _open_values(stored: Any, sealer: OutboxSealer | None, bound: str) -> list[Any] | None:
    if sealer is None or not isinstance(stored, str):
        return None
    try:
        values = orjson.loads(sealer.open(stored, bound))
    except (DeviceKeyError, orjson.JSONDecodeError):
        return None
    return values if isinstance(values, list) else None


def has_sealed(text: str) -> bool:
    """Whether stored JSON text holds sealed values (a cheap test before parsing it)."""
    return SECRETS_KEY in text


def open_secrets(body: Any, sealer: OutboxSealer | None, bound: str, *,
                 unopened: Any = UNREADABLE) -> Any:
    """``body`` with its sealed values opened (one AES-GCM operation for the row). Values
    the device key does not open (or any, with no sealer) read as ``unopened`` (an
    attachment list as ``[]``): the row is shown without its secret text, never refused;
    the database keeps the sealed values. (The cold start, which has no key yet, leaves
    them out with ``unopened=None`` until the engine reads the row.)"""
    if not isinstance(body, dict) or SECRETS_KEY not in body:
        return body
    values = _open_values(body[SECRETS_KEY], sealer, bound)

    def walk_dict(value: dict[str, Any]) -> Any:
        index = _placeholder(value)
        if index is not None:
            return values[index] if values is not None and index < len(values) \
                else unopened
        out: dict[str, Any] = {}
        for k, v in value.items():
            if k in _ROW_KEYS:
                continue
            if type(v) is dict:
                out[k] = walk_dict(v)
            elif type(v) is list:
                out[k] = walk_list(v)
            else:
                out[k] = v
        if "attachments" in out and out["attachments"] == unopened:
            out["attachments"] = []
        return out

    def walk_list(value: list[Any]) -> list[Any]:
        return [walk_dict(v) if type(v) is dict else walk_list(v) if type(v) is list else v
                for v in value]

    return walk_dict(body)


def _bound(entry_id: str, part: int | str | None) -> bytes:
    """The associated data: the value opens only for the entry (and attachment) it was
    sealed for."""
    return (entry_id if part is None else f"{entry_id}/{part}").encode()
