"""The OAuth client: sign-in, the access token every request needs, sign-out, step-up.

Flows (Authlib's httpx client does the protocol; this module adds the native-app rules):

- ``sign_in_with_browser``: authorization code + PKCE S256 through the system browser and a
  one-shot loopback listener on ``127.0.0.1`` (RFC 8252), with a ``state`` check;
- ``sign_in_with_password``: the same code + PKCE flow, filling in the server's login form
  (the demo's automatic sign-in and the in-app form); the redirect is read, never followed;
- ``start_device_sign_in`` / ``finish_device_sign_in``: the device grant (RFC 8628) for a
  phone or a second screen, polling at ``interval`` and slowing down on ``slow_down``.

Sessions: ``access_token()`` refreshes shortly before expiry, one refresh at a time; a 401
calls ``refresh_after_401`` once (the caller retries once, never loops). The rotated refresh
token is saved before the new access token is used. A refused refresh ends the session but
keeps who it was (``previous_account``), so queued work is never sent as someone else. The
network being down never loses tokens: it raises ``ServerUnreachable``.

The client reads ``sub``, ``preferred_username`` and ``exp`` from the access token it has just
received from the token endpoint over its own connection; it does not verify the signature
(the API does), and never trusts a token from anywhere else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import inspect
import json
import logging
import secrets
import ssl
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import AsyncOAuth2Client

from sync.clock import Clock, SystemClock
from sync.errors import (
    AuthFlowError,
    RateLimitedByServer,
    RefreshRefused,
    ServerUnreachable,
    SignInRequired,
)
from sync.models import SCOPE_READ, SCOPE_VETO, SCOPE_WRITE, Account, DeviceCode
from sync.observable import Listeners
from sync.tokens import StoredTokens, TokenVault
from sync.transport import certificate_hint, check_server_url, tls_context

log = logging.getLogger("sync.auth")

DEFAULT_SCOPES = (SCOPE_READ, SCOPE_WRITE, SCOPE_VETO)
APP_REDIRECT_URI = "com.waooaw.governor:/callback"
DEVICE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
# The offline step-up verifier's cost: about 50 ms and 16 MiB per check on a phone.
_SCRYPT: dict[str, int] = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}
# Refresh this long before the access token expires, so a request never leaves with a token
# that dies on the way.
REFRESH_MARGIN_S = 60
BROWSER_TIMEOUT_S = 300.0

Sleep = Callable[[float], Awaitable[None]]
OpenUrl = Callable[[str], Awaitable[None] | None]


def _claims(access_token: str) -> dict[str, Any]:
    try:
        payload = access_token.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError) as exc:
        raise AuthFlowError("The server sent an access token the app cannot read; "
                            "check the server URL and sign in again.") from exc
    if not isinstance(claims, dict) or "sub" not in claims:
        raise AuthFlowError("The server's access token names no account; sign in again.")
    return claims


@dataclass(frozen=True)
class _Form:
    action: str
    method: str
    fields: dict[str, str]


class _FormParser(HTMLParser):
    """Finds the first form of a page and its pre-filled inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.form: _Form | None = None
        self._in_form = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and self.form is None:
            self.form = _Form(a.get("action", ""), a.get("method", "get").lower(), {})
            self._in_form = True
        elif tag == "input" and self._in_form and self.form is not None and a.get("name"):
            self.form.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def _page_message(text: str) -> str:
    """The human message of the stub's HTML error pages (the first paragraph)."""
    start = text.find("<p")
    if start < 0:
        return ""
    start = text.find(">", start) + 1
    end = text.find("</p>", start)
    return html.unescape(text[start:end]).strip()


