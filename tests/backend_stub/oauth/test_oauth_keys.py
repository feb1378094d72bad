"""Signing keys: persisted, rotated, and the old key verifies until its tokens expire."""

from __future__ import annotations

from pathlib import Path

import jwt
from fastapi.testclient import TestClient

from backend_stub.clock import FakeClock
from backend_stub.oauth.testing import issue_test_token, make_test_app
from tests.backend_stub.oauth.conftest import Stub, add_probe_routes


def test_rotation_signs_with_the_new_key_and_still_verifies_the_old(stub: Stub) -> None:
    keys = stub.app.state.keys
    old_kid = keys.signing_key().kid
    old_token = issue_test_token(stub.app)
    new_kid = keys.rotate()
    assert new_kid != old_kid
    new_token = issue_test_token(stub.app)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert {k["kid"] for k in stub.client.get("/oauth/jwks.json").json()["keys"]} == {
        old_kid, new_kid}
    assert stub.get("/probe/read", old_token).status_code == 200
    assert stub.get("/probe/read", new_token).status_code == 200


def test_old_key_leaves_the_jwks_after_its_tokens_expired(stub: Stub) -> None:
    keys = stub.app.state.keys
    old_kid = keys.signing_key().kid
    keys.rotate()
    # A token signed by the old key just before rotation would be dead by now anyway.
    stub.clock.advance(900 + 30 + 1)
    assert old_kid not in {k["kid"] for k in stub.client.get("/oauth/jwks.json").json()["keys"]}
    assert keys.verification_key(old_kid) is None
    assert stub.get("/probe/read", issue_test_token(stub.app)).status_code == 200


def test_keys_and_tokens_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stub.db'}"
    clock = FakeClock()
    first = make_test_app(clock, db_url=url)
    token = issue_test_token(first)
    kid = first.state.keys.signing_key().kid
    first.state.db.dispose()
    second = make_test_app(clock, db_url=url)
    add_probe_routes(second)
    assert second.state.keys.signing_key().kid == kid
    with TestClient(second) as client:
        response = client.get("/probe/read", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_a_key_rotated_by_another_process_is_picked_up(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stub.db'}"
    clock = FakeClock()
    one = make_test_app(clock, db_url=url)
    two = make_test_app(clock, db_url=url)
    add_probe_routes(two)
    one.state.keys.rotate()
    two.state.keys._last_reload = 0.0  # as if a second had passed
    token = issue_test_token(one)
    with TestClient(two) as client:
        response = client.get("/probe/read", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_processes_converge_on_one_signing_key(tmp_path: Path) -> None:
    import backend_stub.oauth.keys as keys_module

    url = f"sqlite:///{tmp_path / 'stub.db'}"
    clock = FakeClock()
    one = make_test_app(clock, db_url=url)
    two = make_test_app(clock, db_url=url)
    new_kid = one.state.keys.rotate()
    two.state.keys._last_reload -= keys_module._RESYNC_EVERY_S + 1  # 30 s later
    assert two.state.keys.signing_key().kid == new_kid


def test_keys_rotate_on_schedule_and_old_tokens_still_pass(stub: Stub) -> None:
    keys = stub.app.state.keys
    first = keys.signing_key().kid
    stub.clock.advance(30 * 86400 - 60)
    old = issue_test_token(stub.app)  # a minute before the key is 30 days old
    assert jwt.get_unverified_header(old)["kid"] == first
    stub.clock.advance(120)
    fresh = issue_test_token(stub.app)
    assert jwt.get_unverified_header(fresh)["kid"] != first
    assert stub.get("/probe/read", old).status_code == 200
    assert stub.get("/probe/read", fresh).status_code == 200


def test_rotation_can_be_turned_off() -> None:
    clock = FakeClock()
    app = make_test_app(clock, signing_key_rotation_days=0)
    first = app.state.keys.signing_key().kid
    clock.advance(400 * 86400)
    assert app.state.keys.signing_key().kid == first
