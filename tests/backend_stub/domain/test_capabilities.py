"""Capability grants: parsing refuses what could be read two ways, containment is structural,
breadth comes with reasons. The property tests check the judgement against independent
oracles (wcmatch for paths, the idna package and the C library's inet_aton for hosts)."""

from __future__ import annotations

import posixpath
import re
import socket
import unicodedata
import urllib.parse

import idna
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from wcmatch import glob

from backend_stub.domain import capabilities as caps
from backend_stub.errors import InvalidGrant, ValidationFailed

PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("grant, problem", [
    ("file_read:/data/../etc/shadow", "'..' path segment"),
    ("file_read:/data/./x", "'.' path segment"),
    ("file_read:/data//x", "empty path segment"),
    ("file_read:/data/", "empty path segment"),
    ("file_read:/data/%2e%2e/etc", "percent-encoding"),
    ("file_read:/data/%252e", "percent-encoding"),
    ("file_read:/data/x\x00y", "U+0000"),
    ("file_read:/data/x\ny", "U+000A"),
    ("file_read:/data/\u202eevil", "U+202E"),
    ("file_read:/data\uff0fetc", "FULLWIDTH SOLIDUS"),
    ("file_read:/data/\uff0e\uff0e/etc", "FULLWIDTH FULL STOP"),
    ("file_read:/data\\..\\etc", "backslash"),
    ("file_read:data/x", "not an absolute path"),
    ("file_read:/data/*.csv", "partial wildcard"),
    ("file_read:/data/x**", "partial wildcard"),
    ("network_outbound:bank.example.", "trailing dot"),
    ("network_outbound:bank.example\u3002", "trailing dot"),
    ("network_outbound:bank..example", "empty host label"),
    ("network_outbound:evil*.bank.example", "partial wildcard"),
    ("network_outbound:api.**.example", "'**' after the first label"),
    ("network_outbound:a_b.example", "not a valid host name label"),
    ("network_outbound:bank.example/x", "not a valid host name label"),
    ("network_outbound:127.1", "not an IP address"),
    ("network_outbound:0x7f.0.0.1", "not an IP address"),
    ("network_outbound:2130706433", "not an IP address"),
    ("network_outbound:%62ank.example", "percent-encoding"),
    ("network_inbound:0", "between 1 and 65535"),
    ("network_inbound:65536", "between 1 and 65535"),
    ("network_inbound:080", "between 1 and 65535"),
    ("network_inbound:\uff18\uff10", "between 1 and 65535"),
    ("network_inbound:80-90", "between 1 and 65535"),
    ("env_read:HOME*", "environment variable name"),
    ("env_read:P\u0410TH", "environment variable name"),  # Cyrillic A
    ("system_call:EXEC", "system call name"),
    ("custom:a b", "custom grant name"),
    ("teleport:x", "KIND:TARGET"),
    ("file_read:", "KIND:TARGET"),
    ("nocolon", "KIND:TARGET"),
    ("file_read:/" + "a/" * 70 + "b", "more than 64"),
    ("custom:" + "x" * 2000, "longer than"),
])
def test_a_malformed_grant_is_refused_naming_it(grant: str, problem: str) -> None:
    with pytest.raises(InvalidGrant) as caught:
        caps.parse(grant)
    error = caught.value
    assert problem in error.message
    assert error.status_code == 422 and error.code == "VALIDATION_FAILED"
    if len(grant) <= caps.MAX_GRANT_LENGTH:
        assert repr(grant) in error.message and error.details["grant"] == grant


def test_a_grant_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidGrant, match="not a string"):
        caps.parse(42)  # type: ignore[arg-type]


def test_checked_names_every_bad_grant_by_position_and_keeps_good_ones_canonical() -> None:
    assert caps.checked(["network_outbound:API.Bank.Example", "file_read:*"]) == [
        "network_outbound:api.bank.example", "file_read:/**"]
    with pytest.raises(ValidationFailed) as caught:
        caps.checked(["file_read:/data/x", "file_read:/data/../etc", "env_read:A-B"])
    fields = caught.value.details["fields"]
    assert set(fields) == {"capabilities.1", "capabilities.2"}
    assert "'file_read:/data/../etc'" in fields["capabilities.1"]
    with pytest.raises(ValidationFailed, match="one string"):
        caps.checked("file_read:/data/x")


