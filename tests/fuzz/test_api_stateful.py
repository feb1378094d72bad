"""Schemathesis over the stub's whole OpenAPI, stateful: sequences of calls chained by the
links Schemathesis infers (an approval listed, then read, approved, vetoed; a seed
created, read, deleted; ...), every call with a valid governor token.

The checks are the contract's promises for any input: never a 500, answers that match the
documented schemas and status codes, and the content types declared. The stateless fuzz of
each operation lives with the API's own tests (``tests/backend_stub``).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, positive_data_acceptance

from backend_stub.app import create_app
from backend_stub.clock import FakeClock
from backend_stub.oauth.testing import issue_test_token
from backend_stub.settings import StubSettings

OAUTH_PATHS = ("/oauth/", "/.well-known/")
STEPS = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "60"))


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    # A fake clock: tokens never expire during the run and the demo clock endpoint moves
    # only this app's time. Demo data gives the links real requests to start from.
    application = create_app(StubSettings(data_dir=tmp_path / "stub", demo=True,
                                          public_url="http://localhost",
                                          disable_rate_limit=True), clock=FakeClock())
    yield application
    application.state.db.dispose()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_stateful_sequences_keep_the_contract(app: FastAPI) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    token = issue_test_token(app)
    # Unknown query parameters are ignored, as HTTP APIs do; not a schema violation to test.
    schema.config.generation.update(allow_extra_parameters=False)

    @schema.auth()
    class GovernorToken:
        """The demo governor's valid token; Schemathesis knows it, so its own negative
        cases (no token, a broken one) still go out without it."""

        def get(self, case: Any, ctx: Any) -> str:
            return token

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    base = schema.as_state_machine()
    seen: Counter[tuple[str, str, int]] = Counter()
    refused: list[str] = []  # a valid token refused (schemathesis also sends none, on purpose)
    followed: Counter[str] = Counter()  # links whose values reached the next call

    class Workflow(base):  # type: ignore[valid-type, misc]
        def step(self, input: Any) -> Any:
            if input.transition is not None and input.is_applied:
                followed[input.transition.id] += 1
            return super().step(input)

        def before_call(self, case: Any) -> None:
            super().before_call(case)
            # A fresh key per call: a generated key drawn twice would replay the first
            # answer (as the contract says), e.g. a seed created and since deleted, which
            # the "created resource is available" check would take for a lost resource.
            headers = case.headers or {}
            for name in list(headers):
                if name.lower() == "idempotency-key" and isinstance(headers[name], str) \
                        and headers[name]:
                    headers[name] = uuid.uuid4().hex

        def after_call(self, response: Any, case: Any) -> None:
            super().after_call(response, case)
            seen[(case.operation.method.upper(), case.operation.path,
                  response.status_code)] += 1
            sent = response.request.headers.get("authorization", "")
            if response.status_code == 401 and sent == f"Bearer {token}" \
                    and case.operation.path.startswith("/v1/"):
                refused.append(f"{case.operation.method.upper()} {case.operation.path}")

        def validate_response(self, response: Any, case: Any,
                              additional_checks: Any = None, **kwargs: Any) -> None:
            if case.operation.path.startswith(OAUTH_PATHS):
                # RFC-shaped endpoints (HTML forms, redirects, RFC 6749 errors) that the
                # OpenAPI document does not describe: only "never a 500" applies.
                case.validate_response(response, checks=[not_a_server_error],
                                       transport_kwargs=kwargs or None)
                return
            # The request models are strict by design: 271.0 is not an integer to them,
            # though JSON Schema says it is; that one check would only report this choice.
            case.validate_response(response, additional_checks=additional_checks,
                                   excluded_checks=[positive_data_acceptance],
                                   transport_kwargs=kwargs or None,
                                   recorder=getattr(self, "recorder", None))

    Workflow.run(settings=settings(max_examples=STEPS, stateful_step_count=6, deadline=None,
                                   suppress_health_check=list(HealthCheck),
                                   database=None, derandomize=True))
    # How far the links reached (a listing's ids read and decided) depends on the draw; it
    # is reported, not asserted: a fresh clone in CI once drew none. The contract tests in
    # tests/backend_stub/api read and decide every demo request explicitly.
    linked = sum(n for (_, p, status), n in seen.items()
                 if p.startswith("/v1/mobile/approvals/{approval_id}") and status in (200, 409))
    print(f"stateful run: {sum(seen.values())} calls, {linked} through approval links, "
          f"{sum(followed.values())} calls along links: {dict(followed)}")
    assert not refused, refused
    # A run that followed no link tested single calls only: it is not the stateful run.
    assert followed, f"no link followed in {sum(seen.values())} calls"


@pytest.mark.parametrize("body", [b"\xff\xfe", b"{", b"\xc3("])
def test_a_body_that_is_not_json_is_validation_failed_not_400(app: FastAPI,
                                                              body: bytes) -> None:
    """Found by the stateful run: bytes that are not UTF-8 made FastAPI answer 400
    ``HTTP_ERROR``, which the contract does not have (malformed JSON is 422)."""
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        response = client.post("/v1/mobile/approvals/APR-1/veto", content=body, headers={
            "Authorization": f"Bearer {issue_test_token(app)}", "Idempotency-Key": "k1",
            "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_FAILED"


@pytest.mark.parametrize("conditions", [{"max_daily_token_budget": 2**64},
                                        {"max_monthly_cost_usd": 10**30}])
def test_a_seed_condition_past_64_bits_is_validation_failed_not_500(
        app: FastAPI, conditions: dict[str, int]) -> None:
    """Found by the stateful run: the seed fingerprint (orjson) cannot hold an integer
    past 64 bits, and the schema let one through: 500 INTERNAL."""
    from fastapi.testclient import TestClient

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/v1/mobile/seeds", json={
            "title": "t", "description": "d", "conditions": conditions, "auto_approve": False},
            headers={"Authorization": f"Bearer {issue_test_token(app)}",
                     "Idempotency-Key": "big"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_FAILED"
