"""The platform's eight core components, hosted by the stub.

``install_components(app)`` builds them from ``app.state.settings`` / ``clock`` / ``db`` and
stores them on ``app.state``: ``cache``, ``bus``, ``metrics``, ``tracer``, ``observability``,
``state``, ``signer``, ``audit_log``, ``vault``, ``resources``, ``rate_limiter``,
``validator``, ``dlq`` (and ``components``, all of them in one object). It also adds the
HTTP middleware (request id, rate limits, metrics, spans) and ``GET /metrics``.

Kill switches (``GOVSTUB_DISABLE_CACHE``, ``_METRICS``, ``_TRACING``, ``_RATE_LIMIT``) turn
the matching component into a pass-through.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from backend_stub.components.asgi import ComponentsMiddleware, metrics_endpoint
from backend_stub.components.cache import CacheHierarchy, RedisTier, SimpleCache, SqlTier
from backend_stub.components.errors import (
    CircuitOpen,
    ComponentError,
    SettingsInvalid,
    StateConflict,
    StateNotFound,
)
from backend_stub.components.messaging import (
    InProcessTransport,
    Message,
    MessageBus,
    Priority,
    RedisStreamTransport,
    Transport,
)
from backend_stub.components.migrations import MIGRATIONS
from backend_stub.components.observability import (
    Metrics,
    ObservabilityStack,
    Tracing,
    configure_logging,
    request_id_var,
)
from backend_stub.components.resilience import (
    CircuitBreaker,
    DLQHandler,
    ErrorHandler,
    RetryPolicy,
    SqlDLQStore,
)
from backend_stub.components.resources import Budget, RateLimiter, ResourceManager, SqlUsageStore
from backend_stub.components.security import (
    AuditLog,
    HmacSigner,
    SqlAuditStore,
    Vault,
    derive_key,
    load_or_create_secret,
)
from backend_stub.components.state import SqlStateStore, StateManager
from backend_stub.components.validation import (
    SchemaValidator,
    Validator,
    decision_validator,
    validate_settings,
)

__all__ = [
    "MIGRATIONS",
    "AuditLog",
    "Budget",
    "CacheHierarchy",
    "CircuitBreaker",
    "CircuitOpen",
    "ComponentError",
    "Components",
    "DLQHandler",
    "ErrorHandler",
    "HmacSigner",
    "Message",
    "MessageBus",
    "Metrics",
    "ObservabilityStack",
    "Priority",
    "RateLimiter",
    "ResourceManager",
    "RetryPolicy",
    "SchemaValidator",
    "SettingsInvalid",
    "SimpleCache",
    "StateConflict",
    "StateManager",
    "StateNotFound",
    "Tracing",
    "Validator",
    "Vault",
    "build_components",
    "install_components",
]

log = logging.getLogger("backend_stub.components")

BUDGET_THRESHOLD_EVENT = "governance.budget.threshold_exceeded"


@dataclass
class Validators:
    """The stub's validators: ``decisions`` (one batch item), and a factory for schemas."""

    decisions: Validator = field(default_factory=decision_validator)

    @staticmethod
    def schema(schema: dict[str, Any], *, root: str = "") -> SchemaValidator:
        return SchemaValidator(schema, root=root)


@dataclass
class Components:
    cache: CacheHierarchy
    bus: MessageBus
    metrics: Metrics
    tracer: Tracing
    observability: ObservabilityStack
    state: StateManager
    signer: HmacSigner
    audit_log: AuditLog
    vault: Vault
    resources: ResourceManager
    rate_limiter: RateLimiter
    validator: Validators
    dlq: DLQHandler
    redis: Any = None
    # Names this process in cache keys that only it can interpret.
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def close(self) -> None:
        self.bus.close()
        self.tracer.shutdown()
        if self.redis is not None:
            self.redis.close()


def namespace_for(database_url: str, configured: str | None = None) -> str:
    """Redis keys are namespaced by database: stub processes share Redis state exactly when
    they share a database, and unrelated stubs on one Redis never see each other's data.
    ``GOVSTUB_REDIS_NAMESPACE`` (``configured``) names it instead, for replicas that reach
    one database by different URLs."""
    if configured:
        return configured
    return hashlib.sha256(database_url.encode()).hexdigest()[:12]


