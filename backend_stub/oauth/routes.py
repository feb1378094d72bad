"""The thin FastAPI adapter: reads the HTTP request, hands it to Authlib in a worker thread
(the store does blocking I/O), and turns Authlib's ``(status, body, headers)`` into a response.

OAuth endpoints answer in RFC 6749 form, not in the API's envelope (contract).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from importlib import resources
from string import Template
from typing import Any
from urllib.parse import urlencode

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749 import InvalidRequestError, OAuth2Error
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from backend_stub.oauth.keys import KeyRing
from backend_stub.oauth.passwords import DUMMY_HASH, verify_password
from backend_stub.oauth.ratelimit import LoginLimiter
from backend_stub.oauth.server import (
    SCOPES,
    GovernanceAuthorizationServer,
    PlainOAuth2Request,
)
from backend_stub.oauth.store import OAuthStore, User

# Hidden inputs the login form carries from the authorization request to its POST.
_AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state",
                     "code_challenge", "code_challenge_method")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass
class OAuthService:
    """What the routes need; kept on ``app.state.oauth``."""

    server: GovernanceAuthorizationServer
    store: OAuthStore
    keys: KeyRing
    limiter: LoginLimiter
    issuer: str

    def check_password(self, username: str, password: str) -> User | None:
        user = self.store.get_user(username.strip())
        ok = verify_password(password, user.password_hash if user else DUMMY_HASH)
        return user if user and ok else None

    def metadata(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "device_authorization_endpoint": f"{base}/oauth/device_authorization",
            "revocation_endpoint": f"{base}/oauth/revoke",
            "introspection_endpoint": f"{base}/oauth/introspect",
            "jwks_uri": f"{base}/oauth/jwks.json",
            "scopes_supported": list(SCOPES),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token",
                                      "urn:ietf:params:oauth:grant-type:device_code"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            # Only the app revokes (its own tokens); only the resource server introspects.
            "revocation_endpoint_auth_methods_supported": ["none"],
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic",
                                                              "client_secret_post"],
            "authorization_response_iss_parameter_supported": True,
        }


def _template(name: str) -> Template:
    text = resources.files("backend_stub.oauth").joinpath("templates", name).read_text("utf-8")
    return Template(text)


def _page(title: str, body: str, status: int = 200,
          headers: dict[str, str] | None = None) -> HTMLResponse:
    page = _template("base.html").substitute(title=html.escape(title), body=body)
    # The login pages must never be framed (clickjacking) nor cached.
    base_headers = {"X-Frame-Options": "DENY",
                    "Content-Security-Policy": "frame-ancestors 'none'", **_NO_STORE}
    return HTMLResponse(page, status_code=status, headers={**base_headers, **(headers or {})})


def _message(heading: str, message: str, status: int,
             headers: dict[str, str] | None = None) -> HTMLResponse:
    body = _template("message.html").substitute(heading=html.escape(heading),
                                                message=html.escape(message))
    return _page(heading, body, status, headers)


def _error_block(message: str | None) -> str:
    return f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""


def _to_response(result: tuple[int, Any, list[tuple[str, str]]]) -> Response:
    status, body, headers = result
    hdrs = dict(headers)
    if isinstance(body, dict):
        hdrs.pop("Content-Type", None)
        # Every JSON answer of an OAuth endpoint, success or error, may carry a token or
        # say something about one: never cached (RFC 6749 §5.1, §5.2).
        hdrs.update(_NO_STORE)
        return JSONResponse(body, status_code=status, headers=hdrs)
    return Response(body or b"", status_code=status, headers=hdrs)


def _repeated(oauth_req: PlainOAuth2Request) -> list[str]:
    """Parameters sent more than once (in the query, the body, or both)."""
    return sorted(k for k, v in oauth_req.payload.datalist.items() if len(v) > 1)


def _repeated_error(names: list[str]) -> InvalidRequestError:
    # RFC 6749 §3.1, §3.2: "Request and response parameters MUST NOT be included more than
    # once."
    return InvalidRequestError(f"Parameter {', '.join(map(repr, names))} is sent more than "
                               "once; send each parameter once.")


async def _endpoint(request: Request, run: Callable[[PlainOAuth2Request], Any]) -> Response:
    """A JSON OAuth endpoint: refuses repeated parameters, then lets Authlib answer."""
    service = _service(request)
    oauth_req = await _oauth_request(request)
    repeated = _repeated(oauth_req)
    if repeated:
        return _to_response(service.server.handle_error_response(
            oauth_req, _repeated_error(repeated)))
    return _to_response(await run_in_threadpool(run, oauth_req))


def _with_iss(result: tuple[int, Any, list[tuple[str, str]]], issuer: str
              ) -> tuple[int, Any, list[tuple[str, str]]]:
    """RFC 9207: name the issuer in every authorization response, so a client talking to
    several servers cannot be tricked into sending one's code to another (mix-up)."""
    status, body, headers = result
    if status != 302:
        return result
    fixed = [(k, add_params_to_uri(v, [("iss", issuer)]) if k.lower() == "location" else v)
             for k, v in headers]
    return status, body, fixed


