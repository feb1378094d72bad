"""Errors of the app: the launcher's, and the notification prompts'.

Hierarchy::

    GovernorAppError        anything the launcher reports before the app runs
    ├── ProfileError        flet.toml or a GOVERNOR_* variable cannot be used
    └── StubStartError      ``governor demo`` could not start the stub

    sync.errors.SyncError   a decision taken on a notification that did not go ahead
    ├── StepUpFailed        the password was refused too many times
    ├── NoSessionOpen       the action needs a window and none is open
    ├── VetoTakenBack       the veto was undone within the undo window
    └── ApprovalCancelled   the approval was declined at its warnings or undone

The prompt errors (raised by ``governor_app.push``) derive from ``SyncError``: the alert
feed (``sync.alert_feed.AlertFeed.act``) turns any ``SyncError`` into the action's refusal,
said in its message, as it does for a decision the engine refuses.
Messages name the object and say what to do. Errors from ``sync`` reach the screens as
``sync.errors.SyncError`` and are shown in words there.
"""

from __future__ import annotations

from sync.errors import SyncError


class GovernorAppError(Exception):
    pass


class ProfileError(GovernorAppError):
    pass


class StubStartError(GovernorAppError):
    pass


class StepUpFailed(SyncError):
    """The password was refused too many times; nothing was queued."""


class NoSessionOpen(SyncError):
    """A veto was pressed on an OS notification while no app window is open."""


class VetoTakenBack(SyncError):
    """The governor took a confirmed veto back within the undo window; nothing was
    queued."""


class ApprovalCancelled(SyncError):
    """The governor saw the request's danger flags and did not approve, or took the
    approval back within the undo window; nothing was queued."""
