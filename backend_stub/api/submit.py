"""``POST /v1/agents``: submit an agent (seed 002) with its WASM module (seed 003 upload).

A ``multipart/form-data`` body: the module as the file part ``module`` and the declaration
as fields (``name``, ``industry``, ``kind``, ``capability`` once per grant,
``daily_token_budget``, ``monthly_cost_usd``). The body is parsed as it arrives: the module
goes to a file under ``DATA_DIR/uploads`` in chunks, hashed on the way, and is refused with
413 the moment it passes ``MAX_MODULE_BYTES`` (the whole body is capped before that by
``BodyLimit``). Every refusal (413, 422) removes the partial file and writes nothing else.

A module the specification refuses (malformed, invalid, not WebAssembly at all) is a 422
naming the field, with the validator's reason and offset. A valid module that breaks the
platform's rules (a dangerous import, a limit) or uses a newer feature becomes a request
all the same: the governor decides with the report in front of them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from backend_stub.api import schemas as s
from backend_stub.api.deps import errors, service, submit_scope
from backend_stub.api.limits import SUBMIT_PATH
from backend_stub.domain import capabilities as caps
from backend_stub.domain.seeds import INDUSTRIES
from backend_stub.domain.service import GovernanceService
from backend_stub.domain.wasm import MAX_MODULE_BYTES, REFUSED, validate_module
from backend_stub.envelope import ok
from backend_stub.errors import ApiError, PayloadTooLarge, ValidationFailed
from backend_stub.oauth.guard import Principal

__all__ = ["SUBMIT_PATH", "router"]

MODULE_FIELD = "module"
MAX_FIELD_BYTES = 4096
MAX_PARTS = 120  # the declaration's fields and up to 100 grants
MAX_CAPABILITIES = 100
KINDS = ("industry", "coe")
_FLUSH_BYTES = 1024 * 1024  # module bytes gathered before one write to disk
_SYNC_BYTES = 8 * 1024 * 1024  # written bytes between two syncs to disk
_DIGEST_LATER = "0" * 64  # validate_module's sha256, replaced by the writer's digest

router = APIRouter(tags=["agents"])
Svc = Annotated[GovernanceService, Depends(service)]
Submitter = Annotated[Principal, Depends(submit_scope)]


def _field_error(name: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"Field {name!r}: {message}", details={"fields": {name: message}})


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The module is over {MAX_MODULE_BYTES // (1024 * 1024)} MB; the platform accepts "
        "modules up to that size. Strip debug sections or split the agent.",
        details={"max_bytes": MAX_MODULE_BYTES})


@dataclass
class _Upload:
    """The body as it is parsed: fields in memory, the module on disk."""

    directory: Path
    fields: dict[str, list[str]] = field(default_factory=dict)
    module_path: Path | None = None
    module_size: int = 0
    digest: Any = field(default_factory=hashlib.sha256)
    parts: int = 0
    _file: Any = None
    chunks: list[bytes] = field(default_factory=list)
    _pending: list[bytes] = field(default_factory=list)
    _pending_size: int = 0
    _writer: ThreadPoolExecutor | None = None
    _unsynced: int = 0
    _writes: list[Future[Any]] = field(default_factory=list)
    _name: str = ""
    _is_file: bool = False
    _value: bytearray = field(default_factory=bytearray)
    _header: bytearray = field(default_factory=bytearray)
    _header_value: bytearray = field(default_factory=bytearray)
    _disposition: bytes = b""

    # --- the parser's callbacks (synchronous; disk writes are handed on by ``flush``)
    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise ValidationFailed(f"The form has more than {MAX_PARTS} parts; send the "
                                   "module, the declaration and at most "
                                   f"{MAX_CAPABILITIES} capabilities.",
                                   details={"fields": {"body": "too many parts"}})
        self._name, self._is_file, self._disposition = "", False, b""
        self._value = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header, self._header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise _field_error("body", "every part needs a Content-Disposition name")
        self._name = options[b"name"].decode("utf-8", "replace")
        self._is_file = self._name == MODULE_FIELD
        if self._is_file:
            if self.module_path is not None:
                raise _field_error(MODULE_FIELD, "send one module, not several")
            handle, path = tempfile.mkstemp(prefix="module-", suffix=".part",
                                            dir=self.directory)
            self._file = os.fdopen(handle, "wb", buffering=0)
            self.module_path = Path(path)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        size = end - start
        if self._is_file:
            self.module_size += size
            if self.module_size > MAX_MODULE_BYTES:
                raise _too_large()
            chunk = data[start:end]
            self.chunks.append(chunk)
            self._pending.append(chunk)
            self._pending_size += size
        else:
            if len(self._value) + size > MAX_FIELD_BYTES:
                raise _field_error(self._name, f"at most {MAX_FIELD_BYTES} bytes")
            self._value += data[start:end]

    def on_part_end(self) -> None:
        if self._is_file:
            return
        try:
            value = self._value.decode("utf-8")
        except UnicodeDecodeError:
            raise _field_error(self._name, "not UTF-8 text") from None
        self.fields.setdefault(self._name, []).append(value)

    # --- disk: one writer thread per upload keeps the writes in order while the body
    # goes on arriving; the module's chunks also stay in memory for the validator.
    def flush(self, final: bool = False) -> None:
        """Hand what has arrived to the writer (at least ``_FLUSH_BYTES``, or all)."""
        if self._file is None or not (final or self._pending_size >= _FLUSH_BYTES):
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="upload")
        if self._pending:
            self._writes.append(self._writer.submit(self._write, self._pending))
        self._pending, self._pending_size = [], 0
        if final:
            self._writes.append(self._writer.submit(self._sync_and_close))

    def _write(self, chunks: list[bytes]) -> None:
        """On the writer thread: hash, write (one system call, no joined copy), and sync
        every ``_SYNC_BYTES`` so the last sync has little left to do (hashlib and the disk
        let go of the GIL meanwhile)."""
        fd = self._file.fileno()
        for chunk in chunks:
            self.digest.update(chunk)
        size = sum(len(c) for c in chunks)
        written = os.writev(fd, chunks)
        while written < size:  # a short write: the rest, in order
            rest = b"".join(chunks)[written:]
            written += os.write(fd, rest)
        self._unsynced += size
        if self._unsynced >= _SYNC_BYTES:
            os.fdatasync(fd)
            self._unsynced = 0

    def _sync_and_close(self) -> None:
        os.fsync(self._file.fileno())
        self._file.close()

    async def written(self) -> None:
        """Once the module is complete and durable on disk (it may be renamed into the
        store then)."""
        for write in self._writes:
            await asyncio.wrap_future(write)

    def module_bytes(self) -> bytes:
        data = b"".join(self.chunks)
        self.chunks = []
        return data

    def _discard(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        if self._file is not None and not self._file.closed:
            self._file.close()
        if self.module_path is not None:
            self.module_path.unlink(missing_ok=True)

    async def discard(self) -> None:
        """Remove whatever this upload wrote (after the writes in flight)."""
        await run_in_threadpool(self._discard)


async def _receive(request: Request, directory: Path) -> _Upload:
    """The body parsed; the module's last writes to disk may still be under way."""
    content_type = request.headers.get("content-type", "")
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise _field_error("body", "send multipart/form-data with the module as the "
                                   f"{MODULE_FIELD!r} file part")
    upload = _Upload(directory)
    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": upload.on_part_begin, "on_part_data": upload.on_part_data,
        "on_part_end": upload.on_part_end, "on_header_field": upload.on_header_field,
        "on_header_value": upload.on_header_value, "on_header_end": upload.on_header_end,
        "on_headers_finished": upload.on_headers_finished})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            upload.flush()
        parser.finalize()
        upload.flush(final=True)
    except FormParserError as exc:
        await upload.discard()
        raise _field_error("body", f"not a well-formed multipart body ({exc})") from None
    except BaseException:
        await upload.discard()
        raise
    return upload


