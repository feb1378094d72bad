"""The platform acting on its own: what ``--demo-activity`` and ``/v1/demo/scenario`` do."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from backend_stub.demo.world import GOOD_MODULE, SHELL_MODULE
from backend_stub.domain.service import GovernanceService
from backend_stub.errors import NotFound

log = logging.getLogger("backend_stub.demo")

_PENDING_TEMPLATES: list[dict[str, Any]] = [
    {"agent_name": "Supplier Risk Scout", "industry": "logistics", "agent_kind": "industry",
     "capabilities": ["network_outbound:suppliers.registry.example", "file_write:/data/risk/*"],
     "daily_token_budget": 280_000, "monthly_cost_usd": 380.0},
    {"agent_name": "Discharge Letter Writer", "industry": "healthcare", "agent_kind": "industry",
     "capabilities": ["file_read:/data/notes/*", "network_outbound:mail.hospital.example"],
     "daily_token_budget": 210_000, "monthly_cost_usd": 260.0},
    {"agent_name": "Chargeback Negotiator", "industry": "finance", "agent_kind": "industry",
     "capabilities": ["network_outbound:disputes.bank.example", "system_call:sandbox_exec"],
     "daily_token_budget": 500_000, "monthly_cost_usd": 900.0, "wasm_module": SHELL_MODULE},
    {"agent_name": "Store Layout Advisor", "industry": "retail", "agent_kind": "industry",
     "capabilities": ["file_read:/data/stores/*", "network_inbound:8080"],
     "daily_token_budget": 190_000, "monthly_cost_usd": 240.0},
]
_AUTO_TEMPLATES: list[dict[str, Any]] = [
    {"agent_name": "Spelling Coach", "industry": "education", "agent_kind": "industry",
     "capabilities": ["file_read:/data/curriculum/english/*"],
     "daily_token_budget": 60_000, "monthly_cost_usd": 80.0},
    {"agent_name": "Basket Insights", "industry": "retail", "agent_kind": "industry",
     "capabilities": ["file_read:/data/baskets/*"],
     "daily_token_budget": 110_000, "monthly_cost_usd": 140.0},
]
_VIOLATIONS = [
    ("constitutional", "high", "Tried to read {path} without a grant."),
    ("ethics", "medium", "Produced advice that ethics review flagged as biased."),
    ("budget", "low", "Burst of retries spent 30% of its daily budget in minutes."),
]


class DemoPlatform:
    """Makes the stub act as the platform would: new requests, budgets, violations."""

    def __init__(self, svc: GovernanceService, rng: random.Random | None = None) -> None:
        self.svc = svc
        self.rng = rng or random.Random()
        self._serial = 0

    def _named(self, template: dict[str, Any]) -> dict[str, Any]:
        self._serial += 1
        request = dict(template)
        request["agent_name"] = f"{template['agent_name']} #{self._serial}"
        request.setdefault("wasm_module", GOOD_MODULE)
        request.setdefault("requester", "genesis@waooaw")
        return request

    def new_pending_approval(self) -> dict[str, Any]:
        request = self.svc.submit_request(**self._named(self.rng.choice(_PENDING_TEMPLATES)))
        return {"approval_id": request["id"], "status": request["status"]}

    def seed_auto_approval(self) -> dict[str, Any]:
        request = self.svc.submit_request(**self._named(self.rng.choice(_AUTO_TEMPLATES)))
        return {"approval_id": request["id"], "status": request["status"],
                "seed_id": request["matched_seed_id"], "veto_deadline": request["veto_deadline"]}

    def budget(self, threshold: int) -> dict[str, Any]:
        """Push an active agent just over ``threshold`` % of its daily budget."""
        agents, _ = self.svc.list_agents(status="active", limit=200)
        below = [a for a in agents if a["budget"]["alert_level"] < threshold
                 and a["budget"]["tokens_limit"] > 0]
        if not below:
            raise NotFound(f"Every active agent is already over {threshold}% of its budget; "
                           "advance the clock a day or restart the demo.")
        agent = self.rng.choice(below)
        target = int(agent["budget"]["tokens_limit"] * (threshold + 1) / 100)
        spend = max(1, target - agent["budget"]["tokens_used"])
        crossed = self.svc.consume_budget(agent["id"], spend)
        return {"agent_id": agent["id"], "tokens": spend, "thresholds_crossed": crossed}

    def violation(self) -> dict[str, Any]:
        agents = self.svc.agent_ids("active")
        if not agents:
            raise NotFound("There is no active agent to violate a rule; load the demo world.")
        kind, severity, text = self.rng.choice(_VIOLATIONS)
        return self.svc.record_violation(self.rng.choice(agents), kind, severity,
                                         text.format(path="/etc/shadow"))

    def pipeline_progress(self) -> dict[str, Any]:
        """A reviewer passes the open stage of the oldest request still under review."""
        early = self.svc.early_requests()
        if not early:
            raise NotFound("No request is waiting on a review stage.")
        request = self.svc.advance_pipeline(early[0])
        return {"approval_id": request["id"], "stage": request["stage"],
                "status": request["status"]}

    def scenario(self, event: str) -> dict[str, Any]:
        if event == "new_pending_approval":
            return self.new_pending_approval()
        if event == "seed_auto_approval":
            return self.seed_auto_approval()
        if event == "budget_80":
            return self.budget(80)
        if event == "budget_95":
            return self.budget(95)
        return self.violation()

    def tick(self) -> dict[str, Any]:
        """One random act, weighted towards what a governor should see."""
        event = self.rng.choices(
            ["new_pending_approval", "seed_auto_approval", "budget_80", "budget_95",
             "violation", "pipeline_progress"], weights=[4, 2, 2, 1, 2, 3])[0]
        try:
            if event == "pipeline_progress":
                return {"event": event, "result": self.pipeline_progress()}
            return {"event": event, "result": self.scenario(event)}
        except NotFound as exc:
            return {"event": event, "skipped": exc.message}


class DemoActivity:
    """A daemon thread that calls ``DemoPlatform.tick`` every ``seconds``."""

    def __init__(self, platform: DemoPlatform, seconds: float) -> None:
        self.platform = platform
        self.seconds = seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="demo-activity", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.seconds):
            try:
                log.info("demo activity: %s", self.platform.tick())
            except Exception:  # the demo keeps going; the stub must not die of it
                log.exception("demo activity failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
