"""The contract over httpx: one place that turns HTTP into answers or ``SyncError``s.

The transport is injectable (``httpx.MockTransport``, the fake server in
``sync.fake_server``), so everything above it is tested without a network. A 401 gets one
token refresh and one retry; 429 becomes ``RateLimitedByServer``; network errors and 5xx
become ``ServerUnreachable``; any other error envelope becomes ``ApiRejected``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx
import orjson

from sync.errors import (
    ApiRejected,
    AuthFlowError,
    RateLimitedByServer,
    RefreshRefused,
    ServerUnreachable,
    SignInRequired,
)
from sync.models import Account, DeviceCode
from sync.tokens import MemoryVault, TokenVault
from sync.transport import certificate_hint, check_server_url, tls_context


class Authenticator(Protocol):
    """What the engine needs of the OAuth client (``sync.auth.Authenticator``)."""

    # Keeps the session and the device key that seals the outbox.
    vault: TokenVault

    def account(self) -> Account | None: ...

    async def access_token(self) -> str: ...

    async def refresh_after_401(self, rejected_token: str) -> str: ...

    async def sign_in_with_password(self, username: str, password: str) -> Account: ...

    async def sign_in_with_browser(self, open_url: Callable[[str], Any]) -> Account: ...

    async def start_device_sign_in(self) -> DeviceCode: ...

    async def finish_device_sign_in(self, code: DeviceCode) -> Account: ...

    async def sign_out(self) -> None: ...

    async def confirm_identity(self, password: str) -> bool: ...


class FakeAuthenticator:
    """An ``Authenticator`` in memory, for tests: tokens are ``tok-<n>``; ``refresh_after_401``
    issues the next one; ``refuse_refresh`` makes refreshes fail as a revoked session would."""

    def __init__(self, account: Account | None = None, *, password: str = "governor") -> None:
        self._account = account
        self.password = password
        self.vault: TokenVault = MemoryVault()
        self.generation = 1
        self.refreshes = 0
        self.refuse_refresh = False

    @property
    def token(self) -> str:
        return f"tok-{self.generation}"

    def account(self) -> Account | None:
        return self._account

    async def access_token(self) -> str:
        if self._account is None:
            raise SignInRequired("Nobody is signed in on this device; sign in first.")
        return self.token

    async def refresh_after_401(self, rejected_token: str) -> str:
        if self.refuse_refresh or self._account is None:
            raise RefreshRefused("The server refused the refresh token; sign in again.")
        if rejected_token == self.token:  # one refresh, however many requests saw the 401
            self.generation += 1
            self.refreshes += 1
        return self.token

    def sign_in_as(self, account: Account | None) -> None:
        self._account = account
        self.refuse_refresh = False
        self.generation += 1

    async def sign_in_with_password(self, username: str, password: str) -> Account:
        if password != self.password:
            raise AuthFlowError(f"Wrong password for {username!r}; try again.")
        account = Account(sub=f"sub-{username}", username=username,
                          scopes=frozenset({"governance:read", "governance:write",
                                            "veto:execute"}))
        self.sign_in_as(account)
        return account

    async def sign_in_with_browser(self, open_url: Callable[[str], Any]) -> Account:
        return await self.sign_in_with_password("governor", self.password)

    async def start_device_sign_in(self) -> DeviceCode:
        return DeviceCode(device_code="dc", user_code="ABCD-EFGH",
                          verification_uri="http://127.0.0.1/device", expires_in=600)

    async def finish_device_sign_in(self, code: DeviceCode) -> Account:
        return await self.sign_in_with_password("governor", self.password)

    async def sign_out(self) -> None:
        self._account = None

    async def confirm_identity(self, password: str) -> bool:
        return password == self.password


@dataclass
class ApiResponse:
    status: int
    data: Any = None
    meta: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    nbytes: int = 0  # what crossed the wire for this answer (headers and body)

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def not_modified(self) -> bool:
        return self.status == 304


Reachability = Callable[[bool], None]
ServerTime = Callable[[datetime, float], None]  # (the answer's stamp, round trip seconds)
HEALTH_PATH = "/v1/health"


def envelope_time(body: Any) -> datetime | None:
    """The envelope's ``meta.timestamp`` (RFC 3339, the server's clock), if it has one."""
    meta = body.get("meta") if isinstance(body, dict) else None
    stamp = meta.get("timestamp") if isinstance(meta, dict) else None
    if not isinstance(stamp, str):
        return None
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


class ApiClient:
    """Authenticated requests to ``/v1/mobile``; reports reachability after each one."""

    # Set by the owner (the engine): told the server's time stamped on each answer; told
    # when a request could not reach the server at all (not on a 5xx: a server that
    # answers is there, and its errors are retried with backoff).
    on_server_time: ServerTime | None = None
    on_lost: Callable[[], None] | None = None

    def __init__(self, server_url: str, *, authenticator: Authenticator,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 10.0, on_reachable: Reachability | None = None,
                 allow_insecure_http: bool = False, tls: ssl.SSLContext | None = None
                 ) -> None:
        # An injected transport decides where bytes go (tests); the network one is checked
        # and verifies certificates (sync/transport.py).
        if transport is None:
            check_server_url(server_url, allow_insecure_http=allow_insecure_http)
        self.server_url = server_url.rstrip("/")
        self.auth = authenticator
        self.on_reachable = on_reachable
        self.http = httpx.AsyncClient(base_url=self.server_url, transport=transport,
                                      timeout=timeout, verify=tls or tls_context())
        self.bytes_received = 0
        self.seconds_waiting = 0.0  # time spent waiting on the server (figures, logs)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def probe(self, timeout: float) -> bool:
        """``GET /v1/health`` (no token) with a short timeout: is the server there? The
        cheap question asked while offline; it reports no reachability itself (the caller
        is the one deciding), only the server's time."""
        started = time.perf_counter()
        try:
            response = await self.http.get(HEALTH_PATH, timeout=timeout)
        except httpx.TransportError:
            return False
        if response.status_code >= 500:
            return False
        try:
            body = orjson.loads(response.content) if response.content else None
        except orjson.JSONDecodeError:
            body = None
        self._observe_time(body, time.perf_counter() - started)
        return True

    def _observe_time(self, body: Any, rtt: float) -> None:
        stamp = envelope_time(body)
        if stamp is not None and self.on_server_time is not None:
            self.on_server_time(stamp, rtt)

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json_body: Any = None, headers: dict[str, str] | None = None
                      ) -> ApiResponse:
        token = await self.auth.access_token()
        response = await self._send(method, path, token, params, json_body, headers)
        if response.status_code == 401:
            # One refresh, one retry: a second 401 means the session is gone, and looping
            # would hammer the server (PowerSync js #1034).
            token = await self.auth.refresh_after_401(token)
            response = await self._send(method, path, token, params, json_body, headers)
            if response.status_code == 401:
                raise SignInRequired("The server refused the session twice. "
                                     "Sign in again; your queued decisions are kept.")
        return self._interpret(method, path, response)

    async def _send(self, method: str, path: str, token: str, params: dict[str, Any] | None,
                    json_body: Any, headers: dict[str, str] | None) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        content = None
        if json_body is not None:
            content = orjson.dumps(json_body, default=str)
            all_headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, params=params, content=content,
                                               headers=all_headers)
        except httpx.TransportError as exc:
            self.seconds_waiting += time.perf_counter() - started
            self._reachable(False)
            if self.on_lost is not None:
                self.on_lost()
            raise ServerUnreachable(f"Cannot reach {self.server_url!r} ({type(exc).__name__}"
                                    f": {exc}). Decisions stay queued and are sent when "
                                    "the connection is back." + certificate_hint(exc)) from exc
        self.seconds_waiting += time.perf_counter() - started
        size = len(response.content) + sum(len(k) + len(v) + 4
                                           for k, v in response.headers.items())
        self.bytes_received += size
        response.extensions["nbytes"] = size
        response.extensions["rtt"] = time.perf_counter() - started
        self._reachable(response.status_code < 500)
        return response

    def _reachable(self, ok: bool) -> None:
        if self.on_reachable is not None:
            self.on_reachable(ok)

    def _interpret(self, method: str, path: str, response: httpx.Response) -> ApiResponse:
        status = response.status_code
        headers = {k.lower(): v for k, v in response.headers.items()}
        nbytes = int(response.extensions.get("nbytes", 0))
        if status == 304:
            return ApiResponse(status=304, headers=headers, nbytes=nbytes)
        body: Any = None
        if response.content:
            try:
                body = orjson.loads(response.content)
            except orjson.JSONDecodeError:
                body = None
        self._observe_time(body, float(response.extensions.get("rtt", 0.0)))
        if 200 <= status < 300:
            data = body.get("data") if isinstance(body, dict) else None
            meta = body.get("meta", {}) if isinstance(body, dict) else {}
            return ApiResponse(status=status, data=data, meta=meta or {}, headers=headers,
                               nbytes=nbytes)
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            error = {}
        code = str(error.get("code") or f"HTTP_{status}")
        message = str(error.get("message") or response.reason_phrase or "no message")
        if status == 429:
            raise RateLimitedByServer(
                f"The server asks us to slow down on {method} {path}; retrying after "
                f"{_retry_after(headers)} s.", _retry_after(headers))
        if status >= 500:
            raise ServerUnreachable(f"{method} {path} failed on the server ({status} {code}: "
                                    f"{message}). It is retried with backoff.")
        raise ApiRejected(status, code, message, error.get("details") or {})


def _retry_after(headers: dict[str, str]) -> float:
    try:
        return max(0.0, float(headers.get("retry-after", "1")))
    except ValueError:
        return 1.0
