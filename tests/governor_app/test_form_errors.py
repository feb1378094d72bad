from __future__ import annotations

from governor_app import state
from governor_app.form_errors import ShownErrors


def test_an_error_shows_once_met_and_stays_until_fixed() -> None:
    shown = ShownErrors()
    errors = {"title": "Give the seed a title.", "reason": "Explain the veto."}
    assert shown.visible(errors) == {}  # nothing met yet: a fresh form is not red
    shown.meet(["title"])
    assert shown.visible(errors) == {"title": "Give the seed a title."}
    shown.edited("reason")
    assert set(shown.visible(errors)) == {"title", "reason"}
    assert shown.visible({"reason": "Explain the veto."}) == {"reason": "Explain the veto."}


def test_a_refusal_sits_at_its_field_until_that_field_is_edited() -> None:
    shown = ShownErrors()
    shown.refuse("step_up", "The step-up check failed.")
    assert shown.visible({}) == {"step_up": "The step-up check failed."}
    shown.edited("reason")
    assert shown.visible({}) == {"step_up": "The step-up check failed."}
    shown.edited("step_up")
    assert shown.visible({}) == {}


def test_the_veto_form_shows_its_errors_at_their_fields_until_fixed() -> None:
    form = state.VetoForm("REQ-1")
    assert form.visible_errors() == {}
    form.shown.meet(form.errors())
    assert set(form.visible_errors()) == {"category", "reason"}
    form.category = state.VetoCategory.SAFETY
    assert set(form.visible_errors()) == {"reason"}
    form.reason = "Unsafe."
    assert form.visible_errors() == {}
