"""Observability: JSON logs carrying the request id, Prometheus metrics, OpenTelemetry
spans and a cost breakdown, behind one ``ObservabilityStack``.

Each piece has its own kill switch (``enabled=False``): metrics become no-ops and render an
empty exposition, tracing hands out non-recording spans.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanProcessor,
)
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# The request being served, for logs and for events caused by it.
request_id_var: ContextVar[str | None] = ContextVar("govstub_request_id", default=None)

_STANDARD_RECORD_KEYS = frozenset(logging.LogRecord(
    "x", 0, "x", 0, "x", None, None).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, request_id, and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_RECORD_KEYS and key != "request_id":
                if key == "fields" and isinstance(value, Mapping):
                    body.update(value)
                else:
                    body[key] = value
        if record.exc_info:
            body["exception"] = "".join(traceback.format_exception(*record.exc_info)).strip()
        return json.dumps(body, default=str, ensure_ascii=False)


def configure_logging(level: str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) as JSON lines; idempotent.

    A plain console handler already there (``logging.basicConfig``) is switched to JSON
    rather than doubled; handlers of other kinds (pytest's capture) are left alone.
    """
    root = logging.getLogger()
    chosen: logging.Handler | None = None
    for handler in root.handlers:
        if getattr(handler, "_govstub_json", False):
            chosen = handler
            break
        if type(handler) is logging.StreamHandler and stream is None:
            chosen = handler
            break
    if chosen is None:
        chosen = logging.StreamHandler(stream or sys.stderr)
        root.addHandler(chosen)
    chosen.setFormatter(JsonFormatter())
    chosen._govstub_json = True  # type: ignore[attr-defined]
    root.setLevel(level.upper())
    return chosen


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    """The stub's Prometheus metrics, in a registry of its own (several apps per process in
    tests must not collide). ``enabled=False``: every call is a no-op."""

    def __init__(self, *, enabled: bool = True, registry: CollectorRegistry | None = None) -> None:
        self.enabled = enabled
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.http_requests = Counter("http_requests_total", "HTTP requests answered",
                                     ["route", "method", "status"], registry=r)
        self.http_latency = Histogram("http_request_duration_seconds",
                                      "Time to answer an HTTP request",
                                      ["route", "method", "status"], registry=r,
                                      buckets=_LATENCY_BUCKETS)
        self.decisions = Counter("governance_decisions_total", "Governor decisions",
                                 ["action", "outcome"], registry=r)
        self.cache_hits = Counter("cache_hits_total",
                                  "Cache lookups by the level that answered (miss: none)",
                                  ["level"], registry=r)
        self.dlq_size = Gauge("dlq_size", "Dead letters waiting", ["queue"], registry=r)
        self.budget_utilisation = Gauge("budget_utilisation_ratio",
                                        "Share of the daily token budget used", ["agent"],
                                        registry=r)
        self.events = Counter("events_published_total", "Events published on the bus",
                              ["type"], registry=r)
        self.rate_limited = Counter("rate_limited_total", "Requests refused by a rate limit",
                                    ["scope"], registry=r)
        self.cost = Counter("governance_cost_usd_total", "Cost by category, in USD",
                            ["category"], registry=r)
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        # labels() costs a few µs per call and a batch of decisions makes 1,000 of them.
        self._decision_children: dict[tuple[str, str], Any] = {}
        self._event_children: dict[str, Any] = {}
        self._custom: dict[str, Counter] = {}
        self._custom_lock = threading.Lock()
        self._refreshers: list[Callable[[], None]] = []

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        if not self.enabled:
            return
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            # labels() costs a few µs per call: resolve each route's children once.
            labels = (route, method, str(status))
            children = (self.http_requests.labels(*labels), self.http_latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def record_decision(self, action: str, outcome: str) -> None:
        if self.enabled:
            child = self._decision_children.get((action, outcome))
            if child is None:
                child = self._decision_children[(action, outcome)] = \
                    self.decisions.labels(action, outcome)
            child.inc()

    def record_cache(self, level: str) -> None:
        if self.enabled:
            self.cache_hits.labels(level).inc()

    def set_dlq_size(self, queue: str, size: int) -> None:
        if self.enabled:
            self.dlq_size.labels(queue).set(size)

    def set_budget_utilisation(self, agent: str, ratio: float) -> None:
        if self.enabled:
            self.budget_utilisation.labels(agent).set(ratio)

    def record_event(self, event_type: str) -> None:
        if self.enabled:
            child = self._event_children.get(event_type)
            if child is None:
                child = self._event_children[event_type] = self.events.labels(event_type)
            child.inc()

    def record_rate_limited(self, scope: str) -> None:
        if self.enabled:
            self.rate_limited.labels(scope).inc()

    def record_cost(self, category: str, usd: float) -> None:
        if self.enabled:
            self.cost.labels(category).inc(usd)

    def record(self, name: str, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        """A counter made on first use (the design's ``record_metric``); a name keeps the
        tag names it was first used with."""
        if not self.enabled:
            return
        tags = dict(tags or {})
        with self._custom_lock:
            counter = self._custom.get(name)
            if counter is None:
                counter = Counter(name, f"{name} (recorded by a component user)",
                                  sorted(tags), registry=self.registry)
                self._custom[name] = counter
        expected = sorted(counter._labelnames)
        if sorted(tags) != expected:
            raise ValueError(f"metric {name!r} takes tags {expected}, not {sorted(tags)}; "
                             "record it with the same tag names every time")
        (counter.labels(**tags) if tags else counter).inc(value)

    def on_scrape(self, refresh: Callable[[], None]) -> None:
        """Run ``refresh`` before every scrape (for gauges read from a store, e.g. DLQ size)."""
        self._refreshers.append(refresh)

    def render(self) -> tuple[bytes, str]:
        if not self.enabled:
            return b"# metrics disabled (GOVSTUB_DISABLE_METRICS)\n", CONTENT_TYPE_LATEST
        for refresh in self._refreshers:
            try:
                refresh()
            except Exception:  # a broken gauge must not hide the others
                logging.getLogger(__name__).exception("metrics refresh failed")
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _RecordWhenExported(Sampler):
    """Record spans only once something will export them: with the ``none`` exporter a span
    still carries its trace context (ids propagate) but skips the ~20 µs of recording that
    nobody would read."""

    def __init__(self) -> None:
        self.recording = False

    def should_sample(self, parent_context: Any, trace_id: int, name: str,
                      kind: Any = None, attributes: Any = None, links: Any = None,
                      trace_state: Any = None) -> SamplingResult:
        decision = Decision.RECORD_AND_SAMPLE if self.recording else Decision.DROP
        return SamplingResult(decision, attributes if self.recording else None, trace_state)

    def get_description(self) -> str:
        return "RecordWhenExported"


class Tracing:
    """OpenTelemetry spans from a tracer provider of our own (not the global one).

    ``exporter``: ``none`` (spans are made but not recorded: nothing would read them),
    ``console`` or ``otlp`` (OTLP over HTTP to ``endpoint``, default
    ``http://127.0.0.1:4318/v1/traces``). Tests pass ``span_exporter=InMemorySpanExporter()``
    or call ``add_exporter`` later.
    """

    def __init__(self, service_name: str = "governance-stub", exporter: str = "none", *,
                 enabled: bool = True, endpoint: str | None = None,
                 span_exporter: SpanExporter | None = None) -> None:
        self.enabled = enabled
        self.provider: TracerProvider | None = None
        self._sampler = _RecordWhenExported()
        if not enabled:
            self.tracer: trace.Tracer = trace.NoOpTracer()
            return
        if exporter not in ("none", "console", "otlp"):
            raise ValueError(f"trace exporter {exporter!r} is unknown; use none, console or otlp")
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}), sampler=self._sampler)
        self.tracer = self.provider.get_tracer("backend_stub.components")
        if span_exporter is not None:
            self.add_exporter(span_exporter)
        elif exporter == "console":
            self.add_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        elif exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            self.add_processor(BatchSpanProcessor(OTLPSpanExporter(
                endpoint=endpoint or "http://127.0.0.1:4318/v1/traces")))

    @property
    def recording(self) -> bool:
        """Are spans recorded (an exporter is attached)? Hot paths may skip spans if not."""
        return self.enabled and self._sampler.recording

    def add_processor(self, processor: SpanProcessor) -> None:
        """Send every span from now on to ``processor`` (and start recording them)."""
        if self.provider is None:
            return
        self.provider.add_span_processor(processor)
        self._sampler.recording = True

    def add_exporter(self, exporter: SpanExporter) -> None:
        """Export every span from now on, one at a time (tests, debugging)."""
        self.add_processor(SimpleSpanProcessor(exporter))

    @contextmanager
    def span(self, name: str, kind: trace.SpanKind = trace.SpanKind.INTERNAL,
             **attributes: Any) -> Iterator[trace.Span]:
        with self.tracer.start_as_current_span(name, kind=kind) as span:
            for key, value in attributes.items():
                if value is not None:
                    span.set_attribute(key, value)
            yield span

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