def build_components(settings: Any, clock: Any, db: Any, *,
                     check_connectivity: bool = True) -> Components:
    """Every component, configured from the stub's settings (kill switches honoured)."""
    validate_settings(settings, connectivity=check_connectivity)
    db.migrate(MIGRATIONS)
    secret = load_or_create_secret(
        settings.data_dir,
        settings.secret_key.get_secret_value() if settings.secret_key else None)
    namespace = namespace_for(db.url, getattr(settings, "redis_namespace", None))
    redis_client = None
    if settings.redis_url:
        import redis

        redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=0.5,
                                            socket_connect_timeout=0.5)
    metrics = Metrics(enabled=not settings.disable_metrics)
    tracer = Tracing("governance-stub", settings.otel_exporter,
                     enabled=not settings.disable_tracing,
                     endpoint=getattr(settings, "otel_endpoint", None))
    observability = ObservabilityStack("governance-stub", log_level=settings.log_level,
                                       metrics=metrics, tracing=tracer)
    cache = CacheHierarchy(
        l1_max_size=1000, l2_ttl=300, l3_ttl=3600,
        l2=RedisTier(redis_client, prefix=f"govstub:{namespace}:cache:") if redis_client
        else None,
        l3=SqlTier(db, clock=clock), clock=clock, enabled=not settings.disable_cache,
        observer=metrics.record_cache)
    signer = HmacSigner(derive_key(secret, "event-hmac"))
    dlq = DLQHandler("messaging", store=SqlDLQStore(db), clock=clock,
                     on_change=metrics.set_dlq_size)
    metrics.on_scrape(lambda: metrics.set_dlq_size(dlq.queue_name, dlq.size()))
    # block_ms below the client's 0.5 s socket timeout: a quiet stream is not an error.
    transport: Transport = (RedisStreamTransport(redis_client, signer=signer,
                                                 stream=f"govstub:{namespace}:events",
                                                 block_ms=250)
                            if redis_client else InProcessTransport())
    bus = MessageBus(transport, signer=signer, dlq=dlq, clock=clock,
                     on_publish=lambda m: metrics.record_event(m.type))
    limiter = RateLimiter(settings.redis_url or "memory://",
                          enabled=not settings.disable_rate_limit,
                          key_prefix=f"govstub:{namespace}:rl")

    def threshold_crossed(agent_id: str, threshold: int, utilisation: float) -> None:
        bus.publish(BUDGET_THRESHOLD_EVENT, {"agent": agent_id, "threshold": threshold,
                                             "utilisation": round(utilisation, 4)},
                    priority=Priority.HIGH)

    resources = ResourceManager(store=SqlUsageStore(db), rate_limiter=limiter, clock=clock,
                                on_threshold=threshold_crossed,
                                on_usage=metrics.set_budget_utilisation)
    return Components(
        cache=cache, bus=bus, metrics=metrics, tracer=tracer, observability=observability,
        state=StateManager(SqlStateStore(db), clock=clock), signer=signer,
        audit_log=AuditLog(derive_key(secret, "audit-log"), SqlAuditStore(db), clock=clock),
        vault=Vault(derive_key(secret, "attachments")), resources=resources,
        rate_limiter=limiter, validator=Validators(), dlq=dlq, redis=redis_client)


def _watch_budgets(app: FastAPI, components: Components) -> None:
    """Feed ``budget_utilisation_ratio{agent}``: from every threshold event at once, and
    from the agents the governance service knows at each scrape (when it is installed)."""
    metrics = components.metrics

    def on_threshold(message: Message) -> None:
        agent = message.data.get("agent_id") or message.data.get("agent")
        utilisation = message.data.get("utilisation")
        if agent is not None and isinstance(utilisation, int | float):
            metrics.set_budget_utilisation(str(agent), float(utilisation))

    components.bus.subscribe(BUDGET_THRESHOLD_EVENT, on_threshold, name="budget-gauge")

    def refresh() -> None:
        service = getattr(app.state, "governance", None)
        if service is None or not hasattr(service, "list_agents"):
            return
        cursor = None
        for _ in range(50):  # 50 pages of 200: far more agents than the stub ever holds
            agents, cursor = service.list_agents(cursor=cursor, limit=200)
            for agent in agents:
                budget = agent.get("budget") or {}
                if "utilisation" in budget:
                    metrics.set_budget_utilisation(str(agent["id"]), float(budget["utilisation"]))
            if not cursor:
                break

    metrics.on_scrape(refresh)


def _close_on_shutdown(app: FastAPI, components: Components) -> None:
    """Close the components when the app's lifespan ends, inside whatever lifespan other
    features have stacked already."""
    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        try:
            async with previous(a) as state:
                yield state
        finally:
            components.close()

    app.router.lifespan_context = lifespan


def install_components(app: FastAPI) -> None:
    """Build the components for ``app`` and wire them in (middleware, ``/metrics``)."""
    if getattr(app.state, "components", None) is not None:
        return  # installed already: installing twice would stack the middleware
    settings = app.state.settings
    components = build_components(settings, app.state.clock, app.state.db)
    configure_logging(settings.log_level)  # after validation: the level is known to be good
    app.state.components = components
    for name in ("cache", "bus", "metrics", "tracer", "observability", "state", "signer",
                 "audit_log", "vault", "resources", "rate_limiter", "validator", "dlq"):
        setattr(app.state, name, getattr(components, name))
    app.add_middleware(ComponentsMiddleware, metrics=components.metrics,
                       tracing=components.tracer, limiter=components.rate_limiter,
                       requests_per_minute=settings.requests_per_minute,
                       client_requests_per_minute=settings.client_requests_per_minute,
                       clock=app.state.clock)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], tags=["health"],
                      response_class=PlainTextResponse, summary="Prometheus metrics",
                      responses={500: {"description": "INTERNAL: the stub failed"}})
    _watch_budgets(app, components)
    _close_on_shutdown(app, components)
    log.info("core components installed", extra={"fields": {
        "redis": bool(settings.redis_url), "cache": not settings.disable_cache,
        "metrics": not settings.disable_metrics, "tracing": not settings.disable_tracing,
        "rate_limit": not settings.disable_rate_limit}})


# Re-exported for users who only need the request id of the request being served.
current_request_id = request_id_var.get
