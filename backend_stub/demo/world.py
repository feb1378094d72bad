"""The demo world: a believable platform a day into its week.

Fifteen agents across five industries and two centres of excellence, six precedent seeds,
thirteen agent-creation requests at every pipeline stage and status (two of them in a veto
window that closes within hours), violations and budgets near their alerts. History is
written through the real service on a clock set in the past, so events, decisions, seed
metrics and deadlines are what the platform itself would have produced.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from backend_stub.clock import FakeClock
from backend_stub.domain.service import Actor, DecisionCommand, GovernanceService
from backend_stub.domain.wasm import build_module

GOVERNOR = Actor(sub="governor", client_id="governor-app", request_id="demo-history",
                 scopes=frozenset({"governance:read", "governance:write", "veto:execute"}))

# name, industry, kind, daily token limit, share used, capabilities
AGENTS: list[tuple[str, str, str, int, float, list[str]]] = [
    ("Triage Assistant", "healthcare", "industry", 400_000, 0.41,
     ["file_read:/data/patients/*", "network_outbound:fhir.hospital.example"]),
    ("Claims Coder", "healthcare", "industry", 250_000, 0.83, ["file_read:/data/claims/*"]),
    ("Clinical Notes Summariser", "healthcare", "industry", 300_000, 0.22,
     ["file_read:/data/notes/*", "env_read:MODEL_REGION"]),
    ("Maths Tutor", "education", "industry", 150_000, 0.35, ["file_read:/data/curriculum/*"]),
    ("Curriculum Planner", "education", "industry", 120_000, 0.57,
     ["file_read:/data/curriculum/*", "file_write:/data/plans/*"]),
    ("Essay Feedback Coach", "education", "industry", 180_000, 0.12,
     ["file_read:/data/essays/*"]),
    ("Invoice Reconciler", "finance", "industry", 500_000, 0.64,
     ["file_read:/data/ledger/*", "network_outbound:erp.finance.example"]),
    ("Fraud Sentinel", "finance", "industry", 800_000, 0.96,
     ["network_outbound:payments.bank.example", "network_inbound:8443"]),
    ("KYC Checker", "finance", "industry", 200_000, 0.48,
     ["network_outbound:registry.kyc.example"]),
    ("Inventory Forecaster", "retail", "industry", 220_000, 0.71, ["file_read:/data/stock/*"]),
    ("Returns Concierge", "retail", "industry", 90_000, 0.18,
     ["network_outbound:api.shop.example"]),
    ("Pricing Analyst", "retail", "industry", 140_000, 0.52, ["file_read:/data/prices/*"]),
    ("Route Optimiser", "logistics", "industry", 260_000, 0.39,
     ["network_outbound:maps.routing.example"]),
    ("Marketing CoE", "coe", "coe", 600_000, 0.44, ["custom:content_calendar"]),
    ("Quality CoE", "coe", "coe", 350_000, 0.27, ["custom:test_runner", "file_read:/data/*"]),
]

SEEDS: list[dict[str, Any]] = [
    {"title": "Read-only education tutors",
     "description": "Tutors that only read curriculum data and stay within a modest budget "
                    "are approved on precedent.",
     "conditions": {"industry_in": ["education"],
                    "capabilities_within": ["file_read:/data/**"],
                    "no_dangerous_capabilities": True, "wasm_valid": True,
                    "max_daily_token_budget": 200_000},
     "auto_approve": True, "status": "active"},
    {"title": "Retail analytics within budget",
     "description": "Retail analysis agents without dangerous grants and under 150k tokens "
                    "a day.",
     "conditions": {"industry_in": ["retail"], "no_dangerous_capabilities": True,
                    "wasm_valid": True, "max_daily_token_budget": 150_000},
     "auto_approve": True, "status": "active"},
    {"title": "Healthcare read-only assistants",
     "description": "Read-only healthcare assistants match this precedent but still need a "
                    "governor: patient data is involved.",
     "conditions": {"industry_in": ["healthcare"],
                    "capabilities_within": ["file_read:/data/**", "env_read:*"],
                    "no_dangerous_capabilities": True, "wasm_valid": True},
     "auto_approve": False, "status": "active"},
    {"title": "Centre-of-excellence internal tools",
     "description": "CoE tools with custom grants and read access to shared data.",
     "conditions": {"agent_kind_in": ["coe"],
                    "capabilities_within": ["custom:*", "file_read:/data/**"],
                    "wasm_valid": True, "max_memory_pages": 256},
     "auto_approve": True, "status": "active"},
    {"title": "Finance partners over the network",
     "description": "Proposed: finance agents calling registered bank endpoints only.",
     "conditions": {"industry_in": ["finance"],
                    "capabilities_within": ["network_outbound:*.bank.example",
                                            "file_read:/data/ledger/*"],
                    "wasm_valid": True, "max_monthly_cost_usd": 500},
     "auto_approve": False, "status": "proposed"},
    {"title": "Legacy logistics integrations",
     "description": "Retired after the routing platform moved to its own CoE.",
     "conditions": {"industry_in": ["logistics"], "max_daily_token_budget": 300_000},
     "auto_approve": True, "status": "retired"},
]

GOOD_MODULE = build_module(functions=3, memory_pages=4)
SHELL_MODULE = build_module(imports=[("env", "system_exec"), ("wasi_snapshot_preview1",
                                                              "fd_write")], functions=5)
HUGE_MODULE = build_module(functions=2, memory_pages=20_000)


def _request(name: str, industry: str, kind: str, capabilities: list[str], budget: int,
             cost: float, stage: str = "governor_approval", module: bytes = GOOD_MODULE,
             requester: str = "genesis@waooaw") -> dict[str, Any]:
    return {"agent_name": name, "industry": industry, "agent_kind": kind,
            "capabilities": capabilities, "daily_token_budget": budget,
            "monthly_cost_usd": cost, "stage": stage, "wasm_module": module,
            "requester": requester}


def load_demo_world(svc: GovernanceService) -> None:
    """Fill an empty database with the demo world (a no-op when agents exist)."""
    if not svc.is_empty():
        return
    now = svc.clock.now()
    past = FakeClock(now - timedelta(days=3))
    history = GovernanceService(svc.db, past, publish=svc.publish,
                                veto_window=svc.veto_window)
    history.attestor = svc.attestor
    history.budgets = svc.budgets

    def at(hours_ago: float) -> datetime:
        when = now - timedelta(hours=hours_ago)
        past.set(when)
        return when

    at(72)
    for name, industry, kind, limit, share, grants in AGENTS:
        history.add_agent(name=name, industry=industry, kind=kind, tokens_limit=limit,
                          tokens_used=int(limit * share), cost_limit_usd=limit / 400,
                          cost_used_usd=limit * share / 400, capabilities=grants)
    for i, seed in enumerate(SEEDS):
        history.create_seed(GOVERNOR, key=f"demo-seed-{i}", **seed)

    # Settled history first: deployed, vetoed, changes requested.
    at(50)
    deployed = history.submit_request(**_request(
        "Essay Feedback Coach v2", "education", "industry", ["file_read:/data/essays/*",
                                                             "file_write:/data/feedback/*"],
        160_000, 300.0))
    at(48)
    _decide(history, deployed, "approve", comment="Feedback writes stay in its own folder.")
    at(40)
    shelf = history.submit_request(**_request(
        "Shelf Label Writer", "retail", "industry", ["file_read:/data/prices/*"], 100_000,
        130.0))
    at(39)
    _decide(history, shelf, "veto", category="safety",
            reason="Auto-approved, but it publishes customer-facing prices with no review step.")
    at(30)
    vetoed = history.submit_request(**_request(
        "Dynamic Pricing Bot", "retail", "industry",
        ["network_outbound:*", "system_call:exec"], 600_000, 1500.0, module=SHELL_MODULE))
    at(29)
    _decide(history, vetoed, "veto", category="budget",
            reason="Unbounded outbound network and a shell import; 4x the retail budget.")
    at(27)
    changes = history.submit_request(**_request(
        "Loan Pre-Screener", "finance", "industry",
        ["network_outbound:credit.bureau.example", "file_read:/data/applicants/*"],
        300_000, 800.0))
    at(26)
    _decide(history, changes, "request_changes",
            reason="Add the fairness evaluation from ethics review before approval.")

    at(24)
    history.sweep()  # the essay coach's window ends: deployed

    # Two requests whose veto windows close within hours.
    at(22.5)
    approved = history.submit_request(**_request(
        "Shipment Delay Notifier", "logistics", "industry",
        ["network_outbound:tracking.carrier.example", "network_inbound:9000"], 320_000, 400.0))
    at(22)
    _decide(history, approved, "approve", comment="Inbound port is for carrier webhooks.")
    at(20.5)
    history.submit_request(**_request(
        "Fractions Tutor", "education", "industry", ["file_read:/data/curriculum/maths/*"],
        90_000, 120.0))
    at(3)
    history.submit_request(**_request(
        "Brand Voice Checker", "coe", "coe", ["custom:style_guide", "file_read:/data/brand/*"],
        100_000, 150.0))

    # Pending, at every stage before and at the governor.
    at(9)
    history.submit_request(**_request(
        "Warehouse Slotting Planner", "logistics", "industry", ["file_read:/data/stock/*"],
        180_000, 200.0, stage="submitted"))
    at(7)
    history.submit_request(**_request(
        "Crypto Treasury Agent", "finance", "industry",
        ["network_outbound:exchange.crypto.example", "system_call:process_spawn"],
        900_000, 2000.0, stage="genesis_certification", module=SHELL_MODULE))
    at(6)
    history.submit_request(**_request(
        "Radiology Report Drafter", "healthcare", "industry",
        ["file_read:/data/imaging/*", "network_outbound:pacs.hospital.example"],
        450_000, 900.0, stage="architect_review", module=HUGE_MODULE))
    at(5)
    history.submit_request(**_request(
        "Loyalty Offer Writer", "retail", "industry",
        ["file_read:/data/customers/*", "network_outbound:mail.shop.example"], 160_000, 250.0,
        stage="ethics_review"))
    at(2)
    history.submit_request(**_request(
        "Medication Reminder", "healthcare", "industry",
        ["file_read:/data/prescriptions/*", "env_read:TIMEZONE"], 80_000, 90.0))
    at(1)
    history.submit_request(**_request(
        "Treasury Cash Forecaster", "finance", "industry",
        ["network_outbound:api.bank.example", "file_read:/data/ledger/*"], 350_000, 450.0))

    # Violations and budget alerts of the last day.
    agents = {a["name"]: a["id"] for a in history.list_agents(limit=200)[0]}
    at(20)
    history.record_violation(agents["Fraud Sentinel"], "constitutional", "high",
                             "Opened an inbound port to an unregistered host during a test run.")
    at(12)
    history.record_violation(agents["Claims Coder"], "ethics", "medium",
                             "Used a patient's postcode as a feature in claim triage.")
    at(8)
    history.record_violation(agents["Returns Concierge"], "budget", "low",
                             "Spent 40% of its daily budget in one hour on a retry loop.")
    at(4)
    history.record_violation(agents["Curriculum Planner"], "constitutional", "medium",
                             "Wrote lesson plans outside /data/plans.")
    at(0.5)
    history.consume_budget(agents["Inventory Forecaster"], int(220_000 * 0.11))
    past.set(now)
    svc.forget_deadlines()
    svc.sweep()


def _decide(history: GovernanceService, approval: dict[str, Any], action: str,
            **fields: Any) -> None:
    command = DecisionCommand(key=f"demo-{action}-{approval['id']}",
                              approval_id=approval["id"], action=action,
                              expected_version=approval["version"], device_id="demo-history",
                              **fields)
    result = history.decide(GOVERNOR, [command])[0]
    if result.error is not None:
        raise result.error