@dataclass(frozen=True)
class Declaration:
    name: str
    industry: str
    kind: str
    capabilities: list[str]
    daily_token_budget: int
    monthly_cost_usd: float


def _one(fields: dict[str, list[str]], name: str, problems: dict[str, str]) -> str | None:
    values = fields.get(name)
    if not values:
        problems[name] = "required"
        return None
    if len(values) > 1:
        problems[name] = "given more than once; send it once"
        return None
    return values[0].strip()


def declaration_from(fields: dict[str, list[str]], has_module: bool) -> Declaration:
    """The declaration in the form, or a 422 naming every field that is wrong."""
    problems: dict[str, str] = {}
    unknown = sorted(set(fields) - {"name", "industry", "kind", "capability",
                                    "daily_token_budget", "monthly_cost_usd"})
    for field_name in unknown:
        problems[field_name] = "unknown field"
    if not has_module:
        problems[MODULE_FIELD] = "required: the agent's .wasm module as a file part"
    name = _one(fields, "name", problems)
    if name is not None and not 1 <= len(name) <= 200:
        problems["name"] = "1 to 200 characters"
    industry = _one(fields, "industry", problems)
    if industry is not None and industry not in INDUSTRIES:
        problems["industry"] = f"one of {', '.join(INDUSTRIES)}"
    kind = _one(fields, "kind", {}) if "kind" in fields else "industry"
    if kind is None or kind not in KINDS:
        problems["kind"] = f"one of {', '.join(KINDS)}"
    grants = [g.strip() for g in fields.get("capability", [])]
    if len(grants) > MAX_CAPABILITIES:
        problems["capability"] = f"at most {MAX_CAPABILITIES} grants"
    for index, grant in enumerate(grants[:MAX_CAPABILITIES]):
        try:
            caps.parse(grant)
        except (ValueError, ApiError) as exc:
            problems[f"capability[{index}]"] = getattr(exc, "message", None) or str(exc)
    if len(set(grants)) != len(grants):
        problems["capability"] = "a grant is listed twice; list each once"
    tokens = _one(fields, "daily_token_budget", problems)
    daily = 0
    if tokens is not None:
        if tokens.isascii() and tokens.isdigit() and 0 < int(tokens) <= 10**12:
            daily = int(tokens)
        else:
            problems["daily_token_budget"] = "a whole number of tokens, 1 to 10^12"
    cost = _one(fields, "monthly_cost_usd", problems)
    monthly = 0.0
    if cost is not None:
        try:
            monthly = float(cost)
        except ValueError:
            monthly = -1.0
        if not (0 <= monthly <= 10**9) or not cost.replace(".", "", 1).isdigit():
            problems["monthly_cost_usd"] = "US dollars, 0 to 10^9 (e.g. 250.50)"
    if problems:
        first = next(iter(problems))
        raise ValidationFailed(f"The submission is not valid: {first!r} {problems[first]}; "
                               "fix the fields named in details.",
                               details={"fields": problems})
    assert name is not None and industry is not None and kind is not None
    return Declaration(name, industry, kind, grants, daily, monthly)


