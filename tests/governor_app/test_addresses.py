"""governor_app.addresses: every screen's path, parsed back, with ids of any shape."""

from __future__ import annotations

import os.path
from urllib.parse import unquote, urlsplit

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from governor_app import addresses
from governor_app.addresses import Address, parse

ids = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")


@pytest.mark.parametrize(("path", "address"), [
    ("/", Address("dashboard")),
    ("", Address("dashboard")),
    ("/dashboard", Address("dashboard")),
    ("/approvals", Address("approvals")),
    ("/approvals/", Address("approvals")),
    ("/approvals/REQ-0016", Address("approval", "REQ-0016")),
    ("/approvals/REQ-0016/veto", Address("veto", "REQ-0016")),
    ("/approvals/REQ-0016?from=mail", Address("approval", "REQ-0016")),
    ("/approvals/REQ%2F16#top", Address("approval", "REQ/16")),
    ("/seeds", Address("seeds")),
    ("/seeds/new", Address("seed-wizard")),
    ("/seeds/~new", Address("seed", "new")),
    ("/seeds/~~x", Address("seed", "~x")),
    ("/seeds/~..", Address("seed", "..")),
    ("/seeds/GEN-001", Address("seed", "GEN-001")),
    ("/agents", Address("agents")),
    ("/violations", Address("violations")),
    ("/notifications", Address("notifications")),
    ("/outbox", Address("outbox")),
    ("/settings", Address("settings")),
    ("/more", Address("more")),
    ("/sign-in", Address("sign-in")),
])
def test_each_screen_has_its_path(path: str, address: Address) -> None:
    assert parse(path) == address


@pytest.mark.parametrize("path", ["/nowhere", "/approvals/REQ-1/approve", "/seeds/a/b",
                                  "/dashboard/extra", "/approvals/a/b/c"])
def test_an_unknown_path_is_unknown_not_the_dashboard(path: str) -> None:
    address = parse(path)
    assert address == Address("unknown", path)
    assert address.path == path
    assert address.section == ""


@pytest.mark.parametrize(("screen", "path"), [
    ("dashboard", "/dashboard"), ("approvals", "/approvals"), ("seeds", "/seeds"),
    ("seed-wizard", "/seeds/new"), ("outbox", "/outbox")])
def test_fixed_screens_format_to_their_path(screen: str, path: str) -> None:
    assert Address(screen).path == path
    assert parse(path) == Address(screen)


def test_an_object_screen_without_an_id_is_refused_in_words() -> None:
    with pytest.raises(ValueError, match="'approval' screen needs an id"):
        _ = Address("approval").path


def test_sections_light_up_the_navigation() -> None:
    assert parse("/approvals/X/veto").section == "/approvals"
    assert parse("/seeds/new").section == "/seeds"
    assert parse("/seeds/X").section == "/seeds"
    assert parse("/outbox").section == "/outbox"


@given(object_id=ids, screen=st.sampled_from(["approval", "veto", "seed"]))
@example(object_id="new", screen="seed")
@example(object_id="a/b", screen="approval")
@example(object_id="REQ.1", screen="approval")
@example(object_id="..", screen="seed")
@example(object_id=".", screen="approval")
@example(object_id="~", screen="approval")
@example(object_id="?x=1#y", screen="veto")
@example(object_id="%2F", screen="approval")
def test_ids_of_any_shape_round_trip(object_id: str, screen: str) -> None:
    address = Address(screen, object_id)
    path = address.path
    assert parse(path) == address
    # One path segment for the id: nothing in it splits, queries or cuts the path.
    assert urlsplit(path).path == path
    segments = [s for s in path.split("/") if s]
    assert unquote(segments[1]).removeprefix("~") == object_id
    # The browser resolves "." and ".." segments (percent-encoded too): none is left.
    assert unquote(segments[1]).strip(".") != ""
    assert len(segments) == (3 if screen == "veto" else 2)
    # Flet's web server serves the app only for extension-less paths (else 404).
    assert os.path.splitext(path)[1] == ""


@given(object_id=ids)
def test_helpers_match_the_addresses(object_id: str) -> None:
    assert addresses.approval(object_id) == Address("approval", object_id).path
    assert addresses.veto(object_id) == Address("veto", object_id).path
    assert addresses.seed(object_id) == Address("seed", object_id).path


@pytest.mark.parametrize(("wanted", "goes"), [
    (None, "/dashboard"), ("", "/dashboard"), ("/sign-in", "/dashboard"),
    ("/approvals/REQ-1", "/approvals/REQ-1"), ("/", "/"), ("/outbox", "/outbox")])
def test_after_sign_in_goes_where_the_governor_was_going(wanted: str | None, goes: str
                                                           ) -> None:
    assert addresses.after_sign_in(wanted) == goes
