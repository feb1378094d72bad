"""``pipeline.split`` and ``joined``: the stages stored apart from their evidence."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from backend_stub.domain import pipeline as pl

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _attest(stage: str, when: datetime) -> dict[str, Any]:
    return {"review": {"stage": stage, "at": when.isoformat()}}


def test_split_then_joined_gives_the_pipeline_back_key_for_key() -> None:
    pipeline = pl.new_pipeline("governor_approval", NOW, _attest)
    stages, evidence = pl.split(pipeline)
    assert all(list(stage) == list(pl.STAGE_FIELDS) for stage in stages)
    assert set(evidence) == {"submitted", "genesis_certification", "architect_review",
                             "ethics_review"}
    joined = pl.joined(stages, evidence)
    assert joined == pipeline
    assert [list(s) for s in joined] == [list(s) for s in pipeline]  # the answer's order


def test_a_stage_passing_later_adds_its_evidence_and_keeps_the_rest() -> None:
    stages, evidence = pl.split(pl.new_pipeline("architect_review", NOW, _attest))
    advanced, added = pl.split(pl.advance(stages, NOW, _attest))
    assert set(added) == {"architect_review"}
    assert pl.joined(advanced, {**evidence, **added}) == pl.advance(
        pl.new_pipeline("architect_review", NOW, _attest), NOW, _attest)


def test_a_decision_changes_the_stages_alone() -> None:
    stages, evidence = pl.split(pl.new_pipeline("governor_approval", NOW, _attest))
    entered = pl.enter_veto_window(stages, NOW, "passed", "ok")
    assert pl.split(entered) == (entered, {})
    assert pl.joined(entered, evidence)[1]["review"] == evidence["genesis_certification"]["review"]
