from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from backend_stub.components.observability import (
    CostTracker,
    JsonFormatter,
    Metrics,
    ObservabilityStack,
    Tracing,
    configure_logging,
    request_id_var,
)


def _record(msg: str = "hello", **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("backend_stub.test", logging.INFO, __file__, 1, msg, None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_logs_carry_the_request_id_and_extras() -> None:
    token = request_id_var.set("req-123")
    try:
        line = JsonFormatter().format(_record(agent="a1", fields={"decision": "veto"}))
    finally:
        request_id_var.reset(token)
    body = json.loads(line)
    assert body["request_id"] == "req-123"
    assert body["message"] == "hello" and body["level"] == "INFO"
    assert body["agent"] == "a1" and body["decision"] == "veto"
    assert body["ts"].endswith("Z")


def test_json_logs_include_the_exception() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = _record()
        record.exc_info = sys.exc_info()
    body = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: boom" in body["exception"]
    assert body["request_id"] is None


@pytest.fixture
def root_logging() -> Iterator[None]:
    """A root logger without the handlers earlier tests (or the CLI) left on it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.handlers[:] = []
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_configure_logging_is_idempotent(root_logging: None) -> None:
    stream = io.StringIO()
    first = configure_logging("warning", stream)
    second = configure_logging("INFO", stream)
    assert first is second
    assert sum(getattr(h, "_govstub_json", False) for h in logging.getLogger().handlers) == 1
    logging.getLogger("backend_stub.x").info("visible", extra={"k": 1})
    assert json.loads(stream.getvalue().splitlines()[-1])["k"] == 1


def test_metrics_render_every_family() -> None:
    m = Metrics()
    m.observe_request("/v1/mobile/approvals", "GET", 200, 0.003)
    m.record_decision("veto", "applied")
    m.record_cache("l1")
    m.set_dlq_size("messaging", 2)
    m.set_budget_utilisation("agent-1", 0.85)
    m.record_event("governance.approval.pending")
    m.record_rate_limited("token")
    m.record_cost("llm", 0.25)
    body, content_type = m.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for needle in [
        'http_requests_total{method="GET",route="/v1/mobile/approvals",status="200"} 1.0',
        'http_request_duration_seconds_bucket{le="0.005",method="GET",',
        'governance_decisions_total{action="veto",outcome="applied"} 1.0',
        'cache_hits_total{level="l1"} 1.0',
        'dlq_size{queue="messaging"} 2.0',
        'budget_utilisation_ratio{agent="agent-1"} 0.85',
        'events_published_total{type="governance.approval.pending"} 1.0',
        'rate_limited_total{scope="token"} 1.0',
        'governance_cost_usd_total{category="llm"} 0.25',
    ]:
        assert needle in text


def test_two_metrics_objects_do_not_collide() -> None:
    Metrics().record_cache("l1")
    assert b'cache_hits_total{level="l1"}' not in Metrics().render()[0]


def test_custom_metrics_keep_their_tag_names() -> None:
    m = Metrics()
    m.record("decisions_by_method", 1, {"method": "deterministic"})
    m.record("plain_total", 2)
    text = m.render()[0].decode()
    assert 'decisions_by_method_total{method="deterministic"} 1.0' in text
    assert "plain_total 2.0" in text
    with pytest.raises(ValueError, match="takes tags \\['method'\\]"):
        m.record("decisions_by_method", 1, {"agent": "x"})


def test_scrape_refreshers_run_and_a_broken_one_is_contained() -> None:
    m = Metrics()
    m.on_scrape(lambda: m.set_dlq_size("q", 5))
    def broken() -> None:
        raise ZeroDivisionError

    m.on_scrape(broken)
    assert b'dlq_size{queue="q"} 5.0' in m.render()[0]


def test_metrics_kill_switch() -> None:
    m = Metrics(enabled=False)
    m.observe_request("/x", "GET", 200, 0.1)
    m.record_decision("a", "b")
    m.record_cache("l1")
    m.set_dlq_size("q", 1)
    m.set_budget_utilisation("a", 1)
    m.record_event("t")
    m.record_rate_limited("client")
    m.record_cost("llm", 1)
    m.record("x", 1)
    body, _ = m.render()
    assert body.startswith(b"# metrics disabled")


def test_spans_are_recorded_with_attributes() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing("svc", span_exporter=exporter)
    with tracing.span("decision", action="veto", skipped=None) as span:
        span.set_attribute("outcome", "applied")
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "decision"
    assert finished.attributes == {"action": "veto", "outcome": "applied"}
    assert finished.resource.attributes["service.name"] == "svc"
    tracing.shutdown()


@pytest.mark.parametrize("exporter", ["none", "console", "otlp"])
def test_each_exporter_builds(exporter: str) -> None:
    tracing = Tracing(exporter=exporter, endpoint="http://127.0.0.1:9/v1/traces")
    assert tracing.provider is not None
    tracing.provider.shutdown = lambda: None  # type: ignore[method-assign]  # no export attempt
    tracing.shutdown()


def test_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="'zipkin' is unknown"):
        Tracing(exporter="zipkin")


def test_tracing_kill_switch_gives_non_recording_spans() -> None:
    tracing = Tracing(enabled=False)
    with tracing.span("x") as span:
        assert not span.is_recording()
    tracing.shutdown()


def test_cost_breakdown() -> None:
    seen: list[tuple[str, float]] = []
    costs = CostTracker(on_cost=lambda c, u: seen.append((c, u)))
    costs.record("llm", 2.5)
    costs.record("cached", 0.0)
    costs.record("human", 0.1)
    assert costs.breakdown() == {"deterministic": 0.0, "cached": 0.0, "llm": 2.5,
                                 "human": 0.1, "total": 2.6}
    assert seen[0] == ("llm", 2.5)
    with pytest.raises(ValueError, match="negative"):
        costs.record("llm", -1)


def test_observability_stack_simple_api(caplog: pytest.LogCaptureFixture) -> None:
    exporter = InMemorySpanExporter()
    obs = ObservabilityStack("wowvision", tracing=Tracing("wowvision", span_exporter=exporter))
    with caplog.at_level(logging.INFO):
        obs.log_structured("decision_made", {"method": "deterministic", "confidence": 0.95})
    assert caplog.records[-1].__dict__["fields"] == {
        "event": "decision_made", "method": "deterministic", "confidence": 0.95}
    obs.record_metric("decisions_total", 1, {"method": "deterministic"})
    with obs.trace_operation("make_decision", decision_type="create_file"):
        pass
    obs.record_cost("llm", 1.5)
    assert obs.get_cost_breakdown()["total"] == 1.5
    assert exporter.get_finished_spans()[0].name == "make_decision"
    assert b'governance_cost_usd_total{category="llm"} 1.5' in obs.metrics.render()[0]


def test_spans_are_not_recorded_until_something_exports_them() -> None:
    tracing = Tracing()
    with tracing.span("quiet") as span:
        assert not span.is_recording()
        assert span.get_span_context().trace_id != 0  # the context still propagates
    exporter = InMemorySpanExporter()
    tracing.add_exporter(exporter)
    with tracing.span("heard") as span:
        assert span.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["heard"]
    disabled = Tracing(enabled=False)
    disabled.add_exporter(exporter)  # harmless on the kill switch
    assert disabled.provider is None


def test_configure_logging_turns_a_basic_console_handler_into_json(root_logging: None) -> None:
    stream = io.StringIO()
    plain = logging.StreamHandler(stream)
    logging.getLogger().addHandler(plain)
    assert configure_logging("INFO") is plain
    assert isinstance(plain.formatter, JsonFormatter)