async def _oauth_request(request: Request) -> PlainOAuth2Request:
    query: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        query.setdefault(key, []).append(value)
    form: dict[str, list[str]] = {}
    if request.method == "POST":
        data = await request.form()
        for key, item in data.multi_items():
            if isinstance(item, str):  # file uploads have no place in OAuth forms
                form.setdefault(key, []).append(item)
    return PlainOAuth2Request(request.method, str(request.url), request.headers, query, form)


def _service(request: Request) -> OAuthService:
    service: OAuthService = request.app.state.oauth
    return service


def _consent_grant(service: OAuthService, oauth_req: PlainOAuth2Request) -> Any:
    """Authlib's validation of an authorization request, after refusing repeated
    parameters: with a repeated client_id or redirect_uri there is nowhere safe to redirect
    to (an error page); otherwise the error goes to the validated redirect URI
    (RFC 6749 §4.1.2.1)."""
    repeated = _repeated(oauth_req)
    if repeated:
        error = _repeated_error(repeated)
        data = oauth_req.payload.data
        client = service.server.query_client(data.get("client_id", ""))
        redirect_uri = data.get("redirect_uri", "")
        if (not {"client_id", "redirect_uri"} & set(repeated) and client is not None
                and client.check_redirect_uri(redirect_uri)):
            error.redirect_uri = redirect_uri
            error.state = data.get("state")
        raise error
    return service.server.get_consent_grant(oauth_req)


def _authorize_error(service: OAuthService, oauth_req: PlainOAuth2Request,
                     error: OAuth2Error) -> Response:
    if error.redirect_uri:
        # The redirect URI was validated: RFC 6749 §4.1.2.1 says report the error there.
        return _to_response(_with_iss(
            service.server.handle_error_response(oauth_req, error), service.issuer))
    # Unknown client or unregistered redirect URI: never redirect (open-redirector defence).
    return _message("Sign-in link not valid",
                    f"{error.description or error.error}. Return to the Governor app and "
                    "start sign-in again.", 400)


def _login_form(oauth_req: PlainOAuth2Request, *, error: str | None = None,
                username: str = "", status: int = 200,
                headers: dict[str, str] | None = None) -> HTMLResponse:
    data = oauth_req.payload.data
    hidden = "\n".join(
        f'  <input type="hidden" name="{name}" value="{html.escape(data[name])}">'
        for name in _AUTHORIZE_PARAMS if data.get(name)
    )
    scopes = (data.get("scope") or " ".join(SCOPES)).split()
    body = _template("login.html").substitute(
        client_note=html.escape(f"The Governor app asks for: {', '.join(scopes)}."),
        error=_error_block(error), action="/oauth/authorize", hidden=hidden,
        username=html.escape(username),
    )
    return _page("Sign in", body, status, headers)


