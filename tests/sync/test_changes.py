from __future__ import annotations

from sync.changes import changed_fields, in_words


def test_only_the_fields_that_differ_are_named_bookkeeping_aside() -> None:
    seen = {"id": "REQ-1", "version": 3, "updated_at": "a", "stage": "security_review",
            "budget": {"daily_tokens": 100}, "notes": None}
    now = {"id": "REQ-1", "version": 4, "updated_at": "b", "stage": "governor_approval",
           "budget": {"daily_tokens": 500}, "seed_matches": [{"seed_id": "GEN-2"}]}
    changes = {c.field: (c.seen, c.now) for c in changed_fields(seen, now)}
    assert changes == {"stage": ("security_review", "governor_approval"),
                       "budget": ('{"daily_tokens":100}', '{"daily_tokens":500}'),
                       "seed_matches": ("none", "GEN-2")}


def test_values_in_words_fit_a_line() -> None:
    assert in_words([{"stage": "genesis", "status": "passed"}, "x"]) == "genesis passed, x"
    assert in_words(None) == "none" and in_words(True) == "True"
    assert len(in_words("y" * 500)) == 120 and in_words("y" * 500).endswith("...")
