"""Capability grants an agent asks for: deny-by-default, one string each.

Forms: ``file_read:PATH``, ``file_write:PATH``, ``network_outbound:HOST``,
``network_inbound:PORT``, ``system_call:NAME``, ``env_read:NAME``, ``custom:NAME``.
"""

from __future__ import annotations

import fnmatch
from typing import Any

KINDS = ("file_read", "file_write", "network_outbound", "network_inbound", "system_call",
         "env_read", "custom")
# Grants that reach outside the sandbox in ways a governor must look at.
_DANGEROUS_KINDS = {"system_call", "network_inbound", "file_write"}
_SENSITIVE_PATHS = ("/etc", "/root", "/proc", "/sys", "/var/run", "/dev")


def parse(capability: str) -> tuple[str, str]:
    """Split ``kind:target``; ValueError naming the capability when it is not one."""
    kind, sep, target = capability.partition(":")
    if not sep or kind not in KINDS or not target:
        raise ValueError(f"capability {capability!r} is not KIND:TARGET with KIND one of "
                         + ", ".join(KINDS))
    if kind == "network_inbound" and not (target.isdigit() and 0 < int(target) < 65536):
        raise ValueError(f"capability {capability!r} needs a port between 1 and 65535")
    return kind, target


def is_dangerous(capability: str) -> bool:
    kind, target = parse(capability)
    if kind in _DANGEROUS_KINDS:
        return True
    if kind == "file_read" and target.startswith(_SENSITIVE_PATHS):
        return True
    return kind == "network_outbound" and target in ("*", "0.0.0.0")


def describe(capability: str) -> dict[str, Any]:
    kind, target = parse(capability)
    return {"capability": capability, "kind": kind, "target": target,
            "dangerous": is_dangerous(capability)}


def within(capability: str, allowed: list[str]) -> bool:
    """True when a pattern in ``allowed`` (shell-style, ``*`` wildcards) covers it."""
    return any(fnmatch.fnmatchcase(capability, pattern) for pattern in allowed)