# ----------------------------------------------------------------------------- canonical forms
@pytest.mark.parametrize("grant, canonical", [
    ("network_outbound:API.Bank.Example", "network_outbound:api.bank.example"),
    ("network_outbound:api\u3002bank\uff0eexample", "network_outbound:api.bank.example"),
    ("network_outbound:b\u0430nk.example", "network_outbound:xn--bnk-6cd.example"),
    ("network_outbound:\u0131bank.example", "network_outbound:xn--bank-kza.example"),
    ("network_outbound:[::1]", "network_outbound:[::1]"),
    ("network_outbound:::1", "network_outbound:[::1]"),
    ("network_outbound:*", "network_outbound:*"),
    ("file_read:*", "file_read:/**"),
    ("file_read:/", "file_read:/"),
    ("network_inbound:*", "network_inbound:*"),
])
def test_canonical_forms(grant: str, canonical: str) -> None:
    assert caps.canonical(grant) == canonical
    assert caps.canonical(canonical) == canonical


# ----------------------------------------------------------------------------- containment
@pytest.mark.parametrize("grant, pattern, inside", [
    ("file_read:/data/a", "file_read:/data/*", True),
    ("file_read:/data/a/b", "file_read:/data/*", False),
    ("file_read:/data/a/b", "file_read:/data/**", True),
    ("file_read:/data", "file_read:/data/**", False),
    ("file_read:/data/a/*", "file_read:/data/**", True),
    ("file_read:/data/**", "file_read:/data/*", False),
    ("file_read:/data/*", "file_read:/data/a", False),
    ("file_read:/database", "file_read:/data/**", False),
    ("file_read:/etc/shadow", "file_read:*", True),
    ("file_write:/data/a", "file_read:/data/*", False),
    ("network_outbound:api.bank.example", "network_outbound:*.bank.example", True),
    ("network_outbound:API.BANK.EXAMPLE", "network_outbound:*.bank.example", True),
    ("network_outbound:evilbank.example", "network_outbound:*.bank.example", False),
    ("network_outbound:bank.example", "network_outbound:*.bank.example", False),
    ("network_outbound:a.b.bank.example", "network_outbound:*.bank.example", False),
    ("network_outbound:a.b.bank.example", "network_outbound:**.bank.example", True),
    ("network_outbound:bank.example.evil.com", "network_outbound:*.bank.example", False),
    ("network_outbound:b\u0430nk.example", "network_outbound:bank.example", False),
    ("network_outbound:*.bank.example", "network_outbound:*.bank.example", True),
    ("network_outbound:*", "network_outbound:*.bank.example", False),
    ("network_outbound:10.0.0.1", "network_outbound:*", True),
    ("network_outbound:10.0.0.1", "network_outbound:*.example", False),
    ("network_inbound:8080", "network_inbound:*", True),
    ("network_inbound:8080", "network_inbound:8081", False),
    ("env_read:HOME", "env_read:*", True),
    ("env_read:HOME", "env_read:home", False),
    ("env_read:*", "env_read:HOME", False),
    ("system_call:exec", "system_call:exec", True),
    ("custom:x", "custom:*", True),
])
def test_containment(grant: str, pattern: str, inside: bool) -> None:
    assert caps.within(grant, [pattern]) is inside


def test_nothing_is_within_a_pattern_that_does_not_parse() -> None:
    assert not caps.within("file_read:/data/a", ["file_read:/data/?", "file_read:/da*"])
    assert not caps.within("file_read:/data/../data/a", ["file_read:/data/**"])
    assert caps.within("file_read:/data/a", ["file_read:/data/?", "file_read:/data/*"])


