"""WebAssembly modules: is this one valid per the core specification, and what does it hold.

Validity is the WebAssembly core specification's, decided by Wasmtime's validator
(``wasmtime.Module.validate``, the spec-tested ``wasmparser``), never by hand. The
features enabled are WebAssembly 2.0's (``FEATURES_ENABLED``). A module refused there is
validated once more with every newer proposal on: if that accepts it, it is a valid module
that uses a feature not enabled here (``spec_outcome: feature_not_enabled``, naming the
feature), otherwise it is malformed or invalid (``spec_outcome: refused``, with the
validator's reason and byte offset; the validator does not say which of the two). They are
different answers to the submitter: one must fix the module, the other must build it for
WebAssembly 2.0.

The report's ``valid`` (the ``wasm_valid`` seed condition) holds only for a module valid per
the specification with the features enabled here (``spec_outcome: valid``) that also breaks
none of the platform's rules (no error issue).

What the platform adds is the project's own code: the report (sections, imports, exports,
memory and table limits, function count, SHA-256), read only from modules the validator
accepted, the dangerous-import policy and the limits. A report is bounded whatever the
module holds: lists keep ``MAX_LISTED`` entries and say how many were left out, names are
cut at ``MAX_NAME_CHARS``. ``build_module`` writes small valid modules for the demo and the
tests.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import wasmtime

# The C binding Module.validate calls (see _validate); None in another package layout.
_wasmtime_ffi: Any = getattr(wasmtime, "_ffi", None)

MAGIC = b"\x00asm"
SUPPORTED_VERSION = 1
MAX_MODULE_BYTES = 50 * 1024 * 1024  # the largest module the platform accepts
MAX_MEMORY_PAGES = 16384  # 1 GiB at 64 KiB a page
MAX_FUNCTIONS = 10_000
MAX_TABLE_ELEMENTS = 10_000
# An import whose module or name contains one of these reaches outside the sandbox.
DANGEROUS_IMPORT_WORDS = ("system", "exec", "process", "kernel")
# Bounds on what a report holds, whatever the module holds.
MAX_LISTED = 100
MAX_NAME_CHARS = 120
MAX_REASON_CHARS = 500
MAX_POLICY_ISSUES = 10

# WebAssembly 2.0 (mutable globals, sign extension, non-trapping float-to-int, multi-value,
# bulk memory, reference types, fixed-width SIMD) plus extended constant expressions, which
# Wasmtime always accepts (its Python API has no switch for it).
FEATURES_ENABLED = ("mutable-global", "sign-extension", "nontrapping-float-to-int",
                    "multi-value", "bulk-memory", "reference-types", "simd", "extended-const")
_BASE_SWITCHES = {"wasm_multi_value": True, "wasm_bulk_memory": True,
                  "wasm_reference_types": True, "wasm_simd": True}
# Newer proposals, off here: name -> the Wasmtime switches that turn it on (with what it
# needs). A module refused with them all off and accepted with one on "uses" that one.
FEATURES_NOT_ENABLED: dict[str, tuple[str, ...]] = {
    "threads": ("wasm_threads",),
    "tail calls": ("wasm_tail_call",),
    "multiple memories": ("wasm_multi_memory",),
    "64-bit memory": ("wasm_memory64",),
    "relaxed SIMD": ("wasm_relaxed_simd",),
    "exception handling": ("wasm_exceptions",),
    "typed function references": ("wasm_function_references",),
    "garbage collection": ("wasm_gc", "wasm_function_references"),
    "wide arithmetic": ("wasm_wide_arithmetic",),
    "custom page sizes": ("wasm_custom_page_sizes",),
    "stack switching": ("wasm_stack_switching", "wasm_exceptions",
                        "wasm_function_references"),
}
_ALL_SWITCHES = ("wasm_component_model", *sorted({s for switches in
                                                  FEATURES_NOT_ENABLED.values()
                                                  for s in switches}))

VALID = "valid"
REFUSED = "refused"
FEATURE_NOT_ENABLED = "feature_not_enabled"

SECTION_NAMES = {
    0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
    6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
    12: "data_count", 13: "tag",
}
_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}
_OFFSET = re.compile(r"\(at offset (0x[0-9a-fA-F]+)\)")


class WasmFormatError(ValueError):
    """The bytes are not laid out as the report's reader expects at the given offset."""


class OverlongLimit(WasmFormatError):
    """A 32-bit limit encoded in more than 5 bytes: malformed in WebAssembly 2.0.

    Wasmtime reads every limit as a u64 (WebAssembly 3.0's encoding, where this is
    well-formed), so it accepts what the 2.0 suite's ``binary-leb128.wast`` calls malformed;
    the report's reader, which reads 2.0 limits as u32, refuses it instead.
    """

    def __init__(self, offset: int) -> None:
        super().__init__("integer representation too long: a memory or table limit is a "
                         "u32, at most 5 bytes of LEB128")
        self.offset = offset