class CostTracker:
    """Money spent, by category (``deterministic``, ``cached``, ``llm``, ...)."""

    def __init__(self, on_cost: Callable[[str, float], None] | None = None) -> None:
        self._costs: dict[str, float] = {"deterministic": 0.0, "cached": 0.0, "llm": 0.0}
        self._lock = threading.Lock()
        self.on_cost = on_cost

    def record(self, category: str, usd: float) -> None:
        if usd < 0:
            raise ValueError(f"cost {usd} for {category!r} is negative; record what was spent")
        with self._lock:
            self._costs[category] = self._costs.get(category, 0.0) + usd
        if self.on_cost is not None:
            self.on_cost(category, usd)

    def breakdown(self) -> dict[str, float]:
        with self._lock:
            result = {k: round(v, 6) for k, v in self._costs.items()}
        result["total"] = round(sum(v for k, v in result.items()), 6)
        return result


class ObservabilityStack:
    """Logs, metrics, traces and costs for one service, with the design's simple API."""

    def __init__(self, service_name: str = "governance-stub", *, log_level: str = "INFO",
                 metrics_enabled: bool = True, tracing_enabled: bool = True,
                 otel_exporter: str = "none", otel_endpoint: str | None = None,
                 metrics: Metrics | None = None, tracing: Tracing | None = None) -> None:
        self.service_name = service_name
        self.logger = logging.getLogger(f"backend_stub.{service_name}")
        self.logger.setLevel(log_level.upper())
        self.metrics = metrics or Metrics(enabled=metrics_enabled)
        self.tracing = tracing or Tracing(service_name, otel_exporter, enabled=tracing_enabled,
                                          endpoint=otel_endpoint)
        self.costs = CostTracker(on_cost=self.metrics.record_cost)

    def log_structured(self, event: str, fields: Mapping[str, Any] | None = None,
                       level: int = logging.INFO) -> None:
        self.logger.log(level, event, extra={"fields": {"event": event, **(fields or {})}})

    def record_metric(self, name: str, value: float = 1.0,
                      tags: Mapping[str, str] | None = None) -> None:
        self.metrics.record(name, value, tags)

    @contextmanager
    def trace_operation(self, name: str, **attributes: Any) -> Iterator[trace.Span]:
        with self.tracing.span(name, **attributes) as span:
            yield span

    def record_cost(self, category: str, usd: float) -> None:
        self.costs.record(category, usd)

    def get_cost_breakdown(self) -> dict[str, float]:
        return self.costs.breakdown()
