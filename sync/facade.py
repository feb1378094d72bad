"""The one interface ``governor_app`` uses: ``GovernorClient``.

The UI reads local state synchronously (it is a cache on this device, always available
offline), calls the async methods for anything that may touch the network, and
subscribes to change topics to re-render. ``sync.engine.SyncEngine`` is the real
implementation; ``sync.fakes.FakeGovernorClient`` is the in-memory one for UI tests and
screenshots; ``sync.cold_start.StartingClient`` stands in for the engine while it is
built. ``tests/sync/behaviour`` runs one suite over all three.

``governor_app`` imports from ``sync`` only this module, ``sync.models``, ``sync.rules``
and ``sync.errors``; ``tests/governor_app/test_seam.py`` holds it to that. Whatever the
app needs of the client is a typed method here (no ``getattr`` across the seam), and the
types those methods speak are re-exported here: the alert vocabulary of ``sync.alerts``
and, for where the app is put together, ``GovernorSettings`` (made by
``governor_settings`` so that importing the door does not pay for pydantic-settings).

Push is the client's: once the app has registered its ``AlertHooks``
(``listen_for_alerts``), every client listens for events while an account is signed in
and stops on sign-out, a refused refresh and ``stop()``; the app renders ``alerts()``,
acts through ``act_on_alert`` and re-renders on the ``"alerts"`` topic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

# The alert vocabulary the app renders and answers with (``sync.alerts``).
from sync.alerts import NO_QUIET_HOURS as NO_QUIET_HOURS
from sync.alerts import NOTIFICATIONS_OFF as NOTIFICATIONS_OFF
from sync.alerts import ActionId as ActionId
from sync.alerts import ActionResult as ActionResult
from sync.alerts import Alert as Alert
from sync.alerts import AlertHooks as AlertHooks
from sync.alerts import AlertPreferences as AlertPreferences
from sync.alerts import NotifierInfo as NotifierInfo
from sync.alerts import PushState as PushState
from sync.alerts import QuietHours as QuietHours
from sync.alerts import Urgency as Urgency
from sync.alerts import VetoConfirmation as VetoConfirmation
from sync.alerts import default_veto_category as default_veto_category
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
    Receipt,
    Seed,
    SeedDraft,
    SeedSchema,
    SyncStatus,
    VetoCategory,
    Violation,
)

# The app's observers fan out as the client's do (one failing never stops the others):
# the helper is part of what the door hands over.
from sync.observable import Listeners as Listeners
from sync.observable import spawn_on as spawn_on

if TYPE_CHECKING:
    from sync.settings import GovernorSettings as GovernorSettings  # for the app

# What changed; the UI re-reads the matching state when told.
Topic = Literal[
    "status", "auth", "dashboard", "approvals", "seeds", "agents", "violations",
    "notifications", "outbox", "alerts",
]
Listener = Callable[[Topic], None]
ApprovalFilter = Literal["all", "pending", "veto_window", "decided"]


class GovernorClient(Protocol):
    # --- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store, resume the session if tokens are kept, start periodic sync."""

    async def stop(self) -> None: ...

    def screen_drawn(self) -> None:
        """The UI has drawn a screen the governor can see. Work held back so as not to take
        the CPU from the first paint may begin now (the cold start builds the engine);
        otherwise nothing. Called any number of times."""
        ...

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

    def server_now(self) -> datetime:
        """The server's time as this device knows it (device clock + measured offset):
        what countdowns, "window closed" checks and ages are computed from."""
        ...

    def dashboard(self) -> CachedDashboard | None: ...

    def approvals(self, filter: ApprovalFilter = "all", query: str = "", limit: int = 200,
                  offset: int = 0) -> list[ApprovalSummary]: ...

    def approval_count(self, filter: ApprovalFilter = "all", query: str = "") -> int:
        """How many requests ``approvals(filter, query)`` lists with no limit."""
        ...

    def approval(self, approval_id: str) -> ApprovalDetail | None: ...

    def seeds(self, query: str = "", limit: int = 200) -> list[Seed]: ...

    def seed(self, seed_id: str) -> Seed | None: ...

    def seed_schema(self) -> SeedSchema | None:
        """The server's rules for a new seed (its JSON Schema, kept on this device; None
        before the first sync): what the seed wizard validates with."""
        ...

    def agents(self) -> list[Agent]: ...

    def violations(self) -> list[Violation]: ...

    def notifications(self) -> list[Notification]: ...

    def outbox(self, states: set[OutboxState] | None = None) -> list[OutboxEntry]: ...

    def receipt(self, approval_id: str) -> Receipt | None:
        """The receipt of this device's latest decision on the request, checked offline
        against the cached key set: ``verified``, ``invalid`` (with why) or ``awaiting``."""
        ...

    def receipts(self, approval_id: str | None = None) -> list[Receipt]:
        """Every kept receipt (or those of one request), oldest first, each checked."""
        ...

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

    async def retire_seed(self, seed_id: str, reason: str) -> Seed:
        """Retire a seed on the server now, saying why (it needs the network and
        governance:write): from then on it matches and auto-approves nothing. Returns the
        retired seed."""
        ...

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

    # --- the periodic sync -------------------------------------------------------------
    def sync_interval(self) -> float:
        """Seconds between periodic syncs as this client runs now; 0 when it runs none
        (the in-memory client, periodic sync off, an engine not started yet)."""
        ...

    def set_sync_interval(self, seconds: float) -> bool:
        """Sync every ``seconds`` from now on; False when this client runs no periodic
        sync now (the interval then applies at the next start)."""
        ...

    # --- push ---------------------------------------------------------------------------
    def why_no_push(self) -> str | None:
        """None when this client can listen for pushes now; otherwise why not, in words
        for the settings screen ("starts with the app, in a moment")."""
        ...

    async def listen_for_alerts(self, hooks: AlertHooks,
                                preferences: AlertPreferences = AlertPreferences()) -> None:
        """Push from now on: while an account is signed in the client listens to the event
        stream, turns events into alerts (through quiet hours and ``preferences``), and
        offers each only the actions the account may take (``sync.alerts.permitted``: a
        read-only auditor gets Open, never Approve or Veto). What needs a person is asked
        through ``hooks`` (the veto's step-up, the danger flags and undo window before an
        approval, where Open goes). It stops on sign-out and on a refused refresh (started
        again once signed in), at ``stop_alerts`` and at ``stop``. Returns once the
        signed-in account's listening has started (or failed: see ``push_state``)."""
        ...

    async def stop_alerts(self) -> None:
        """No more push (the app's shutdown): the stream and the alerts stop."""
        ...

    def alerts(self) -> list[Alert]:
        """The alerts shown now (urgent first, newest first); empty while signed out or
        not listening. Every change is told on the ``"alerts"`` topic."""
        ...

    async def act_on_alert(self, alert_id: str, action: str) -> ActionResult:
        """Press one of an alert's actions (``ActionId``): Approve and Veto are queued in
        the outbox (so they work offline) after the hooks' answer; Open asks the hooks to
        show it. Done, the alert is marked read and replaced for a moment by what became of
        it. Never raises for the person's doing: a gone alert, an action it does not offer,
        a refusal or a cancelled prompt is ``done=False`` with the reason in words."""
        ...

    def dismiss_alert(self, alert_id: str) -> None:
        """Take an alert away without acting (it stays in ``notifications()``)."""

    async def set_alert_preferences(self, preferences: AlertPreferences) -> None:
        """Apply notification settings at once: quiet hours (what they held is shown when
        they end), the urgent override, and the off switch (which clears the alerts shown;
        nothing held pops up when switched back on)."""
        ...

    def push_state(self) -> PushState:
        """Push for the settings screen: listening or not, the stream, and each channel
        with whether it is active and why (not)."""
        ...


