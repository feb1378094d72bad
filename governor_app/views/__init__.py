"""One module per screen; each exposes ``build(shell) -> ft.Control``."""

from __future__ import annotations
