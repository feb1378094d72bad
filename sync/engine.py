"""``SyncEngine``: the offline-first ``GovernorClient``.

Reads come from the local store and never wait for the network. Writes are queued in the
outbox in one local transaction and show at once (the cached approval reports the pending
decision); the engine sends them when it can: on the periodic sync (APScheduler), on
``sync_now()``, and at once on a reconnect (a request succeeds again after failing, the
event stream reopens, or the OS reports the network back).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import httpx

from sync import rules, store_reads
from sync.alert_feed import AlertFeed, AlertsThroughFeed
from sync.alerts import Alert, BeforeApprove, QuietHours, StepUp
from sync.api import ApiClient, Authenticator
from sync.changes import changed_fields
from sync.clock import Clock, ServerClock, SkewedClock, SystemClock
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
    VETO_UNSENT,
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
    Receipt,
    Seed,
    SeedDraft,
    SeedSchema,
    SyncStatus,
    VetoCategory,
    Violation,
)
from sync.observable import Listeners
from sync.outbox import Outbox, UploadReport
from sync.receipts import KeySet, check_audit_entry, key_id, receipt_from_row
from sync.retry import RetryPolicy
from sync.sealing import OutboxSealer
from sync.settings import GovernorSettings
from sync.store import LocalStore, iso, parse_iso
from sync.store_reads import server_identity
from sync.transport import check_server_url, tls_context

if TYPE_CHECKING:
    from sync.notify import NotificationCenter

log = logging.getLogger(__name__)
SYNC_JOB_ID = "governor-sync"  # the APScheduler job of the periodic sync


CONFLICT_CODES = frozenset({"ALREADY_DECIDED", "VERSION_CONFLICT"})
KEEP_APPLIED = timedelta(days=7)

_UNANSWERED = {OutboxState.QUEUED, OutboxState.SENDING, OutboxState.HELD}


class SyncEngine(AlertsThroughFeed):
    """Implements ``sync.facade.GovernorClient`` over a ``LocalStore`` and the API.

    Collaborators come in through the constructor: ``store`` (default: the database in
    ``settings.data_dir``), ``transport`` (httpx transport; default: the network),
    ``clock`` and ``rng`` (backoff jitter).
    """

    def __init__(self, settings: GovernorSettings | None = None, *,
                 authenticator: Authenticator, store: LocalStore | None = None,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Clock | None = None, rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.settings = settings or GovernorSettings()
        if transport is None:
            # Before the store is opened and bound: a refused server changes nothing there.
            check_server_url(self.settings.server_url,
                             allow_insecure_http=self.settings.allow_insecure_http)
        self.clock: Clock = clock or SystemClock()
        self._owns_store = store is None
        # What the governor types or attaches is sealed in the outbox with the device key,
        # which the token vault keeps (``sync.sealing``).
        sealer = OutboxSealer(authenticator.vault.device_key)
        self.store = store if store is not None else LocalStore(self.settings.database_path,
                                                                 sealer=sealer)
        if self.store.sealer is None:
            self.store.sealer = sealer
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
        # Everything the engine stamps and compares runs on the server's time.
        self.server_clock = ServerClock(SkewedClock(self.clock, self.settings.clock_skew_s)
                                        if self.settings.clock_skew_s else self.clock)
        self.clock = self.server_clock
        self.api = ApiClient(self.settings.server_url, authenticator=authenticator,
                             transport=transport, timeout=self.settings.request_timeout,
                             on_reachable=self._on_reachable,
                             allow_insecure_http=self.settings.allow_insecure_http,
                             tls=tls_context(self.settings.ca_bundle))
        self.outbox_sender = Outbox(self.store, self.api, self.clock,
                                    batch_size=self.settings.batch_size)
        self.downloader = Downloader(self.store, self.api, self.clock)
        self.retry = RetryPolicy(self.clock, rng=rng)
        self.api.on_server_time = self.server_clock.observe
        self.api.on_lost = self._request_failed
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
        self._sleep = sleep
        self._stream_live = False
        self._catch_up_task: asyncio.Task[None] | None = None
        self._catch_up_again = False
        self._probe_task: asyncio.Task[None] | None = None
        self._stopped = False
        self._back_hooks: Listeners[[]] = Listeners(log, "a hook of the server's return")
        self._last_full_sync: datetime | None = None
        self.probes = 0  # how many health probes were sent (figures, tests)
        # Push: the event stream and the alerts while an account is signed in, once the
        # app has registered its hooks (``listen_for_alerts``).
        self.alert_feed = AlertFeed(self, self._push_center, lambda: self._emit("alerts"))
        if self.settings.sync_interval > 0:
            # The scheduler's import is paid here, where the app builds the engine (a worker
            # thread, while the first screen is up), not in ``start()`` on the event loop,
            # where it held up the governor's first taps.
            import apscheduler.schedulers.asyncio  # noqa: F401

    # --- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Resume the session if tokens are kept and start the periodic sync."""
        # Entries held because the device key did not open them get one more try per
        # start (the key may have been restored); the next claim holds them again if not.
        self.store.retry_device_key_holds()
        # What an earlier version cached in clear is sealed once (docs/auth.md).
        self.store.seal_clear_cache()
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

    def sync_interval(self) -> float:
        return self.settings.sync_interval

    def why_no_push(self) -> str | None:
        return None

    def _push_center(self, step_up: StepUp, *, open_approval: Callable[[Alert], object],
                     quiet_hours: QuietHours, before_approve: BeforeApprove
                     ) -> NotificationCenter:
        """The center over this engine (``sync.notify.center_for_engine``)."""
        from sync.notify import center_for_engine

        return center_for_engine(self, step_up, open_approval=open_approval,
                                 quiet_hours=quiet_hours, before_approve=before_approve)

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
        # Nothing starts after this (probe, flush, catch-up): a task started by a call that
        # comes in once stopped (the push listener reporting its stream, an event) would
        # outlive the engine on a closed client, and stay pending on a loop that closes.
        self._stopped = True
        await self.alert_feed.close()  # the stream first: it uses the API's tokens
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None
        for task in (self._flush_task, self._probe_task, self._catch_up_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
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
        """Read as the signed-in account (its own outbox, notifications and badges); hold
        what other accounts queued; release what this one queued."""
        account = self.auth.account()
        sub = account.sub if account else None
        switched = self.store.owner != sub
        self.store.serve(sub)
        self._keep_account(account)
        held, released = self.store.hold_foreign(sub)
        if held or released or switched:
            self._emit("outbox", "approvals")
        if switched:  # another account's notifications and badges
            self._emit("notifications", "status")
        return account

    def _keep_account(self, account: Account | None) -> None:
        # Recorded in the store for the next cold start, which names the account before
        # the vault is opened (``sync.cold_start``).
        self.store.keep_account(account.model_dump() if account else None)

    async def _signed_in(self, account: Account) -> Account:
        with contextlib.suppress(SyncError):  # offline: fetched at the next sync
            await self.refresh_signing_keys()
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
        counts = self.store.counts(owned=True)
        oldest = self.store.oldest_pending_at()
        last = self.store.get_meta("last_synced_at")
        return SyncStatus(
            online=self._online, uploading=self._uploading, downloading=self._downloading,
            last_synced_at=parse_iso(last), pending_count=counts.get("queued", 0)
            + counts.get("sending", 0), oldest_pending_at=oldest,
            oldest_pending_age_s=((self.clock.now() - oldest).total_seconds()
                                  if oldest else None),
            held_count=counts.get("held", 0), rejected_count=counts.get("rejected", 0),
            other_accounts_count=self.store.foreign_count(),
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
        return rules.dashboard_as_of(
            CachedDashboard(dashboard=Dashboard.model_validate(body), fetched_at=fetched_at,
                            stale=False, age_s=0.0),
            self.clock.now(), self.settings.dashboard_ttl)

    def _present(self, fields: dict[str, Any], pending: DecisionAction | None,
                 model: type[ApprovalSummary]) -> ApprovalSummary:
        return store_reads.shown(model, fields, pending)

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

    def seed_schema(self) -> SeedSchema | None:
        cached = self.store.load_seed_schema()
        return SeedSchema(body=cached[0], fetched_at=cached[2]) if cached else None

    def agents(self) -> list[Agent]:
        return [Agent.model_validate(a) for a in self.store.agents()]

    def violations(self) -> list[Violation]:
        return [Violation.model_validate(v) for v in self.store.violations()]

    def notifications(self) -> list[Notification]:
        return [Notification.model_validate({**body, "read": read})
                for body, read in self.store.notifications()]

    def outbox(self, states: set[OutboxState] | None = None) -> list[OutboxEntry]:
        return self.store.entries(states, owned=True)

    def receipts(self, approval_id: str | None = None) -> list[Receipt]:
        keys = KeySet(self.store.signing_keys())
        return [receipt_from_row(row, keys) for row in self.store.receipt_rows(approval_id)]

    def receipt(self, approval_id: str) -> Receipt | None:
        found = self.receipts(approval_id)
        return found[-1] if found else None

    async def check_audit(self, approval_id: str) -> str | None:
        """Fetch the audit-log entry of this device's latest decision on the request and
        the chain's signed head, and check both against the receipt (``None``: all good,
        else why not). Needs the network; the keys come from the cache (refreshed once if
        the head names a key not cached)."""
        receipt = self.receipt(approval_id)
        if receipt is None:
            raise InvalidDecision(f"No decision on {approval_id!r} was made on this device; "
                                  "there is no receipt to check.")
        entry = (await self.api.request(
            "GET", f"/v1/mobile/audit/decisions/{receipt.decision_id}")).data
        head = (await self.api.request("GET", "/v1/mobile/audit/head")).data
        signed = str(head.get("signed", "")) if isinstance(head, dict) else ""
        if key_id(signed) not in self.store.signing_keys():
            await self.refresh_signing_keys()
            receipt = self.receipt(approval_id) or receipt
        keys = KeySet(self.store.signing_keys())
        return check_audit_entry(entry if isinstance(entry, dict) else {}, signed, keys,
                                 receipt)

    def _unknown_receipt_keys(self, entry_ids: list[str]) -> bool:
        """Whether a receipt just received names a key this device has not cached."""
        known = self.store.signing_keys().keys()
        return any(key_id(jws) not in known
                   for jws in self.store.receipt_signatures(entry_ids))

    async def refresh_signing_keys(self) -> int:
        """Fetch the server's key set (``/oauth/jwks.json``) into the store's key cache;
        returns how many keys were new. Receipts are checked offline against the cache."""
        try:
            response = await self.api.http.get("/oauth/jwks.json")
        except httpx.TransportError as exc:
            raise ServerUnreachable(f"Cannot fetch the signing keys of "
                                    f"{self.settings.server_url!r} ({exc}); receipts are "
                                    "checked against the keys cached so far.") from exc
        if response.status_code != 200:
            raise ServerUnreachable(f"The server's key set answered {response.status_code}; "
                                    "receipts are checked against the keys cached so far.")
        added = self.store.save_signing_keys(response.json(), self.clock.now())
        if added:
            self._emit("approvals")
        return added

    def conflict(self, entry_id: str) -> Conflict | None:
        """What changed under a rejected decision, and whether it can be made again."""
        entry = self.store.entry(entry_id)
        account = self.auth.account()
        if entry is None or entry.state != OutboxState.REJECTED or entry.approval_id is None \
                or account is None or entry.sub != account.sub:
            return None
        details = entry.error_details
        approval = self.approval(entry.approval_id)
        current_status = details.get("status") or (approval.status if approval else None)
        current_version = details.get("current_version", details.get("version"))
        if current_version is None and approval is not None:
            current_version = approval.version
        can_again = False
        if entry.error_code in CONFLICT_CODES and approval is not None and entry.action:
            can_again = rules.can_take(entry.action, approval.status)
        seen, fresh = self.store.seen(entry.id), self.store.approval(entry.approval_id)
        changed = changed_fields(seen, fresh[0]) if entry.error_code == "VERSION_CONFLICT" \
            and seen is not None and fresh is not None else []
        return Conflict(
            entry=entry, code=entry.error_code or "REJECTED",
            message=entry.error_message or "", decided_by=details.get("decided_by"),
            decided_at=details.get("decided_at"),
            current_status=ApprovalStatus(str(current_status)) if current_status in
            ApprovalStatus._value2member_map_ else None,
            current_version=int(current_version) if current_version is not None else None,
            approval=approval, can_decide_again=can_again, changed=changed)

    # --- writes -----------------------------------------------------------------------
    def _author(self, action: DecisionAction | None) -> Account:
        account = self.auth.account()
        if account is None:
            raise SignInRequired("Sign in before deciding; decisions are sent as the "
                                 "governor who made them.")
        scope = rules.scope_for(action)
        if not rules.may(account, action):
            raise InvalidDecision(f"Account {account.username!r} lacks the {scope!r} scope "
                                  "needed for this; sign in as a governor who has it.")
        return account

    def _decide(self, approval_id: str, action: DecisionAction, fields: dict[str, Any],
                attachments: list[Attachment] | None = None) -> OutboxEntry:
        account = self._author(action)
        # One read of the row's columns: the request's text is neither parsed nor
        # validated on a tap (it was when it was cached).
        server = self.store.decision_basis(approval_id)
        if server is None:
            raise InvalidDecision(f"Approval {approval_id!r} is not on this device; "
                                  "sync and open it again.")
        pending = server.pending
        status = PENDING_SHOWS_AS[pending] if pending else ApprovalStatus(server.status)
        if pending is not None and rules.queued_blocks(pending, action):
            raise InvalidDecision(f"A {pending.value} of {approval_id!r} is already queued; "
                                  "cancel it first to decide differently.")
        if not rules.can_take(action, status):
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
        if action == DecisionAction.VETO:  # only a veto can need a reminder at once
            self.check_deadlines()
        self._schedule_flush()
        return entry

    @staticmethod
    def _reason(approval_id: str, reason: str, what: str) -> str:
        problem = rules.reason_problem(reason, what)
        if problem is not None:
            raise InvalidDecision(f"{approval_id!r}: {problem}")
        return reason.strip()

    def approve(self, approval_id: str, comment: str | None = None) -> OutboxEntry:
        problem = rules.comment_problem(comment)
        if problem is not None:
            raise InvalidDecision(f"{approval_id!r}: {problem}")
        return self._decide(approval_id, DecisionAction.APPROVE, {"comment": comment or None})

    def request_changes(self, approval_id: str, reason: str) -> OutboxEntry:
        return self._decide(approval_id, DecisionAction.REQUEST_CHANGES,
                            {"reason": self._reason(approval_id, reason, "request-changes")})

    def veto(self, approval_id: str, category: VetoCategory, reason: str,
             attachments: list[Attachment] | None = None) -> OutboxEntry:
        category = VetoCategory(category)
        files = list(attachments or [])
        problem = rules.veto_problem(reason, files)
        if problem is not None:
            raise InvalidDecision(f"Veto of {approval_id!r}: {problem}")
        return self._decide(approval_id, DecisionAction.VETO,
                            {"category": category.value, "reason": reason.strip()}, files)

    def decide_again(self, entry_id: str) -> OutboxEntry:
        """One step after a conflict: the same decision on the request's fresh version.

        The rejected entry is replaced by a new one (a new idempotency key: it is a new
        decision, made knowing what changed)."""
        entry = self._own_entry(entry_id, "decide again on")
        if entry.state != OutboxState.REJECTED or not entry.action \
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

    async def retire_seed(self, seed_id: str, reason: str) -> Seed:
        """Retire a seed now, online (the server's answer is the seed's new record); a
        refusal (scope, unknown seed) or no server is raised in words."""
        self._author(None)  # governance:write, as the server checks it too
        reason = self._reason(f"seed {seed_id}", reason, "retirement")
        response = await self.api.request("POST", f"/v1/mobile/seeds/{seed_id}/retire",
                                          json_body={"reason": reason})
        if not isinstance(response.data, dict) or "id" not in response.data:
            raise SyncError(f"The server's answer to retiring seed {seed_id!r} holds no "
                            "seed; sync and look at the seed again.")
        self.store.upsert_seeds([response.data])
        self._emit("seeds")
        return Seed.model_validate(response.data)

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

    def _own_entry(self, entry_id: str, what: str) -> OutboxEntry:
        """The signed-in account's entry ``entry_id``; another account's entry is not
        there for it (it can neither see nor change what someone else queued)."""
        entry = self.store.entry(entry_id)
        if entry is None:
            raise InvalidDecision(f"Outbox entry {entry_id!r} does not exist; "
                                  "refresh the outbox.")
        account = self.auth.account()
        if account is None or entry.sub != account.sub:
            raise InvalidDecision(f"Outbox entry {entry_id!r} is not in the outbox of this "
                                  f"account; only the account that queued it can {what} it. "
                                  "Refresh the outbox.")
        return entry

    def cancel(self, entry_id: str) -> None:
        entry = self._own_entry(entry_id, "take back")
        if entry.attempts > 0 and entry.state in _UNANSWERED:
            # It may have reached the server with the answer lost on the way back: taking
            # it back now could leave it applied there and forgotten here.
            raise InvalidDecision(f"Outbox entry {entry_id!r} was already sent once; wait "
                                  "for the server's answer, then decide again if needed.")
        removed = self.store.remove(entry_id, {OutboxState.QUEUED, OutboxState.HELD})
        if removed is None:
            raise InvalidDecision(f"Outbox entry {entry_id!r} does not exist; "
                                  "refresh the outbox.")
        if removed.state not in (OutboxState.QUEUED, OutboxState.HELD):
            raise InvalidDecision(f"Outbox entry {entry_id!r} is {removed.state.value}; only "
                                  "a queued decision can be taken back.")
        self._emit("outbox", "approvals", "status")

    def discard(self, entry_id: str) -> None:
        entry = self._own_entry(entry_id, "discard")
        if entry.attempts > 0 and entry.state == OutboxState.HELD:
            raise InvalidDecision(f"Outbox entry {entry_id!r} was already sent once; its "
                                  "author must sign in to learn the server's answer.")
        removed = self.store.remove(entry_id, {OutboxState.REJECTED, OutboxState.HELD})
        if removed is None:
            raise InvalidDecision(f"Outbox entry {entry_id!r} does not exist; "
                                  "refresh the outbox.")
        if removed.state not in (OutboxState.REJECTED, OutboxState.HELD):
            raise InvalidDecision(f"Outbox entry {entry_id!r} is {removed.state.value}; only "
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
            due = rules.reminder_due((deadline - now).total_seconds(), bits)
            if due is None:
                continue
            mark, label = due
            added.append({
                "id": f"reminder-{entry_id}-{mark}", "type": VETO_UNSENT,
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
        # An event says what changed, not always all of it (a request auto-approved that
        # this device never cached, a dashboard figure): with no polling while the stream
        # is live, the event itself is the cue to catch up, once, soon.
        self._schedule_catch_up()

    def _schedule_catch_up(self) -> None:
        """Download the collections soon, on this loop: one download at a time, and one
        more after it when events came in while it ran."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next sync catches up
        if self._stopped:
            return  # no client left to download with (``stop``)
        if self._catch_up_task is not None and not self._catch_up_task.done():
            self._catch_up_again = True
            return
        self._catch_up_task = loop.create_task(self._catch_up())

    async def _catch_up(self) -> None:
        self._catch_up_again = True
        while self._catch_up_again:
            self._catch_up_again = False
            if self._needs_sign_in or self.auth.account() is None:
                return
            try:
                await self.download()
            except Exception:  # recorded in status by download(); a task must not raise
                log.debug("catch-up after an event did not finish", exc_info=True)
                return

    def event_stream_opened(self) -> None:
        """The SSE stream (re)connected: count it as a reconnect. While it stays open it
        tells of every change, so the periodic sync falls back to the safety interval."""
        self._stream_live = True
        self.network_available()

    def event_stream_closed(self) -> None:
        """The SSE stream dropped: is the server gone? Ask it (``probe``) at once."""
        self._stream_live = False
        self._start_probe()

    def network_lost(self) -> None:
        """The OS reports a network change that may have cut us off: probe now."""
        self._start_probe()

    def screen_drawn(self) -> None:
        """Nothing held back: the engine is the client the cold start hands over to."""

    def server_now(self) -> datetime:
        """The server's time as this device knows it (``ServerClock``)."""
        return self.server_clock.now()

    def observe_server_time(self, when: datetime, rtt: float = 0.0) -> None:
        """A server stamp from outside the API client (the event stream's heartbeat)."""
        self.server_clock.observe(when, rtt)

    def when_back(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook()`` each time the server answers again after being lost (the push
        listener reconnects at once instead of after its backoff)."""
        return self._back_hooks.subscribe(hook)

    @property
    def probing(self) -> bool:
        return self._probe_task is not None and not self._probe_task.done()

    def _request_failed(self) -> None:
        # The failure itself was the first ask (and showed us offline): wait before the
        # next.
        self._start_probe(self.settings.probe_interval)

    def _start_probe(self, first_wait: float = 0.0) -> None:
        """One probe loop at a time, on the running loop."""
        if self.probing or self._stopped:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): the next request tells
        self._probe_task = loop.create_task(self._probe_until_back(first_wait))

    async def _probe_until_back(self, first_wait: float = 0.0) -> None:
        """GET /v1/health after ``first_wait`` (at once when the stream dropped), then
        every ``probe_interval`` s doubling to ``probe_max_interval``, until the server
        answers; offline meanwhile. It does not wait for the breaker: it is one cheap
        request, never more than one in flight."""
        delay = first_wait
        while True:
            if delay:
                await self._sleep(delay)
            self.probes += 1
            if await self.api.probe(self.settings.probe_timeout):
                break
            if self._online:
                self._last_error = (f"Cannot reach {self.settings.server_url!r}; decisions "
                                    "stay queued and are sent when it is back.")
                self._set(online=False)
            delay = min(self.settings.probe_max_interval,
                        max(self.settings.probe_interval, delay * 2))
        self._probe_task = None
        self._back()

    def _back(self) -> None:
        """The server answers again: online, send the outbox now, wake the listeners."""
        self.retry.reset()
        self._last_error = None
        if not self._online:
            self._set(online=True)
        self._schedule_flush(force=True)
        self._back_hooks.emit()

    def network_available(self) -> None:
        """The OS reports the network back: flush the outbox now."""
        self.retry.reset()
        if not self._online:
            self._set(online=True)
        self._schedule_flush(force=True)

    def _on_reachable(self, ok: bool) -> None:
        if ok == self._online:
            return
        if ok:
            self._back()
        else:
            self._set(online=False)

    def _schedule_flush(self, *, force: bool = False) -> None:
        """Send the outbox soon, on this loop. A new decision is sent at once unless
        backoff or the breaker says wait; a reconnect (``force``) always sends."""
        if self._stopped or (not force and not self.retry.ready()):
            return  # stopped: no client left to send with; the next start sends it
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
        """The periodic job: reminders always; the network when backoff allows, unless
        the probe is asking already or the live event stream makes polling needless (then
        only the safety sync, every ``safety_sync_interval`` s)."""
        self.check_deadlines()
        if self.probing or not self.retry.ready():
            return
        if self._stream_live and self._last_full_sync is not None and (
                self.clock.now() - self._last_full_sync).total_seconds() \
                < self.settings.safety_sync_interval:
            await self.upload()  # no request when nothing is queued
            return
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
            if report.applied and self._unknown_receipt_keys(report.applied):
                with contextlib.suppress(SyncError):  # offline: the next sync fetches them
                    await self.refresh_signing_keys()
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
            self._last_full_sync = self.clock.now()
            self.store.set_meta("last_synced_at", iso(self._last_full_sync))
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
            self._keep_account(self.auth.account())  # the session ended: nobody
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