@functools.lru_cache(maxsize=len(FEATURES_NOT_ENABLED) + 2)
def _engine(switches: frozenset[str]) -> wasmtime.Engine:
    """A validating engine with WebAssembly 2.0 and the ``switches`` named on."""
    config = wasmtime.Config()
    for name, value in _BASE_SWITCHES.items():
        setattr(config, name, value)
    for name in _ALL_SWITCHES:
        setattr(config, name, name in switches)
    return wasmtime.Engine(config)


def _validate(engine: wasmtime.Engine, data: bytes) -> None:
    """``wasmtime.Module.validate`` without its copy of the module.

    ``Module.validate`` copies the bytes into a ctypes array before the one C call it makes
    (for 50 MB, as long as hashing them). The same call is made here on the bytes object's
    own buffer, which ``data`` keeps alive; where the package's internals are not as
    expected (another version), the public call is used.
    """
    validate = getattr(_wasmtime_ffi, "wasmtime_module_validate", None)
    if validate is None or not data:
        wasmtime.Module.validate(engine, data)
        return
    pointer = ctypes.cast(ctypes.c_char_p(data), ctypes.POINTER(ctypes.c_uint8))
    error = validate(engine.ptr(), pointer, len(data))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)


def _spec_error(data: bytes, switches: frozenset[str] = frozenset()) -> str | None:
    """The validator's reason ``data`` is not a valid module with these features, or None."""
    try:
        _validate(_engine(switches), data)
    except wasmtime.WasmtimeError as exc:
        return " ".join(str(exc).split()) or "the validator refused the module"
    return None


@dataclass(frozen=True)
class Verdict:
    """What the specification says of a module, with the features enabled here."""

    outcome: str  # VALID, REFUSED or FEATURE_NOT_ENABLED
    reason: str | None = None
    offset: int | None = None
    features: tuple[str, ...] = ()


def spec_verdict(data: bytes) -> Verdict:
    """Validate ``data`` per the core specification; see the module docstring."""
    reason = _spec_error(data)
    if reason is None:
        return Verdict(VALID)
    match = _OFFSET.search(reason)
    offset = int(match.group(1), 16) if match else None
    if _spec_error(data, frozenset(_ALL_SWITCHES) - {"wasm_component_model"}) is not None:
        return Verdict(REFUSED, reason[:MAX_REASON_CHARS], offset)
    used = next((name for name, switches in FEATURES_NOT_ENABLED.items()
                 if _spec_error(data, frozenset(switches)) is None), None)
    # When no one feature suffices the module needs several: name every proposal that was
    # on in the engine that accepted it rather than guess a smallest set.
    return Verdict(FEATURE_NOT_ENABLED, reason[:MAX_REASON_CHARS], offset,
                   (used,) if used else tuple(FEATURES_NOT_ENABLED))


def _shown(name: str) -> str:
    """A name as a report shows it: control characters escaped, at most MAX_NAME_CHARS."""
    text = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}"
                   for ch in name[:MAX_NAME_CHARS])
    return text[:MAX_NAME_CHARS] + ("…" if len(name) > MAX_NAME_CHARS else "")


@dataclass
class WasmReport:
    valid: bool = False
    spec_outcome: str = REFUSED
    magic_ok: bool = False
    version: int | None = None
    sha256: str = ""
    features_enabled: list[str] = field(default_factory=lambda: list(FEATURES_ENABLED))
    features_used: list[str] = field(default_factory=list)
    error_offset: int | None = None
    sections: list[str] = field(default_factory=list)
    sections_omitted: int = 0
    imports: list[str] = field(default_factory=list)
    imports_omitted: int = 0
    exports: list[str] = field(default_factory=list)
    exports_omitted: int = 0
    memory_pages: int | None = None
    function_count: int = 0
    table_elements: int = 0
    size_bytes: int = 0
    issues: list[dict[str, str]] = field(default_factory=list)
    # Every import's full name, for the policy; not part of the report (it is unbounded).
    _all_imports: list[str] = field(default_factory=list, repr=False)

    def issue(self, code: str, severity: str, message: str) -> None:
        self.issues.append({"code": code, "severity": severity, "message": message})

    def add(self, kind: str, entry: str) -> None:
        """Append to ``sections``, ``imports`` or ``exports``, counting what does not fit."""
        listed: list[str] = getattr(self, kind)
        if len(listed) < MAX_LISTED:
            listed.append(entry)
        else:
            setattr(self, f"{kind}_omitted", getattr(self, f"{kind}_omitted") + 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid, "spec_outcome": self.spec_outcome, "magic_ok": self.magic_ok,
            "version": self.version, "sha256": self.sha256,
            "features_enabled": self.features_enabled, "features_used": self.features_used,
            "error_offset": self.error_offset,
            "sections": self.sections, "sections_omitted": self.sections_omitted,
            "imports": self.imports, "imports_omitted": self.imports_omitted,
            "exports": self.exports, "exports_omitted": self.exports_omitted,
            "memory_pages": self.memory_pages, "function_count": self.function_count,
            "table_elements": self.table_elements, "size_bytes": self.size_bytes,
            "issues": self.issues,
        }


