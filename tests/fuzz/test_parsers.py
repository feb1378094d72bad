"""Hypothesis on every parser of untrusted input: a parser answers, or refuses with its own
documented error; it never raises anything else (one stray exception in the event stream
would stop push for good, in the stub it is a 500).

- SSE frames (``sync.push.SseParser``) and the events they carry (``EventIntake``,
  ``PushEvent.parse``), forged or signed;
- precedent seed conditions (``backend_stub.domain.seeds``);
- WASM modules (``backend_stub.domain.wasm.validate_module``), random and mutated;
- attachment metadata (the veto and batch bodies of the API);
- settings files (the run profile ``flet.toml``, the preferences JSON);
- bearer tokens: whatever the ``Authorization`` header holds, the API answers 401.
"""

from __future__ import annotations

import base64
import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.domain.seeds import RequestFacts, SeedMatcher, SeedRule, condition_errors
from backend_stub.domain.wasm import WasmReport, build_module, validate_module
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings
from sync.push import (
    EventIntake,
    EventKey,
    EventVerifier,
    InMemoryEventSink,
    Outcome,
    PushEvent,
    SseParser,
    sign_event,
)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

# JSON values, strings included with every code point JSON can carry (lone surrogates too:
# "\ud800" is valid JSON text and decodes to one).
json_text = st.text(st.characters(codec=None), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63) | st.floats(allow_nan=False)
    | json_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(json_text, inner, max_size=5),
    max_leaves=20)


# --- SSE -----------------------------------------------------------------------------------
sse_names = st.sampled_from(["data", "id", "event", "retry", "", "dat", ":", "ID"])
sse_lines = st.one_of(
    st.text(max_size=60).map(lambda s: s.replace("\n", "").replace("\r", "")),
    st.tuples(sse_names, st.sampled_from([":", ": ", ""]), st.text(max_size=30)).map(
        lambda t: (t[0] + t[1] + t[2]).replace("\n", "").replace("\r", "")),
)


@FUZZ
@given(st.lists(sse_lines, max_size=40))
def test_the_sse_parser_takes_any_lines(lines: list[str]) -> None:
    parser = SseParser()
    for line in [*lines, ""]:
        frame = parser.feed(line)
        if frame is not None:
            assert frame.retry_ms is None or frame.retry_ms >= 0
            assert isinstance(frame.data, str)


def test_a_retry_field_of_unicode_digits_is_ignored() -> None:
    """Found by the fuzzer: ``"²".isdigit()`` is true, ``int("²")`` raises."""
    parser = SseParser()
    assert parser.feed("retry: ²") is None
    assert parser.feed("data: x") is None
    frame = parser.feed("")
    assert frame is not None and frame.retry_ms is None


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["data", "id", "event"]),
                          st.text(string.ascii_letters + string.digits + " {}\":,",
                                  max_size=20)), min_size=1, max_size=10))
def test_data_lines_join_into_one_frame(fields: list[tuple[str, str]]) -> None:
    parser = SseParser()
    for name, value in fields:
        assert parser.feed(f"{name}: {value}") is None
    frame = parser.feed("")
    datas = [v for n, v in fields if n == "data"]
    if not datas:
        assert frame is None
    else:
        assert frame is not None and frame.data == "\n".join(datas)


KEY = EventKey("k1", b"0123456789abcdef0123456789abcdef")


def _intake() -> EventIntake:
    return EventIntake(InMemoryEventSink(), EventVerifier([KEY]))


@FUZZ
@given(st.dictionaries(json_text, json_values, max_size=8),
       st.sampled_from(["none", "garbage", "known_key_bad_mac", "unknown_key"]))
def test_a_forged_event_is_refused_never_raised(event: dict[str, Any], how: str) -> None:
    if how == "garbage":
        event = {**event, "signature": "zz-not-hex", "key_id": "k1"}
    elif how == "known_key_bad_mac":
        event = {**event, "signature": "00" * 32, "key_id": "k1"}
    elif how == "unknown_key":
        event = {**event, "signature": "00" * 32, "key_id": "k-unknown"}
    assert _intake().take(event) is Outcome.FORGED


def test_a_forged_event_with_a_lone_surrogate_is_refused() -> None:
    """Found by the fuzzer: an event holding a lone surrogate (valid JSON: "\\ud800") made
    the HMAC check raise UnicodeEncodeError, which stops the listener."""
    event = json.loads('{"id": "1", "type": "x", "data": {"t": "\\ud800"}, '
                       '"key_id": "k1", "signature": "' + "00" * 32 + '"}')
    assert _intake().take(event) is Outcome.FORGED


event_fields = st.fixed_dictionaries({}, optional={
    "id": json_values, "type": json_values, "timestamp": json_values | st.datetimes().map(
        lambda d: d.isoformat()), "source": json_values, "data": json_values,
    "metadata": json_values})