# ----------------------------------------------------------------------------- breadth
@pytest.mark.parametrize("grant, reason", [
    ("file_read:*", "whole file system"),
    ("file_read:/*", "every top-level directory"),
    ("file_read:/**", "every top-level directory"),
    ("file_read:/", "root directory"),
    ("file_read:/etc/passwd", "/etc, which holds system configuration"),
    ("file_read:/home/ana/notes", "/home"),
    ("file_read:/root", "/root"),
    ("file_read:/proc/1/environ", "/proc"),
    ("file_read:/var/run/docker.sock", "/var/run"),
    ("file_read:/var/*/docker.sock", "/var/run"),
    ("file_read:/data/**", "any depth under /data"),
    ("file_write:/data/out/x", "Writes files"),
    ("network_outbound:*", "any host"),
    ("network_outbound:*.com", "public suffix '.com'"),
    ("network_outbound:*.co.uk", "public suffix '.co.uk'"),
    ("network_outbound:api.*.example", "public suffix '.example'"),
    ("network_outbound:**.bank.example", "any depth under bank.example"),
    ("network_outbound:169.254.169.254", "internal or special address"),
    ("network_outbound:127.0.0.1", "internal or special address"),
    ("network_outbound:[::1]", "internal or special address"),
    ("network_outbound:b\u0430nk.example", "imitate another name"),
    ("network_outbound:localhost", "local or internal host"),
    ("network_outbound:metadata", "local or internal host"),
    ("network_outbound:db.corp", "local or internal host"),
    ("network_outbound:api.localhost", "local or internal host"),
    ("network_inbound:8080", "port 8080"),
    ("network_inbound:*", "every port"),
    ("system_call:exec", "'exec'"),
    ("env_read:*", "every environment variable"),
    ("env_read:DB_PASSWORD", "holds a secret"),
    ("custom:*", "every custom grant"),
])
def test_a_broad_grant_is_dangerous_with_a_reason(grant: str, reason: str) -> None:
    described = caps.describe(grant)
    assert described["dangerous"] is True
    assert any(reason in r for r in described["reasons"]), described["reasons"]
    assert all(r.endswith(".") and r[0].isupper() for r in described["reasons"])


@pytest.mark.parametrize("grant", [
    "file_read:/data/curriculum/*", "file_read:/data/etc/x", "file_read:/variable/run",
    "network_outbound:api.bank.example", "network_outbound:*.bank.example",
    "network_outbound:8.8.8.8", "env_read:MODEL_REGION", "custom:content_calendar",
])
def test_a_narrow_grant_is_not_dangerous(grant: str) -> None:
    assert caps.describe(grant)["reasons"] == [] and not caps.is_dangerous(grant)


def test_describe_shape_and_a_stored_grant_that_no_longer_parses() -> None:
    assert caps.describe("Network_outbound:x") == {
        "capability": "Network_outbound:x", "kind": "Network_outbound", "target": "x",
        "dangerous": True,
        "reasons": ["Not a valid grant: it is not KIND:TARGET with KIND one of "
                    + ", ".join(caps.KINDS) + "."]}
    assert caps.describe("network_outbound:API.bank.example") == {
        "capability": "network_outbound:api.bank.example", "kind": "network_outbound",
        "target": "api.bank.example", "dangerous": False, "reasons": []}


# ----------------------------------------------------------------------------- properties
# An adversarial alphabet: dots, slashes, encodings, case, look-alikes, trailing dots.
_PATH_PIECES = ["data", "Data", "etc", "shadow", "a", "a.", "..", ".", "...", "%2e", "%2f",
                "%252e", "\uff0f", "\uff0e\uff0e", "\u2024", "*", "**", "\u0131", "\u0430",
                "\\", "", " ", "x\x00", "\u200b", "~", "a?", "[a]", "{a,b}", "!x"]
_CLEAN_SEGMENTS = ["data", "etc", "a", "b", ".x", "x.y", "Data", "\u0430", "[a]", "!x", "a?"]
path_text = st.lists(st.sampled_from(_PATH_PIECES), min_size=0, max_size=6).flatmap(
    lambda parts: st.sampled_from(["/", "", "//"]).map(lambda lead: lead + "/".join(parts)))
path_pattern = st.lists(st.sampled_from(["data", "etc", "a", "Data", "*", "**", "\u0430",
                                         "[a]", "!x", "a?"]),
                        min_size=0, max_size=4).map(lambda parts: "/" + "/".join(parts))


def _parsed_or_refused(grant_text: str, what: str) -> caps.Grant | None:
    """The grant, or None when it is refused (the refusal must name it)."""
    try:
        return caps.parse(grant_text)
    except InvalidGrant as exc:
        event(f"{what} refused")
        assert repr(grant_text) in exc.message
        return None


