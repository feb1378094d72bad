"""``governor-stub submit MODULE.wasm``: submit an agent to a running stub from a shell.

    governor-stub submit agent.wasm --capability file_read:/data/essays/* \\
        --industry education --budget 50000 --monthly-cost 120 \\
        [--name NAME] [--kind industry|coe] [--server URL] [--username U] [--password P]
        [--json]

It signs in as a first-party client of the stub's OAuth server: authorization code + PKCE
(S256) for the public client ``governor-app``, the login form filled in with the username
and password, the code taken from the redirect to the app's private-use URI (no browser,
no listener), scope ``agents:submit``. The default account is the demo's ``submitter``.
It then streams the module to ``POST /v1/agents``, prints the request the governor will
see (its WASM report and seed matches), and revokes the token.

Exit status: 0 submitted (or the same submission found), 1 the server refused it (the
contract's error printed), 2 it could not ask (file, connection, sign-in).
"""

from __future__ import annotations

import argparse
import getpass
import json
import secrets
import sys
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from backend_stub.errors import SubmitFailed
from backend_stub.oauth.server import APP_CLIENT_ID, APP_SCHEME_REDIRECT

DEFAULT_SERVER = "http://127.0.0.1:8000"
DEMO_SUBMITTER = "submitter"
SCOPE = "agents:submit"
TIMEOUT = httpx.Timeout(30.0, read=300.0)  # a 50 MB module is validated before the answer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="governor-stub submit",
        description="Submit an agent's WASM module and declaration to the governance stub; "
                    "it becomes an approval request for the governor.")
    parser.add_argument("module", type=Path, help="the agent's compiled .wasm module")
    parser.add_argument("--capability", action="append", default=[], metavar="GRANT",
                        help="a grant the agent asks for, e.g. file_read:/data/x/* "
                             "(repeat for each)")
    parser.add_argument("--industry", required=True, help="e.g. education, healthcare")
    parser.add_argument("--budget", required=True, type=int, metavar="TOKENS",
                        help="daily token budget")
    parser.add_argument("--monthly-cost", required=True, type=float, metavar="USD",
                        help="monthly cost in US dollars")
    parser.add_argument("--name", help="the agent's name (default: the module's file name)")
    parser.add_argument("--kind", choices=("industry", "coe"), default="industry")
    parser.add_argument("--server", default=DEFAULT_SERVER,
                        help=f"the stub's URL (default {DEFAULT_SERVER})")
    parser.add_argument("--username", default=DEMO_SUBMITTER,
                        help="an account with the agents:submit scope (default: the demo's "
                             "'submitter')")
    parser.add_argument("--password", help="asked for when not given (the demo submitter's "
                                           "is its name)")
    parser.add_argument("--json", action="store_true",
                        help="print the request as JSON rather than a summary")
    return parser


