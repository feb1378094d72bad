"""The views have no import circle (issue 14): screens depend on the small screen
interface (``views/screen.py``), never on the shell; the shell is handed the route table
and imports no screen. Every import counts, those inside functions and under
``TYPE_CHECKING`` too: a circle there is still a circle to read."""

from __future__ import annotations

import ast
from pathlib import Path

import governor_app

PACKAGE = Path(governor_app.__file__).parent
VIEWS = PACKAGE / "views"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``path`` imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            # ``from governor_app.views import approvals`` imports a module.
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found & known


def graph(folder: Path) -> dict[str, set[str]]:
    files = list(folder.rglob("*.py"))
    known = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, known) - {module_name(p)} for p in files}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Each import circle once, as the path that closes it."""
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, ())):
            if nxt in path:
                loop = [*path[path.index(nxt):], nxt]
                if frozenset(loop) not in seen:
                    seen.add(frozenset(loop))
                    found.append(loop)
            elif nxt not in done:
                visit(nxt, [*path, nxt])
        done.add(node)

    for start in sorted(edges):
        if start not in done:
            visit(start, [start])
    return found


def test_the_views_have_no_import_circle() -> None:
    assert cycles(graph(VIEWS)) == []


def test_the_app_package_has_no_import_circle() -> None:
    assert cycles(graph(PACKAGE)) == []


def test_no_screen_imports_the_shell_and_the_shell_imports_no_screen() -> None:
    edges = graph(VIEWS)
    shell = "governor_app.views.shell"
    assert sorted(m for m, deps in edges.items() if shell in deps) == []
    screens = {m for m in edges if m not in (shell, "governor_app.views.screen",
                                             "governor_app.views.banners",
                                             "governor_app.views.common")}
    assert edges[shell] & screens == set()


def test_the_finder_sees_a_circle_through_a_function_level_import(tmp_path: Path) -> None:
    """The checker itself: a circle closed by an import inside a function is found."""
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from c import x\n")
    (tmp_path / "c.py").write_text("from a import y\n")
    (tmp_path / "d.py").write_text("import a\n")
    known = {"a", "b", "c", "d"}
    edges = {p.stem: imports_of(p, known) for p in tmp_path.glob("*.py")}
    assert cycles(edges) == [["a", "b", "c", "a"]]
