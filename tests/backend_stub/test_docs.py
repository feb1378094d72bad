"""docs/api.md describes every route the stub serves (a new route fails this until it is)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI

from backend_stub.app import create_app
from backend_stub.settings import StubSettings

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_every_v1_route_is_documented(tmp_path: Path) -> None:
    app: FastAPI = create_app(StubSettings(data_dir=tmp_path, demo=True))
    try:
        paths = {p for p in app.openapi()["paths"] if p.startswith("/v1/")}
    finally:
        app.state.db.dispose()
    text = DOC.read_text()
    missing = sorted(p for p in paths
                     if re.sub(r"\{[^}]+\}", "{id}", p) not in text and p not in text)
    assert not missing, f"docs/api.md does not describe {missing}"


def test_every_error_code_is_documented() -> None:
    from backend_stub import errors

    codes = {cls.code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.ApiError)}
    text = DOC.read_text()
    assert not sorted(c for c in codes if f"`{c}`" not in text)
