"""Cold start: the first screen from the client's own snapshot while the engine is built.

Building the engine (SQLAlchemy, Authlib, httpx, APScheduler imports; opening the store and
the token vault) costs most of a second of CPU, and it used to run while the browser was
loading Flutter and before the first screen could be drawn. ``StartingClient`` stands in
for the engine instead: it answers what the first screen reads (account, status, cached
dashboard, notifications) from ``app-snapshot.json``, a copy the app keeps of them beside
its data, and builds the engine (in a worker thread) once the first screen has been
drawn, then hands over to it and tells the screens what changed. The snapshot's
dashboard ages under the engine's staleness rule (``sync.rules.dashboard_as_of``).

Anything the snapshot does not hold (a list, a decision, a sign-in) is answered by the
engine itself: reads wait for it to be built (at most the build time, once), async calls
await it. Without a snapshot (first run, another server) the engine is built at once, as
before. (``governor_app.startup.prewarm`` imports, while the browser loads, the Flet
modules the screens use.)

It is a whole ``GovernorClient``: every method is named here and answered by the
snapshot or handed to the engine; nothing is forwarded by attribute name.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sync import rules
from sync.alerts import approve_at_once
from sync.facade import ApprovalFilter, GovernorClient, Listener, Topic
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
from sync.observable import Listeners

if TYPE_CHECKING:
    from sync.alerts import Alert, BeforeApprove, QuietHours, StepUp
    from sync.notify import NotificationCenter

log = logging.getLogger(__name__)

SNAPSHOT_NAME = "app-snapshot.json"
SNAPSHOT_VERSION = 1
# What the snapshot answers; a change of these rewrites it.
SNAPSHOT_TOPICS: frozenset[str] = frozenset({"auth", "status", "dashboard", "notifications",
                                             "approvals", "outbox"})
# Without a first screen (no browser yet, the sign-in screen) the engine is built anyway
# after this long.
BUILD_AT_LATEST_S = 5.0
# Coalesces bursts of changes (a sync emits several topics) into one snapshot write.
WRITE_DELAY_S = 0.5
# After the first screen has been sent, the browser needs a moment of CPU to draw it; the
# engine's build waits that long unless something needs the engine sooner. (Not a lower
# thread priority instead: a starved thread holding the GIL would stall the server.) Kept
# short: the first tap on a list or a decision waits for the engine, and with 1.5 s the
# build was still running when a governor reached the list (bench/ui.py's usable start
# 8.3 s, 6.2 s with 0.1 s; the first paint did not move).
AFTER_FIRST_SCREEN_S = 0.1
DEFAULT_DASHBOARD_TTL = rules.DASHBOARD_TTL_S


class Snapshot:
    """What the first screen shows, as the engine last reported it."""

    def __init__(self, *, server_url: str, account: Account | None, status: SyncStatus,
                 dashboard: CachedDashboard | None, notifications: list[Notification],
                 written_at: datetime, pending_approvals: int | None = None) -> None:
        self.server_url = server_url
        self.account = account
        self.status = status
        self.dashboard = dashboard
        self.notifications = notifications
        self.written_at = written_at
        # What the "Pending" list counts (its badge), as the engine counted it.
        self.pending_approvals = pending_approvals

    @classmethod
    def of(cls, client: Any, server_url: str, now: datetime) -> Snapshot:
        return cls(server_url=server_url, account=client.account(), status=client.status(),
                   dashboard=client.dashboard(), notifications=client.notifications(),
                   written_at=now, pending_approvals=client.approval_count("pending"))

    def to_json(self) -> str:
        return json.dumps({
            "version": SNAPSHOT_VERSION, "server_url": self.server_url,
            "written_at": self.written_at.isoformat(),
            "account": self.account.model_dump(mode="json") if self.account else None,
            "status": self.status.model_dump(mode="json"),
            "dashboard": self.dashboard.model_dump(mode="json") if self.dashboard else None,
            "notifications": [n.model_dump(mode="json") for n in self.notifications],
            "pending_approvals": self.pending_approvals})

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('version')!r}")
        account = data.get("account")
        dashboard = data.get("dashboard")
        return cls(server_url=str(data["server_url"]),
                   account=Account.model_validate(account) if account else None,
                   status=SyncStatus.model_validate(data["status"]),
                   dashboard=CachedDashboard.model_validate(dashboard) if dashboard else None,
                   notifications=[Notification.model_validate(n)
                                  for n in data.get("notifications", [])],
                   written_at=datetime.fromisoformat(data["written_at"]),
                   pending_approvals=data.get("pending_approvals"))

    @classmethod
    def read(cls, path: Path, server_url: str) -> Snapshot | None:
        """The snapshot kept at ``path`` for ``server_url``; None when there is none, it is
        unreadable, or it was kept for another server."""
        try:
            snapshot = cls.from_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring the app snapshot %s: %s", path, exc)
            return None
        return snapshot if snapshot.server_url == server_url else None

    def write(self, path: Path) -> None:
        """Replace the file at once (a crash leaves the old or the new one, never half)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.to_json())
        os.replace(tmp, path)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class StartingClient:
    """A ``GovernorClient`` that stands in for the engine while it is built.

    ``build`` constructs the engine (in a worker thread); ``snapshot_path`` is where the
    snapshot is read at start and kept up to date afterwards (None: no snapshot, the
    engine is built at once). After the hand-over every call goes to the engine.
    """

    def __init__(self, build: Callable[[], GovernorClient], snapshot_path: Path | None,
                 server_url: str, *, clock: Callable[[], datetime] = _utc_now,
                 dashboard_ttl: float = DEFAULT_DASHBOARD_TTL,
                 build_at_latest: float = BUILD_AT_LATEST_S,
                 after_first_screen: float = AFTER_FIRST_SCREEN_S) -> None:
        self._build_fn = build
        self._path = snapshot_path
        self._server_url = server_url
        self._clock = clock
        self._ttl = dashboard_ttl
        self._build_at_latest = build_at_latest
        self._after_first_screen = after_first_screen
        self._snapshot: Snapshot | None = None
        self._engine: GovernorClient | None = None  # built (maybe not started yet)
        self._started: GovernorClient | None = None  # built and started: every call goes here
        self._listeners: Listeners[[Topic]] = Listeners(log, "a listener of the app")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._built = threading.Event()
        self._build_error: BaseException | None = None
        self._ready: asyncio.Future[GovernorClient] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None  # a snapshot write due
        self._first_screen = False
        self._stopped = False

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        if self._path is not None:
            self._snapshot = await asyncio.to_thread(Snapshot.read, self._path,
                                                     self._server_url)
        if self._snapshot is None:
            await self._engine_ready()
        else:
            self._timer = self._loop.call_later(self._build_at_latest, self._begin_build)

    async def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is None:
            return  # never built: nothing to stop
        with contextlib.suppress(Exception):
            await self._engine_ready()
        if self._started is not None:
            self._write_snapshot()
            await self._started.stop()

    @property
    def starting(self) -> bool:
        """Still answering from the snapshot (the engine is not started yet)."""
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
        before = self._snapshot
        self._started = engine
        self._snapshot = None
        if not self._ready.done():
            self._ready.set_result(engine)
        self._schedule_write()
        if before is not None:
            self._emit(*self._differences(before, engine))

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
        self._begin_build()
        self._built.wait()
        if self._build_error is not None:
            raise self._build_error
        assert self._engine is not None  # built without an error
        return self._engine

    def _differences(self, before: Snapshot, engine: GovernorClient) -> list[Topic]:
        # "auth" always: it is what starts the services that need the engine (push).
        topics: list[Topic] = ["auth", "status"]
        now, then = engine.dashboard(), self._answer_dashboard(before)
        if (now and (now.dashboard, now.stale)) != (then and (then.dashboard, then.stale)):
            topics.append("dashboard")
        if [n.id for n in engine.notifications()] != [n.id for n in before.notifications]:
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
        if topic in SNAPSHOT_TOPICS:
            loop = self._loop
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._schedule_write)

    def _schedule_write(self) -> None:
        if self._write_timer is not None or self._path is None or self._loop is None \
                or self._stopped:
            return
        self._write_timer = self._loop.call_later(WRITE_DELAY_S, self._write_snapshot)

    def _write_snapshot(self) -> None:
        if self._write_timer is not None:  # due now, or written sooner by stop()
            self._write_timer.cancel()
            self._write_timer = None
        if self._path is None or self._started is None:
            return
        try:
            Snapshot.of(self._started, self._server_url, self._clock()).write(self._path)
        except Exception:  # the snapshot only speeds up the next start
            log.exception("could not keep the app snapshot at %s", self._path)

    # --- what the snapshot answers -----------------------------------------------------
    def _answer_dashboard(self, snapshot: Snapshot) -> CachedDashboard | None:
        cached = snapshot.dashboard
        if cached is None:
            return None
        return rules.dashboard_as_of(cached, self._clock(), self._ttl)

    def account(self) -> Account | None:
        snap = self._snapshot
        return snap.account if snap is not None else self._engine_now().account()

    def server_now(self) -> datetime:
        """The engine's server time once it is built; the device clock before (the
        first screen, a fraction of a second, knows no offset yet)."""
        engine = self._started if self._started is not None else self._engine
        return engine.server_now() if engine is not None else self._clock()

    def status(self) -> SyncStatus:
        snap = self._snapshot
        if snap is None:
            return self._engine_now().status()
        # As the engine reports itself at start: offline until its first sync answers.
        return snap.status.model_copy(update={"online": False, "uploading": False,
                                              "downloading": False, "last_error": None})

    def dashboard(self) -> CachedDashboard | None:
        snap = self._snapshot
        if snap is None:
            return self._engine_now().dashboard()
        # The first screen is being built: build the engine once the browser has drawn it.
        if self._loop is not None and self._thread is None and not self._first_screen:
            self._first_screen = True
            self._loop.call_later(self._after_first_screen, self._begin_build)
        return self._answer_dashboard(snap)

    def notifications(self) -> list[Notification]:
        snap = self._snapshot
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

    def notification_center(self, step_up: StepUp, *,
                            open_approval: Callable[[Alert], object],
                            quiet_hours: QuietHours,
                            before_approve: BeforeApprove = approve_at_once
                            ) -> NotificationCenter | None:
        if self._started is None:
            return None
        return self._started.notification_center(step_up, open_approval=open_approval,
                                                 quiet_hours=quiet_hours,
                                                 before_approve=before_approve)

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
        return self._engine_now().approvals(filter, query, limit, offset)

    def approval_count(self, filter: ApprovalFilter = "all", query: str = "") -> int:
        snap = self._snapshot
        if snap is not None and self._started is None and snap.pending_approvals is not None \
                and (filter, query) == ("pending", ""):
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
