"""Strict client authentication for every OAuth endpoint (RFC 6749 §2.3, §3.2.1, §5.2).

Authlib's ``ClientAuthentication`` tries each allowed method in turn and takes the first
that succeeds, so a request carrying a wrong secret for one client (HTTP Basic) and the
``client_id`` of a public client in the body authenticates as the public client. Here the
request names one method, and only that one is tried:

- HTTP Basic credentials -> ``client_secret_basic``; a ``client_secret`` in the body as well,
  or a body ``client_id`` naming another client, is ``invalid_request`` (one method per
  request, §2.3);
- ``client_id`` and ``client_secret`` in the body -> ``client_secret_post``;
- ``client_id`` alone in the body -> ``none`` (public clients);
- client credentials in the query string are refused (§2.3.1);
- a wrong secret, an unknown client, a client that may not use the endpoint or the method:
  ``invalid_client``. It is 401 with ``WWW-Authenticate: Basic realm=...`` when the client
  used HTTP Basic or the endpoint accepts it (§5.2), else 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote

from authlib.oauth2.rfc6749 import InvalidClientError, InvalidRequestError

REALM = "governance-stub"


class _Client(Protocol):
    def check_client_secret(self, client_secret: str) -> bool: ...

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool: ...


class ClientAuthFailed(InvalidClientError):
    """``invalid_client``; with 401, names the Basic scheme and realm (RFC 7617 §2)."""

    def __init__(self, description: str, *, basic: bool) -> None:
        super().__init__(description=description, status_code=401 if basic else 400)

    def get_headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = list(super(InvalidClientError, self).get_headers())
        if self.status_code == 401:
            headers.append(("WWW-Authenticate", f'Basic realm="{REALM}", charset="UTF-8"'))
        return headers


def basic_credentials(headers: Any) -> tuple[str, str] | None:
    """``(client_id, secret)`` from an ``Authorization: Basic`` header; None without one.
    The parts are form-urlencoded before base64 (RFC 6749 §2.3.1)."""
    value = headers.get("Authorization") or headers.get("authorization")
    if not value:
        return None
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id:
        raise ClientAuthFailed("The Authorization header is not valid HTTP Basic "
                               "'client_id:client_secret'; fix the client's credentials.",
                               basic=True)
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def authenticate_client(query_client: Callable[[str], _Client | None], request: Any,
                        methods: Sequence[str], endpoint: str) -> _Client:
    """The client the request authenticates as, by the one method it uses; sets
    ``request.auth_method``. Raises ``invalid_request`` or ``invalid_client``."""
    basic_allowed = "client_secret_basic" in methods
    for name in ("client_id", "client_secret"):
        if name in request.args and endpoint != "authorization":
            raise InvalidRequestError(
                f"{name!r} must not be sent in the query string; send it in the form body "
                "or as HTTP Basic.")
    basic = basic_credentials(request.headers)
    body_id = request.form.get("client_id")
    body_secret = request.form.get("client_secret")
    if basic is not None:
        if body_secret is not None:
            raise InvalidRequestError(
                "The request uses both HTTP Basic and client_secret in the body; use one "
                "client authentication method.")
        if body_id is not None and body_id != basic[0]:
            raise InvalidRequestError(
                f"The body's client_id {body_id!r} differs from the HTTP Basic client "
                f"{basic[0]!r}; send one client.")
        method, client_id, secret = "client_secret_basic", basic[0], basic[1]
    elif body_secret is not None:
        method, client_id, secret = "client_secret_post", body_id, body_secret
    else:
        method, client_id, secret = "none", body_id, None
    used_basic = basic is not None or basic_allowed
    if not client_id:
        raise ClientAuthFailed(f"No client authentication: this endpoint accepts "
                               f"{', '.join(methods)}.", basic=used_basic)
    client = query_client(client_id)
    if client is None:
        raise ClientAuthFailed(f"Client {client_id!r} is not registered here.",
                               basic=used_basic)
    if method not in methods or not client.check_endpoint_auth_method(method, endpoint):
        raise ClientAuthFailed(f"Client {client_id!r} cannot use {method!r} at the "
                               f"{endpoint} endpoint.", basic=used_basic)
    if secret is not None and not client.check_client_secret(secret):
        raise ClientAuthFailed(f"Wrong secret for client {client_id!r}.", basic=used_basic)
    request.auth_method = method
    return client
