"""``SyncEngine``: the offline-first ``GovernorClient``.

Reads come from the local store and never wait for the network. Writes are queued in the
outbox in one local transaction and show at once (the cached approval reports the pending
decision); the engine sends them when it can: on the periodic sync (APScheduler), on
``sync_now()``, and at once on a reconnect (a request succeeds again after failing, the
event stream reopens, or the OS reports the network back).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx

from sync.api import ApiClient, Authenticator
from sync.clock import Clock, SystemClock
from sync.download import Downloader
from sync.errors import (
    InvalidDecision,
    RateLimitedByServer,
    ServerUnreachable,
    SignInRequired,
    SyncError,
)
from sync.facade import ApprovalFilter, Listener, Topic
from sync.models import (
    PENDING_SHOWS_AS,
    SCOPE_VETO,
    SCOPE_WRITE,
    Account,
    Agent,
    ApprovalDetail,
    ApprovalStatus,
    ApprovalSummary,
    Attachment,
    CachedDashboard,
    Conflict,
    Dashboard,
    DecisionAction,
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
from sync.observable import Listeners
from sync.outbox import Outbox, UploadReport
from sync.retry import RetryPolicy
from sync.settings import GovernorSettings
from sync.store import LocalStore, iso, parse_iso

log = logging.getLogger(__name__)
SYNC_JOB_ID = "governor-sync"  # the APScheduler job of the periodic sync


def server_identity(url: str) -> str:
    """``url`` as the name of a server: scheme and host in lower case, no trailing slash
    (``HTTP://Host:8000/`` and ``http://host:8000`` are one server)."""
    parts = urlsplit(url.strip())
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path.rstrip("/"),
                       parts.query, "")) or url

MAX_REASON = 2000
MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
REMIND_1H = 1
REMIND_10M = 2
CONFLICT_CODES = frozenset({"ALREADY_DECIDED", "VERSION_CONFLICT"})
KEEP_APPLIED = timedelta(days=7)

_UNANSWERED = {OutboxState.QUEUED, OutboxState.SENDING, OutboxState.HELD}
_VETOABLE = {ApprovalStatus.PENDING_APPROVAL, ApprovalStatus.APPROVED,
             ApprovalStatus.AUTO_APPROVED}


