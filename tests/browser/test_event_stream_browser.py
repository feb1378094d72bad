"""A browser's native ``EventSource`` on the event stream (docs/push.md): a page from an
allowed origin gets a stream ticket with its bearer token, opens the stream with it and
receives a signed event the test triggers; a page from another origin is refused by CORS.
The real stub process, headless Debian Chromium."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.harness import governor_token
from tests.support.services import free_port
from tests.support.stub_process import StubProcess

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

TYPES = ["governance.approval.pending", "governance.approval.decided",
         "governance.seed.auto_approved", "governance.budget.threshold_exceeded",
         "governance.agent.violated"]

# Runs in the page: a ticket with the bearer token, then a native EventSource with it.
OPEN_STREAM = """async ({base, token, types}) => {
  window.received = [];
  window.streamErrors = 0;
  const answer = await fetch(base + "/v1/mobile/events/ticket",
                             {method: "POST", headers: {Authorization: "Bearer " + token}});
  const ticket = (await answer.json()).data.ticket;
  const source = new EventSource(base + "/v1/mobile/events?ticket=" + encodeURIComponent(ticket));
  window.source = source;
  for (const type of types) {
    source.addEventListener(type, (e) => window.received.push(
      {type: e.type, id: e.lastEventId, origin: e.origin, data: e.data}));
  }
  source.onerror = () => { window.streamErrors += 1; };
  await new Promise((resolve, reject) => {
    source.onopen = () => resolve(null);
    setTimeout(() => reject(new Error("the stream did not open")), 20000);
  });
  return ticket;
}"""

# A ticket obtained elsewhere, used from this page: the stream answers, CORS hides it.
TRY_STREAM = """async ({url}) => {
  const source = new EventSource(url);
  return await new Promise((resolve) => {
    source.onopen = () => { source.close(); resolve("open"); };
    source.onerror = () => { source.close(); resolve("error"); };
  });
}"""

TRY_TICKET = """async ({base, token}) => {
  try {
    await fetch(base + "/v1/mobile/events/ticket",
                {method: "POST", headers: {Authorization: "Bearer " + token}});
    return "fetched";
  } catch (e) {
    return "refused: " + e.name;
  }
}"""


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>origin page</title><p>a page of this origin</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _serve_pages() -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def origins() -> Iterator[tuple[str, str]]:
    allowed, allowed_url = _serve_pages()
    other, other_url = _serve_pages()
    try:
        yield allowed_url, other_url
    finally:
        for server in (allowed, other):
            server.shutdown()
            server.server_close()


@pytest.fixture
def cors_stub(tmp_path: Path, origins: tuple[str, str]) -> Iterator[StubProcess]:
    stub = StubProcess(tmp_path / "stub", port=free_port(),
                       env={"GOVSTUB_CORS_ORIGINS": origins[0]})
    stub.start()
    try:
        yield stub
    finally:
        stub.stop()


def _page(browser: Browser, url: str) -> Page:
    page = browser.new_context().new_page()
    page.goto(url)
    return page


def _canonical(message: dict[str, Any]) -> bytes:
    return json.dumps(message, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _check_signature(stub: StubProcess, token: str, event: dict[str, Any]) -> None:
    """docs/push.md's HMAC-SHA256, computed here from the key the API gives."""
    with stub.client() as client:
        key = client.get("/v1/mobile/events/key",
                         headers={"Authorization": f"Bearer {token}"}).json()["data"]
    raw = base64.urlsafe_b64decode(key["key"] + "=" * (-len(key["key"]) % 4))
    unsigned = {k: v for k, v in event.items() if k != "signature"}
    assert event["key_id"] == key["key_id"]
    expected = hmac.new(raw, _canonical(unsigned), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(event["signature"], expected)


def test_a_native_event_source_streams_a_signed_event_with_a_ticket(
        browser: Browser, cors_stub: StubProcess, origins: tuple[str, str]) -> None:
    token = governor_token(cors_stub)
    page = _page(browser, origins[0])
    ticket = page.evaluate(OPEN_STREAM, {"base": cors_stub.url, "token": token,
                                         "types": TYPES})
    with cors_stub.client() as client:
        assert client.post("/v1/demo/scenario",
                           json={"event": "new_pending_approval"}).status_code == 200
    page.wait_for_function("window.received.length > 0", timeout=30_000)
    event = page.evaluate("window.received[0]")
    message = json.loads(event["data"])
    assert event["type"] == message["type"] == "governance.approval.pending"
    assert event["id"] == message["id"] and event["origin"] == cors_stub.url
    _check_signature(cors_stub, token, message)
    # The ticket was used up by the stream: a replay from the same page is refused.
    replay = page.evaluate(TRY_STREAM, {
        "url": f"{cors_stub.url}/v1/mobile/events?ticket={ticket}"})
    assert replay == "error"
    status = page.evaluate("async (url) => (await fetch(url)).status",
                           f"{cors_stub.url}/v1/mobile/events?ticket={ticket}")
    assert status == 401  # and the page can read why: the refusal carries CORS headers
    page.evaluate("window.source.close()")


def test_a_page_from_another_origin_is_refused_by_cors(
        browser: Browser, cors_stub: StubProcess, origins: tuple[str, str]) -> None:
    token = governor_token(cors_stub)
    page = _page(browser, origins[1])
    refused = page.evaluate(TRY_TICKET, {"base": cors_stub.url, "token": token})
    assert refused == "refused: TypeError"  # the preflight found no allowed origin
    with cors_stub.client() as client:
        ticket = client.post("/v1/mobile/events/ticket", headers={
            "Authorization": f"Bearer {token}"}).json()["data"]["ticket"]
    # A valid ticket from that page: the stub streams, but the browser withholds it.
    result = page.evaluate(TRY_STREAM, {
        "url": f"{cors_stub.url}/v1/mobile/events?ticket={ticket}"})
    assert result == "error"