class _Reader:
    """Reads what the report shows from a module the validator has accepted."""

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise WasmFormatError(f"unexpected end of module at byte {self.pos}")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def uleb(self, bits: int = 32) -> int:
        result = shift = 0
        for _ in range((bits + 6) // 7):
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
        raise WasmFormatError(f"LEB128 integer too long at byte {self.pos}")

    def limit(self, bits: int) -> int:
        start = self.pos
        try:
            return self.uleb(bits)
        except WasmFormatError:
            if bits == 32 and self.pos - start == 5:
                raise OverlongLimit(start) from None
            raise

    def name(self) -> str:
        length = self.uleb()
        if self.pos + length > self.end:
            raise WasmFormatError(f"name runs past its section at byte {self.pos}")
        raw = self.data[self.pos:self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def limits(self) -> int:
        """The minimum of a table's or memory's limits (64-bit and page-size flags too)."""
        flags = self.byte()
        bits = 64 if flags & 0x04 else 32
        minimum = self.limit(bits)
        if flags & 0x01:
            self.limit(bits)
        if flags & 0x08:
            self.uleb()  # custom page size, log2
        return minimum

    def valtype(self) -> None:
        if self.byte() in (0x63, 0x64):  # (ref null? heaptype): heaptype is an s33
            self.uleb(33)

    def table_type(self) -> int:
        self.valtype()
        return self.limits()


def validate_module(data: bytes, *, sha256: str | None = None) -> WasmReport:
    """Validate ``data`` per the specification and report; never raises.

    ``sha256`` is the module's digest when the caller hashed it already (an upload, on the
    way in).
    """
    report = WasmReport(size_bytes=len(data),
                        sha256=sha256 or hashlib.sha256(data).hexdigest())
    report.magic_ok = data[:4] == MAGIC
    if report.magic_ok and len(data) >= 8:
        report.version = int.from_bytes(data[4:8], "little")
    verdict = spec_verdict(data)
    report.spec_outcome = verdict.outcome
    report.features_used = list(verdict.features)
    if verdict.outcome == REFUSED:
        return _refused(report, verdict)
    if verdict.outcome == FEATURE_NOT_ENABLED:
        report.issue("feature_not_enabled", "error",
                     f"The module uses {', '.join(verdict.features)}, not enabled here "
                     f"(WebAssembly 2.0 only); rebuild it without "
                     f"{'that feature' if len(verdict.features) == 1 else 'those features'}.")
    try:
        _parse_sections(data, report)
    except OverlongLimit as exc:
        if verdict.outcome == VALID:
            return _refused(report, Verdict(REFUSED, str(exc), exc.offset))
    except WasmFormatError as exc:  # only a newer feature's layout gets here
        report.issue("report_incomplete", "warning",
                     f"The report stops early: {exc}; what it lists is partial.")
    _check_limits(report)
    report.valid = not any(i["severity"] == "error" for i in report.issues)
    return report


def _refused(report: WasmReport, verdict: Verdict) -> WasmReport:
    report.spec_outcome = REFUSED
    report.valid = False
    report.error_offset = verdict.offset
    report.sections, report.imports, report.exports = [], [], []
    report.sections_omitted = report.imports_omitted = report.exports_omitted = 0
    report.memory_pages, report.function_count, report.table_elements = None, 0, 0
    report.issues = []
    where = f" at byte {verdict.offset}" if verdict.offset is not None else ""
    if not report.magic_ok:
        report.issue("bad_magic", "error", "The module does not start with \\0asm; "
                     "upload a compiled WebAssembly binary.")
    else:
        report.issue("malformed", "error",
                     f"The module is malformed or invalid per the WebAssembly "
                     f"specification{where}: {verdict.reason}. Rebuild it with a "
                     "conforming compiler.")
    return report


def _parse_sections(data: bytes, report: WasmReport) -> None:
    reader = _Reader(data, 8)
    imported_funcs = 0
    while reader.pos < len(data):
        section_id = reader.byte()
        size = reader.uleb()
        start = reader.pos
        end = start + size
        report.add("sections", SECTION_NAMES.get(section_id, f"unknown({section_id})"))
        body = _Reader(data, start, end)
        if section_id == 2:
            for _ in range(body.uleb()):
                module, name = body.name(), body.name()
                kind = body.byte()
                report._all_imports.append(f"{module}.{name}")
                report.add("imports", f"{_shown(module)}.{_shown(name)}")
                if kind == 0:
                    body.uleb()
                    imported_funcs += 1
                elif kind == 1:
                    report.table_elements += body.table_type()
                elif kind == 2:
                    report.memory_pages = (report.memory_pages or 0) + body.limits()
                elif kind == 3:
                    body.valtype()
                    body.byte()  # mutability
                elif kind == 4:
                    body.byte()  # tag attribute
                    body.uleb()
                else:
                    raise WasmFormatError(f"import kind {kind} at byte {body.pos - 1}")
        elif section_id == 3:
            report.function_count += body.uleb()
        elif section_id == 4:
            for _ in range(body.uleb()):
                if body.data[body.pos:body.pos + 2] == b"\x40\x00":
                    raise WasmFormatError(f"a table with an initialiser at byte {body.pos}")
                report.table_elements += body.table_type()
        elif section_id == 5:
            for _ in range(body.uleb()):
                report.memory_pages = (report.memory_pages or 0) + body.limits()
        elif section_id == 7:
            for _ in range(body.uleb()):
                name = body.name()
                kind = body.byte()
                body.uleb()
                report.add("exports", f"{_shown(name)}:{_KINDS.get(kind, str(kind))}")
        reader.pos = end
    report.function_count += imported_funcs


def _check_limits(report: WasmReport) -> None:
    dangerous = 0
    for imp in report._all_imports:
        lowered = imp.lower()
        word = next((w for w in DANGEROUS_IMPORT_WORDS if w in lowered), None)
        if word:
            dangerous += 1
            if dangerous <= MAX_POLICY_ISSUES:
                report.issue("dangerous_import", "error",
                             f"Import {_shown(imp)!r} reaches the host {word}; remove it or "
                             "ask for a system_call capability instead.")
    if dangerous > MAX_POLICY_ISSUES:
        report.issue("dangerous_import", "error",
                     f"{dangerous - MAX_POLICY_ISSUES} more imports reach the host; remove "
                     "them or ask for system_call capabilities instead.")
    if report.memory_pages is not None and report.memory_pages > MAX_MEMORY_PAGES:
        report.issue("memory_limit", "error",
                     f"The module asks for {report.memory_pages} memory pages; at most "
                     f"{MAX_MEMORY_PAGES} (1 GiB) are allowed.")
    if report.function_count > MAX_FUNCTIONS:
        report.issue("function_limit", "error",
                     f"The module has {report.function_count} functions; at most "
                     f"{MAX_FUNCTIONS} are allowed.")
    if report.table_elements > MAX_TABLE_ELEMENTS:
        report.issue("table_limit", "error",
                     f"The module's tables hold {report.table_elements} elements; at most "
                     f"{MAX_TABLE_ELEMENTS} are allowed.")
    if report.magic_ok and "export" in report.sections and not report.exports:
        report.issue("no_exports", "warning", "The module exports nothing the runtime can call.")


def _leb(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _name(text: str) -> bytes:
    raw = text.encode()
    return _leb(len(raw)) + raw


def _section(section_id: int, payload: bytes) -> bytes:
    return bytes([section_id]) + _leb(len(payload)) + payload


def build_module(*, imports: Sequence[tuple[str, str]] = (), functions: int = 1,
                 memory_pages: int = 1, table_elements: int = 0,
                 exports: Sequence[str] = ("_start", "memory")) -> bytes:
    """A small valid module: ``() -> ()`` functions that do nothing, imports of that type."""
    type_sec = _section(1, _leb(1) + b"\x60\x00\x00")
    parts = [MAGIC, (1).to_bytes(4, "little"), type_sec]
    if imports:
        body = _leb(len(imports)) + b"".join(_name(m) + _name(n) + b"\x00\x00"
                                             for m, n in imports)
        parts.append(_section(2, body))
    parts.append(_section(3, _leb(functions) + b"\x00" * functions))
    if table_elements:
        parts.append(_section(4, _leb(1) + b"\x70\x00" + _leb(table_elements)))
    parts.append(_section(5, _leb(1) + b"\x00" + _leb(memory_pages)))
    export_body = bytearray()
    for name in exports:
        if name == "memory":
            export_body += _name(name) + b"\x02" + _leb(0)
        else:
            export_body += _name(name) + b"\x00" + _leb(len(imports))
    parts.append(_section(7, _leb(len(exports)) + bytes(export_body)))
    code = _leb(functions) + b"".join(b"\x02\x00\x0b" for _ in range(functions))
    parts.append(_section(10, code))
    return b"".join(parts)
