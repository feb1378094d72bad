"""What each screen keeps while it is re-rendered or the governor goes elsewhere: the
approvals list's filter and search, the seeds search, the forms being filled in (the seed
wizard, the settings, the sign-in, a veto per request), and the decision the shell holds
for its undo window.

No Flet here: plain mutable dataclasses, each created with its defaults, so a screen's
memory is typed attributes (``screen.state.approvals.query``) rather than string keys,
and is tested with plain pytest. ``ScreenState`` is the one container a ``Screen``
(``views/screen.py``) exposes; the shell makes one per session.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from governor_app.seed_wizard import SeedWizard
from governor_app.sign_in import DevicePanel
from governor_app.state import UndoWindow, VetoForm
from sync.facade import ApprovalFilter


@dataclass
class ApprovalsState:
    """The approvals list as the governor left it: filter, search and how far it was
    paged (``limit`` None: the first page)."""

    filter: ApprovalFilter = "pending"
    query: str = ""
    limit: int | None = None

    def open(self, filter: ApprovalFilter) -> None:
        """Show ``filter`` from the first page, search cleared (a dashboard figure)."""
        self.filter, self.query, self.limit = filter, "", None

    def start_again(self) -> None:
        """A new filter or search lists one page again, from the top."""
        self.limit = None

    def rows(self, page: int) -> int:
        """How many rows to list, ``page`` rows being one page."""
        return self.limit if self.limit is not None else page

    def more(self, page: int) -> None:
        """One page more than is listed now."""
        self.limit = self.rows(page) + page


@dataclass
class SeedsState:
    """The seeds list's search as typed."""

    query: str = ""


# The settings a draft may hold: ``SettingsDraft.set`` is checked against these by mypy.
DraftField = Literal["notifications", "quiet_hours", "quiet_start", "quiet_end",
                     "urgent_override", "server_url", "sync_interval"]


@dataclass
class SettingsDraft:
    """Settings changed on the form and not saved yet; None: left as saved."""

    notifications: bool | None = None
    quiet_hours: bool | None = None
    quiet_start: str | None = None
    quiet_end: str | None = None
    urgent_override: bool | None = None
    server_url: str | None = None
    sync_interval: str | None = None  # as typed: checked when saving

    def set(self, name: DraftField, value: bool | str) -> None:
        setattr(self, name, value)

    def changes(self) -> dict[str, Any]:
        """The fields changed, by name (for ``Preferences.with_``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


SignInFlow = Literal["password", "browser", "device"]


@dataclass
class SignInState:
    """The sign-in form and the flow that waits (its task, so a re-render shows it
    still waiting and its Cancel still stops it)."""

    username: str = ""
    error: str = ""
    field_errors: dict[str, str] = field(default_factory=dict)
    flow: SignInFlow | None = None
    task: asyncio.Task[None] | None = None
    device: DevicePanel | None = None  # the device code's panel, once the server sent it

    def end_flow(self) -> asyncio.Task[None] | None:
        """Forget the flow in progress; its task, for the caller to cancel."""
        task, self.task, self.flow, self.device = self.task, None, None, None
        return task

    def clear(self) -> None:
        """Signed in: nothing typed, no error and no flow are kept for the next time."""
        self.end_flow()
        self.username, self.error = "", ""
        self.field_errors.clear()


@dataclass
class ScreenState:
    """Every screen's state for one session, created with its defaults."""

    approvals: ApprovalsState = field(default_factory=ApprovalsState)
    seeds: SeedsState = field(default_factory=SeedsState)
    seed_wizard: SeedWizard = field(default_factory=SeedWizard)
    settings_draft: SettingsDraft = field(default_factory=SettingsDraft)
    sign_in: SignInState = field(default_factory=SignInState)
    # The veto being written per request (by approval id): kept until it is queued, so
    # an undo opens it again as it was.
    veto_forms: dict[str, VetoForm] = field(default_factory=dict)

    def veto_form(self, approval_id: str) -> VetoForm:
        """The veto form of ``approval_id``, a new one if none is being written."""
        return self.veto_forms.setdefault(approval_id, VetoForm(approval_id))


@dataclass
class HeldDecision:
    """The decision the shell holds on the device for its undo window (one at a time):
    a veto from its form, or an approval from the request screen or a banner."""

    approval_id: str
    window: UndoWindow
    what: str  # "Veto", "Approval": said in the undo bar and the snack bar
    undo_to: str | None  # the address an undo opens (the veto form), if any
    answer: asyncio.Future[bool]  # True: queue it; False: taken back
    task: asyncio.Task[None] | None = None  # the wait for the window's end
