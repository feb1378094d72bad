"""Errors of the app launcher.

Hierarchy::

    GovernorAppError        anything the launcher reports before the app runs
    ├── ProfileError        flet.toml or a GOVERNOR_* variable cannot be used
    └── StubStartError      ``governor demo`` could not start the stub

Messages name the object and say what to do. Errors from ``sync`` reach the screens as
``sync.errors.SyncError`` and are shown in words there.
"""

from __future__ import annotations


class GovernorAppError(Exception):
    pass


class ProfileError(GovernorAppError):
    pass


class StubStartError(GovernorAppError):
    pass