_STATUS_TEXT = {
    302: "Redirect to the client's redirect_uri: the code, or an RFC 6749 error, each with "
         "iss (RFC 9207)",
    400: "RFC 6749 error body (invalid_request, invalid_grant, unsupported_grant_type, "
         "authorization_pending, slow_down, expired_token ...); on the HTML pages, a "
         "sign-in link or device code that is not valid",
    401: "invalid_client; on the HTML forms, a wrong username or password",
    413: "PAYLOAD_TOO_LARGE: the body is over 8 MB",
    429: "RATE_LIMITED (too many requests), or on the HTML forms too many failed sign-ins; "
         "Retry-After says for how long",
    500: "INTERNAL: the stub failed; retry later",
}


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses``: the route's own statuses, the rate limit's 429 and 500, and
    413 for a route that reads a body."""
    return {code: {"description": _STATUS_TEXT[code]} for code in sorted({*codes, 429, 500})}


def build_router() -> APIRouter:
    router = APIRouter(tags=["oauth"])

    @router.get("/.well-known/oauth-authorization-server", responses=_responses())
    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(_service(request).metadata())

    @router.get("/oauth/jwks.json", responses=_responses())
    async def jwks(request: Request) -> JSONResponse:
        return JSONResponse(_service(request).keys.jwks(),
                            headers={"Cache-Control": "public, max-age=60"})

    @router.get("/oauth/authorize", response_model=None, responses=_responses(302, 400))
    async def authorize_form(request: Request) -> Response:
        service = _service(request)
        oauth_req = await _oauth_request(request)
        try:
            await run_in_threadpool(_consent_grant, service, oauth_req)
        except OAuth2Error as error:
            return _authorize_error(service, oauth_req, error)
        return _login_form(oauth_req)

    @router.post("/oauth/authorize", response_model=None, status_code=302,
                 responses=_responses(400, 401, 413))
    async def authorize_submit(request: Request) -> Response:
        service = _service(request)
        oauth_req = await _oauth_request(request)
        try:
            grant = await run_in_threadpool(_consent_grant, service, oauth_req)
        except OAuth2Error as error:
            return _authorize_error(service, oauth_req, error)
        username = oauth_req.form.get("username", "")
        password = oauth_req.form.get("password", "")
        keys = LoginLimiter.keys(username, request.client.host if request.client else None)
        wait = service.limiter.retry_after(keys)
        if wait is not None:
            return _login_form(oauth_req, username=username, status=429,
                               error=f"Too many failed sign-in attempts. Wait {wait} seconds "
                                     "and try again.",
                               headers={"Retry-After": str(wait)})
        user = await run_in_threadpool(service.check_password, username, password)
        if user is None:
            service.limiter.record_failure(keys)
            return _login_form(oauth_req, username=username, status=401,
                               error="Wrong username or password; check both and try again.")
        result = await run_in_threadpool(service.server.create_authorization_response,
                                         oauth_req, user, grant)
        return _to_response(_with_iss(result, service.issuer))

    @router.post("/oauth/token", response_model=None, responses=_responses(400, 401, 413))
    async def token(request: Request) -> Response:
        return await _endpoint(request, _service(request).server.create_token_response)

    @router.post("/oauth/device_authorization", response_model=None,
                 responses=_responses(400, 401, 413))
    async def device_authorization(request: Request) -> Response:
        return await _endpoint(request, partial(_service(request).server
                                                .create_endpoint_response,
                                                "device_authorization"))

    @router.post("/oauth/revoke", response_model=None, responses=_responses(400, 401, 413))
    async def revoke(request: Request) -> Response:
        return await _endpoint(request, partial(_service(request).server
                                                .create_endpoint_response, "revocation"))

    @router.post("/oauth/introspect", response_model=None,
                 responses=_responses(400, 401, 413))
    async def introspect(request: Request) -> Response:
        return await _endpoint(request, partial(_service(request).server
                                                .create_endpoint_response, "introspection"))

    @router.get("/oauth/device", response_model=None, responses=_responses())
    async def device_form(request: Request, user_code: str = "") -> Response:
        return _device_form(user_code=user_code)

    @router.post("/oauth/device", response_model=None, responses=_responses(400, 401, 413))
    async def device_submit(request: Request) -> Response:
        service = _service(request)
        form = await request.form()
        user_code = normalise_user_code(str(form.get("user_code", "")))
        username = str(form.get("username", ""))
        password = str(form.get("password", ""))
        approve = str(form.get("decision", "approve")) != "deny"
        keys = LoginLimiter.keys(username, request.client.host if request.client else None)
        wait = service.limiter.retry_after(keys)
        if wait is not None:
            return _device_form(user_code=user_code, username=username, status=429,
                                error=f"Too many failed sign-in attempts. Wait {wait} "
                                      "seconds and try again.",
                                headers={"Retry-After": str(wait)})
        user = await run_in_threadpool(service.check_password, username, password)
        if user is None:
            service.limiter.record_failure(keys)
            return _device_form(user_code=user_code, username=username, status=401,
                                error="Wrong username or password; check both and try again.")
        record = await run_in_threadpool(service.store.get_device_by_user_code, user_code)
        now = service.server.now()
        if record is None or record.status != "pending" or now >= record.expires_at:
            return _device_form(user_code=user_code, username=username, status=400,
                                error="This code is unknown, expired or already used; check "
                                      "the code on the device or start again there.")
        await run_in_threadpool(service.store.decide_device_code, user_code, user.sub, approve)
        if approve:
            return _message("Device connected",
                            "You can return to the device; it will finish signing in.", 200)
        return _message("Request denied", "The device was not signed in.", 200)

    return router


def normalise_user_code(raw: str) -> str:
    """People type codes loosely: ignore case, spaces and dashes."""
    letters = "".join(ch for ch in raw.upper() if ch.isalnum())
    return f"{letters[:4]}-{letters[4:]}" if len(letters) == 8 else raw.strip().upper()


def _device_form(*, user_code: str = "", username: str = "", error: str | None = None,
                 status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    body = _template("device.html").substitute(
        error=_error_block(error), action="/oauth/device", user_code=html.escape(user_code),
        username=html.escape(username))
    return _page("Connect a device", body, status, headers)


def authorize_url(base: str, **params: str) -> str:
    """Build an authorization request URL (tests and docs)."""
    return f"{base}/oauth/authorize?{urlencode(params)}"