@FUZZ
@given(event_fields)
def test_a_signed_event_is_accepted_or_malformed(event: dict[str, Any]) -> None:
    """Signed (the stub's own key) yet shaped wrong: malformed, never an exception."""
    try:
        signed = sign_event(event, KEY.key_id, KEY.key)
    except UnicodeEncodeError:
        assume(False)  # the stub cannot sign what is not UTF-8 either
        return
    outcome = _intake().take(signed)
    assert outcome in (Outcome.ACCEPTED, Outcome.MALFORMED)
    if outcome is Outcome.ACCEPTED:
        parsed = PushEvent.parse(signed)
        assert parsed.id and parsed.type and parsed.timestamp.tzinfo is not None


# --- seed conditions -----------------------------------------------------------------------
facts = st.builds(
    RequestFacts, industry=st.sampled_from(["education", "finance", "x"]),
    agent_kind=st.sampled_from(["industry", "coe"]),
    capabilities=st.lists(st.sampled_from([
        "file_read:/data/a/*", "file_write:/tmp/x", "network_outbound:api.example",
        "system_call:exec", "custom:thing", "env_read:HOME"]), max_size=4).map(tuple),
    daily_token_budget=st.integers(0, 10**7), monthly_cost_usd=st.floats(0, 1e6),
    wasm_valid=st.booleans(), memory_pages=st.none() | st.integers(0, 20000),
    requester=st.text(max_size=10))
condition_like = st.dictionaries(
    st.sampled_from(["industry_in", "agent_kind_in", "capabilities_within",
                     "max_daily_token_budget", "max_monthly_cost_usd",
                     "no_dangerous_capabilities", "wasm_valid", "max_memory_pages",
                     "requester_in", "other"]) | json_text,
    json_values | st.lists(st.sampled_from(["education", "finance", "coe", "industry",
                                            "file_read:/data/*", "network_outbound:*"]),
                           max_size=3, unique=True), max_size=5)


@FUZZ
@given(json_values | condition_like, facts)
def test_seed_conditions_are_validated_then_matched_without_surprises(
        conditions: Any, request_facts: RequestFacts) -> None:
    errors = condition_errors(conditions)
    assert isinstance(errors, dict)
    assert all(k.startswith("conditions") and isinstance(v, str) for k, v in errors.items())
    if errors:
        return
    result = SeedMatcher().match(request_facts,
                                 SeedRule("GEN-900", "fuzz", conditions, True, "active"))
    assert 0.0 <= result.score <= 1.0
    assert len(result.conditions_met) + len(result.conditions_failed) == len(conditions)


# --- WASM ----------------------------------------------------------------------------------
def _assert_report(report: WasmReport, data: bytes) -> None:
    assert report.size_bytes == len(data)
    assert report.valid == (not any(i["severity"] == "error" for i in report.issues))
    json.dumps(report.as_dict())  # what the API serves must serialise


@FUZZ
@given(st.binary(max_size=300) | st.binary(max_size=300).map(lambda b: b"\x00asm" + b))
def test_any_bytes_give_a_report(data: bytes) -> None:
    _assert_report(validate_module(data), data)


@FUZZ
@given(st.data(), st.integers(0, 3), st.integers(1, 5))
def test_mutated_modules_give_a_report(data: st.DataObject, imports: int,
                                       functions: int) -> None:
    module = bytearray(build_module(
        imports=[("env", f"fn{i}") for i in range(imports)] + [("wasi", "proc_exec")],
        functions=functions))
    for _ in range(data.draw(st.integers(1, 6))):
        where = data.draw(st.integers(0, len(module) - 1))
        kind = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if kind == "flip":
            module[where] = data.draw(st.integers(0, 255))
        elif kind == "cut":
            del module[where:where + data.draw(st.integers(1, 8))]
            if not module:
                break
        else:
            module[where:where] = data.draw(st.binary(min_size=1, max_size=6))
    _assert_report(validate_module(bytes(module)), bytes(module))


# --- the API: attachment metadata and bearer tokens ----------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, TestClient]]:
    app = create_app(StubSettings(data_dir=tmp_path_factory.mktemp("stub"), demo=True,
                                  public_url="http://testserver", disable_rate_limit=True),
                     clock=FakeClock())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client
    app.state.db.dispose()


# What an HTTP client can send as JSON: UTF-8 text, finite numbers.
api_text = st.text(st.characters(codec="utf-8"), max_size=40)
api_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63)
    | st.floats(allow_nan=False, allow_infinity=False) | api_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(api_text, inner, max_size=5),
    max_leaves=20)
b64 = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
attachment = st.fixed_dictionaries({}, optional={
    "name": api_values | api_text | st.text(st.characters(codec="utf-8"), min_size=250,
                                            max_size=300),
    "content_type": api_values | st.sampled_from(
        ["text/plain", "image/png", "application/x.evidence+json", "text", "/", "a/b/c"]),
    "data_base64": api_values | b64 | st.text("ABCxyz0189+/=", max_size=20)})


