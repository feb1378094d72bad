"""Uploading the outbox: batches out, outcomes sorted.

Every answer for an entry is one of three kinds (PowerSync's lesson):

- **applied** (``applied`` or ``replayed``): the write is on the server; done.
- **rejected** (a contract error for that entry): recorded with its code, shown to the
  governor, taken off the queue. It never blocks the entries behind it.
- **not answered** (network error, 5xx, 429, 401 twice): the entry goes back to the queue
  unchanged and is replayed later under the same id, which the server de-duplicates.

A batch the server refuses as a whole with a 4xx (too large, malformed) is split in halves
until the one bad entry is alone and can be rejected by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from sync.api import ApiClient
from sync.clock import Clock
from sync.errors import ApiRejected
from sync.store import Claimed, LocalStore, Outcome

DECISIONS_PATH = "/v1/mobile/decisions"
SEEDS_PATH = "/v1/mobile/seeds"
MAX_BATCH = 500  # the contract's limit
MAX_BATCH_BYTES = 4 * 1024 * 1024  # keeps evidence-heavy vetoes under the server's limit
# Statuses that judge what was sent. Any other refusal (404: wrong server or path, 403 on
# the whole request, 405 ...) says nothing about the entries: they stay queued, and the
# error is shown, rather than a misconfiguration rejecting the whole queue.
ENTRY_ERRORS = frozenset({400, 409, 413, 422})
# RFC 7240: the slim answer, each result's ``approval`` only ``{id, status, version,
# updated_at}`` (the receipt stays). A server that ignores it answers in full, and says
# which it did in ``Preference-Applied``.
PREFER_MINIMAL = {"Prefer": "return=minimal"}


@dataclass
class UploadReport:
    applied: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    requests: int = 0
    approvals_changed: bool = False
    seeds_changed: bool = False


class Outbox:
    """Sends what the store holds for one account and records what the server said."""

    def __init__(self, store: LocalStore, api: ApiClient, clock: Clock, *,
                 batch_size: int = MAX_BATCH, batch_bytes: int = MAX_BATCH_BYTES,
                 depth: int = 2) -> None:
        self.store = store
        self.api = api
        self.clock = clock
        self.batch_size = max(1, min(batch_size, MAX_BATCH))
        self.batch_bytes = batch_bytes
        self.depth = max(1, depth)  # batches in flight at once
        self._unanswered: set[str] = set()

    async def upload(self, sub: str) -> UploadReport:
        """Send everything queued by ``sub``: vetoes first, then decisions in order, then
        new seeds. Raises ``ServerUnreachable``, ``RateLimitedByServer`` or
        ``SignInRequired`` when the server cannot take more now; whatever was not answered
        is back in the queue by then."""
        report = UploadReport()
        self._unanswered = set()
        # Entries a killed process left ``sending`` go back to the queue first, so that
        # from here on ``sending`` means "in a request of this pass" and is never claimed
        # twice while batches overlap.
        self.store.requeue_all_sending(self.clock.now())
        in_flight: set[asyncio.Task[None]] = set()
        failure: BaseException | None = None
        try:
            while failure is None:
                batch = self.store.claim("decision", self.batch_size, sub, self.clock.now(),
                                         self._unanswered)
                if not batch:
                    break
                batch = self._fit(batch)
                in_flight.add(asyncio.ensure_future(self._send_decisions(batch, report)))
                # The next batch is claimed and sent while the server works on this one:
                # the client's share of the time hides behind the server's.
                if len(in_flight) >= self.depth:
                    done, in_flight = await asyncio.wait(
                        in_flight, return_when=asyncio.FIRST_COMPLETED)
                    failure = _first_error(done)
            if in_flight:
                # Never abandon a request in flight: its answer is recorded (or its
                # entries requeued) before this pass reports anything.
                done, in_flight = await asyncio.wait(in_flight)
                failure = failure or _first_error(done)
        finally:
            # Cancelled from outside (the app stopping): stop the requests in flight too;
            # each puts its entries back in the queue as it unwinds.
            for task in in_flight:
                task.cancel()
            if in_flight:
                await asyncio.wait(in_flight)
        if failure is not None:
            raise failure
        while True:
            seeds = self.store.claim("seed", 20, sub, self.clock.now())
            if not seeds:
                break
            for i, entry in enumerate(seeds):
                try:
                    await self._send_seed(entry, report)
                except BaseException:
                    self.store.requeue([e.id for e in seeds[i:]], self.clock.now())
                    raise
        return report

    def _fit(self, batch: list[Claimed]) -> list[Claimed]:
        """Cut the batch where its attachments would make it too large; the rest waits."""
        files = self.store.attachments([e.id for e in batch if e.has_files])
        if not files:
            return batch
        size = 0
        for i, entry in enumerate(batch):
            size += sum(len(a["data_base64"]) for a in files.get(entry.id, ()))
            if i > 0 and size > self.batch_bytes:
                self.store.requeue([e.id for e in batch[i:]], self.clock.now())
                return batch[:i]
        return batch

    def _items(self, batch: Sequence[Claimed]) -> list[Any]:
        """The batch's items: each the stored text, spliced into the request as it is
        (``orjson.Fragment``), so a replay sends the very same bytes; only an entry with
        attachments is parsed to add them. One whose stored text no longer parses (damaged
        on disk) is sent as it is too: the server refuses the batch and the split rejects
        that entry alone, instead of the error blocking every later upload."""
        files = self.store.attachments([e.id for e in batch if e.has_files])
        items: list[Any] = []
        for entry in batch:
            payload = _parsed(entry) if entry.id in files else None
            if payload is not None:
                items.append({**payload, "attachments": files[entry.id]})
            else:
                items.append(orjson.Fragment(entry.body))
        return items

    async def _send_decisions(self, batch: list[Claimed], report: UploadReport) -> None:
        ids = [e.id for e in batch]
        try:
            report.requests += 1
            response = await self.api.request("POST", DECISIONS_PATH,
                                              json_body={"decisions": self._items(batch)},
                                              headers=PREFER_MINIMAL)
        except ApiRejected as exc:
            if exc.status not in ENTRY_ERRORS:
                self.store.requeue(ids, self.clock.now())
                raise
            if len(batch) == 1:
                self._record(report, [Outcome(ids[0], applied=False, error_code=exc.code,
                                              error_message=exc.message,
                                              error_details=exc.details)])
                return
            # Refused as a whole: find the poison entry without holding the others back.
            half = len(batch) // 2
            self.store.requeue(ids[half:], self.clock.now())
            await self._send_decisions(batch[:half], report)
            rest = self.store.claim_ids(ids[half:], self.clock.now())
            if rest:
                await self._send_decisions(rest, report)
            return
        except BaseException:
            self.store.requeue(ids, self.clock.now())
            raise
        outcomes: list[Outcome] = []
        results = response.data if isinstance(response.data, list) else []
        sent = set(ids)
        for result in results:
            if not isinstance(result, dict) or result.get("id") not in sent:
                continue  # not ours; the entry stays queued and is asked about again
            error = result.get("error") or {}
            approval = result.get("approval") if isinstance(result.get("approval"),
                                                            dict) else None
            if result.get("outcome") in ("applied", "replayed"):
                receipt = result.get("receipt")
                outcomes.append(Outcome(result["id"], applied=True, approval=approval,
                                        receipt=orjson.dumps(receipt).decode()
                                        if isinstance(receipt, dict) else None))
            elif result.get("outcome") == "rejected":
                outcomes.append(Outcome(
                    result["id"], applied=False,
                    error_code=str(error.get("code") or "REJECTED"),
                    error_message=str(error.get("message") or "The server refused it."),
                    error_details=error.get("details") or {}, approval=approval))
        answered = {o.entry_id for o in outcomes}
        self._record(report, outcomes)
        # An item the server left out of its answer is retried, never assumed either way.
        unanswered = [i for i in ids if i not in answered]
        self.store.requeue(unanswered, self.clock.now())
        self._unanswered.update(unanswered)

    def _record(self, report: UploadReport, outcomes: list[Outcome]) -> None:
        self.store.record_outcomes(outcomes, self.clock.now())
        for o in outcomes:
            (report.applied if o.applied else report.rejected).append(o.entry_id)
        report.approvals_changed = report.approvals_changed or bool(outcomes)

    async def _send_seed(self, entry: Claimed, report: UploadReport) -> None:
        report.requests += 1
        try:
            response = await self.api.request("POST", SEEDS_PATH, json_body=entry.payload,
                                              headers={"Idempotency-Key": entry.id})
        except ApiRejected as exc:
            if exc.status not in ENTRY_ERRORS:
                raise  # upload() puts this and the rest back in the queue
            self.store.record_outcomes([Outcome(entry.id, applied=False, error_code=exc.code,
                                                error_message=exc.message,
                                                error_details=exc.details)],
                                       self.clock.now())
            report.rejected.append(entry.id)
            return
        self.store.record_outcomes([Outcome(entry.id, applied=True)], self.clock.now())
        if isinstance(response.data, dict) and "id" in response.data:
            self.store.upsert_seeds([response.data])
            report.seeds_changed = True
        report.applied.append(entry.id)


def _parsed(entry: Claimed) -> dict[str, Any] | None:
    """The entry's stored item as a dict; None if it is damaged (not a JSON object)."""
    try:
        payload = entry.payload
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def _first_error(done: set[asyncio.Task[None]]) -> BaseException | None:
    """The first failure among finished batches. Every task's outcome is read, not only
    up to the first failure: two batches failing together (the server gone) would
    otherwise leave the second's error unread, and asyncio logs "Task exception was
    never retrieved" for an error the pass has already handled."""
    first: BaseException | None = None
    for task in done:
        error = asyncio.CancelledError() if task.cancelled() else task.exception()
        if first is None and error is not None:
            first = error
    return first
