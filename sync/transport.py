"""Where the client may send tokens and passwords, and how it checks the server's
certificate.

- ``check_server_url``: ``https://`` anywhere; plain ``http://`` only to this machine
  (127.0.0.0/8, ::1, ``localhost``), so the demo and a local stub work; any other plain-http
  server is refused unless development explicitly allows it
  (``GOVERNOR_ALLOW_INSECURE_HTTP`` / ``governor app --allow-insecure-http``).
- ``tls_context``: certificate verification is always on; ``GOVERNOR_CA_BUNDLE`` adds an
  enterprise CA (PEM) to the public roots httpx trusts by default.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import certifi

from sync import rules
from sync.errors import InsecureTransport

log = logging.getLogger("sync.transport")

ALLOW_FLAG = "GOVERNOR_ALLOW_INSECURE_HTTP=1 (or governor app --allow-insecure-http)"


def check_server_url(url: str, *, allow_insecure_http: bool = False) -> str:
    """``url`` when the client may talk to it; raises ``InsecureTransport`` otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise InsecureTransport(f"The server URL {url!r} is not an http(s) URL with a host; "
                                "set GOVERNOR_SERVER_URL (or --server) to https://HOST.")
    if rules.secure_url(url):
        return url
    if allow_insecure_http:
        log.warning("sync: talking to %s over plain http (development only): tokens and "
                    "passwords cross the network in clear", url)
        return url
    raise InsecureTransport(
        f"Refusing the server {url!r}: plain http:// to another machine would send your "
        f"password and tokens in clear. Use its https:// URL; for development only, set "
        f"{ALLOW_FLAG}.")


def tls_context(ca_bundle: Path | None = None) -> ssl.SSLContext:
    """A verifying TLS context (hostname and chain checked): the public roots, plus the
    CAs of ``ca_bundle`` (PEM) when given."""
    context = ssl.create_default_context(cafile=certifi.where())
    if ca_bundle is not None:
        _load_ca_bundle(context, ca_bundle)
    return context


def check_ca_bundle(ca_bundle: Path | None) -> None:
    """Raise ``InsecureTransport`` when ``ca_bundle`` is given and cannot be read as PEM
    certificates. Checked on an empty context: loading the public roots as well
    (``tls_context``) costs ~20 ms of the app's start and proves nothing about the file."""
    if ca_bundle is not None:
        _load_ca_bundle(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), ca_bundle)


def _load_ca_bundle(context: ssl.SSLContext, ca_bundle: Path) -> None:
    try:
        context.load_verify_locations(cafile=str(ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        raise InsecureTransport(
            f"The CA bundle {str(ca_bundle)!r} (GOVERNOR_CA_BUNDLE) cannot be read as "
            f"PEM certificates ({exc}); fix the file or unset the variable.") from exc


def certificate_hint(exc: BaseException) -> str:
    """A sentence to add to a connection error when the cause is an untrusted or mismatched
    server certificate (else empty)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(
                seen):
            return (" The server's TLS certificate is not trusted (or names another host): "
                    "if your organisation uses its own CA, set GOVERNOR_CA_BUNDLE to its PEM "
                    "file.")
        seen = seen.__cause__ or seen.__context__
    return ""