class _LoginForm(HTMLParser):
    """The first form of the sign-in page: its action and pre-filled inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self.action, self._inside = values.get("action", ""), True
        elif tag == "input" and self._inside and values.get("name"):
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def sign_in(client: httpx.Client, server: str, username: str, password: str,
            scope: str = SCOPE) -> dict[str, Any]:
    """The token response for ``username`` with ``scope``: code + PKCE (RFC 7636, S256)
    through the login form, the code exchanged at the token endpoint."""
    meta = client.get(urljoin(server, "/.well-known/oauth-authorization-server")).json()
    verifier, state = secrets.token_urlsafe(64), secrets.token_urlsafe(24)
    query = urlencode({"response_type": "code", "client_id": APP_CLIENT_ID,
                       "redirect_uri": APP_SCHEME_REDIRECT, "scope": scope, "state": state,
                       "code_challenge": create_s256_code_challenge(verifier),
                       "code_challenge_method": "S256"})
    url = f"{meta['authorization_endpoint']}?{query}"
    page = client.get(url)
    form = _LoginForm()
    form.feed(page.text)
    if page.status_code != 200 or form.action is None:
        raise SubmitFailed(f"{server!r} did not offer a sign-in form (HTTP "
                           f"{page.status_code}); check --server.")
    answer = client.post(urljoin(url, form.action),
                         data={**form.fields, "username": username, "password": password})
    if answer.status_code == 401:
        raise SubmitFailed(f"Wrong username or password for {username!r}; check both.")
    if answer.status_code == 429:
        raise SubmitFailed("Too many failed sign-ins; wait "
                           f"{answer.headers.get('retry-after', '60')} seconds and try again.")
    location = answer.headers.get("location", "")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    if answer.status_code not in (302, 303) or params.get("state") != state:
        raise SubmitFailed(f"Sign-in as {username!r} failed (HTTP {answer.status_code}); "
                           "check --server and the account.")
    if "error" in params:
        reason = params.get("error_description") or params["error"]
        raise SubmitFailed(f"Sign-in as {username!r} was refused: {reason}. The account "
                           f"needs the {scope} scope.")
    exchange = client.post(meta["token_endpoint"], data={
        "grant_type": "authorization_code", "code": params.get("code", ""),
        "redirect_uri": APP_SCHEME_REDIRECT, "client_id": APP_CLIENT_ID,
        "code_verifier": verifier})
    token: dict[str, Any] = exchange.json()
    if exchange.status_code != 200 or "access_token" not in token:
        raise SubmitFailed(f"The server refused the sign-in ({token.get('error')}); try again.")
    if scope not in str(token.get("scope", "")).split():
        raise SubmitFailed(f"Account {username!r} lacks the {scope} scope; use one that has "
                           f"it (agents:submit: the demo's {DEMO_SUBMITTER!r}).")
    token["revocation_endpoint"] = meta.get("revocation_endpoint")
    return token


def submit(args: argparse.Namespace, password: str) -> tuple[int, dict[str, Any]]:
    """Sign in, upload, sign out: (HTTP status, the answer's JSON)."""
    module: Path = args.module
    if not module.is_file():
        raise SubmitFailed(f"No module at {str(module)!r}; pass the path of a .wasm file.")
    server = args.server.rstrip("/") + "/"
    fields = {"name": args.name or module.stem, "industry": args.industry,
              "kind": args.kind, "daily_token_budget": str(args.budget),
              "monthly_cost_usd": str(args.monthly_cost)}
    with httpx.Client(timeout=TIMEOUT) as client:
        try:
            token = sign_in(client, server, args.username, password)
            bearer = {"Authorization": f"Bearer {token['access_token']}"}
            try:
                with module.open("rb") as handle:  # httpx streams a file part in chunks
                    parts: list[tuple[str, Any]] = [("capability", (None, grant))
                                                    for grant in args.capability]
                    parts.append(("module", (module.name, handle, "application/wasm")))
                    answer = client.post(urljoin(server, "v1/agents"), data=fields,
                                         files=parts, headers=bearer)
            finally:
                if token.get("revocation_endpoint"):
                    client.post(token["revocation_endpoint"],
                                data={"token": token["access_token"],
                                      "client_id": APP_CLIENT_ID})
        except httpx.HTTPError as exc:
            raise SubmitFailed(f"Cannot reach the stub at {server!r} ({exc}); start it or "
                               "check --server.") from exc
    try:
        body: dict[str, Any] = answer.json()
    except ValueError:
        body = {"error": {"code": "HTTP_ERROR", "message": answer.text[:500]}}
    return answer.status_code, body


def _summary(request: dict[str, Any], created: bool, out: TextIO) -> None:
    report = request["wasm_report"]
    print(f"{'Submitted' if created else 'Already submitted'}: {request['id']} "
          f"({request['agent']['name']}, {request['industry']}), status {request['status']}, "
          f"stage {request['stage']}", file=out)
    print(f"  module sha256 {report.get('sha256', '?')}, {report['size_bytes']} bytes, "
          f"{'valid' if report['valid'] else 'NOT valid'} "
          f"(spec: {report.get('spec_outcome', '?')})", file=out)
    for issue in report["issues"]:
        print(f"  {issue['severity']}: {issue['message']}", file=out)
    for match in request["seed_matches"]:
        print(f"  seed {match['seed_id']} ({match['title']}): score {match['score']}, "
              f"failed {', '.join(match['conditions_failed']) or 'none'}", file=out)
    if not request["seed_matches"]:
        print("  no precedent seed matches: the governor decides by hand", file=out)


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None,
         err: TextIO | None = None) -> int:
    out, err = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(list(argv) if argv is not None else None)
    password = args.password
    if password is None:
        password = (DEMO_SUBMITTER if args.username == DEMO_SUBMITTER
                    else getpass.getpass(f"Password for {args.username}: "))
    try:
        status, body = submit(args, password)
    except SubmitFailed as exc:
        print(f"governor-stub submit: {exc}", file=err)
        return exc.exit_code
    if status not in (200, 201):
        error = body.get("error", {})
        print(f"governor-stub submit: refused ({status} {error.get('code')}): "
              f"{error.get('message')}", file=err)
        for name, problem in (error.get("details") or {}).get("fields", {}).items():
            print(f"  {name}: {problem}", file=err)
        return 1
    if args.json:
        print(json.dumps(body["data"], indent=2), file=out)
    else:
        _summary(body["data"], status == 201, out)
    return 0
