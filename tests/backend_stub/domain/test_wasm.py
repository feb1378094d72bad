from __future__ import annotations

import json

import pytest

from backend_stub.domain.wasm import (
    FEATURE_NOT_ENABLED,
    FEATURES_ENABLED,
    MAGIC,
    MAX_FUNCTIONS,
    MAX_LISTED,
    MAX_NAME_CHARS,
    MAX_POLICY_ISSUES,
    MAX_TABLE_ELEMENTS,
    REFUSED,
    VALID,
    _section,
    build_module,
    spec_verdict,
    validate_module,
)

HEADER = MAGIC + b"\x01\x00\x00\x00"


def codes(data: bytes) -> list[str]:
    return [i["code"] for i in validate_module(data).issues]


def test_a_small_module_is_valid_and_fully_described() -> None:
    data = build_module(imports=[("wasi_snapshot_preview1", "fd_write")], functions=3,
                        memory_pages=4)
    report = validate_module(data)
    assert report.valid and report.magic_ok and report.version == 1
    assert report.spec_outcome == VALID and report.error_offset is None
    assert report.sections == ["type", "import", "function", "memory", "export", "code"]
    assert report.imports == ["wasi_snapshot_preview1.fd_write"]
    assert report.exports == ["_start:func", "memory:memory"]
    assert report.memory_pages == 4
    assert report.function_count == 4  # three defined, one imported
    assert report.issues == []
    assert report.features_enabled == list(FEATURES_ENABLED)
    import hashlib

    assert report.sha256 == hashlib.sha256(data).hexdigest()


def test_bad_magic_is_refused_without_a_structure() -> None:
    report = validate_module(b"\x7fELF\x01\x00\x00\x00")
    assert not report.valid and not report.magic_ok
    assert report.spec_outcome == REFUSED and report.error_offset == 0
    assert codes(b"\x7fELF\x01\x00\x00\x00") == ["bad_magic"]
    assert report.sections == [] and report.imports == []


def test_an_unknown_version_is_refused_at_its_offset() -> None:
    data = bytearray(build_module())
    data[4] = 2
    report = validate_module(bytes(data))
    assert report.spec_outcome == REFUSED and report.version == 2
    assert report.error_offset == 4 and "version" in report.issues[0]["message"]


@pytest.mark.parametrize(("data", "offset"), [
    (b"\x00asm\x01", 4),                                    # ends inside the version
    (build_module()[:-3], None),                           # code body cut short
    (HEADER + b"\x63\x00", 10),                              # unknown section id
    (HEADER + _section(3, b"\x01\x00"), None),              # a function with no code
    (HEADER + _section(1, b"\x00") + _section(1, b"\x00"), None),  # a section twice
    (HEADER + _section(5, b"\x01\x00\x01") + _section(1, b"\x00"), None),  # out of order
    (HEADER + _section(1, b"\x00\x00"), None),              # section size does not add up
    (HEADER + _section(0, b"\x02\xff\xfe"), None),          # custom section name not UTF-8
    (HEADER + _section(5, b"\x01\x00\x82\x80\x80\x80\x80\x00"), 12),  # overlong u32 limit
])
def test_malformed_modules_are_refused_with_the_reason(data: bytes, offset: int | None
                                                       ) -> None:
    report = validate_module(data)
    assert report.spec_outcome == REFUSED and not report.valid
    assert [i["code"] for i in report.issues] == ["malformed"]
    assert "malformed or invalid" in report.issues[0]["message"]
    assert report.error_offset is not None
    if offset is not None:
        assert report.error_offset == offset
    assert f"at byte {report.error_offset}" in report.issues[0]["message"]


def test_an_invalid_module_is_refused_like_a_malformed_one() -> None:
    # Well-formed, but its body returns an i32 from a () -> () function: a type error.
    data = (HEADER + _section(1, b"\x01\x60\x00\x00") + _section(3, b"\x01\x00")
            + _section(10, b"\x01\x04\x00\x41\x01\x0b"))
    report = validate_module(data)
    assert report.spec_outcome == REFUSED and "type mismatch" in report.issues[0]["message"]