SUBMIT_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object",
        "required": [MODULE_FIELD, "name", "industry", "daily_token_budget",
                     "monthly_cost_usd"],
        "properties": {
            MODULE_FIELD: {"type": "string", "format": "binary",
                           "description": f"The agent's WebAssembly module (.wasm), at most "
                                          f"{MAX_MODULE_BYTES // (1024 * 1024)} MB."},
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "industry": {"type": "string", "enum": list(INDUSTRIES)},
            "kind": {"type": "string", "enum": list(KINDS), "default": "industry"},
            "capability": {"type": "array", "maxItems": MAX_CAPABILITIES,
                           "items": {"type": "string"},
                           "description": "One part per grant, e.g. file_read:/data/x/*"},
            "daily_token_budget": {"type": "integer", "minimum": 1},
            "monthly_cost_usd": {"type": "number", "minimum": 0},
        }}}}}}


@router.post(SUBMIT_PATH, status_code=201, response_model=s.Envelope[s.ApprovalDetail],
             openapi_extra=SUBMIT_BODY,
             responses={**errors(), 200: {"model": s.Envelope[s.ApprovalDetail],
                                          "description": "The same module and declaration "
                                          "from the same submitter: the request made then."}})
async def submit_agent(request: Request, principal: Submitter, svc: Svc) -> JSONResponse:
    """Submit an agent: its module and declaration become an approval request.

    201 with the new request (its WASM report and seed matches, as the governor sees it);
    200 with the earlier request when this submitter sent the same module (SHA-256) and
    declaration before. 413 past the size limit, 422 for a module the WebAssembly
    specification refuses, a bad grant or a missing field; none of them writes anything.
    """
    directory = Path(request.app.state.settings.data_dir) / "uploads"
    await run_in_threadpool(directory.mkdir, parents=True, exist_ok=True)
    upload = await _receive(request, directory)
    try:
        declaration = declaration_from(upload.fields, upload.module_path is not None)
        assert upload.module_path is not None
        # Validation (which lets go of the GIL) runs while the writer thread finishes hashing
        # and syncing the file; the report takes the digest once the writes are done.
        data = await run_in_threadpool(upload.module_bytes)
        report, _ = await asyncio.gather(
            run_in_threadpool(lambda: validate_module(data, sha256=_DIGEST_LATER)),
            upload.written())
        report.sha256 = upload.digest.hexdigest()
        if report.spec_outcome == REFUSED:
            raise ValidationFailed(
                f"Field {MODULE_FIELD!r} is not a valid WebAssembly module: "
                f"{report.issues[0]['message']}",
                details={"fields": {MODULE_FIELD: report.issues[0]["message"]},
                         "offset": report.error_offset, "module_sha256": report.sha256})
        approval, created = await run_in_threadpool(
            lambda: svc.submit_agent(
                submitter=principal.sub, agent_name=declaration.name,
                agent_kind=declaration.kind, industry=declaration.industry,
                capabilities=declaration.capabilities, wasm_module=data,
                daily_token_budget=declaration.daily_token_budget,
                monthly_cost_usd=declaration.monthly_cost_usd,
                wasm_report=report.as_dict(), module_file=upload.module_path))
    finally:
        await upload.discard()
    return ok(request, approval, status_code=201 if created else 200)
