"""The baseline for the cold-start benchmarks: a bare Flet hello-world served the same way
as the governor app (web, 127.0.0.1, no CDN). Usage: ``python bench/_hello_flet.py PORT``."""

from __future__ import annotations

import os
import sys

import flet as ft


def main(page: ft.Page) -> None:
    page.add(ft.Semantics(identifier="hello", label="Hello, world", content=ft.Text("Hello")))


if __name__ == "__main__":
    os.environ["FLET_FORCE_WEB_SERVER"] = "1"
    ft.run(main, host="127.0.0.1", port=int(sys.argv[1]), view=ft.AppView.WEB_BROWSER,
           no_cdn=True)
