"""``/v1/mobile/audit``: a decider checks their decision's audit-log entry against the
chain's signed head (see ``docs/api.md``, Decision receipts)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from backend_stub.api import schemas as s
from backend_stub.api.deps import before_request, errors, read_scope
from backend_stub.domain.receipts import ReceiptBook
from backend_stub.envelope import ok
from backend_stub.errors import ApiError, InsufficientScope, NotFound
from backend_stub.oauth.guard import Principal

router = APIRouter(prefix="/v1/mobile/audit", tags=["audit"],
                   dependencies=[Depends(before_request)])
Read = Annotated[Principal, Depends(read_scope)]
DecisionId = Annotated[str, Path(min_length=1, max_length=200,
                                 description="The decision's id (its Idempotency-Key).")]


class NotTheDecider(ApiError):
    status_code = InsufficientScope.status_code
    code = InsufficientScope.code


def _book(request: Request) -> ReceiptBook:
    book: ReceiptBook | None = request.app.state.receipts
    if book is None or book.audit_log is None:
        raise NotFound("This stub keeps no audit log; start it with the OAuth server and "
                       "the core components.")
    return book


def _entry_out(entry: object) -> dict[str, object]:
    return {k: getattr(entry, k) for k in s.AuditEntryOut.model_fields}


@router.get("/decisions/{decision_id}", response_model=s.Envelope[s.AuditEntryOut],
            responses=errors(404))
def decision_entry(request: Request, decision_id: DecisionId, principal: Read,
                   subject: str | None = None) -> JSONResponse:
    """The audit-log entry of your decision ``decision_id``; an auditor (settings
    ``auditors``) may read anyone's with ``?subject=``."""
    book = _book(request)
    sub = principal.sub
    if subject is not None and subject != principal.sub:
        if principal.sub not in request.app.state.settings.auditors:
            raise NotTheDecider(
                f"Only {subject!r} or an auditor may read the audit entries of {subject!r}'s "
                "decisions; leave out ?subject= to read your own.",
                details={"subject": subject})
        sub = subject
    entry = book.audit_entry(sub, decision_id)
    if entry is None:
        raise NotFound(f"No audit entry for decision {decision_id!r} by {sub!r}; check the "
                       "decision id (entries are per decider).",
                       details={"id": decision_id})
    return ok(request, _entry_out(entry))


@router.get("/head", response_model=s.Envelope[s.AuditHeadOut], responses=errors(404))
def head(request: Request, _: Read) -> JSONResponse:
    """The audit chain's newest entry (sequence and hash), signed with the stub's keys."""
    book = _book(request)
    assert book.audit_log is not None
    current = book.audit_log.store.head()
    signed = book.signed_head()
    if current is None or signed is None:
        raise NotFound("The audit log is empty; nothing has been decided yet.")
    return ok(request, {"seq": current.seq, "hash": current.hash, "signed": signed})