class _LoopbackReceiver:
    """A one-shot HTTP listener on 127.0.0.1 that waits for ``GET /callback?...``."""

    def __init__(self) -> None:
        self._server: asyncio.AbstractServer | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None
        self.port = 0

    async def __aenter__(self) -> _LoopbackReceiver:
        self._result = asyncio.get_running_loop().create_future()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/callback"

    async def wait(self, timeout: float) -> dict[str, str]:
        assert self._result is not None
        return await asyncio.wait_for(asyncio.shield(self._result), timeout)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
            while (await asyncio.wait_for(reader.readline(), 10)) not in (b"\r\n", b"\n", b""):
                pass
            parts = line.split(" ")
            target = urlsplit(parts[1]) if len(parts) >= 2 else urlsplit("/")
            if parts[0] != "GET" or target.path != "/callback":
                await self._reply(writer, 404, "Not the sign-in callback.")
                return
            params = {k: v[0] for k, v in parse_qs(target.query).items()}
            if self._result is not None and not self._result.done():
                self._result.set_result(params)
            ok = "code" in params
            await self._reply(writer, 200, "Signed in. You can close this window and return "
                              "to the Governor app." if ok else "Sign-in did not complete. "
                              "Return to the Governor app and try again.")
        except (TimeoutError, ConnectionError, UnicodeError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, message: str) -> None:
        body = (f"<!doctype html><meta charset='utf-8'><title>WAOOAW Governor</title>"
                f"<p>{message}</p>").encode()
        reason = "OK" if status == 200 else "Not Found"
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n"
                     f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\n\r\n".encode() + body)
        await writer.drain()


