"""A WebAssembly binary validator: what the stub reports about each agent's module.

It really parses the module (magic, version, the section list, imports, exports, memory
and table limits, function count) and flags what the platform refuses: dangerous imports
and modules over the limits. ``build_module`` writes small valid modules for the demo and
the tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"\x00asm"
SUPPORTED_VERSION = 1
MAX_MEMORY_PAGES = 16384  # 1 GiB at 64 KiB a page
MAX_FUNCTIONS = 10_000
MAX_TABLE_ELEMENTS = 10_000
# An import whose module or name contains one of these reaches outside the sandbox.
DANGEROUS_IMPORT_WORDS = ("system", "exec", "process", "kernel")

SECTION_NAMES = {
    0: "custom", 1: "type", 2: "import", 3: "function", 4: "table", 5: "memory",
    6: "global", 7: "export", 8: "start", 9: "element", 10: "code", 11: "data",
    12: "data_count",
}
_KINDS = {0: "func", 1: "table", 2: "memory", 3: "global", 4: "tag"}


class WasmFormatError(ValueError):
    """The bytes are not a well-formed module at the given offset."""


@dataclass
class WasmReport:
    valid: bool = False
    magic_ok: bool = False
    version: int | None = None
    sections: list[str] = field(default_factory=list)
    imports: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    memory_pages: int | None = None
    function_count: int = 0
    table_elements: int = 0
    size_bytes: int = 0
    issues: list[dict[str, str]] = field(default_factory=list)

    def issue(self, code: str, severity: str, message: str) -> None:
        self.issues.append({"code": code, "severity": severity, "message": message})

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid, "magic_ok": self.magic_ok, "version": self.version,
            "sections": self.sections, "imports": self.imports, "exports": self.exports,
            "memory_pages": self.memory_pages, "function_count": self.function_count,
            "table_elements": self.table_elements, "size_bytes": self.size_bytes,
            "issues": self.issues,
        }


class _Reader:
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

    def u32(self) -> int:
        result = shift = 0
        for _ in range(5):
            b = self.byte()
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7
        raise WasmFormatError(f"LEB128 integer too long at byte {self.pos}")

    def name(self) -> str:
        length = self.u32()
        if self.pos + length > self.end:
            raise WasmFormatError(f"name runs past its section at byte {self.pos}")
        raw = self.data[self.pos:self.pos + length]
        self.pos += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WasmFormatError(f"name is not UTF-8 at byte {self.pos - length}") from exc

    def limits(self) -> tuple[int, int | None]:
        flag = self.byte()
        minimum = self.u32()
        maximum = self.u32() if flag & 1 else None
        return minimum, maximum

    def skip_valtype_global(self) -> None:
        self.byte()  # value type
        self.byte()  # mutability


def validate_module(data: bytes) -> WasmReport:
    """Parse ``data`` and report; never raises, a malformed module is an invalid report."""
    report = WasmReport(size_bytes=len(data))
    if data[:4] != MAGIC:
        report.issue("bad_magic", "error", "The module does not start with \\0asm; "
                     "upload a compiled WebAssembly binary.")
        return report
    report.magic_ok = True
    if len(data) < 8:
        report.issue("truncated", "error", "The module ends before its version field.")
        return report
    report.version = int.from_bytes(data[4:8], "little")
    if report.version != SUPPORTED_VERSION:
        report.issue("unsupported_version", "error",
                     f"WebAssembly version {report.version} is not supported; use version 1.")
    try:
        _parse_sections(data, report)
    except WasmFormatError as exc:
        report.issue("malformed", "error", f"The module is malformed: {exc}.")
    _check_limits(report)
    report.valid = not any(i["severity"] == "error" for i in report.issues)
    return report


def _parse_sections(data: bytes, report: WasmReport) -> None:
    reader = _Reader(data, 8)
    imported_funcs = 0
    while reader.pos < len(data):
        section_id = reader.byte()
        size = reader.u32()
        start = reader.pos
        end = start + size
        if end > len(data):
            raise WasmFormatError(f"section {section_id} runs past the end of the module")
        if section_id not in SECTION_NAMES:
            raise WasmFormatError(f"unknown section id {section_id} at byte {start - 1}")
        report.sections.append(SECTION_NAMES[section_id])
        body = _Reader(data, start, end)
        if section_id == 2:
            for _ in range(body.u32()):
                module, name = body.name(), body.name()
                kind = body.byte()
                report.imports.append(f"{module}.{name}")
                if kind == 0:
                    body.u32()
                    imported_funcs += 1
                elif kind == 1:
                    body.byte()
                    minimum, _ = body.limits()
                    report.table_elements += minimum
                elif kind == 2:
                    minimum, _ = body.limits()
                    report.memory_pages = (report.memory_pages or 0) + minimum
                elif kind == 3:
                    body.skip_valtype_global()
                else:
                    raise WasmFormatError(f"unknown import kind {kind}")
        elif section_id == 3:
            report.function_count += body.u32()
        elif section_id == 4:
            for _ in range(body.u32()):
                body.byte()
                minimum, _ = body.limits()
                report.table_elements += minimum
        elif section_id == 5:
            for _ in range(body.u32()):
                minimum, _ = body.limits()
                report.memory_pages = (report.memory_pages or 0) + minimum
        elif section_id == 7:
            for _ in range(body.u32()):
                name = body.name()
                kind = body.byte()
                body.u32()
                report.exports.append(f"{name}:{_KINDS.get(kind, str(kind))}")
        reader.pos = end
    report.function_count += imported_funcs


def _check_limits(report: WasmReport) -> None:
    for imp in report.imports:
        lowered = imp.lower()
        word = next((w for w in DANGEROUS_IMPORT_WORDS if w in lowered), None)
        if word:
            report.issue("dangerous_import", "error",
                         f"Import {imp!r} reaches the host {word}; remove it or ask for a "
                         "system_call capability instead.")
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
