"""Prewarm: while the browser loads Flutter, import the Flet modules the first screen
uses, which Flet would otherwise import on first use while drawing it. (The cold-start
client itself, which answers the first screen from the engine's store while the engine is
built, is ``sync.cold_start.StartingClient``.)
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

VIEWS_DIR = Path(__file__).resolve().parent / "views"
# The modules that draw the first screen (the frame, the dashboard or the sign-in form);
# the other screens' controls are imported when they are first opened.
FIRST_SCREEN = ("shell.py", "screen.py", "banners.py", "common.py", "dashboard.py", "signin.py")
_FLET_NAME = re.compile(r"\bft\.([A-Z]\w*)")


def flet_names_used(views_dir: Path = VIEWS_DIR, files: tuple[str, ...] = FIRST_SCREEN
                    ) -> set[str]:
    """Every ``ft.Name`` the first screen's sources use (none when they are not
    shipped)."""
    names: set[str] = set()
    for file in files:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            names.update(_FLET_NAME.findall((views_dir / file).read_text(encoding="utf-8")))
    return names


def prewarm() -> None:
    """Import what the first screen needs. Meant for a thread started once the server
    listens: Flet imports a control's module on its first use, which would otherwise
    happen while the first screen is built, after the browser has connected. Only that:
    this thread takes the CPU from the browser loading Flutter (2 cores), so what the
    first screen does not draw (the engine's settings, the other screens' validators)
    waits for its first use."""
    import flet as ft

    # Every screen (the route table) and the frame it is handed to.
    from governor_app.views import routes, shell  # noqa: F401

    for name in sorted(flet_names_used()):
        with contextlib.suppress(AttributeError):
            getattr(ft, name)
