from __future__ import annotations

from datetime import UTC, datetime, timedelta

from governor_app import state
from sync.models import VetoCategory

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def test_a_veto_needs_a_category_and_a_reason() -> None:
    form = state.VetoForm("REQ-1")
    assert set(form.errors()) == {"category", "reason"}
    form.category = VetoCategory.SAFETY
    form.reason = "   "
    assert set(form.errors()) == {"reason"}
    form.reason = "Imports env.exec"
    assert form.ready and form.counter == "16 / 2000"


def test_reason_longer_than_the_server_allows_is_refused_locally() -> None:
    form = state.VetoForm("REQ-1", VetoCategory.OTHER, "x" * 2001)
    assert "shorten it to 2000" in form.errors()["reason"]


def test_attachment_limits_count_and_total_size() -> None:
    form = state.VetoForm("REQ-1")
    for i in range(5):
        assert form.add_attachment(f"f{i}.txt", "text/plain", b"abc") is None
    refused = form.add_attachment("six.txt", "text/plain", b"abc")
    assert refused and "at most 5 files" in refused
    form.remove_attachment(0)
    big = form.add_attachment("big.pdf", "application/pdf", b"x" * (5 * 1024 * 1024))
    assert big and "5 MB" in big and "big.pdf" in big
    assert form.attachment_lines()[0] == "f1.txt (3 B)"
    assert form.attachments[0].data_base64 == "YWJj"
    assert state.ATTACHMENT_LIMITS == "Up to 5 files, 5.0 MB in all."


def test_undo_window_holds_then_commits_once() -> None:
    window = state.UndoWindow(NOW, 5)
    assert window.left(NOW + timedelta(seconds=2)) == 3
    assert not window.due(NOW + timedelta(seconds=4))
    assert window.due(NOW + timedelta(seconds=5))
    window.committed = True
    assert not window.due(NOW + timedelta(seconds=6)) and not window.cancel()


def test_undo_cancels_before_it_is_due() -> None:
    window = state.UndoWindow(NOW, 5)
    assert window.cancel()
    assert not window.due(NOW + timedelta(seconds=10))