# --- putting a client together (the app's entry points) -----------------------------------
# The modules behind these are imported when called: the web server starts, and the first
# screen is drawn, before the engine's imports (SQLAlchemy, Authlib, httpx) are paid for.

def governor_settings(**values: Any) -> GovernorSettings:
    """The engine's settings (``sync.settings.GovernorSettings``: ``GOVERNOR_*`` variables
    under ``values``)."""
    from sync.settings import GovernorSettings

    return GovernorSettings(**values)


def open_engine(settings: GovernorSettings) -> GovernorClient:
    """The real client: the sync engine over the store and token vault in
    ``settings.data_dir``, talking to ``settings.server_url``."""
    import warnings

    # Authlib 1.9 announces a move to "httpx2" when imported (forcing its own "always"
    # filter); nobody running the app can act on it, so it is recorded, not shown.
    with warnings.catch_warnings(record=True):
        import authlib.integrations.httpx_client  # noqa: F401
    from sync.auth import Authenticator
    from sync.engine import SyncEngine
    from sync.tokens import default_vault
    from sync.transport import tls_context

    authenticator = Authenticator(settings.server_url, vault=default_vault(settings.data_dir),
                                  allow_insecure_http=settings.allow_insecure_http,
                                  tls=tls_context(settings.ca_bundle))
    return SyncEngine(settings, authenticator=authenticator)


def open_demo(approvals: int) -> GovernorClient:
    """The in-memory client with ``approvals`` requests (screenshots, UI benchmarks)."""
    from sync.fakes import FakeGovernorClient

    return FakeGovernorClient(approvals=approvals)


def open_cold_start(build: Callable[[], GovernorClient], data_dir: Path,
                    server_url: str) -> GovernorClient:
    """A client that answers the first screen from the engine's store in ``data_dir``
    (read-only) while ``build()`` makes the engine (``sync.cold_start``)."""
    from sync.cold_start import StartingClient
    from sync.store_reads import DATABASE_NAME

    return StartingClient(build, data_dir / DATABASE_NAME, server_url)


def check_server(settings: GovernorSettings) -> None:
    """Raise ``sync.errors.InsecureTransport`` for a server the engine would refuse (plain
    http to another machine, an unreadable CA bundle), before anything is opened."""
    from sync.transport import check_ca_bundle, check_server_url

    check_server_url(settings.server_url, allow_insecure_http=settings.allow_insecure_http)
    check_ca_bundle(settings.ca_bundle)


def kept_receipts(database_path: Path) -> tuple[list[Receipt], int]:
    """Every receipt kept in the database at ``database_path``, each checked offline, and
    how many signing keys were cached to check them with."""
    from sync.receipts import KeySet, receipt_from_row
    from sync.store import LocalStore

    store = LocalStore(database_path)
    try:
        keys = KeySet(store.signing_keys())
        return [receipt_from_row(row, keys) for row in store.receipt_rows()], len(keys)
    finally:
        store.close()