class SyncEngine:
    """Implements ``sync.facade.GovernorClient`` over a ``LocalStore`` and the API.

    Collaborators come in through the constructor: ``store`` (default: the database in
    ``settings.data_dir``), ``transport`` (httpx transport; default: the network),
    ``clock`` and ``rng`` (backoff jitter).
    """

    def __init__(self, settings: GovernorSettings | None = None, *,
                 authenticator: Authenticator, store: LocalStore | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Clock | None = None, rng: random.Random | None = None) -> None:
        self.settings = settings or GovernorSettings()
        self.clock: Clock = clock or SystemClock()
        self._owns_store = store is None
        self.store = store if store is not None else LocalStore(self.settings.database_path)
        self.device_id = self.store.device_id(self.settings.device_id)
        # A store caches one server: pointed at another, it drops that cache and holds
        # what was queued for the old one (see LocalStore.bind_server).
        self.server_switch = self.store.bind_server(server_identity(self.settings.server_url))
        if self.server_switch is not None:
            log.warning("sync: the store moved from %s to %s; %d queued decisions held for "
                        "the old server, %d released", self.server_switch.previous,
                        self.server_switch.current, self.server_switch.held,
                        self.server_switch.released)
        self.auth = authenticator
        self.api = ApiClient(self.settings.server_url, authenticator=authenticator,
                             transport=transport, timeout=self.settings.request_timeout,
                             on_reachable=self._on_reachable)
        self.outbox_sender = Outbox(self.store, self.api, self.clock,
                                    batch_size=self.settings.batch_size)
        self.downloader = Downloader(self.store, self.api, self.clock)
        self.retry = RetryPolicy(self.clock, rng=rng)
        self._listeners: Listeners[[Topic]] = Listeners(log, "a listener of the engine")
        self._online = False
        self._uploading = False
        self._downloading = False
        self._needs_sign_in = False
        self._last_error: str | None = None
        self._upload_lock: asyncio.Lock | None = None
        self._flush_task: asyncio.Task[None] | None = None
        self._scheduler: Any = None
        self.last_upload: UploadReport | None = None

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Resume the session if tokens are kept and start the periodic sync."""
        self._check_account()
        self.check_deadlines()
        if self.settings.sync_interval > 0:
            from apscheduler.schedulers.asyncio import AsyncIOScheduler

            scheduler = AsyncIOScheduler()
            scheduler.add_job(self.tick, "interval", seconds=self.settings.sync_interval,
                              id=SYNC_JOB_ID, max_instances=1, coalesce=True,
                              next_run_time=datetime.now().astimezone())
            scheduler.start()
            self._scheduler = scheduler

    def set_sync_interval(self, seconds: float) -> bool:
        """Sync every ``seconds`` from now on (the settings screen). ``False`` when this
        engine runs no periodic sync (started with the interval 0, or not started): the
        new interval then applies at the next start."""
        if not seconds > 0:
            raise ValueError(f"Sync interval {seconds!r} is not a positive number of "
                             "seconds; give at least 1.")
        scheduler = self._scheduler
        if scheduler is None or scheduler.get_job(SYNC_JOB_ID) is None:
            return False
        scheduler.reschedule_job(SYNC_JOB_ID, trigger="interval", seconds=seconds)
        self.settings.sync_interval = float(seconds)
        return True

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        if self._flush_task is not None:
            self._flush_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flush_task
        await self.api.aclose()
        if self._owns_store:
            self.store.close()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        return self._listeners.subscribe(listener)

    def _emit(self, *topics: Topic) -> None:
        for topic in topics:  # a broken view must not break syncing
            self._listeners.emit(topic)

    # --- auth -------------------------------------------------------------------------
    def account(self) -> Account | None:
        return self.auth.account()

    def _check_account(self) -> Account | None:
        """Hold what other accounts queued; release what this one queued."""
        account = self.auth.account()
        held, released = self.store.hold_foreign(account.sub if account else None)
        if held or released:
            self._emit("outbox", "approvals")
        return account

    async def _signed_in(self, account: Account) -> Account:
        self._needs_sign_in = False
        self._last_error = None
        self._check_account()
        self._emit("auth", "status")
        self._schedule_flush(force=True)
        return account

    async def sign_in_with_browser(self, open_url: Callable[[str], Awaitable[None] | None]
                                   ) -> Account:
        return await self._signed_in(await self.auth.sign_in_with_browser(open_url))

    async def sign_in_with_password(self, username: str, password: str) -> Account:
        return await self._signed_in(await self.auth.sign_in_with_password(username, password))

    async def start_device_sign_in(self) -> DeviceCode:
        return await self.auth.start_device_sign_in()

    async def finish_device_sign_in(self, code: DeviceCode) -> Account:
        return await self._signed_in(await self.auth.finish_device_sign_in(code))

    async def sign_out(self) -> None:
        # The cache and the outbox stay: what was queued waits for its author to return.
        await self.auth.sign_out()
        self._check_account()
        self._emit("auth", "status", "outbox")

    async def confirm_identity(self, password: str) -> bool:
        return await self.auth.confirm_identity(password)

    # --- status -----------------------------------------------------------------------
    def status(self) -> SyncStatus:
        counts = self.store.counts()
        oldest = self.store.oldest_pending_at()
        last = self.store.get_meta("last_synced_at")
        return SyncStatus(
            online=self._online, uploading=self._uploading, downloading=self._downloading,
            last_synced_at=parse_iso(last), pending_count=counts.get("queued", 0)
            + counts.get("sending", 0), oldest_pending_at=oldest,
            oldest_pending_age_s=((self.clock.now() - oldest).total_seconds()
                                  if oldest else None),
            held_count=counts.get("held", 0), rejected_count=counts.get("rejected", 0),
            last_error=self._last_error, signed_in=self.auth.account() is not None,
            needs_sign_in=self._needs_sign_in)

    def _set(self, **flags: bool) -> None:
        for name, value in flags.items():
            setattr(self, f"_{name}", value)
        self._emit("status")

    # --- reads ------------------------------------------------------------------------
    def dashboard(self) -> CachedDashboard | None:
        cached = self.store.load_dashboard()
        if cached is None:
            return None
        body, _etag, fetched_at = cached
        age = (self.clock.now() - fetched_at).total_seconds()
        return CachedDashboard(dashboard=Dashboard.model_validate(body), fetched_at=fetched_at,
                               stale=age > self.settings.dashboard_ttl, age_s=max(0.0, age))

    def _present(self, fields: dict[str, Any], pending: DecisionAction | None,
                 model: type[ApprovalSummary]) -> ApprovalSummary:
        item = model.model_validate(fields)
        if pending is not None:
            item.pending_decision = pending
            item.status = PENDING_SHOWS_AS[pending]
        return item

    def approvals(self, filter: ApprovalFilter = "all", query: str = "", limit: int = 200,
                  offset: int = 0) -> list[ApprovalSummary]:
        """One page of the cached requests, newest first, as shown (a decision still
        unanswered shows as the status it leads to, and filters by it). ``filter``:
        "all", "pending", "veto_window" (approved, deadline not passed) or "decided";
        ``query``: a case-insensitive substring of the id, agent name or id, requester or
        industry. Filtering, search and paging run in SQL; only the page is validated."""
        page = self.store.approval_page(filter, query.strip().lower(), self.clock.now(),
                                        limit, offset)
        return [self._present(fields, pending, ApprovalSummary) for fields, pending in page]

    def approval_count(self, filter: ApprovalFilter = "all", query: str = "") -> int:
        """How many requests ``approvals(filter, query)`` lists with no limit ("N
        requests"), counted without loading them."""
        return self.store.approval_total(filter, query.strip().lower(), self.clock.now())

    def approval(self, approval_id: str) -> ApprovalDetail | None:
        found = self.store.approval(approval_id)
        if found is None:
            return None
        pending = self.store.pending_action(approval_id)
        return cast(ApprovalDetail, self._present(found[0], pending, ApprovalDetail))

    def seeds(self, query: str = "", limit: int = 200) -> list[Seed]:
        return [Seed.model_validate(s) for s in self.store.search_seeds(query, limit)]

    def seed(self, seed_id: str) -> Seed | None:
        found = self.store.seed(seed_id)
        return Seed.model_validate(found) if found else None

    def agents(self) -> list[Agent]:
        return [Agent.model_validate(a) for a in self.store.agents()]

    def violations(self) -> list[Violation]:
        return [Violation.model_validate(v) for v in self.store.violations()]

    def notifications(self) -> list[Notification]:
        return [Notification.model_validate({**body, "read": read})
                for body, read in self.store.notifications()]

    def outbox(self, states: set[OutboxState] | None = None) -> list[OutboxEntry]:
        return self.store.entries(states)

    def conflict(self, entry_id: str) -> Conflict | None:
        """What changed under a rejected decision, and whether it can be made again."""
        entry = self.store.entry(entry_id)
        if entry is None or entry.state != OutboxState.REJECTED or entry.approval_id is None:
            return None
        details = entry.error_details
        approval = self.approval(entry.approval_id)
        current_status = details.get("status") or (approval.status if approval else None)
        current_version = details.get("current_version", details.get("version"))
        if current_version is None and approval is not None:
            current_version = approval.version
        can_again = False
        if entry.error_code in CONFLICT_CODES and approval is not None and entry.action:
            can_again = self._allowed(entry.action, approval.status)
        return Conflict(
            entry=entry, code=entry.error_code or "REJECTED",
            message=entry.error_message or "", decided_by=details.get("decided_by"),
            decided_at=details.get("decided_at"),
            current_status=ApprovalStatus(str(current_status)) if current_status in
            ApprovalStatus._value2member_map_ else None,
            current_version=int(current_version) if current_version is not None else None,
            approval=approval, can_decide_again=can_again)

    # --- writes -----------------------------------------------------------------------
    @staticmethod
    def _allowed(action: DecisionAction, status: ApprovalStatus) -> bool:
        if action == DecisionAction.VETO:
            return status in _VETOABLE
        return status == ApprovalStatus.PENDING_APPROVAL

    def _author(self, action: DecisionAction | None) -> Account:
        account = self.auth.account()
        if account is None:
            raise SignInRequired("Sign in before deciding; decisions are sent as the "
                                 "governor who made them.")
        scope = SCOPE_VETO if action == DecisionAction.VETO else SCOPE_WRITE
        if not account.can(scope):
            raise InvalidDecision(f"Account {account.username!r} lacks the {scope!r} scope "
                                  "needed for this; sign in as a governor who has it.")
        return account

    def _decide(self, approval_id: str, action: DecisionAction, fields: dict[str, Any],
                attachments: list[Attachment] | None = None) -> OutboxEntry:
        account = self._author(action)
        found = self.store.approval(approval_id)
        if found is None:
            raise InvalidDecision(f"Approval {approval_id!r} is not on this device; "
                                  "sync and open it again.")
        server = ApprovalSummary.model_validate(found[0])
        pending = self.store.pending_action(approval_id)
        status = PENDING_SHOWS_AS[pending] if pending else server.status
        if pending == action or (pending is not None and action != DecisionAction.VETO):
            raise InvalidDecision(f"A {pending.value} of {approval_id!r} is already queued; "
                                  "cancel it first to decide differently.")
        if not self._allowed(action, status):
            raise InvalidDecision(f"Approval {approval_id!r} is {status.value}; it can no "
                                  f"longer take a {action.value}.")
        now = self.clock.now()
        entry_id = str(uuid.uuid4())
        payload: dict[str, Any] = {"id": entry_id, "approval_id": approval_id,
                                   "action": action.value, "decided_at": iso(now),
                                   "device_id": self.device_id}
        if action != DecisionAction.VETO:
            # Approve and request-changes are conditional; a veto is absolute.
            payload["expected_version"] = server.version
        payload.update({k: v for k, v in fields.items() if v is not None})
        entry = self.store.enqueue(
            entry_id=entry_id, kind="decision", payload=payload, created_at=now,
            approval_id=approval_id, action=action, expected_version=server.version,
            veto_deadline=server.veto_deadline, sub=account.sub,
            attachments=attachments or ())
        self._emit("outbox", "approvals", "status")
        self.check_deadlines()
        self._schedule_flush()
        return entry

    @staticmethod
    def _reason(reason: str, what: str) -> str:
        reason = reason.strip()
        if not 1 <= len(reason) <= MAX_REASON:
            raise InvalidDecision(f"The {what} reason must be 1 to {MAX_REASON} characters "
                                  f"(it is {len(reason)}); shorten or fill it in.")
        return reason

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
        if comment is not None and len(comment) > MAX_REASON:
            raise InvalidDecision(f"The comment on {approval_id!r} is {len(comment)} "
                                  f"characters; keep it to {MAX_REASON}.")
        return self._decide(approval_id, DecisionAction.APPROVE, {"comment": comment or None})

    def request_changes(self, approval_id: str, reason: str) -> OutboxEntry:
        return self._decide(approval_id, DecisionAction.REQUEST_CHANGES,
                            {"reason": self._reason(reason, "request-changes")})

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: list[Attachment] | None = None) -> OutboxEntry:
        category = VetoCategory(category)
        files = list(attachments or [])
        if len(files) > MAX_ATTACHMENTS:
            raise InvalidDecision(f"A veto takes at most {MAX_ATTACHMENTS} attachments; "
                                  f"remove {len(files) - MAX_ATTACHMENTS}.")
        total = 0
        for f in files:
            try:
                total += len(base64.b64decode(f.data_base64, validate=True))
            except ValueError as exc:
                raise InvalidDecision(f"Attachment {f.name!r} is not valid base64; "
                                      "attach the file again.") from exc
        if total > MAX_ATTACHMENT_BYTES:
            raise InvalidDecision(f"The attachments come to {total} bytes; the limit is "
                                  f"{MAX_ATTACHMENT_BYTES} (5 MB). Remove or shrink some.")
        return self._decide(approval_id, DecisionAction.VETO,
                            {"category": category.value,
                             "reason": self._reason(reason, "veto")}, files)

    def decide_again(self, entry_id: str) -> OutboxEntry:
        """One step after a conflict: the same decision on the request's fresh version.

        The rejected entry is replaced by a new one (a new idempotency key: it is a new
        decision, made knowing what changed)."""
        entry = self.store.entry(entry_id)
        if entry is None or entry.state != OutboxState.REJECTED or not entry.action \
                or not entry.approval_id:
            raise InvalidDecision(f"Outbox entry {entry_id!r} is not a rejected decision; "
                                  "only those can be decided again.")
        files = [Attachment.model_validate(a)
                 for a in self.store.attachments([entry_id]).get(entry_id, [])]
        fields = {k: entry.payload.get(k) for k in ("comment", "reason", "category")}
        new = self._decide(entry.approval_id, entry.action, fields, files)
        self.store.remove(entry_id, {OutboxState.REJECTED})
        self._emit("outbox")
        return new

    def create_seed(self, draft: SeedDraft) -> OutboxEntry:
        account = self._author(None)
        if not draft.title.strip():
            raise InvalidDecision("A precedent seed needs a title; name what it covers.")
        entry = self.store.enqueue(entry_id=str(uuid.uuid4()), kind="seed",
                                   payload=draft.model_dump(mode="json"),
                                   created_at=self.clock.now(), sub=account.sub)
        self._emit("outbox", "status")
        self._schedule_flush()
        return entry

    def cancel(self, entry_id: str) -> None:
        entry = self.store.entry(entry_id)
        if entry is not None and entry.attempts > 0 and entry.state in _UNANSWERED:
            # It may have reached the server with the answer lost on the way back: taking
            # it back now could leave it applied there and forgotten here.
            raise InvalidDecision(f"Outbox entry {entry_id!r} was already sent once; wait "
                                  "for the server's answer, then decide again if needed.")
        entry = self.store.remove(entry_id, {OutboxState.QUEUED, OutboxState.HELD})
        if entry is None:
            raise InvalidDecision(f"Outbox entry {entry_id!r} does not exist; "
                                  "refresh the outbox.")
        if entry.state not in (OutboxState.QUEUED, OutboxState.HELD):
            raise InvalidDecision(f"Outbox entry {entry_id!r} is {entry.state.value}; only "
                                  "a queued decision can be taken back.")
        self._emit("outbox", "approvals", "status")

    def discard(self, entry_id: str) -> None:
        entry = self.store.entry(entry_id)
        if entry is not None and entry.attempts > 0 and entry.state == OutboxState.HELD:
            raise InvalidDecision(f"Outbox entry {entry_id!r} was already sent once; its "
                                  "author must sign in to learn the server's answer.")
        entry = self.store.remove(entry_id, {OutboxState.REJECTED, OutboxState.HELD})
        if entry is None:
            raise InvalidDecision(f"Outbox entry {entry_id!r} does not exist; "
                                  "refresh the outbox.")
        if entry.state not in (OutboxState.REJECTED, OutboxState.HELD):
            raise InvalidDecision(f"Outbox entry {entry_id!r} is {entry.state.value}; only "
                                  "rejected or held entries can be discarded.")
        self._emit("outbox", "status")

    def mark_read(self, notification_id: str) -> None:
        if self.store.mark_read(notification_id):
            self._emit("notifications")

    # --- deadlines --------------------------------------------------------------------
    def check_deadlines(self) -> int:
        """Remind the governor of unsent vetoes 1 hour and 10 minutes before their
        deadlines (server time, as stored); returns how many reminders were added."""
        now = self.clock.now()
        added = []
        for entry_id, approval_id, deadline, bits in self.store.unsent_vetoes():
            left = (deadline - now).total_seconds()
            if left <= 600 and not bits & REMIND_10M:
                mark, label = REMIND_1H | REMIND_10M, "10 minutes"
            elif left <= 3600 and not bits & REMIND_1H:
                mark, label = REMIND_1H, "1 hour"
            else:
                continue
            if left <= 0:
                label = "no time"
            added.append({
                "id": f"reminder-{entry_id}-{mark}", "type": "governor.veto.unsent",
                "timestamp": iso(now), "source": "device",
                "data": {"entry_id": entry_id, "approval_id": approval_id,
                         "deadline": iso(deadline),
                         "message": f"Your veto of {approval_id} is not sent yet and the "
                                    f"window closes in {label}. Connect to send it."}})
            self.store.mark_reminded(entry_id, mark)
        if added:
            self.store.add_notifications(added)
            self._emit("notifications")
        return len(added)

    # --- push hooks -------------------------------------------------------------------
    def push_cursor(self) -> str | None:
        """``sync.push.EventSink``: where the event stream resumes after a restart."""
        return self.store.get_meta("push_cursor")

    def has_event(self, event_id: str) -> bool:
        """``sync.push.EventSink``: whether this event is already stored."""
        return self.store.has_notification(event_id)

    def apply_event(self, event: Any) -> None:
        """Take one platform event (a dict, or ``sync.push.PushEvent``): keep it as a
        notification, apply what it says to the cache (an approval decided elsewhere) and
        advance the push cursor, in one transaction."""
        if isinstance(event, dict):
            fields = dict(event)
        else:
            fields = {k: getattr(event, k, None) for k in
                      ("id", "type", "timestamp", "source", "data", "cursor")}
        if not fields.get("id") or not fields.get("type"):
            raise SyncError(f"Event {event!r} lacks an id or a type; it cannot be stored.")
        stamp = fields.get("timestamp")
        notification = {
            "id": str(fields["id"]), "type": str(fields["type"]),
            "timestamp": iso(stamp) if isinstance(stamp, datetime)
            else (stamp or iso(self.clock.now())),
            "source": fields.get("source") or "", "data": fields.get("data") or {}}
        data: dict[str, Any] = fields.get("data") or {}
        approval = data.get("approval") if isinstance(data.get("approval"), dict) else None
        if approval is None and {"id", "status", "version"} <= data.keys() and \
                str(fields["type"]).startswith("governance.approval"):
            approval = data
        merged: dict[str, Any] | None = None
        approval_id = getattr(event, "approval_id", None)
        if not isinstance(event, dict) and isinstance(approval_id, str):
            # A verified ``PushEvent``: the push module owns the reading of event shapes.
            from sync.push import approval_update

            found = self.store.approval(approval_id)
            merged = approval_update(event, found[0] if found is not None else None)
        elif approval is not None and {"id", "status", "version"} <= approval.keys():
            existing = self.store.approval(str(approval["id"]))
            candidate = {**(existing[0] if existing else {}), **approval}
            if {"agent", "requester", "industry"} <= candidate.keys():
                merged = candidate
        cursor = fields.get("cursor")
        self.store.apply_event(notification, merged,
                               str(cursor) if cursor is not None else None)
        self._emit("notifications", *(("approvals",) if merged else ()))

    def event_stream_opened(self) -> None:
        """The SSE stream (re)connected: count it as a reconnect."""
        self.network_available()

    def network_available(self) -> None:
        """The OS reports the network back: flush the outbox now."""
        self.retry.reset()
        if not self._online:
            self._set(online=True)
        self._schedule_flush(force=True)

    def _on_reachable(self, ok: bool) -> None:
        if ok == self._online:
            return
        self._set(online=ok)
        if ok:
            self.retry.reset()
            self._schedule_flush(force=True)

    def _schedule_flush(self, *, force: bool = False) -> None:
        """Send the outbox soon, on this loop. A new decision is sent at once unless
        backoff or the breaker says wait; a reconnect (``force``) always sends."""
        if not force and not self.retry.ready():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next tick sends it
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = loop.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            await self.upload()
        except Exception:  # recorded in status by upload(); a task must not raise
            log.debug("flush after reconnect did not finish", exc_info=True)

    # --- syncing ----------------------------------------------------------------------
    async def tick(self) -> None:
        """The periodic job: reminders always; the network when backoff allows."""
        self.check_deadlines()
        if self.retry.ready():
            await self.sync()

    async def sync_now(self) -> None:
        await self.sync()

    async def sync(self) -> None:
        """Upload the outbox, then download every collection."""
        await self.upload()
        if self._needs_sign_in or self.auth.account() is None:
            return
        await self.download()

    async def upload(self) -> UploadReport | None:
        """Send the outbox. Errors are recorded in the status, not raised."""
        if self._upload_lock is None:
            self._upload_lock = asyncio.Lock()
        async with self._upload_lock:
            account = self._check_account()
            if account is None:
                return None
            if not self.store.counts().get("queued") and not self.store.counts().get(
                    "sending"):
                return UploadReport()
            self._set(uploading=True)
            try:
                report = await self.outbox_sender.upload(account.sub)
            except SyncError as exc:
                self._failed(exc)
                return None
            finally:
                self._uploading = False
                self._emit("status", "outbox", "approvals")
            self._succeeded()
            self.last_upload = report
            if report.seeds_changed:
                self._emit("seeds")
            self.store.prune_applied(self.clock.now() - KEEP_APPLIED)
            return report

    async def download(self) -> bool:
        """Catch up every collection; returns whether all of them succeeded."""
        self._set(downloading=True)
        try:
            results = await self.downloader.all()
        except SyncError as exc:
            self._failed(exc)
            return False
        finally:
            self._downloading = False
        errors = [r for r in results.values() if isinstance(r, BaseException)]
        changed: list[Topic] = [cast(Topic, name) for name, r in results.items() if r is True]
        if errors:
            self._failed(errors[0])
        else:
            self._succeeded()
            self.store.set_meta("last_synced_at", iso(self.clock.now()))
        self.check_deadlines()
        self._emit("status", *changed)
        return not errors

    async def refresh_dashboard(self) -> CachedDashboard | None:
        """Fetch the dashboard now (304 when unchanged); the cache answers if offline."""
        try:
            if await self.downloader.dashboard():
                self._emit("dashboard")
            self._succeeded()
        except SyncError as exc:
            self._failed(exc)
        self._emit("status")
        return self.dashboard()

    async def refresh_approval(self, approval_id: str) -> ApprovalDetail | None:
        try:
            await self.downloader.refresh_approval(approval_id)
            self._emit("approvals")
        except SyncError as exc:
            self._failed(exc)
        return self.approval(approval_id)

    def _succeeded(self) -> None:
        self.retry.succeeded()
        self._last_error = None

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, SignInRequired):
            self._needs_sign_in = True
            self._last_error = str(exc) or "Sign in again; your queued decisions are kept."
            self._emit("auth")
        elif isinstance(exc, RateLimitedByServer):
            self.retry.rate_limited(exc.retry_after)
            self._last_error = str(exc)
        elif isinstance(exc, ServerUnreachable):
            delay = self.retry.failed()
            self._last_error = f"{exc} Next attempt in {delay:.0f} s."
        else:
            self._last_error = str(exc)
        self._emit("status")
