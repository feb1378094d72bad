"""The app–sync seam, read from the source: ``governor_app`` goes through one door.

It imports from ``sync`` only the facade (which re-exports the alert vocabulary and the
engine's settings), the models, the rules and the errors, and it never reaches past
``GovernorClient`` by attribute name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "governor_app"
ALLOWED = {"sync.facade", "sync.models", "sync.rules", "sync.errors"}
# Reflection that is not across the seam: importing a Flet control's module ahead of
# the first screen (``flet`` loads controls lazily by attribute).
REFLECTION_ALLOWED = {("startup.py", "getattr", "ft")}
REFLECTION = {"getattr", "hasattr"}


def sources() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def sync_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """Every ``sync`` module imported, anywhere in the file (functions and
    ``TYPE_CHECKING`` blocks too)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names
                      if a.name == "sync" or a.name.startswith("sync.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "sync":  # ``from sync import rules``
                found += [(node.lineno, f"sync.{a.name}") for a in node.names]
            elif node.module.startswith("sync."):
                found.append((node.lineno, node.module))
    return found


def reflection(tree: ast.AST, file: str) -> list[str]:
    """Calls of getattr & co. and ``__getattr__`` definitions, but the allowed ones."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in REFLECTION:
            target = ast.unparse(node.args[0]) if node.args else ""
            if (file, node.func.id, target) not in REFLECTION_ALLOWED:
                found.append(f"{file}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) \
                and node.name in ("__getattr__", "__getattribute__"):
            found.append(f"{file}:{node.lineno} def {node.name}")
    return found


def test_the_app_is_read_from_its_sources() -> None:
    assert len(sources()) > 10 and (APP / "push.py").exists()


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(APP)))
def test_the_app_imports_from_sync_only_the_door(path: Path) -> None:
    name = str(path.relative_to(APP))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    wrong = [f"{name}:{line} imports {module}" for line, module in sync_imports(tree)
             if module not in ALLOWED]
    assert wrong == [], ("governor_app reaches past the facade; put what it needs on "
                         f"sync.facade.GovernorClient: {wrong}")


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(APP)))
def test_the_app_never_reaches_past_an_interface_by_name(path: Path) -> None:
    name = str(path.relative_to(APP))
    found = reflection(ast.parse(path.read_text(encoding="utf-8")), name)
    assert found == [], f"attribute reflection in governor_app (add a typed method): {found}"


def test_the_checks_catch_what_they_are_for() -> None:
    # A check that never fires proves nothing: each must see the old shapes of the seam.
    tree = ast.parse("from sync.notify import center_for_engine\n"
                     "from sync import push\n"
                     "from sync.alerts import Alert\n"
                     "from sync.settings import GovernorSettings\n"
                     "def f(client):\n"
                     "    import sync.engine\n"
                     "    return hasattr(client, 'auth') and getattr(client, 'settings')\n"
                     "class StartingClient:\n"
                     "    def __getattr__(self, name): ...\n")
    assert [m for _, m in sync_imports(tree)] == ["sync.notify", "sync.push", "sync.alerts",
                                                  "sync.settings", "sync.engine"]
    assert not {"sync.alerts", "sync.settings", "sync.notify", "sync.push"} & ALLOWED
    assert len(reflection(tree, "x.py")) == 3
    assert reflection(ast.parse("getattr(ft, name)"), "startup.py") == []
    assert reflection(ast.parse("getattr(ft, name)"), "push.py") != []
