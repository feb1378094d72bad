from __future__ import annotations

from backend_stub.domain.wasm import (
    MAX_FUNCTIONS,
    MAX_TABLE_ELEMENTS,
    build_module,
    validate_module,
)


def codes(data: bytes) -> list[str]:
    return [i["code"] for i in validate_module(data).issues]


def test_a_small_module_is_valid_and_fully_described() -> None:
    report = validate_module(build_module(imports=[("wasi_snapshot_preview1", "fd_write")],
                                          functions=3, memory_pages=4))
    assert report.valid and report.magic_ok and report.version == 1
    assert report.sections == ["type", "import", "function", "memory", "export", "code"]
    assert report.imports == ["wasi_snapshot_preview1.fd_write"]
    assert report.exports == ["_start:func", "memory:memory"]
    assert report.memory_pages == 4
    assert report.function_count == 4  # three defined, one imported
    assert report.issues == []


def test_bad_magic_is_reported_without_parsing_further() -> None:
    report = validate_module(b"\x7fELF\x01\x00\x00\x00")
    assert not report.valid and not report.magic_ok
    assert codes(b"\x7fELF\x01\x00\x00\x00") == ["bad_magic"]


def test_unsupported_version() -> None:
    data = bytearray(build_module())
    data[4] = 2
    assert "unsupported_version" in codes(bytes(data))


def test_truncated_and_malformed_modules_are_invalid_not_errors() -> None:
    assert codes(b"\x00asm\x01") == ["truncated"]
    good = build_module()
    assert "malformed" in codes(good[:-3])
    assert "malformed" in codes(b"\x00asm\x01\x00\x00\x00\x63\x00")  # unknown section id


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