class Authenticator:
    """The session with one server; one instance per server URL."""

    def __init__(self, server_url: str, *, vault: TokenVault,
                 http: httpx.AsyncClient | None = None, clock: Clock | None = None,
                 client_id: str = "governor-app", scopes: tuple[str, ...] = DEFAULT_SCOPES,
                 refresh_margin_s: float = REFRESH_MARGIN_S, timeout: float = 10.0,
                 sleep: Sleep | None = None, allow_insecure_http: bool = False,
                 tls: ssl.SSLContext | None = None) -> None:
        # An injected ``http`` client is the caller's own connection (an in-process ASGI
        # transport in tests); one made here goes over the network, so the URL is checked
        # and certificates verified (sync/transport.py).
        if http is None:
            check_server_url(server_url, allow_insecure_http=allow_insecure_http)
        self.server_url = server_url.rstrip("/")
        self.vault = vault
        self.clock: Clock = clock or SystemClock()
        self.client_id = client_id
        self.scopes = scopes
        self.refresh_margin = timedelta(seconds=refresh_margin_s)
        self._sleep: Sleep = sleep or asyncio.sleep
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(timeout=timeout, verify=tls or tls_context())
        # Authlib's client speaks the protocol over the same transport (so an in-process
        # ASGI transport in tests, or a proxy, applies to token calls too).
        transport = getattr(self._http, "_transport", None)
        self._oauth = AsyncOAuth2Client(
            client_id=client_id, token_endpoint_auth_method="none",
            revocation_endpoint_auth_method="none", code_challenge_method="S256",
            transport=transport, timeout=timeout,
        )
        self._metadata: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._tokens: StoredTokens | None = self._load(vault)
        # A listener's bug must not break the session: ``Listeners`` logs it and goes on.
        self._listeners: Listeners[[]] = Listeners(log, "auth listener")

    def _load(self, vault: TokenVault) -> StoredTokens | None:
        stored = vault.load()
        if stored is not None and stored.issuer and stored.issuer.rstrip("/") != self.server_url:
            # Tokens of another server (the server URL changed): never send them here.
            log.info("ignoring the stored session of %s", stored.issuer)
            return None
        return stored

    async def aclose(self) -> None:
        # Authlib's client shares the transport of ``http``: closing it would close the
        # caller's connection pool too, so it is closed only when we made ``http``.
        if self._own_http:
            await self._oauth.aclose()
            await self._http.aclose()

    # --- state -------------------------------------------------------------------------
    def account(self) -> Account | None:
        """Who is signed in, from the stored tokens (works offline); None if nobody."""
        tokens = self._tokens
        if tokens is None or tokens.ended:
            return None
        return Account(sub=tokens.sub, username=tokens.username, scopes=tokens.scopes)

    def previous_account(self) -> Account | None:
        """Who was signed in last, even after the server ended that session."""
        tokens = self._tokens
        if tokens is None:
            return None
        return Account(sub=tokens.sub, username=tokens.username, scopes=tokens.scopes)

    @property
    def needs_sign_in(self) -> bool:
        return self._tokens is None or self._tokens.ended

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` whenever the account changes (sign-in, sign-out, refusal)."""
        return self._listeners.subscribe(listener)

    def _changed(self) -> None:
        self._listeners.emit()

    # --- tokens for requests -----------------------------------------------------------
    async def access_token(self) -> str:
        """A valid access token, refreshed first when it expires within the margin."""
        tokens = self._current()
        if self._fresh(tokens):
            return tokens.access_token
        async with self._lock:
            tokens = self._current()  # another task may have refreshed while we waited
            if self._fresh(tokens):
                return tokens.access_token
            return (await self._refresh(tokens)).access_token

    async def refresh_after_401(self, rejected_token: str) -> str:
        """The API refused ``rejected_token``: refresh once, unless another task already
        replaced it, and return the token to retry with (the caller retries once)."""
        async with self._lock:
            tokens = self._current()
            if tokens.access_token != rejected_token:
                return tokens.access_token
            return (await self._refresh(tokens)).access_token

    def _current(self) -> StoredTokens:
        tokens = self._tokens
        if tokens is None:
            raise SignInRequired("Nobody is signed in on this device; sign in to continue.")
        if tokens.ended:
            raise SignInRequired(f"The session of {tokens.username!r} has ended; sign in "
                                 "again to continue.")
        return tokens

    def _fresh(self, tokens: StoredTokens) -> bool:
        return bool(tokens.access_token) and (
            self.clock.now() + self.refresh_margin < tokens.expires_at)

    async def _refresh(self, tokens: StoredTokens) -> StoredTokens:
        if not tokens.refresh_token:
            self._end_session(tokens)
            raise RefreshRefused(f"The session of {tokens.username!r} cannot be renewed; "
                                 "sign in again.")
        meta = await self.metadata()
        try:
            response = await self._oauth.refresh_token(meta["token_endpoint"],
                                                       refresh_token=tokens.refresh_token)
        except OAuthError as exc:
            if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client",
                             "invalid_scope"):
                self._end_session(tokens)
                raise RefreshRefused(
                    f"The server refused to renew the session of {tokens.username!r} "
                    f"({exc.description or exc.error}); sign in again. Queued work is kept."
                ) from exc
            raise ServerUnreachable(f"The token endpoint failed ({exc.error}); "
                                    "the session is kept, retry later.") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ServerUnreachable(f"Cannot renew the session at {self.server_url!r} "
                                    f"({exc.__class__.__name__}); the session is kept, "
                                    "retry when online." + certificate_hint(exc)) from exc
        return self._adopt(dict(response), expected_sub=tokens.sub)

    def _adopt(self, token: dict[str, Any], *, expected_sub: str | None = None) -> StoredTokens:
        """Store a token response; persisted before the access token is handed out."""
        access = str(token.get("access_token") or "")
        claims = _claims(access)
        sub = str(claims["sub"])
        if expected_sub is not None and sub != expected_sub:
            raise AuthFlowError("The server renewed the session for another account; "
                                "sign in again.")
        scope = token.get("scope") or claims.get("scope") or ""
        expires_in = token.get("expires_in")
        now = self.clock.now()
        if expires_in is not None:
            expires_at = now + timedelta(seconds=float(expires_in))
        else:
            expires_at = datetime.fromtimestamp(float(claims["exp"]), tz=now.tzinfo)
        previous = self._tokens
        stored = StoredTokens(
            sub=sub, username=str(claims.get("preferred_username") or sub),
            scopes=frozenset(str(scope).split()), access_token=access, expires_at=expires_at,
            refresh_token=token.get("refresh_token"), issuer=str(claims.get("iss", "")),
            # What the client keeps of the account (the offline step-up verifier) lives as
            # long as the account does, across refreshes.
            extra=dict(previous.extra) if previous is not None and previous.sub == sub else {},
        )
        # RFC 9700 rotation: the old refresh token is dead now, so the new one must reach
        # the vault before the new access token is handed out.
        try:
            self.vault.save(stored)
        except Exception:
            # Keep the session for this run; after a restart the governor signs in again.
            log.exception("could not save the session to the token vault")
        self._tokens = stored
        self._changed()
        return stored

    def _end_session(self, tokens: StoredTokens) -> None:
        ended = tokens.ended_copy()
        try:
            self.vault.save(ended)
        except Exception:
            log.exception("could not record the ended session in the vault")
        self._tokens = ended
        self._changed()

    # --- discovery ---------------------------------------------------------------------
    async def metadata(self) -> dict[str, Any]:
        """RFC 8414 metadata, fetched once; the issuer must be the server we talk to."""
        if self._metadata is None:
            url = f"{self.server_url}/.well-known/oauth-authorization-server"
            try:
                response = await self._http.get(url)
                response.raise_for_status()
                meta = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise ServerUnreachable(f"Cannot read the sign-in settings of "
                                        f"{self.server_url!r}; check the connection."
                                        + certificate_hint(exc)) from exc
            if str(meta.get("issuer", "")).rstrip("/") != self.server_url:
                raise AuthFlowError(f"The server at {self.server_url!r} names another issuer "
                                    f"({meta.get('issuer')!r}); check the server URL.")
            if "S256" not in meta.get("code_challenge_methods_supported", []):
                raise AuthFlowError(f"The server at {self.server_url!r} does not support "
                                    "PKCE S256; the app will not sign in without it.")
            self._metadata = meta
        return self._metadata

    # --- authorization code + PKCE -----------------------------------------------------
    async def _authorization_url(self, redirect_uri: str) -> tuple[str, str, str]:
        meta = await self.metadata()
        verifier = secrets.token_urlsafe(64)
        url, state = self._oauth.create_authorization_url(
            meta["authorization_endpoint"], state=secrets.token_urlsafe(24),
            code_verifier=verifier, redirect_uri=redirect_uri, scope=" ".join(self.scopes))
        return str(url), str(state), verifier

    async def _exchange_code(self, params: dict[str, str], *, state: str, verifier: str,
                             redirect_uri: str) -> Account:
        if params.get("state") != state:
            raise AuthFlowError("The sign-in response does not match the request (state "
                                "mismatch); it was ignored. Start sign-in again.")
        meta = await self.metadata()
        if (meta.get("authorization_response_iss_parameter_supported")
                or "iss" in params) and params.get("iss") != meta["issuer"]:
            # RFC 9207: the response must name the server we started with (mix-up defence).
            raise AuthFlowError("The sign-in response names another server (issuer "
                                "mismatch); it was ignored. Start sign-in again.")
        if "error" in params:
            reason = params.get("error_description") or params["error"]
            raise AuthFlowError(f"Sign-in was refused: {reason}. Start sign-in again.")
        code = params.get("code")
        if not code:
            raise AuthFlowError("The sign-in response carried no code; start sign-in again.")
        token = await self._token_request(
            meta["token_endpoint"], grant_type="authorization_code", code=code,
            redirect_uri=redirect_uri, code_verifier=verifier)
        stored = self._adopt(token)
        account = self.account()
        assert account is not None
        log.info("signed in as %s", stored.username)
        return account

    async def _token_request(self, url: str, **params: str) -> dict[str, Any]:
        try:
            return dict(await self._oauth.fetch_token(url, **params))
        except OAuthError as exc:
            raise AuthFlowError(f"The server refused the sign-in ({exc.error}: "
                                f"{exc.description or 'no details'}); start again.") from exc
        except (httpx.HTTPError, ValueError) as exc:
            raise ServerUnreachable(f"Cannot reach {self.server_url!r} to finish signing in; "
                                    "check the connection and try again."
                                    + certificate_hint(exc)) from exc

    async def _submit_login_form(self, url: str, username: str, password: str
                                 ) -> dict[str, str]:
        """GET the login form, POST it filled in, and return the redirect's parameters."""
        try:
            page = await self._http.get(url)
            if page.status_code != 200:
                reason = _page_message(page.text) or f"HTTP {page.status_code}"
                raise AuthFlowError(f"The server refused the sign-in request: {reason}")
            parser = _FormParser()
            parser.feed(page.text)
            if parser.form is None:
                raise AuthFlowError("The server's sign-in page has no form; check the server "
                                    "URL.")
            fields = {**parser.form.fields, "username": username, "password": password}
            response = await self._http.post(urljoin(url, parser.form.action or url),
                                             data=fields, follow_redirects=False)
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"Cannot reach {self.server_url!r} to sign in; check the "
                                    "connection and try again." + certificate_hint(exc)) from exc
        if response.status_code == 429:
            retry = float(response.headers.get("retry-after", "60"))
            raise RateLimitedByServer(f"Too many sign-in attempts; wait {retry:.0f} seconds "
                                      "and try again.", retry)
        if response.status_code in (401, 403):
            raise WrongPassword(f"Wrong username or password for {username!r}; check both "
                                "and try again.")
        if response.status_code not in (302, 303) or "location" not in response.headers:
            reason = _page_message(response.text) or f"HTTP {response.status_code}"
            raise AuthFlowError(f"Sign-in failed: {reason}")
        location = response.headers["location"]
        return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

    async def sign_in_with_password(self, username: str, password: str) -> Account:
        url, state, verifier = await self._authorization_url(APP_REDIRECT_URI)
        params = await self._submit_login_form(url, username, password)
        account = await self._exchange_code(params, state=state, verifier=verifier,
                                            redirect_uri=APP_REDIRECT_URI)
        self._remember_password(password)
        return account

    async def sign_in_with_browser(self, open_url: OpenUrl, *,
                                   timeout: float = BROWSER_TIMEOUT_S) -> Account:
        async with _LoopbackReceiver() as receiver:
            url, state, verifier = await self._authorization_url(receiver.redirect_uri)
            opened = open_url(url)
            if inspect.isawaitable(opened):
                await opened
            try:
                params = await receiver.wait(timeout)
            except TimeoutError as exc:
                raise AuthFlowError("Sign-in in the browser did not finish in time; start "
                                    "again.") from exc
        return await self._exchange_code(params, state=state, verifier=verifier,
                                         redirect_uri=receiver.redirect_uri)

    # --- device grant ------------------------------------------------------------------
    async def start_device_sign_in(self) -> DeviceCode:
        meta = await self.metadata()
        try:
            response = await self._http.post(
                meta["device_authorization_endpoint"],
                data={"client_id": self.client_id, "scope": " ".join(self.scopes)})
        except httpx.HTTPError as exc:
            raise ServerUnreachable(f"Cannot reach {self.server_url!r} to start device "
                                    "sign-in; check the connection." + certificate_hint(exc)
                                    ) from exc
        body = _json(response)
        if response.status_code != 200:
            raise AuthFlowError(f"The server refused device sign-in: "
                                f"{body.get('error_description') or body.get('error')}.")
        return DeviceCode.model_validate(body)

    async def finish_device_sign_in(self, code: DeviceCode) -> Account:
        meta = await self.metadata()
        interval = max(1, code.interval)
        deadline = self.clock.now() + timedelta(seconds=code.expires_in)
        while True:
            await self._sleep(interval)
            try:
                token = dict(await self._oauth.fetch_token(
                    meta["token_endpoint"], grant_type=DEVICE_GRANT_TYPE,
                    device_code=code.device_code))
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    pass
                elif exc.error == "slow_down":
                    interval += 5  # RFC 8628 §3.5, for this and every later poll
                elif exc.error == "access_denied":
                    raise AuthFlowError("Sign-in was denied on the other device.") from exc
                elif exc.error == "expired_token":
                    raise AuthFlowError("The device code expired; start device sign-in "
                                        "again.") from exc
                else:
                    raise AuthFlowError(f"Device sign-in failed ({exc.error}: "
                                        f"{exc.description or 'no details'}).") from exc
            except (httpx.HTTPError, ValueError):
                # Offline for a moment: keep polling until the code expires.
                log.info("device sign-in poll failed; retrying")
            else:
                self._adopt(token)
                account = self.account()
                assert account is not None
                return account
            if self.clock.now() >= deadline:
                raise AuthFlowError("The device code expired; start device sign-in again.")

    # --- sign-out and step-up ----------------------------------------------------------
    async def sign_out(self) -> None:
        """Revoke the refresh token (best effort when offline) and forget the session."""
        tokens = self._tokens
        self.vault.clear()
        self._tokens = None
        if tokens is not None and tokens.refresh_token:
            try:
                meta = await self.metadata()
                await self._oauth.revoke_token(meta["revocation_endpoint"],
                                               token=tokens.refresh_token,
                                               token_type_hint="refresh_token")
            except (httpx.HTTPError, ServerUnreachable, AuthFlowError, OAuthError):
                log.info("could not revoke the refresh token (offline?); forgotten locally")
        self._changed()

    async def confirm_identity(self, password: str) -> bool:
        """Step-up before a veto: check the signed-in person's password with the server.

        A fresh password-form code flow for the same account; its code is not exchanged
        (the redirect proves the password) so the session is unchanged. Offline this fails
        closed with ``ServerUnreachable``.
        """
        account = self.account()
        if account is None:
            raise SignInRequired("Sign in before confirming a veto.")
        try:
            url, state, _verifier = await self._authorization_url(APP_REDIRECT_URI)
            params = await self._submit_login_form(url, account.username, password)
        except WrongPassword:
            return False
        except ServerUnreachable as exc:
            # A veto must be possible in a plane: offline, the password is checked against
            # the verifier kept (in the token vault) from the last time the server accepted
            # it. Without one (signed in through a browser or a device code) it fails closed.
            verdict = self._check_password_offline(password)
            if verdict is None:
                raise ServerUnreachable(
                    "Confirming your identity needs the server, which cannot be reached, and "
                    "this device has no offline check for your password yet (sign in or "
                    "confirm once with the password while online); connect and try again."
                ) from exc
            return verdict
        meta = await self.metadata()
        issuer_ok = params.get("iss", meta["issuer"]) == meta["issuer"]
        confirmed = (params.get("state") == state and issuer_ok and "code" in params
                     and "error" not in params)
        if confirmed:
            self._remember_password(password)
        return confirmed

    # --- offline step-up -----------------------------------------------------------------
    def _remember_password(self, password: str) -> None:
        """Keep a scrypt verifier of a password the server has just accepted."""
        tokens = self._tokens
        if tokens is None:
            return
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        tokens.extra["step_up"] = {"salt": base64.b64encode(salt).decode(),
                                   "hash": base64.b64encode(digest).decode()}
        try:
            self.vault.save(tokens)
        except Exception:
            log.exception("could not save the offline step-up verifier")

    def _check_password_offline(self, password: str) -> bool | None:
        tokens = self._tokens
        record = tokens.extra.get("step_up") if tokens is not None else None
        if not isinstance(record, dict):
            return None
        try:
            salt = base64.b64decode(record["salt"])
            expected = base64.b64decode(record["hash"])
        except (KeyError, ValueError, TypeError):
            return None
        digest = hashlib.scrypt(password.encode(), salt=salt, **_SCRYPT)
        return hmac.compare_digest(digest, expected)


async def open_system_browser(url: str) -> None:
    """Open ``url`` in the system browser (RFC 8252 §8.12: never an embedded web view);
    the ``open_url`` to give ``sign_in_with_browser`` on desktop."""
    opened = await asyncio.to_thread(webbrowser.open, url)
    if not opened:
        raise AuthFlowError(f"No browser could be opened for {url!r}; open it by hand or use "
                            "device sign-in.")


class WrongPassword(AuthFlowError):
    """The login form refused the username or password."""


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
