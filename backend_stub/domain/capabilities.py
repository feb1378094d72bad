"""Capability grants an agent asks for: parsed into typed values, judged by structure.

A grant is ``KIND:TARGET``; the same grammar writes a seed's ``capabilities_within``
patterns. Raw strings are never matched: each grant is parsed first, and a grant that does
not parse is refused (``InvalidGrant``, a 422 naming it) wherever grants enter.

- ``file_read:PATH`` / ``file_write:PATH``: an absolute path, one segment at a time.
  ``..``, ``.``, empty segments (``//``, a trailing ``/``), ``%`` (percent-encoding),
  backslashes, control and format characters, and characters that Unicode compatibility
  folding changes (``／`` FULLWIDTH SOLIDUS, ``．``, ligatures ...) are refused. ``*`` is
  exactly one segment, ``**`` one or more; a wildcard is a whole segment. A bare ``*`` is
  every path (``/**``).
- ``network_outbound:HOST``: lower-cased and IDNA-encoded (UTS #46, IDNA 2008) label by
  label; no trailing dot; an IP address is an IP address (its canonical form). ``*`` is
  exactly one label, ``**`` one or more and only as the first label; a bare ``*`` is every
  host.
- ``network_inbound:PORT``: 1 to 65535 in plain ASCII digits, or ``*`` (every port).
- ``system_call:NAME``, ``env_read:NAME``, ``custom:NAME``: an exact name, or ``*`` (all).

A pattern covers a grant only when every concrete grant the grant stands for is one the
pattern stands for (``covers``): containment on segments and labels, never substrings. The
check is sound and, for grants that hold wildcards themselves, conservative: it may say
"not covered" for an unusual wildcard grant the pattern does in fact cover, never the
reverse (deny-by-default).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import idna
from publicsuffixlist import PublicSuffixList

from backend_stub.errors import InvalidGrant, ValidationFailed

KINDS = ("file_read", "file_write", "network_outbound", "network_inbound", "system_call",
         "env_read", "custom")
MAX_GRANT_LENGTH = 1024
MAX_SEGMENTS = 64
STAR, GLOBSTAR = "*", "**"

# Roots whose contents a governor must look at before an agent reads them.
SENSITIVE_ROOTS: dict[tuple[str, ...], str] = {
    ("etc",): "system configuration and password files",
    ("root",): "the administrator's home directory",
    ("home",): "people's home directories",
    ("Users",): "people's home directories",
    ("proc",): "live processes, their memory and environment",
    ("sys",): "kernel and device settings",
    ("dev",): "devices, raw disks included",
    ("boot",): "the kernel and boot loader",
    ("run",): "runtime sockets, the container runtime's included",
    ("var", "run"): "runtime sockets, the container runtime's included",
    ("var", "lib"): "services' databases and state",
}
_SECRET_ENV = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|PRIVATE|CREDENTIAL|API_?KEY|ACCESS_KEY",
                         re.IGNORECASE)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)
_SYSCALL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}", re.ASCII)
_CUSTOM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", re.ASCII)
_PORT = re.compile(r"[1-9][0-9]{0,4}", re.ASCII)
# Names that resolve inside the network the agent runs in (RFC 6761, 6762, ICANN 2024).
_LOCAL_SUFFIXES = frozenset({"localhost", "local", "internal", "lan", "home", "corp",
                             "intranet", "localdomain"})
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*", re.ASCII)


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    return PublicSuffixList()  # the list the package ships: no network


# ----------------------------------------------------------------------------- targets
@dataclass(frozen=True)
class PathTarget:
    """An absolute path; ``segments`` may hold ``*`` (one) and ``**`` (one or more)."""

    segments: tuple[str, ...]

    def __str__(self) -> str:
        return "/" + "/".join(self.segments)

    def covers(self, other: Target) -> bool:
        return isinstance(other, PathTarget) and _covers(self.segments, other.segments)


@dataclass(frozen=True)
class HostTarget:
    """Every host (``any``), one IP address, or a DNS name as ASCII labels (may hold ``*``,
    and ``**`` as the first label)."""

    labels: tuple[str, ...] = ()
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    any: bool = False

    def __str__(self) -> str:
        if self.any:
            return STAR
        if isinstance(self.ip, ipaddress.IPv6Address):
            return f"[{self.ip}]"
        return str(self.ip) if self.ip is not None else ".".join(self.labels)

    def covers(self, other: Target) -> bool:
        if not isinstance(other, HostTarget):
            return False
        if self.any:
            return True
        if other.any:
            return False
        if self.ip is not None or other.ip is not None:
            return self.ip is not None and self.ip == other.ip
        # Matched from the top-level label down, on label boundaries.
        return _covers(self.labels[::-1], other.labels[::-1])


@dataclass(frozen=True)
class PortTarget:
    port: int | None  # None: every port

    def __str__(self) -> str:
        return STAR if self.port is None else str(self.port)

    def covers(self, other: Target) -> bool:
        return isinstance(other, PortTarget) and self.port in (None, other.port)


@dataclass(frozen=True)
class NameTarget:
    name: str | None  # None: every name

    def __str__(self) -> str:
        return STAR if self.name is None else self.name

    def covers(self, other: Target) -> bool:
        return isinstance(other, NameTarget) and self.name in (None, other.name)


Target = PathTarget | HostTarget | PortTarget | NameTarget


@dataclass(frozen=True)
class Grant:
    """A parsed grant; ``str()`` is its canonical text."""

    kind: str
    target: Target

    def __str__(self) -> str:
        return f"{self.kind}:{self.target}"

    def covers(self, other: Grant) -> bool:
        """True when this grant, read as a pattern, holds every grant ``other`` stands for."""
        if self.kind != other.kind:
            return False
        return self.target.covers(other.target)

    def dangers(self) -> list[str]:
        """Why a governor should look at this grant: one sentence per reason (empty: none)."""
        return _dangers(self)


def _covers(pattern: tuple[str, ...], grant: tuple[str, ...]) -> bool:
    """Does every sequence ``grant`` stands for fall in ``pattern``'s? (sound, conservative)"""

    @functools.cache
    def go(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(grant)
        if j == len(grant):
            return False
        p, g = pattern[i], grant[j]
        if p == GLOBSTAR:  # takes grant[j] (whatever it is), then stops or takes more
            return go(i + 1, j + 1) or go(i, j + 1)
        if g == GLOBSTAR:  # a one-or-more grant fits no single segment
            return False
        if p == STAR:
            return go(i + 1, j + 1)
        return p == g and go(i + 1, j + 1)

    return go(0, 0)


def _reaches(segments: tuple[str, ...], root: tuple[str, ...]) -> bool:
    """Can a path the grant stands for be ``root`` or lie below it?"""
    for k, segment in enumerate(segments):
        if k == len(root):
            return True
        if segment == GLOBSTAR:
            return True
        if segment != STAR and segment != root[k]:
            return False
    return len(segments) >= len(root)


# ----------------------------------------------------------------------------- parsing
def _refuse(grant: str, problem: str) -> InvalidGrant:
    return InvalidGrant(grant, problem)


def _check_characters(grant: str, target: str) -> None:
    for ch in target:
        if unicodedata.category(ch).startswith("C"):
            raise _refuse(grant, f"contains the control or invisible character U+{ord(ch):04X}; "
                                 "remove it")
    if "%" in target:
        raise _refuse(grant, "contains '%' (percent-encoding); write the name decoded, "
                             "percent-encoded forms are not accepted")
    if "\\" in target:
        raise _refuse(grant, "contains a backslash; separate path segments with '/' only")


def _parse_path(grant: str, target: str) -> PathTarget:
    if target in (STAR, GLOBSTAR):
        return PathTarget((GLOBSTAR,))
    _check_characters(grant, target)
    for ch in target:
        if unicodedata.normalize("NFKC", ch) != ch:
            raise _refuse(grant, f"contains {unicodedata.name(ch, f'U+{ord(ch):04X}')} "
                                 f"(U+{ord(ch):04X}), a look-alike other systems may read as "
                                 f"{unicodedata.normalize('NFKC', ch)!r}; write the plain "
                                 "character")
    if not target.startswith("/"):
        raise _refuse(grant, "is not an absolute path; start it with '/'")
    if target == "/":
        return PathTarget(())
    segments = tuple(target[1:].split("/"))
    if len(segments) > MAX_SEGMENTS:
        raise _refuse(grant, f"has more than {MAX_SEGMENTS} path segments; shorten it")
    for segment in segments:
        if segment == "":
            raise _refuse(grant, "has an empty path segment ('//' or a trailing '/'); "
                                 "remove it")
        if segment in (".", ".."):
            raise _refuse(grant, f"has a {segment!r} path segment; write the path it means "
                                 "without it")
        if "*" in segment and segment not in (STAR, GLOBSTAR):
            raise _refuse(grant, f"has a partial wildcard in {segment!r}; a wildcard is a "
                                 "whole segment, '*' (one) or '**' (one or more)")
        if len(segment) > 255:
            raise _refuse(grant, "has a path segment longer than 255 characters")
    return PathTarget(segments)


def _parse_host(grant: str, target: str) -> HostTarget:
    if target in (STAR, GLOBSTAR):
        return HostTarget(any=True)
    _check_characters(grant, target)
    literal = target[1:-1] if target.startswith("[") and target.endswith("]") else target
    try:
        return HostTarget(ip=ipaddress.ip_address(literal))
    except ValueError:
        pass
    try:
        # UTS #46: case folding, width folding, and the dots ("。", "．") other resolvers
        # treat as label separators.
        mapped = idna.uts46_remap(target, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise _refuse(grant, f"is not a valid host name ({exc}); write it as a DNS "
                             "name or an IP address") from None
    if mapped.endswith("."):
        raise _refuse(grant, "ends with a dot; write the host without the trailing dot")
    labels = mapped.split(".")
    encoded: list[str] = []
    for index, label in enumerate(labels):
        if label == "":
            raise _refuse(grant, "has an empty host label ('..' or a leading dot); remove it")
        if label == GLOBSTAR and index > 0:
            raise _refuse(grant, "has '**' after the first label; '**' (one or more labels) "
                                 "may only lead the host")
        if label in (STAR, GLOBSTAR):
            encoded.append(label)
            continue
        if "*" in label:
            raise _refuse(grant, f"has a partial wildcard in {label!r}; a wildcard is a whole "
                                 "label, '*' (one label) or '**' (one or more, first only)")
        try:
            encoded.append(idna.alabel(label).decode("ascii"))
        except (idna.IDNAError, UnicodeError) as exc:
            raise _refuse(grant, f"has the label {label!r}, not a valid host name label "
                                 f"({exc}); use letters, digits and '-'") from None
    if _NUMERIC_LABEL.fullmatch(encoded[-1]):
        raise _refuse(grant, "looks like a numeric address but is not an IP address; write "
                             "the address in its plain dotted form")
    if len(".".join(encoded)) > 253:
        raise _refuse(grant, "is a host name longer than 253 characters")
    return HostTarget(labels=tuple(encoded))


def _parse_name(grant: str, target: str, rule: re.Pattern[str], what: str) -> NameTarget:
    if target == STAR:
        return NameTarget(None)
    if not rule.fullmatch(target):
        raise _refuse(grant, f"is not {what}; write an exact name ({rule.pattern}) or '*'")
    return NameTarget(target)


def parse(capability: str) -> Grant:
    """The typed grant; ``InvalidGrant`` (a ValueError and a 422) naming it when it is not one."""
    if not isinstance(capability, str):
        raise _refuse(repr(capability), "is not a string; write KIND:TARGET")
    return _parse(capability)


@functools.lru_cache(maxsize=4096)
def _parse(capability: str) -> Grant:
    if len(capability) > MAX_GRANT_LENGTH:
        raise _refuse(capability[:60] + "...",
                      f"is longer than {MAX_GRANT_LENGTH} characters; shorten it")
    kind, sep, target = capability.partition(":")
    if not sep or kind not in KINDS or not target:
        raise _refuse(capability, "is not KIND:TARGET with KIND one of " + ", ".join(KINDS))
    parsed: Target
    if kind in ("file_read", "file_write"):
        parsed = _parse_path(capability, target)
    elif kind == "network_outbound":
        parsed = _parse_host(capability, target)
    elif kind == "network_inbound":
        if target == STAR:
            parsed = PortTarget(None)
        elif _PORT.fullmatch(target) and int(target) <= 65535:
            parsed = PortTarget(int(target))
        else:
            raise _refuse(capability, "needs a port between 1 and 65535 in plain digits, "
                                      "or '*'")
    elif kind == "env_read":
        parsed = _parse_name(capability, target, _ENV_NAME, "an environment variable name")
    elif kind == "system_call":
        parsed = _parse_name(capability, target, _SYSCALL_NAME, "a system call name")
    else:
        parsed = _parse_name(capability, target, _CUSTOM_NAME, "a custom grant name")
    return Grant(kind, parsed)


def canonical(capability: str) -> str:
    """The grant's canonical text (hosts lower-cased and IDNA-encoded); raises as parse."""
    return str(parse(capability))


def checked(capabilities: Sequence[str], *, field: str = "capabilities") -> list[str]:
    """The grants in canonical form, for wherever grants enter; ``ValidationFailed`` (422)
    naming every grant that does not parse (``details.fields["capabilities.N"]``)."""
    if isinstance(capabilities, str):
        raise ValidationFailed(f"{field} is one string; send a list of KIND:TARGET grants.",
                               details={"fields": {field: "Expected a list of grants."}})
    errors: dict[str, str] = {}
    grants: list[str] = []
    for index, capability in enumerate(capabilities):
        try:
            grants.append(canonical(capability))
        except InvalidGrant as exc:
            errors[f"{field}.{index}"] = exc.message
    if errors:
        raise ValidationFailed("Some capability grants are not valid; fix or remove the "
                               "grants named in details.", details={"fields": errors})
    return grants


# ----------------------------------------------------------------------------- breadth
def _path_dangers(kind: str, target: PathTarget) -> list[str]:
    reasons: list[str] = []
    if kind == "file_write":
        reasons.append("Writes files: the agent can change data or leave code behind.")
    segments = target.segments
    verb = "Reads" if kind == "file_read" else "Writes"
    if not segments:
        reasons.append(f"{verb} the root directory '/'.")
        return reasons
    if segments[0] in (STAR, GLOBSTAR):
        reasons.append(f"{verb} every top-level directory ('{target}'), so the whole "
                       "file system, system files included.")
        return reasons
    for root, what in SENSITIVE_ROOTS.items():
        if _reaches(segments, root):
            reasons.append(f"Reaches /{'/'.join(root)}, which holds {what}.")
    if GLOBSTAR in segments:
        top = "/" + "/".join(segments[:segments.index(GLOBSTAR)])
        reasons.append(f"The '**' wildcard covers every file at any depth under {top}.")
    return reasons


def _host_dangers(target: HostTarget) -> list[str]:
    if target.any:
        return ["May connect to any host on the internet."]
    if target.ip is not None:
        if not target.ip.is_global:
            return [f"Connects to {target}, an internal or special address (private, "
                    "loopback, link-local or cloud metadata), not a public service."]
        return []
    reasons: list[str] = []
    labels = target.labels
    if len(labels) == 1 or labels[-1] in _LOCAL_SUFFIXES:
        reasons.append(f"Names a local or internal host ('{target}'), not a public service.")
    wild = [i for i, label in enumerate(labels) if label in (STAR, GLOBSTAR)]
    if wild:
        suffix = ".".join(labels[wild[-1] + 1:])
        if not suffix or _public_suffixes().is_public(suffix):
            reasons.append(f"A wildcard directly under the public suffix '.{suffix}' reaches "
                           "hosts anyone can register.")
        if labels[0] == GLOBSTAR:
            reasons.append(f"The '**' wildcard covers hosts at any depth under {suffix}.")
    if any(label.startswith("xn--") for label in labels):
        reasons.append(f"The host '{target}' has internationalised labels that can imitate another "
                       f"name ({idna.decode(str(target).replace('*', 'x'))!r}); check it is "
                       "the host you expect.")
    return reasons


def _dangers(grant: Grant) -> list[str]:
    target = grant.target
    if isinstance(target, PathTarget):
        return _path_dangers(grant.kind, target)
    if isinstance(target, HostTarget):
        return _host_dangers(target)
    if isinstance(target, PortTarget):
        if target.port is None:
            return ["Accepts connections from outside on every port."]
        return [f"Accepts connections from outside on port {target.port}."]
    if grant.kind == "system_call":
        return (["May make any system call outside the sandbox."] if target.name is None
                else [f"Makes the system call {target.name!r} outside the sandbox."])
    if grant.kind == "env_read":
        if target.name is None:
            return ["Reads every environment variable, secrets included."]
        if _SECRET_ENV.search(target.name):
            return [f"Reads {target.name}, whose name says it holds a secret."]
        return []
    if target.name is None:
        return ["Holds every custom grant the platform defines."]
    return []


def danger_reasons(capability: str) -> list[str]:
    """Why a grant is dangerous (empty: it is not); a grant that does not parse is
    dangerous because it does not parse (stored data from before the grammar)."""
    try:
        return parse(capability).dangers()
    except InvalidGrant as exc:
        return [f"Not a valid grant: it {exc.problem}."]


def is_dangerous(capability: str) -> bool:
    return bool(danger_reasons(capability))


def describe(capability: str) -> dict[str, Any]:
    """The API's view of a grant: ``{capability, kind, target, dangerous, reasons}``."""
    try:
        grant = parse(capability)
    except InvalidGrant as exc:
        kind, _, target = str(capability).partition(":")
        return {"capability": capability, "kind": kind, "target": target, "dangerous": True,
                "reasons": [f"Not a valid grant: it {exc.problem}."]}
    reasons = grant.dangers()
    return {"capability": str(grant), "kind": grant.kind, "target": str(grant.target),
            "dangerous": bool(reasons), "reasons": reasons}


def within(capability: str, allowed: list[str]) -> bool:
    """True when a pattern in ``allowed`` covers the grant; a grant or pattern that does not
    parse covers and is covered by nothing (deny-by-default)."""
    try:
        grant = parse(capability)
    except InvalidGrant:
        return False
    for pattern in allowed:
        try:
            if parse(pattern).covers(grant):
                return True
        except InvalidGrant:
            continue
    return False
