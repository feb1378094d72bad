"""The one interface ``governor_app`` uses: ``GovernorClient``.

The UI reads local state synchronously (it is a cache on this device, always available
offline), calls the async methods for anything that may touch the network, and
subscribes to change topics to re-render. ``sync.engine.SyncEngine`` is the real
implementation; ``sync.fakes.FakeGovernorClient`` is the in-memory one for UI tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from sync.models import (
    Account,
    Agent,
    ApprovalDetail,
    ApprovalSummary,
    Attachment,
    CachedDashboard,
    Conflict,
    DeviceCode,
    Notification,
    OutboxEntry,
    OutboxState,
    Seed,
    SeedDraft,
    SyncStatus,
    VetoCategory,
    Violation,
)

# What changed; the UI re-reads the matching state when told.
Topic = Literal[
    "status", "auth", "dashboard", "approvals", "seeds", "agents", "violations",
    "notifications", "outbox",
]
Listener = Callable[[Topic], None]
ApprovalFilter = Literal["all", "pending", "veto_window", "decided"]


class GovernorClient(Protocol):
    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, resume the session if tokens are kept, start periodic sync."""

    async def stop(self) -> None: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(topic)`` on every change; returns the unsubscribe function."""
        ...

    # --- auth ------------------------------------------------------------------------
    def account(self) -> Account | None: ...

    async def sign_in_with_browser(self, open_url: Callable[[str], Awaitable[None] | None]
                                   ) -> Account:
        """Authorization code + PKCE through the system browser and a loopback listener."""
        ...

    async def sign_in_with_password(self, username: str, password: str) -> Account:
        """The same code + PKCE flow with the server's login form filled in by the client
        (used by the demo's automatic sign-in and the in-app form)."""
        ...

    async def start_device_sign_in(self) -> DeviceCode: ...

    async def finish_device_sign_in(self, code: DeviceCode) -> Account:
        """Poll the token endpoint honouring ``interval`` and ``slow_down``."""
        ...

    async def sign_out(self) -> None: ...

    async def confirm_identity(self, password: str) -> bool:
        """Step-up check before a veto."""
        ...

    # --- reads (local cache, never block on the network) ------------------------------
    def status(self) -> SyncStatus: ...

    def dashboard(self) -> CachedDashboard | None: ...

    def approvals(self, filter: ApprovalFilter = "all", query: str = "", limit: int = 200,
                  offset: int = 0) -> list[ApprovalSummary]: ...

    def approval_count(self, filter: ApprovalFilter = "all", query: str = "") -> int:
        """How many requests ``approvals(filter, query)`` lists with no limit."""
        ...

    def approval(self, approval_id: str) -> ApprovalDetail | None: ...

    def seeds(self, query: str = "", limit: int = 200) -> list[Seed]: ...

    def seed(self, seed_id: str) -> Seed | None: ...

    def agents(self) -> list[Agent]: ...

    def violations(self) -> list[Violation]: ...

    def notifications(self) -> list[Notification]: ...

    def outbox(self, states: set[OutboxState] | None = None) -> list[OutboxEntry]: ...

    def conflict(self, entry_id: str) -> Conflict | None:
        """For a rejected decision: who decided, the new state, and whether
        ``decide_again`` can make the same decision on the fresh version."""
        ...

    # --- writes (queued locally at once, sent when online) ----------------------------
    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry: ...

    def request_changes(self, approval_id: str, reason: str) -> OutboxEntry: ...

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: list[Attachment] | None = None) -> OutboxEntry: ...

    def create_seed(self, draft: SeedDraft) -> OutboxEntry: ...

    def decide_again(self, entry_id: str) -> OutboxEntry:
        """One step after ALREADY_DECIDED / VERSION_CONFLICT: the same decision, queued
        anew on the fresh version; the rejected entry is removed."""
        ...

    async def refresh_dashboard(self) -> CachedDashboard | None:
        """Fetch the dashboard now (ETag); returns the cache, stale if offline."""
        ...

    def cancel(self, entry_id: str) -> None:
        """Take a still-queued entry back (the undo window)."""

    def discard(self, entry_id: str) -> None:
        """Remove a rejected or held entry the governor no longer wants."""

    def mark_read(self, notification_id: str) -> None: ...

    async def sync_now(self) -> None:
        """Upload the outbox, then download every collection."""