def _liberal_path(raw: str) -> str:
    """Every reading a layer between the governor and the disk might give the path:
    percent-decoded until stable, compatibility-folded, backslashes as separators, dot
    segments resolved."""
    text, previous = raw, None
    while text != previous:
        previous, text = text, urllib.parse.unquote(text)
    text = unicodedata.normalize("NFKC", text).replace("\\", "/")
    return posixpath.normpath(text) if text.startswith("/") else text


def _wcmatch_pattern(pattern: caps.Grant) -> str:
    assert isinstance(pattern.target, caps.PathTarget)
    return "/" + "/".join(s if s in ("*", "**") else glob.escape(s)
                          for s in pattern.target.segments)


def _oracle_path_inside(pattern: caps.Grant, path: str) -> bool:
    return glob.globmatch(path, _wcmatch_pattern(pattern),
                          flags=glob.GLOBSTAR | glob.DOTGLOB | glob.CASE)


def _instances(segments: tuple[str, ...], data: st.DataObject) -> str:
    """One concrete path the (possibly wildcard) grant stands for."""
    out: list[str] = []
    for segment in segments:
        if segment == "*":
            out.append(data.draw(st.sampled_from(_CLEAN_SEGMENTS)))
        elif segment == "**":
            out.extend(data.draw(st.lists(st.sampled_from(_CLEAN_SEGMENTS), min_size=1,
                                          max_size=3)))
        else:
            out.append(segment)
    return "/" + "/".join(out)


def _near(raw_pattern: str) -> st.SearchStrategy[str]:
    """Paths that start like the pattern and go on with adversarial pieces."""
    literal = []
    for segment in raw_pattern.strip("/").split("/"):
        if segment in ("*", "**", ""):
            break
        literal.append(segment)
    return st.lists(st.sampled_from(_PATH_PIECES), max_size=3).map(
        lambda extra: "/" + "/".join(literal + extra))


@PROPERTY
@given(raw_pattern=path_pattern, kind=st.sampled_from(["file_read", "file_write"]),
       data=st.data())
def test_no_path_outside_a_pattern_is_judged_inside(raw_pattern: str, kind: str,
                                                    data: st.DataObject) -> None:
    raw = data.draw(st.one_of(path_text, _near(raw_pattern)))
    grant_text = f"{kind}:{raw}"
    grant = _parsed_or_refused(grant_text, "path")
    if grant is None:
        return
    assert isinstance(grant.target, caps.PathTarget)
    # An accepted path has exactly one reading: no layer can make another of it.
    if raw not in ("*", "**"):
        assert _liberal_path(raw) == raw
    pattern = caps.parse(f"{kind}:{raw_pattern}")
    inside = caps.within(grant_text, [str(pattern)])
    event(f"path accepted, judged {'inside' if inside else 'outside'}")
    if inside:
        concrete = _instances(grant.target.segments, data)
        assert _oracle_path_inside(pattern, concrete), (grant_text, str(pattern), concrete)


@PROPERTY
@given(raw_pattern=path_pattern, data=st.data())
def test_every_concrete_path_a_pattern_stands_for_is_judged_inside(
        raw_pattern: str, data: st.DataObject) -> None:
    pattern = caps.parse(f"file_read:{raw_pattern}")
    assert isinstance(pattern.target, caps.PathTarget)
    concrete = _instances(pattern.target.segments, data)
    assert _oracle_path_inside(pattern, concrete)
    assert caps.within(f"file_read:{concrete}", [str(pattern)])


_HOST_LABELS = ["bank", "Bank", "BANK", "evilbank", "example", "com", "co", "uk", "api",
                "b\u0430nk", "\u0131bank", "xn--bnk-6cd", "ex\u00e1mple", "*", "**", "",
                "127", "0x7f", "1", "0", "a-b", "-a", "a_b", "%2e", "\uff42ank", "bank\u200b"]
_HOST_DOTS = [".", ".", ".", "\uff0e", "\u3002"]
host_text = st.lists(st.tuples(st.sampled_from(_HOST_LABELS), st.sampled_from(_HOST_DOTS)),
                     min_size=1, max_size=5).flatmap(
    lambda parts: st.sampled_from(["", ".", "\uff0e"]).map(
        lambda tail: "".join(label + dot for label, dot in parts[:-1]) + parts[-1][0] + tail))
