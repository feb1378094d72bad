"""Every character the app can put on screen is in the font the web client renders with.

Offline (``no_cdn``) Flutter's web client draws text in the Roboto that flet-web ships and
cannot fetch its Noto fallbacks: a character Roboto lacks shows as an empty box (issue 18:
the ✓ and ✗ of seed matches). This test collects every non-ASCII character in the string
literals of ``governor_app`` (docstrings aside: they are never shown) and looks each one up
in that font's character map with fontTools, an independent reader of the font file.
"""

from __future__ import annotations

import ast
from importlib.resources import files
from pathlib import Path

from fontTools.ttLib import TTFont

APP = Path(__file__).resolve().parents[2] / "governor_app"
ROBOTO = files("flet_web") / "web" / "assets" / "fonts" / "roboto.woff2"


def _docstrings(tree: ast.AST) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef
                      | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def shown_characters() -> dict[str, str]:
    """Each non-ASCII character of the app's string literals -> one place it is used."""
    chars: dict[str, str] = {}
    for path in sorted(APP.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and id(node) not in skip:
                for char in node.value:
                    if ord(char) > 127:
                        chars.setdefault(char, f"{path.relative_to(APP.parent)}:{node.lineno}")
    return chars


def roboto_cmap() -> set[int]:
    with ROBOTO.open("rb") as handle:
        font = TTFont(handle)
        return set(font.getBestCmap())


def test_the_collector_sees_literals_but_not_docstrings() -> None:
    chars = shown_characters()
    assert "·" in chars  # the list rows' separator, in f-strings all over the views
    # The hierarchy drawing in errors.py's docstring is never shown.
    assert "└" not in chars


def test_every_character_the_app_shows_is_in_its_font() -> None:
    cmap = roboto_cmap()
    assert ord("A") in cmap and ord("✓") not in cmap  # the font is read, and is Roboto
    missing = {f"{char!r} (U+{ord(char):04X})": where
               for char, where in shown_characters().items() if ord(char) not in cmap}
    assert not missing, ("these characters render as empty boxes in the app's font; use "
                         f"an ft.Icons icon or words instead: {missing}")