@FUZZ
@given(st.lists(attachment, max_size=7), st.sampled_from(["veto", "batch"]))
def test_attachment_metadata_is_judged_never_a_500(
        api: tuple[FastAPI, TestClient], attachments: list[dict[str, Any]], via: str) -> None:
    app, client = api
    headers = {"Authorization": f"Bearer {issue_test_token(app)}",
               "Idempotency-Key": os.urandom(8).hex()}
    body: dict[str, Any] = {"category": "safety", "reason": "fuzz", "attachments": attachments}
    if via == "veto":
        response = client.post("/v1/mobile/approvals/REQ-0001/veto", json=body,
                               headers=headers)
    else:
        item = {**body, "id": os.urandom(8).hex(), "approval_id": "REQ-0001",
                "action": "veto", "decided_at": "2026-01-01T12:00:00Z", "device_id": "fuzz"}
        response = client.post("/v1/mobile/decisions", json={"decisions": [item]},
                               headers=headers)
    assert response.status_code in (200, 404, 409, 413, 422), response.text
    assert "error" in response.json() or "data" in response.json()


@FUZZ
@given(st.one_of(
    st.text(max_size=200).map(lambda t: "Bearer " + t),
    st.text(string.ascii_letters + string.digits + "-_.", max_size=300).map(
        lambda t: "Bearer " + t),
    st.text(max_size=50), st.sampled_from(["Bearer", "Basic Zm9vOmJhcg==", "bearer  x"])))
def test_whatever_the_authorization_header_holds_it_is_a_401(
        api: tuple[FastAPI, TestClient], header: str) -> None:
    _, client = api
    assume(header.isprintable() and header.isascii() and header == header.strip())
    response = client.get("/v1/mobile/dashboard", headers={"Authorization": header})
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == "INVALID_TOKEN"
    assert response.headers["www-authenticate"].startswith("Bearer")


@FUZZ
@given(st.data())
def test_a_valid_token_altered_anywhere_is_a_401(api: tuple[FastAPI, TestClient],
                                                 data: st.DataObject) -> None:
    app, client = api
    token = issue_test_token(app)
    where = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.sampled_from(string.ascii_letters + string.digits + "-_"))
    assume(replacement != token[where])
    altered = token[:where] + replacement + token[where + 1:]
    response = client.get("/v1/mobile/dashboard", headers={"Authorization": f"Bearer {altered}"})
    # Base64url's last character may carry unused bits: flipping only those keeps the
    # signature the same bytes, and then the token is rightly still good.
    if response.status_code == 200:
        assert _same_bytes(token, altered), altered
        return
    assert response.status_code == 401, response.text


def _same_bytes(a: str, b: str) -> bool:
    def raw(t: str) -> list[bytes]:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in t.split(".")]

    try:
        return raw(a) == raw(b)
    except ValueError:
        return False


# --- settings files ------------------------------------------------------------------------
toml_values = st.one_of(st.integers(-10, 70000), st.text(max_size=20), st.booleans(),
                        st.floats(allow_nan=False), st.lists(st.integers(), max_size=2))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    return json.dumps(value)


profile_files = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.fixed_dictionaries({}, optional={
        "app": st.dictionaries(st.sampled_from(["view", "host", "port", "web_renderer",
                                                "route_url_strategy", "assets_dir", "x"]),
                               toml_values, max_size=4),
        "sync": st.dictionaries(st.sampled_from(["server_url", "sync_interval"]),
                                toml_values, max_size=2)}).map(
        lambda d: "\n".join(f"[{table}]\n" + "\n".join(f"{k} = {_toml(v)}"
                                                       for k, v in items.items())
                            for table, items in d.items()).encode()),
    st.sampled_from([b"app = 5", b"sync = \"x\"", b"[app]\nassets_dir = 3"]),
)


@FUZZ
@given(profile_files)
def test_a_run_profile_loads_or_is_refused_with_profile_error(tmp_path: Path,
                                                              content: bytes) -> None:
    from governor_app.errors import ProfileError
    from governor_app.profile import AppProfile, load_profile

    path = tmp_path / "flet.toml"
    path.write_bytes(content)
    try:
        profile = load_profile(path, env={})
    except ProfileError as exc:
        assert str(path) in str(exc) or "view" in str(exc)
        return
    assert isinstance(profile, AppProfile)


preference_files = st.one_of(
    st.binary(max_size=120),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(["theme", "notifications", "quiet_hours", "quiet_start",
                                     "quiet_end", "urgent_override", "server_url",
                                     "sync_interval", "x"]),
                    json_values, max_size=5).map(lambda d: json.dumps(d).encode()),
)


@FUZZ
@given(preference_files)
def test_a_preferences_file_never_stops_the_app(tmp_path: Path, content: bytes) -> None:
    from governor_app.preferences import Preferences, PreferenceStore

    path = tmp_path / "preferences.json"
    path.write_bytes(content)
    prefs = PreferenceStore(path).value
    assert isinstance(prefs, Preferences)
