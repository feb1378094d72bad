from __future__ import annotations

from governor_app.pull import PullGesture


def pull(gesture: PullGesture, steps: list[tuple[str, float | None]]) -> list[bool]:
    return [gesture.feed(kind, over) for kind, over in steps]


def test_a_pull_past_the_top_refreshes_once_per_gesture() -> None:
    g = PullGesture(threshold=60)
    steps: list[tuple[str, float | None]] = [("start", None)] + [("overscroll", -20.0)] * 5
    assert pull(g, steps) == [False, False, False, True, False, False]
    # The next gesture may refresh again.
    assert pull(g, [("end", None), ("start", None), ("overscroll", -70.0)]) == \
        [False, False, True]


def test_a_short_pull_or_a_pull_past_the_end_does_not_refresh() -> None:
    g = PullGesture(threshold=60)
    assert not any(pull(g, [("start", None), ("overscroll", -30.0), ("end", None),
                            ("start", None), ("overscroll", -30.0)]))
    assert not any(pull(g, [("start", None)] + [("overscroll", 40.0)] * 5))


def test_plain_scrolling_does_not_refresh() -> None:
    g = PullGesture(threshold=60)
    assert not any(pull(g, [("start", None), ("update", None), ("user", None),
                            ("overscroll", None), ("end", None)]))
