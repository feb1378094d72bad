"""Where submitted WASM modules are kept: by SHA-256, outside the database.

A module can be 50 MB; written into a database row it costs more than everything else a
submission does (on SQLite about ten times the time to hash it). Submitted modules are
therefore kept content-addressed in a ``ModuleStore`` and their request row holds no bytes
(``ApprovalRequest.wasm_module`` is empty, the report names the SHA-256).
``GovernanceService`` takes the store in its constructor: ``InMemoryModuleStore`` by
default, ``DirectoryModuleStore`` (``DATA_DIR/modules``) in the running stub. Stub processes
that share a database share modules only if they share the data directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Protocol

__all__ = ["DirectoryModuleStore", "InMemoryModuleStore", "ModuleStore"]


class ModuleStore(Protocol):
    def put(self, sha256: str, data: bytes, source: Path | None = None) -> None:
        """Keep ``data`` under ``sha256``; ``source``, a file holding the same bytes, may be
        moved in instead of writing them again (it is gone afterwards either way)."""

    def get(self, sha256: str) -> bytes | None:
        """The module's bytes, or None when this store does not hold it."""


class InMemoryModuleStore:
    def __init__(self) -> None:
        self._modules: dict[str, bytes] = {}

    def put(self, sha256: str, data: bytes, source: Path | None = None) -> None:
        self._modules[sha256] = data
        if source is not None:
            source.unlink(missing_ok=True)

    def get(self, sha256: str) -> bytes | None:
        return self._modules.get(sha256)


class DirectoryModuleStore:
    """``DIRECTORY/<sha256>.wasm``; a ``source`` on the same file system is renamed in."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"{sha256!r} is not a SHA-256 hex digest")
        return self.directory / f"{sha256}.wasm"

    def put(self, sha256: str, data: bytes, source: Path | None = None) -> None:
        target = self._path(sha256)
        self.directory.mkdir(parents=True, exist_ok=True)
        if target.exists():  # content-addressed: the same bytes are there already
            if source is not None:
                source.unlink(missing_ok=True)
            return
        if source is None:
            handle, name = tempfile.mkstemp(dir=self.directory, suffix=".part")
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            source = Path(name)
        os.replace(source, target)  # the caller has synced source's bytes

    def get(self, sha256: str) -> bytes | None:
        try:
            return self._path(sha256).read_bytes()
        except FileNotFoundError:
            return None
