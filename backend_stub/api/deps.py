"""What every route needs: the caller (with scopes), the service, the documented errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from backend_stub.api.schemas import ErrorEnvelope
from backend_stub.domain.service import Actor, GovernanceService
from backend_stub.envelope import request_id
from backend_stub.errors import ValidationFailed
from backend_stub.oauth.guard import Principal, authenticate, require_scope

# Declares the bearer scheme in the OpenAPI document; the guard does the checking.
bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearer",
                           description="An access token from the stub's OAuth server.")

_ERROR_TEXT = {
    304: "Not modified: the ETag given in If-None-Match is still current.",
    401: "INVALID_TOKEN: no bearer token, or one that is expired, revoked or foreign.",
    403: "INSUFFICIENT_SCOPE: the token lacks the scope this route needs.",
    404: "NOT_FOUND: no such object (or route).",
    409: "VERSION_CONFLICT, ALREADY_DECIDED or VETO_WINDOW_CLOSED.",
    413: "PAYLOAD_TOO_LARGE: the body, or the attachments (5 MB in all), are too large.",
    422: "VALIDATION_FAILED (details.fields names each field) or IDEMPOTENCY_KEY_REUSED.",
    429: "RATE_LIMITED: slow down; Retry-After says for how long.",
    500: "INTERNAL: the stub failed; retry later. Never carries a stack trace.",
}


def errors(*codes: int, auth: bool = True) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the error codes a route can answer (plus the common ones)."""
    result: dict[int | str, dict[str, Any]] = {}
    common = {413, 422, 429, 500} | ({401, 403} if auth else set())
    for code in sorted(common | set(codes)):
        if code == 304:
            result[code] = {"description": _ERROR_TEXT[code]}
        else:
            result[code] = {"model": ErrorEnvelope, "description": _ERROR_TEXT[code]}
    return result


def _scoped(scope: str) -> Callable[..., Awaitable[Principal]]:
    check = require_scope(scope)

    async def dependency(request: Request,
                         _: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
                         ) -> Principal:
        return await check(request)

    dependency.__name__ = f"scope_{scope.replace(':', '_')}"
    return dependency


read_scope = _scoped("governance:read")
write_scope = _scoped("governance:write")
veto_scope = _scoped("veto:execute")
submit_scope = _scoped("agents:submit")


async def any_scope(request: Request,
                    _: HTTPAuthorizationCredentials | None = Security(bearer_scheme)
                    ) -> Principal:
    """A valid token of any scope: the batch route checks each item's scope itself."""
    principal = authenticate(request)
    request.state.principal = principal
    return principal


async def service(request: Request) -> GovernanceService:
    # async: a sync dependency costs a thread-pool hop on every request.
    svc: GovernanceService = request.app.state.governance
    return svc


_allowed_query: dict[int, frozenset[str]] = {}


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query(request: Request) -> None:
    """Refuse query parameters the route does not declare (a typo must not pass silently),
    and any given twice (which value would count?)."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    allowed = _allowed_query.get(id(route))
    if allowed is None:
        allowed = frozenset(_query_names(dependant))
        _allowed_query[id(route)] = allowed
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise ValidationFailed(
            f"Unknown query parameter {unknown[0]!r}; this route takes "
            f"{', '.join(sorted(allowed)) or 'none'}.",
            details={"fields": {f"query.{name}": "unknown parameter" for name in unknown}})
    names = [name for name, _ in request.query_params.multi_items()]
    if len(names) != len(request.query_params):
        # Every parameter takes one value: FastAPI would silently keep the last one.
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValidationFailed(
            f"Query parameter {repeated[0]!r} is given more than once; send it once.",
            details={"fields": {f"query.{name}": "given more than once" for name in repeated}})


async def before_request(request: Request) -> None:
    """Every /v1/mobile route: refuse unknown query parameters, then deploy what is due.

    One dependency rather than two: each costs FastAPI a resolution step per request.
    """
    await known_query(request)
    await sweep(request)


async def sweep(request: Request) -> None:
    """Before any read or write, deploy what is due (cheap when nothing is)."""
    svc: GovernanceService = request.app.state.governance
    if svc.due():
        await run_in_threadpool(svc.sweep)


def actor(principal: Principal, request: Request) -> Actor:
    return Actor(sub=principal.sub, scopes=principal.scopes, client_id=principal.client_id,
                 request_id=request_id(request))


Service = Depends(service)
