"""Regenerate the README's screenshots from the real app in headless Chromium.

``python scripts/screenshots.py [--out docs/screenshots]`` starts ``governor demo --web``
(the stub with demo data, signed in as the demo governor), visits every screen at
1280x800 and at 390x844, and saves ``NAME.png`` (desktop) and ``NAME-phone.png``.
Needs /usr/bin/chromium; no network beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.browser.harness import (  # noqa: E402
    DESKTOP,
    PHONE,
    AppProcess,
    button,
    by_id,
    chromium_missing_reason,
    launch_chromium,
    nav,
    open_app,
)


def first(page: object, kind: str, starts: str, shows: str) -> None:
    """Open the first row ``kind-starts...`` until the node ``shows`` is on the screen: a
    tap that Flutter's engine drops while the list refreshes is tapped again."""
    rows = page.locator(f'[flt-semantics-identifier^="{kind}-{starts}"]')  # type: ignore[attr-defined]
    for _ in range(6):
        rows.first.wait_for()
        rows.first.click()
        try:
            by_id(page, shows).wait_for(timeout=5_000)  # type: ignore[arg-type]
            return
        except Exception:  # Playwright's TimeoutError: the tap was dropped
            continue
    by_id(page, shows).wait_for()  # type: ignore[arg-type]


def settled_screenshot(page: object, path: Path) -> None:
    """A screenshot once two in a row are the same: the screen has stopped moving (no
    animation, and not Flet's "Working..." spinner, which a busy machine shows for a
    while after the screen's nodes are there)."""
    page.mouse.move(1, 1)  # type: ignore[attr-defined]  # no tooltip of the last tap
    last = b""
    for _ in range(40):
        shot: bytes = page.screenshot()  # type: ignore[attr-defined]
        if shot == last:
            break
        last = shot
        page.wait_for_timeout(500)  # type: ignore[attr-defined]
    path.write_bytes(last)


def tour(page: object) -> list[tuple[str, Callable[[], None]]]:
    p = page

    def detail() -> None:
        nav(p, "Approvals")  # type: ignore[arg-type]
        first(p, "approval", "REQ", "approval-detail")

    def veto_screen() -> None:
        button(p, "Veto").click()  # type: ignore[arg-type]
        by_id(p, "veto-deadline").wait_for()  # type: ignore[arg-type]

    def seed_detail() -> None:
        first(p, "seed", "GEN", "seed-detail")

    def wizard() -> None:
        button(p, "Back to seeds").click()  # type: ignore[arg-type]
        button(p, "New seed").click()  # type: ignore[arg-type]
        by_id(p, "wizard-step").wait_for()  # type: ignore[arg-type]

    def simple(label: str, identifier_prefix: str | None) -> Callable[[], None]:
        def go() -> None:
            nav(p, label)  # type: ignore[arg-type]
            if identifier_prefix:
                p.locator(  # type: ignore[attr-defined]
                    f'[flt-semantics-identifier^="{identifier_prefix}"]').first.wait_for()
        return go

    return [
        ("dashboard", lambda: by_id(p, "figure-active-agents").wait_for()),  # type: ignore[arg-type]
        ("approvals", simple("Approvals", "approval-")),
        ("approval-detail", detail),
        ("veto", veto_screen),
        ("seeds", simple("Seeds", "seed-")),
        ("seed-detail", seed_detail),
        ("seed-wizard", wizard),
        ("notifications", simple("Notifications", "notification-")),
        ("agents", simple("Agents", "agent-")),
        ("violations", simple("Violations", "violation-")),
        ("outbox", simple("Outbox", "sync-summary")),
        ("settings", simple("Settings", "settings-account")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshots")
    args = parser.parse_args()
    reason = chromium_missing_reason()
    if reason:
        print(f"cannot take screenshots: {reason}", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="governor-shots-") as tmp, \
            AppProcess(["demo"], data_dir=Path(tmp) / "app") as app, sync_playwright() as pw:
        browser = launch_chromium(pw)
        try:
            for suffix, viewport in (("", DESKTOP), ("-phone", PHONE)):
                page = open_app(browser, app.url, viewport)
                for name, reach in tour(page):
                    reach()
                    path = args.out / f"{name}{suffix}.png"
                    settled_screenshot(page, path)
                    print(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
                page.close()
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
