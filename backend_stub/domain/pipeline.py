"""The seven-stage agent-creation pipeline, as pure functions over its JSON form."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from backend_stub.clock import rfc3339

STAGES: tuple[str, ...] = ("submitted", "genesis_certification", "architect_review",
                           "ethics_review", "governor_approval", "veto_window", "deployed")
STAGE_STATUSES = ("pending", "in_progress", "passed", "failed", "skipped")
APPROVAL_STATUSES = ("pending_approval", "approved", "changes_requested", "vetoed",
                     "auto_approved", "deployed")
# Statuses in which the 24 h veto window runs (veto_deadline is set).
IN_WINDOW = ("approved", "auto_approved")
VETOABLE = ("pending_approval", "approved", "auto_approved")

# What a stage carries when it passes at a time: its notes and its evidence (a
# certificate, a review), from ``attestations.Attestor.attest`` bound to the request.
Attest = Callable[[str, datetime], dict[str, Any]]


# What a stage entry holds besides its evidence (a certificate, a review).
STAGE_FIELDS = ("stage", "status", "completed_at", "notes")
# A request's evidence, by stage: what the stages that passed carry beyond STAGE_FIELDS.
Evidence = dict[str, dict[str, Any]]


def split(pipeline: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], Evidence]:
    """The stages without their evidence, and the evidence by stage: stored apart, so a
    decision rewrites a few hundred bytes of stages, not kilobytes of signed evidence."""
    stages = [{k: item[k] for k in STAGE_FIELDS} for item in pipeline]
    evidence = {item["stage"]: extra for item in pipeline
                if (extra := {k: v for k, v in item.items() if k not in STAGE_FIELDS})}
    return stages, evidence


def joined(stages: list[dict[str, Any]], evidence: Evidence) -> list[dict[str, Any]]:
    """``split`` undone: each stage with its evidence after its own fields."""
    return [{**item, **evidence.get(item["stage"], {})} for item in stages]


def new_pipeline(reached: str, now: datetime, attest: Attest) -> list[dict[str, Any]]:
    """Stages before ``reached`` passed (with their evidence), ``reached`` in progress,
    the rest pending."""
    index = STAGES.index(reached)
    stages = []
    for i, name in enumerate(STAGES):
        if i < index:
            stages.append({"stage": name, "status": "passed", "completed_at": rfc3339(now),
                           "notes": None, **attest(name, now)})
        else:
            stages.append({"stage": name, "status": "in_progress" if i == index else "pending",
                           "completed_at": None, "notes": None})
    return stages


def _set(pipeline: list[dict[str, Any]], stage: str, status: str, when: datetime | None,
         notes: str | None) -> None:
    for item in pipeline:
        if item["stage"] == stage:
            item["status"] = status
            item["completed_at"] = rfc3339(when) if when else None
            item["notes"] = notes


def _close_open_before(pipeline: list[dict[str, Any]], stage: str, now: datetime,
                       notes: str) -> None:
    for item in pipeline:
        if item["stage"] == stage:
            return
        if item["status"] in ("pending", "in_progress"):
            item["status"] = "skipped"
            item["completed_at"] = rfc3339(now)
            item["notes"] = notes


def enter_veto_window(pipeline: list[dict[str, Any]], now: datetime, governor_status: str,
                      notes: str) -> list[dict[str, Any]]:
    result = [dict(s) for s in pipeline]
    _close_open_before(result, "governor_approval", now, "Skipped: the governor decided early.")
    _set(result, "governor_approval", governor_status, now, notes)
    _set(result, "veto_window", "in_progress", None, "24-hour veto window open.")
    return result


def stop(pipeline: list[dict[str, Any]], now: datetime, notes: str) -> list[dict[str, Any]]:
    """The request stops here: the open stage fails, later stages are skipped."""
    result = [dict(s) for s in pipeline]
    failed = False
    for item in result:
        if item["status"] == "in_progress" and not failed:
            item.update(status="failed", completed_at=rfc3339(now), notes=notes)
            failed = True
        elif item["status"] in ("pending", "in_progress"):
            item.update(status="skipped", completed_at=rfc3339(now), notes=None)
    return result


def deploy(pipeline: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    result = [dict(s) for s in pipeline]
    _set(result, "veto_window", "passed", now, "Veto window closed without a veto.")
    _set(result, "deployed", "passed", now, "Deployed to the platform.")
    return result


def advance(pipeline: list[dict[str, Any]], now: datetime, attest: Attest
            ) -> list[dict[str, Any]]:
    """The open stage passes (with its evidence) and the next one opens."""
    result = [dict(s) for s in pipeline]
    for i, item in enumerate(result):
        if item["status"] == "in_progress":
            item.update(status="passed", completed_at=rfc3339(now), notes=None)
            item.update(attest(item["stage"], now))
            if i + 1 < len(result):
                result[i + 1].update(status="in_progress", completed_at=None, notes=None)
            break
    return result


def current_stage(pipeline: list[dict[str, Any]]) -> str:
    for item in pipeline:
        if item["status"] in ("in_progress", "failed"):
            return str(item["stage"])
    last = [s for s in pipeline if s["status"] == "passed"]
    return str(last[-1]["stage"]) if last else STAGES[0]
