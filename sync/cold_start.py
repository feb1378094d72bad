"""Cold start: the first screen from the engine's own store while the engine is built.

Building the engine (SQLAlchemy, Authlib, httpx, APScheduler imports; opening the store and
the token vault) costs most of a second of CPU, and it used to run while the browser was
loading Flutter and before the first screen could be drawn. ``StartingClient`` stands in
for the engine instead: it answers what the first screen reads (account, status, cached
dashboard, notifications, the "Pending" badge) from the engine's SQLite store
(``governor.db``), opened read-only with the stdlib ``sqlite3`` through the same queries
the store itself uses (``sync.store_reads``), and builds the engine (in a worker thread)
once the first screen has been drawn, then hands over to it and tells the screens what
changed. The dashboard ages under the engine's staleness rule (``sync.rules
.dashboard_as_of``). There is no second copy of the state: an ``app-snapshot.json`` left
by an earlier version (which held the dashboard and notifications in clear) is deleted.

What the store keeps sealed (``sync.sealing``: veto reasons, comments, notes) needs the
device key, which is in the token vault, opened with the engine: until the hand-over the
first screen shows those rows without their secret text (a recent veto without its
reason), and the hand-over redraws them. The account is the one the engine last recorded
in the store (``LocalStore.keep_account``; the vault stays the authority, and the
hand-over always re-reads it).

A page of the approvals list (the dashboard names the nearest request in a veto window)
is read from the store when asked, through the engine's own query
(``store_reads.approval_page``). Anything else (a request's detail, a decision, a
sign-in) is answered by the engine itself: reads wait for it to be built (at most the
build time, once), async calls await it. When the
store cannot answer (first run, another server, an older schema no version has migrated
yet, no account recorded, a locked or damaged file) the engine is built at once, as
before. (``governor_app.startup.prewarm`` imports, while the browser loads, the Flet
modules the screens use.)

It is a whole ``GovernorClient``: every method is named here and answered by the store's
facts or handed to the engine; nothing is forwarded by attribute name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

from sync import rules, store_reads
from sync.alert_feed import not_listening
from sync.alerts import (
    ActionResult,
    Alert,
    AlertHooks,
    AlertPreferences,
    PushState,
)
from sync.errors import ClientStopped
from sync.facade import ApprovalFilter, GovernorClient, Listener, Topic
from sync.models import (
    Account,
    Agent,
    ApprovalDetail,
    ApprovalSummary,
    Attachment,
    CachedDashboard,
    Conflict,
    Dashboard,
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
from sync.observable import Listeners
from sync.sealing import open_secrets

log = logging.getLogger(__name__)

# What earlier versions kept beside the data: a second copy of the first screen (in
# clear). Deleted at start.
STALE_SNAPSHOT_NAME = "app-snapshot.json"
# A store locked by another process (the engine of another app instance migrating it) is
# not waited for: the engine is built at once and waits for it itself.
LOCK_WAIT_S = 0.2
# Without a first screen (no browser yet, the sign-in screen) the engine is built anyway
# after this long.
BUILD_AT_LATEST_S = 5.0
# The engine is built once the UI says it has drawn the first screen (``screen_drawn``: in
# the browser, the frame's first layout): building it while the browser drew took the CPU
# from the drawing (2 cores: the browser's main thread and its WebAssembly compiler, and
# the build's ~0.5 s of imports). Measured with bench/ui.py, alternating, 5 rounds each:
# first paint 2.30/2.38 s against 2.54/2.54 s when the build began 0.1 s after the screen
# was sent, and the first decision reached the server no later (4.43/4.70 s against
# 4.66/4.68 s). Should the UI never say so, the build begins this long after the first
# screen read the dashboard. (Not a lower thread priority instead: a starved thread
# holding the GIL would stall the server.) Anything that needs the engine sooner (a tap on
# a list, a decision) builds it at once.
AFTER_FIRST_SCREEN_S = 1.0
DEFAULT_DASHBOARD_TTL = rules.DASHBOARD_TTL_S


def _withheld(stored: str, bound: str) -> object:
    """Stored JSON as the cold start shows it: sealed values left out (no key yet)."""
    return open_secrets(json.loads(stored), None, bound, unopened=None)


def _parsed(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class FirstScreen:
    """What the first screen shows, as the engine's store holds it."""

    def __init__(self, *, account: Account | None, status: SyncStatus,
                 dashboard: CachedDashboard | None, notifications: list[Notification],
                 pending_approvals: int) -> None:
        self.account = account
        # As the engine reports itself at start: offline until its first sync answers.
        self.status = status
        self.dashboard = dashboard  # as fetched; aged when answered
        self.notifications = notifications
        # What the "Pending" list counts (its badge), as the engine counts it.
        self.pending_approvals = pending_approvals

    @classmethod
    def read(cls, database_path: Path, server_url: str, now: datetime,
             lock_wait: float = LOCK_WAIT_S) -> FirstScreen | None:
        """The first screen from the store at ``database_path`` for ``server_url``; None
        when the store cannot answer it (see the module's docstring), logged."""
        if not database_path.exists():
            return None  # the first run: the engine creates it
        try:
            db = store_reads.open_read_only(database_path, lock_wait)
        except sqlite3.Error as exc:
            log.warning("the store %s cannot be opened read-only (%s); starting the engine "
                        "at once", database_path, exc)
            return None
        try:
            db.execute("BEGIN")  # every read from one snapshot of the store
            return cls._of(db, server_url, now)
        except (sqlite3.Error, ValueError, KeyError, TypeError) as exc:
            # A damaged or locked file, or rows this version cannot read: the engine
            # reports what is wrong with it.
            log.warning("the first screen cannot be read from %s (%s); starting the engine "
                        "at once", database_path, exc)
            return None
        finally:
            db.close()

    @classmethod
    def _of(cls, db: sqlite3.Connection, server_url: str, now: datetime
            ) -> FirstScreen | None:
        if not store_reads.schema_current(db):
            log.info("the store has an older schema; the engine migrates it first")
            return None
        if store_reads.meta(db, store_reads.SERVER_META) != \
                store_reads.server_identity(server_url):
            return None  # another server's cache: the engine drops it
        known, fields = store_reads.kept_account(db)
        if not known:
            return None  # no version that records the account has run yet
        account = Account.model_validate(fields) if fields is not None else None
        owner = account.sub if account is not None else None
        counts = store_reads.outbox_counts(db, owner)
        status = SyncStatus(
            last_synced_at=_parsed(store_reads.meta(db, store_reads.LAST_SYNCED_META)),
            pending_count=counts.get("queued", 0) + counts.get("sending", 0),
            oldest_pending_at=_parsed(store_reads.oldest_pending_at(db, owner)),
            held_count=counts.get("held", 0), rejected_count=counts.get("rejected", 0),
            other_accounts_count=store_reads.foreign_count(db, owner),
            signed_in=account is not None)
        row = store_reads.dashboard_row(db)
        dashboard = None
        if row is not None:
            fetched_at = _parsed(row[2])
            assert fetched_at is not None  # NOT NULL
            dashboard = CachedDashboard(
                dashboard=Dashboard.model_validate(_withheld(row[0], "dashboard")),
                fetched_at=fetched_at, stale=False, age_s=0.0)
        notifications = [
            Notification.model_validate({**body, "read": read})
            for nid, stored, read in store_reads.notification_rows(db, owner)
            for body in (_withheld(stored, f"notification/{nid}"),)
            if isinstance(body, dict)]
        pending = store_reads.approval_total(db, owner, "pending", "", store_reads.iso(now))
        return cls(account=account, status=status, dashboard=dashboard,
                   notifications=notifications, pending_approvals=pending)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StartingClient:
    """A ``GovernorClient`` that stands in for the engine while it is built.

    ``build`` constructs the engine (in a worker thread); ``database_path`` is the
    engine's store, read (read-only) at start for the first screen (None: the engine is
    built at once). After the hand-over every call goes to the engine.
    """

    def __init__(self, build: Callable[[], GovernorClient], database_path: Path | None,
                 server_url: str, *, clock: Callable[[], datetime] = _utc_now,
                 dashboard_ttl: float = DEFAULT_DASHBOARD_TTL,
                 build_at_latest: float = BUILD_AT_LATEST_S,
                 after_first_screen: float = AFTER_FIRST_SCREEN_S) -> None:
        self._build_fn = build
        self._path = database_path
        self._server_url = server_url
        self._clock = clock
        self._ttl = dashboard_ttl
        self._build_at_latest = build_at_latest
        self._after_first_screen = after_first_screen
        self._first: FirstScreen | None = None  # until the hand-over
        self._engine: GovernorClient | None = None  # built (maybe not started yet)
        self._started: GovernorClient | None = None  # built and started: every call goes here
        self._listeners: Listeners[[Topic]] = Listeners(log, "a listener of the app")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._built = threading.Event()
        self._build_error: BaseException | None = None
        self._ready: asyncio.Future[GovernorClient] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._first_screen = False
        self._stopped = False
        # Push asked for before the hand-over: the engine listens once it takes over.
        self._alert_hooks: AlertHooks | None = None
        self._alert_preferences = AlertPreferences()

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        if self._path is not None:
            self._first = await asyncio.to_thread(self._read_first_screen, self._path)
        if self._first is None:
            await self._engine_ready()
        else:
            self._timer = self._loop.call_later(self._build_at_latest, self._begin_build)

    def _read_first_screen(self, path: Path) -> FirstScreen | None:
        # The copy earlier versions kept goes (it held the dashboard and notifications in
        # clear that the store keeps sealed).
        try:
            (path.parent / STALE_SNAPSHOT_NAME).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not delete the stale %s: %s", STALE_SNAPSHOT_NAME, exc)
        return FirstScreen.read(path, self._server_url, self._clock())

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is None:
            return  # never built: nothing to stop
        with contextlib.suppress(Exception):
            await self._engine_ready()
        if self._started is not None:
            await self._started.stop()

    def screen_drawn(self) -> None:
        """The first screen is on view: build the engine now (the fallback timer of the
        dashboard read is then moot). Safe from any thread: the UI may call it from a
        handler's worker thread."""
        loop = self._loop
        if self._first is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: stopped
                loop.call_soon_threadsafe(self._begin_build)

    @property
    def starting(self) -> bool:
        """Still answering from the store's first screen (the engine is not started
        yet)."""
        return self._started is None

    def _begin_build(self) -> None:
        """Start building the engine in a worker thread (once)."""
        if self._thread is not None or self._stopped:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._thread = threading.Thread(target=self._build_in_thread, name="engine-build",
                                        daemon=True)
        self._thread.start()

    def _build_in_thread(self) -> None:
        try:
            self._engine = self._build_fn()
        except BaseException as exc:  # reported to whoever awaits the engine
            self._build_error = exc
        finally:
            self._built.set()
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._on_built)

    def _on_built(self) -> None:
        assert self._loop is not None
        self._loop.create_task(self._hand_over())

    async def _hand_over(self) -> None:
        assert self._ready is not None
        if self._ready.done():
            return
        if self._build_error is not None:
            self._ready.set_exception(self._build_error)
            return
        engine = self._engine
        assert engine is not None  # built without an error
        try:
            await engine.start()
        except BaseException as exc:
            # Stopped all the same: a probe it began before the hand-over (a synchronous
            # call reached it while it was built) must not outlive it, and nothing else
            # will stop an engine that never became ``_started``.
            with contextlib.suppress(Exception):
                await engine.stop()
            if not self._ready.done():
                self._ready.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # cancelled: the loop is going away
            return  # reported to whoever awaits the engine (``_ready``), not logged twice
        engine.subscribe(self._on_engine_change)
        before = self._first
        self._started = engine
        self._first = None
        if not self._ready.done():
            self._ready.set_result(engine)
        if before is not None:
            self._emit(*self._differences(before, engine))
        if self._alert_hooks is not None:
            await engine.listen_for_alerts(self._alert_hooks, self._alert_preferences)

    async def _engine_ready(self) -> GovernorClient:
        """The started engine (building it now if that has not begun)."""
        assert self._ready is not None, "start() first"
        self._begin_build()
        engine: GovernorClient = await asyncio.shield(self._ready)
        return engine

    def _engine_now(self) -> GovernorClient:
        """The engine for a synchronous call: built already, or built now (the caller
        waits for the build once; the engine's own start follows on the loop)."""
        if self._started is not None:
            return self._started
        if self._stopped and self._thread is None:
            # Waiting for a build that stop() will never begin would hang the caller.
            raise ClientStopped("the app is shutting down: its engine was never started, "
                                "so nothing can answer now; start the app again.")
        self._begin_build()
        self._built.wait()
        if self._build_error is not None:
            raise self._build_error
        assert self._engine is not None  # built without an error
        return self._engine

    def _differences(self, before: FirstScreen, engine: GovernorClient) -> list[Topic]:
        # "auth" always: who is signed in is the engine's word from now on.
        topics: list[Topic] = ["auth", "status"]
        now, then = engine.dashboard(), self._answer_dashboard(before)
        # Sealed text the first screen left out differs too: those rows are redrawn.
        if (now and (now.dashboard, now.stale)) != (then and (then.dashboard, then.stale)):
            topics.append("dashboard")
        if engine.notifications() != before.notifications:
            topics.append("notifications")
        return topics

    # --- change notifications -----------------------------------------------------------
    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._listeners.subscribe(listener)

    def _emit(self, *topics: Topic) -> None:
        for topic in topics:  # a broken view must not break the others
            self._listeners.emit(topic)

    def _on_engine_change(self, topic: Topic) -> None:
        self._emit(topic)

    # --- what the store's first screen answers --------------------------------------------
    def _answer_dashboard(self, first: FirstScreen) -> CachedDashboard | None:
        cached = first.dashboard
        if cached is None:
            return None
        return rules.dashboard_as_of(cached, self._clock(), self._ttl)

    def account(self) -> Account | None:
        snap = self._first
        return snap.account if snap is not None else self._engine_now().account()

    def server_now(self) -> datetime:
        """The engine's server time once it is built; the device clock before (the
        first screen, a fraction of a second, knows no offset yet)."""
        engine = self._started if self._started is not None else self._engine
        return engine.server_now() if engine is not None else self._clock()

    def status(self) -> SyncStatus:
        snap = self._first
        if snap is None:
            return self._engine_now().status()
        oldest = snap.status.oldest_pending_at
        if oldest is None:
            return snap.status
        return snap.status.model_copy(update={
            "oldest_pending_age_s": (self._clock() - oldest).total_seconds()})

    def dashboard(self) -> CachedDashboard | None:
        snap = self._first
        if snap is None:
            return self._engine_now().dashboard()
        # The first screen is being built: the engine is built once the UI says it is
        # drawn (``screen_drawn``), or after ``AFTER_FIRST_SCREEN_S`` if it never says.
        if self._loop is not None and self._thread is None and not self._first_screen:
            self._first_screen = True
            self._loop.call_later(self._after_first_screen, self._begin_build)
        return self._answer_dashboard(snap)

    def notifications(self) -> list[Notification]:
        snap = self._first
        if snap is None:
            return self._engine_now().notifications()
        return list(snap.notifications)

    # --- everything else is the engine's ------------------------------------------------
    def sync_interval(self) -> float:
        return self._started.sync_interval() if self._started is not None else 0.0

    def set_sync_interval(self, seconds: float) -> bool:
        # Before the hand-over the engine starts with the saved interval anyway.
        if self._started is None:
            if not seconds > 0:
                raise ValueError(f"Sync interval {seconds!r} is not a positive number of "
                                 "seconds; give at least 1.")
            return False
        return bool(self._started.set_sync_interval(seconds))

    def why_no_push(self) -> str | None:
        # Push needs the engine; the "auth" change at the hand-over starts it.
        if self._started is None:
            return "starts with the app, in a moment"
        return self._started.why_no_push()

    # --- push: the engine's, once it takes over -------------------------------------------
    async def listen_for_alerts(self, hooks: AlertHooks,
                                preferences: AlertPreferences = AlertPreferences()) -> None:
        self._alert_hooks, self._alert_preferences = hooks, preferences
        if self._started is not None:
            await self._started.listen_for_alerts(hooks, preferences)

    async def stop_alerts(self) -> None:
        self._alert_hooks = None
        if self._started is not None:
            await self._started.stop_alerts()

    def alerts(self) -> list[Alert]:
        return self._started.alerts() if self._started is not None else []

    async def act_on_alert(self, alert_id: str, action: str) -> ActionResult:
        if self._started is None:  # no alert is shown before the hand-over
            return ActionResult(action, False, None, "Notifications start with the app, in "
                                "a moment; press it again then.")
        return await self._started.act_on_alert(alert_id, action)

    def dismiss_alert(self, alert_id: str) -> None:
        if self._started is not None:
            self._started.dismiss_alert(alert_id)

    async def set_alert_preferences(self, preferences: AlertPreferences) -> None:
        self._alert_preferences = preferences
        if self._started is not None:
            await self._started.set_alert_preferences(preferences)

    def push_state(self) -> PushState:
        if self._started is not None:
            return self._started.push_state()
        return not_listening(self.why_no_push() or "starts in a moment")

    async def sign_in_with_browser(self, open_url: Callable[[str], Awaitable[None] | None]
                                   ) -> Account:
        return await (await self._engine_ready()).sign_in_with_browser(open_url)

    async def sign_in_with_password(self, username: str, password: str) -> Account:
        return await (await self._engine_ready()).sign_in_with_password(username, password)

    async def start_device_sign_in(self) -> DeviceCode:
        return await (await self._engine_ready()).start_device_sign_in()

    async def finish_device_sign_in(self, code: DeviceCode) -> Account:
        return await (await self._engine_ready()).finish_device_sign_in(code)

    async def sign_out(self) -> None:
        await (await self._engine_ready()).sign_out()

    async def confirm_identity(self, password: str) -> bool:
        return await (await self._engine_ready()).confirm_identity(password)

    async def refresh_dashboard(self) -> CachedDashboard | None:
        return await (await self._engine_ready()).refresh_dashboard()

    async def sync_now(self) -> None:
        await (await self._engine_ready()).sync_now()

    async def retire_seed(self, seed_id: str, reason: str) -> Seed:
        return await (await self._engine_ready()).retire_seed(seed_id, reason)

    def approvals(self, filter: ApprovalFilter = "all", query: str = "", limit: int = 200,
                  offset: int = 0) -> list[ApprovalSummary]:
        snap = self._first
        if snap is not None and self._started is None and not self._stopped:
            listed = self._listed_from_store(snap, filter, query, limit, offset)
            if listed is not None:
                return listed
        return self._engine_now().approvals(filter, query, limit, offset)

    def _listed_from_store(self, first: FirstScreen, filter: ApprovalFilter, query: str,
                           limit: int, offset: int) -> list[ApprovalSummary] | None:
        """A page of the list read from the store now, through the engine's own query (the
        dashboard names the nearest request in a veto window: the first screen must not
        wait for the engine's build); None when the store cannot answer (the engine
        does)."""
        assert self._path is not None  # a first screen was read from it
        owner = first.account.sub if first.account is not None else None
        db: sqlite3.Connection | None = None
        try:
            db = store_reads.open_read_only(self._path, LOCK_WAIT_S)
            rows = store_reads.approval_page(db, owner, filter, query.strip().lower(),
                                             store_reads.iso(self._clock()), limit, offset)
            return [store_reads.shown(ApprovalSummary, json.loads(summary), pending)
                    for summary, pending in rows]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            log.warning("the list cannot be read from %s (%s); asking the engine",
                        self._path, exc)
            return None
        finally:
            if db is not None:
                db.close()

    def approval_count(self, filter: ApprovalFilter = "all", query: str = "") -> int:
        snap = self._first
        if snap is not None and self._started is None and (filter, query) == ("pending", ""):
            return snap.pending_approvals  # the first screen's badge: no engine needed
        return self._engine_now().approval_count(filter, query)

    def approval(self, approval_id: str) -> ApprovalDetail | None:
        return self._engine_now().approval(approval_id)

    def seeds(self, query: str = "", limit: int = 200) -> list[Seed]:
        return self._engine_now().seeds(query, limit)

    def seed(self, seed_id: str) -> Seed | None:
        return self._engine_now().seed(seed_id)

    def seed_schema(self) -> SeedSchema | None:
        return self._engine_now().seed_schema()

    def agents(self) -> list[Agent]:
        return self._engine_now().agents()

    def violations(self) -> list[Violation]:
        return self._engine_now().violations()

    def outbox(self, states: set[OutboxState] | None = None) -> list[OutboxEntry]:
        return self._engine_now().outbox(states)

    def conflict(self, entry_id: str) -> Conflict | None:
        return self._engine_now().conflict(entry_id)

    def receipt(self, approval_id: str) -> Receipt | None:
        return self._engine_now().receipt(approval_id)

    def receipts(self, approval_id: str | None = None) -> list[Receipt]:
        return self._engine_now().receipts(approval_id)

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
        return self._engine_now().approve(approval_id, comment)

    def request_changes(self, approval_id: str, reason: str) -> OutboxEntry:
        return self._engine_now().request_changes(approval_id, reason)

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: list[Attachment] | None = None) -> OutboxEntry:
        return self._engine_now().veto(approval_id, category, reason, attachments)

    def create_seed(self, draft: SeedDraft) -> OutboxEntry:
        return self._engine_now().create_seed(draft)

    def decide_again(self, entry_id: str) -> OutboxEntry:
        return self._engine_now().decide_again(entry_id)

    def cancel(self, entry_id: str) -> None:
        self._engine_now().cancel(entry_id)

    def discard(self, entry_id: str) -> None:
        self._engine_now().discard(entry_id)

    def mark_read(self, notification_id: str) -> None:
        self._engine_now().mark_read(notification_id)