host_pattern = st.sampled_from([
    "*", "*.bank.example", "**.bank.example", "bank.example", "api.bank.example", "*.example",
    "api.*.example", "*.com", "xn--bnk-6cd.example", "127.0.0.1", "*.*.example", "bank.com"])
_CLEAN_LABELS = ["a", "api", "bank", "x1", "b\u0430nk"]


def _oracle_host(raw: str) -> str | None:
    """How the idna package (UTS #46, as resolvers do) reads a host; None: not a name."""
    try:
        return idna.encode(raw, uts46=True, std3_rules=True).decode("ascii").rstrip(".")
    except (idna.IDNAError, UnicodeError):
        return None


def _oracle_host_inside(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    parts = []
    for label in pattern.split("."):
        if label == "*":
            parts.append(r"[^.]+")
        elif label == "**":
            parts.append(r"[^.]+(?:\.[^.]+)*")
        else:
            parts.append(re.escape(idna.encode(label, uts46=True).decode("ascii")))
    return re.fullmatch(r"\.".join(parts), host) is not None


def _inet_aton(text: str) -> bytes | None:
    try:
        return socket.inet_aton(text)
    except (OSError, ValueError):
        return None


def _near_host(pattern: str) -> st.SearchStrategy[str]:
    """Hosts that end like the pattern, with adversarial labels and dots in front."""
    suffix = pattern.split(".")
    while suffix and suffix[0] in ("*", "**"):
        suffix = suffix[1:]
    labels = st.sampled_from(_HOST_LABELS) | st.sampled_from(_CLEAN_LABELS)
    return st.lists(st.tuples(labels, st.sampled_from(_HOST_DOTS)), max_size=3).map(
        lambda parts: "".join(label + dot for label, dot in parts) + ".".join(suffix))


@PROPERTY
@given(pattern=host_pattern, data=st.data())
def test_no_host_outside_a_pattern_is_judged_inside(pattern: str, data: st.DataObject) -> None:
    raw = data.draw(st.one_of(host_text, _near_host(pattern)))
    grant_text = f"network_outbound:{raw}"
    grant = _parsed_or_refused(grant_text, "host")
    if grant is None:
        return
    target = grant.target
    assert isinstance(target, caps.HostTarget)
    if target.ip is not None:
        assert not caps.within(grant_text, [f"network_outbound:{p}" for p in
                                            ("*.bank.example", "**.bank.example", "*.com")])
        return
    if target.any:
        assert caps.within(grant_text, [f"network_outbound:{pattern}"]) is (pattern == "*")
        return
    # A name the C library would read as an IPv4 address is never accepted as a name.
    assert _inet_aton(raw) is None and _inet_aton(str(target)) is None
    labels = [data.draw(st.sampled_from(_CLEAN_LABELS)) if label == "*"
              else ".".join(data.draw(st.lists(st.sampled_from(_CLEAN_LABELS), min_size=1,
                                               max_size=3)))
              if label == "**" else label for label in target.labels]
    concrete = ".".join(labels)
    oracle = _oracle_host(concrete)
    assert oracle is not None, concrete
    inside = caps.within(grant_text, [f"network_outbound:{pattern}"])
    event(f"host name accepted, judged {'inside' if inside else 'outside'}")
    if inside:
        assert _oracle_host_inside(pattern, oracle), (raw, pattern, concrete)
    # Read as the raw text, the oracle agrees with the canonical form (modulo a dot).
    if "*" not in raw:
        assert _oracle_host(raw) == str(target)


@PROPERTY
@given(st.text(alphabet=st.sampled_from("aab/b/.//*%:\\\x00\uff0f\u0131\u0430_-8"), max_size=20)
       | st.sampled_from(["/data/", "/", "*.", "api.", "x", "**"]).flatmap(
           lambda head: st.text(alphabet=st.sampled_from("ab/.*-"), max_size=12).map(
               lambda tail: head + tail)),
       st.sampled_from(caps.KINDS))
def test_any_text_parses_to_a_canonical_fixed_point_or_a_named_refusal(text: str,
                                                                       kind: str) -> None:
    grant_text = f"{kind}:{text}"
    grant = _parsed_or_refused(grant_text, "text")
    if grant is None:
        return
    canonical = str(grant)
    assert caps.canonical(canonical) == canonical
    assert caps.parse(canonical).covers(caps.parse(canonical))
    assert caps.within(grant_text, [canonical])