@pytest.mark.parametrize(("feature", "data"), [
    ("exception handling", HEADER + _section(1, b"\x01\x60\x00\x00")
     + _section(13, b"\x01\x00\x00")),
    ("64-bit memory", HEADER + _section(5, b"\x01\x04\x01")),
    ("typed function references", HEADER + _section(1, b"\x01\x60\x01\x64\x70\x00")),
    ("garbage collection", HEADER + _section(1, b"\x01\x5f\x00")),
    ("multiple memories", HEADER + _section(5, b"\x02\x00\x01\x00\x01")),
    ("tail calls", HEADER + _section(1, b"\x01\x60\x00\x00") + _section(3, b"\x01\x00")
     + _section(10, b"\x01\x04\x00\x12\x00\x0b")),
])
def test_a_valid_module_using_a_newer_feature_names_it(feature: str, data: bytes) -> None:
    report = validate_module(data)
    assert report.spec_outcome == FEATURE_NOT_ENABLED and not report.valid
    assert report.features_used == [feature]
    assert codes(data) == ["feature_not_enabled"]
    assert f"uses {feature}, not enabled here" in report.issues[0]["message"]
    assert spec_verdict(data).outcome == FEATURE_NOT_ENABLED


def test_a_feature_module_is_still_described() -> None:
    data = HEADER + _section(5, b"\x01\x04\x03")
    report = validate_module(data)
    assert report.sections == ["memory"] and report.memory_pages == 3


def test_dangerous_imports_are_errors() -> None:
    for name in ("system", "exec_cmd", "process_spawn", "kernel_call"):
        assert codes(build_module(imports=[("env", name)])) == ["dangerous_import"]


def test_limits() -> None:
    assert codes(build_module(memory_pages=16385)) == ["memory_limit"]
    assert codes(build_module(memory_pages=16384)) == []
    assert codes(build_module(functions=MAX_FUNCTIONS + 1)) == ["function_limit"]
    assert codes(build_module(table_elements=MAX_TABLE_ELEMENTS + 1)) == ["table_limit"]


def test_a_module_exporting_nothing_gets_a_warning_but_stays_valid() -> None:
    report = validate_module(build_module(exports=[]))
    assert report.valid
    assert [i["severity"] for i in report.issues] == ["warning"]


def test_a_report_is_bounded_whatever_the_module_holds() -> None:
    long = "x" * 5000
    imports = [("env", f"exec_{i}_{long}") for i in range(2000)]
    exports = [f"f{i}_{long}" for i in range(1500)]
    data = build_module(imports=imports, exports=exports)
    report = validate_module(data)
    assert report.spec_outcome == VALID
    assert len(report.imports) == MAX_LISTED and report.imports_omitted == 2000 - MAX_LISTED
    assert len(report.exports) == MAX_LISTED and report.exports_omitted == 1500 - MAX_LISTED
    assert all(len(name) <= 2 * MAX_NAME_CHARS + 4 for name in report.imports + report.exports)
    dangerous = [i for i in report.issues if i["code"] == "dangerous_import"]
    assert len(dangerous) == MAX_POLICY_ISSUES + 1
    assert f"{2000 - MAX_POLICY_ISSUES} more imports" in dangerous[-1]["message"]
    assert len(json.dumps(report.as_dict())) < 64 * 1024 < len(data)


def test_control_characters_in_names_are_shown_escaped() -> None:
    report = validate_module(build_module(exports=["a\x00b\nc"]))
    assert report.exports == ["a\\x00b\\x0ac:func"]


def test_the_copy_free_call_agrees_with_module_validate() -> None:
    import wasmtime

    from backend_stub.domain.wasm import _engine, _validate

    engine = _engine(frozenset())
    for data in (build_module(), build_module()[:-3], b"\x00asm", b"nope",
                 HEADER + _section(5, b"\x01\x04\x01")):
        try:
            wasmtime.Module.validate(engine, data)
            expected = None
        except wasmtime.WasmtimeError as exc:
            expected = str(exc)
        try:
            _validate(engine, data)
            got = None
        except wasmtime.WasmtimeError as exc:
            got = str(exc)
        assert got == expected
