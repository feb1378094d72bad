"""Catching up with the server: one method per collection, each as cheap as the contract
allows when nothing changed.

- dashboard, approvals, agents: whole documents with ``ETag`` / ``If-None-Match`` (304);
- seeds, violations: ``since=V`` deltas with tombstones in ``meta.deleted``;
- notifications: ``after=ID``.

The cursor of a collection moves only in the transaction that stores what it covers, so a
sync cut short resumes from where its data is.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sync.api import ApiClient, ApiResponse
from sync.clock import Clock
from sync.errors import ApiRejected
from sync.store import LocalStore

BASE = "/v1/mobile"
PAGE = 200  # the contract's largest page
FLUSH_ROWS = 2000  # rows of a long delta stored per transaction while the rest arrives
DeltaApply = Callable[[list[dict[str, Any]], list[str], "str | None", datetime], None]
DETAIL_PREFETCH = 100
OPEN_STATUSES = frozenset({"pending_approval", "approved", "auto_approved"})
# The server's seed rules change with its releases, not by the minute.
SEED_SCHEMA_TTL = timedelta(days=1)
COLLECTIONS = ("dashboard", "approvals", "agents", "seeds", "violations", "notifications")


def _page_items(collection: str, response: ApiResponse) -> list[dict[str, Any]]:
    """A delta page's items, each an object with an id, or ``ApiRejected``: a page that
    breaks the contract is refused whole (what earlier pages stored stays, the cursor stays
    where its data is)."""
    data = response.data if response.data is not None else []
    if isinstance(data, list) and all(isinstance(i, dict) and i.get("id") is not None
                                      for i in data):
        return data
    raise ApiRejected(response.status, "MALFORMED_PAGE",
                      f"The server's {collection} page is not a list of objects with an id "
                      f"({str(data)[:80]!r}); nothing of it was stored. Sync again, and "
                      "report the server if it keeps sending it.")


class Downloader:
    def __init__(self, store: LocalStore, api: ApiClient, clock: Clock) -> None:
        self.store = store
        self.api = api
        self.clock = clock
        self.bytes_by_collection: dict[str, int] = {}

    def _count(self, collection: str, response: ApiResponse) -> None:
        self.bytes_by_collection[collection] = (
            self.bytes_by_collection.get(collection, 0) + response.nbytes)

    async def _get(self, collection: str, path: str, params: dict[str, Any] | None = None,
                   etag: str | None = None) -> ApiResponse:
        headers = {"If-None-Match": etag} if etag else None
        response = await self.api.request("GET", BASE + path, params=params, headers=headers)
        self._count(collection, response)
        return response

    async def all(self) -> dict[str, BaseException | bool]:
        """Every collection at once; returns per collection whether it changed, or the
        error it met (one failing collection does not stop the others)."""
        self.bytes_by_collection = {}
        results = await asyncio.gather(
            self.dashboard(), self.approvals(), self.agents(), self.seeds(),
            self.violations(), self.notifications(), return_exceptions=True)
        out: dict[str, BaseException | bool] = {}
        for name, result in zip(COLLECTIONS, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation and the like are not a collection's problem
            out[name] = result
        return out

    async def dashboard(self) -> bool:
        cached = self.store.load_dashboard()
        response = await self._get("dashboard", "/dashboard",
                                   etag=cached[1] if cached else None)
        if response.not_modified:
            self.store.touch_dashboard(self.clock.now())
            return False
        self.store.save_dashboard(response.data, response.etag, self.clock.now())
        return True

    async def _whole_list(self, collection: str, path: str
                          ) -> tuple[list[dict[str, Any]], str | None, str] | None:
        """Every page of a list without deltas: ``(items, etag, digest)``, or None on a
        304. The digest stands in for an ETag when the server gives none: an unchanged
        list is then not written again."""
        cursor = self.store.cursor(collection)
        first = await self._get(collection, path, {"limit": PAGE}, etag=cursor.etag)
        if first.not_modified:
            return None
        digest = hashlib.sha256()
        items: list[dict[str, Any]] = []
        page = first
        while True:
            data = list(page.data or [])
            digest.update(json.dumps(data, sort_keys=True, separators=(",", ":"),
                                     default=str).encode())
            items.extend(data)
            next_cursor = page.meta.get("next_cursor")
            if not next_cursor:
                break
            page = await self._get(collection, path, {"limit": PAGE, "cursor": next_cursor})
        return items, first.etag, digest.hexdigest()

    async def approvals(self) -> bool:
        cursor = self.store.cursor("approvals")
        # What the listing cannot know of: requests pushed while it is on its way.
        asked_at = self.store.listing_mark()
        listing = await self._whole_list("approvals", "/approvals")
        changed = listing is not None and listing[2] != cursor.cursor
        if listing is not None and changed:
            items, etag, digest = listing
            self.store.upsert_approvals(items, replace_all=True, asked_at=asked_at)
            self.store.set_cursor("approvals", cursor=digest, etag=etag,
                                  synced_at=self.clock.now())
        else:
            self.store.set_cursor("approvals", cursor=cursor.cursor, etag=cursor.etag,
                                  synced_at=self.clock.now())
        await self._stale_details()
        return changed

    async def _stale_details(self) -> None:
        """Fetch the full request for approvals whose detail is missing or older: those
        still to be decided first, newest first, at most ``DETAIL_PREFETCH`` per sync (a
        fleet of thousands is not fetched one by one; the rest load when opened)."""
        for approval_id in self.store.stale_detail_ids(DETAIL_PREFETCH, OPEN_STATUSES):
            response = await self._get("approvals", f"/approvals/{approval_id}")
            if isinstance(response.data, dict):
                self.store.save_approval_detail(response.data)

    async def refresh_approval(self, approval_id: str) -> None:
        response = await self._get("approvals", f"/approvals/{approval_id}")
        if isinstance(response.data, dict):
            self.store.save_approval_detail(response.data)

    async def agents(self) -> bool:
        cursor = self.store.cursor("agents")
        listing = await self._whole_list("agents", "/agents")
        if listing is None or listing[2] == cursor.cursor:
            self.store.set_cursor("agents", cursor=cursor.cursor, etag=cursor.etag,
                                  synced_at=self.clock.now())
            return False
        items, etag, digest = listing
        self.store.replace_agents(items, etag, self.clock.now(), digest=digest)
        return True

    async def _delta(self, collection: str, upsert: Callable[[list[dict[str, Any]]], Any],
                     apply: DeltaApply) -> bool:
        """Page through ``/{collection}?since=V``. The next page is requested before this
        one is stored, so the server and the local index work at the same time; rows are
        stored every ``FLUSH_ROWS`` (upserts: safe to repeat) and the cursor moves only
        with the last of them. Storing runs in a worker thread, one write at a time and in
        order (SQLite lets go of the GIL while it works): the answers to the next pages are
        read meanwhile, so an initial sync takes about the longer of the two, not both."""
        cursor = self.store.cursor(collection)
        params: dict[str, Any] = {"limit": PAGE}
        if cursor.cursor is not None:
            params["since"] = cursor.cursor
        path = f"/{collection}"
        version = cursor.cursor
        buffer: list[dict[str, Any]] = []
        changed_ids: set[str] = set()
        deleted: list[str] = []
        first = True
        storing: asyncio.Future[Any] | None = None  # the write in the worker thread
        task: asyncio.Future[ApiResponse] = asyncio.ensure_future(
            self._get(collection, path, params))
        try:
            while True:
                response = await task
                next_cursor = response.meta.get("next_cursor")
                if next_cursor:
                    params = {**params, "cursor": next_cursor}
                    task = asyncio.ensure_future(self._get(collection, path, params))
                data = _page_items(collection, response)
                buffer.extend(data)
                changed_ids.update(str(item["id"]) for item in data)
                deleted.extend(str(i) for i in response.meta.get("deleted") or [])
                # The version of the first page: a change made while later pages are read
                # has a higher version and is fetched next time, never skipped.
                if first and response.meta.get("version") is not None:
                    version = str(response.meta["version"])
                first = False
                if not next_cursor:
                    break
                if len(buffer) >= FLUSH_ROWS:
                    if storing is not None:
                        # Shielded: a cancellation must not drop the write's future while
                        # its thread goes on; ``finally`` waits for it instead.
                        await asyncio.shield(storing)
                    storing = asyncio.ensure_future(asyncio.to_thread(upsert, buffer))
                    buffer = []
            if storing is not None:
                await asyncio.shield(storing)
                storing = None
        finally:
            if not task.done():
                task.cancel()
            if storing is not None:
                # A page failed while a write was on its way: it finishes (an upsert, safe
                # to repeat, the cursor unmoved) and the page's error is the one raised.
                await asyncio.wait([storing])
                if not storing.cancelled():
                    storing.exception()
        # Deleted and then created again under the same id: it exists.
        tombstones = [i for i in dict.fromkeys(deleted) if i not in changed_ids]
        await asyncio.to_thread(apply, buffer, tombstones, version, self.clock.now())
        return bool(changed_ids or tombstones)

    async def seeds(self) -> bool:
        changed = await self._delta("seeds", self.store.upsert_seeds,
                                    self.store.apply_seed_delta)
        return await self.seed_schema() or changed

    async def seed_schema(self) -> bool:
        """The server's seed schema, asked for when missing or a day old (304 when the
        server's rules did not change): the seed wizard validates with it offline."""
        cached = self.store.load_seed_schema()
        if cached is not None and self.clock.now() - cached[2] < SEED_SCHEMA_TTL:
            return False
        try:
            response = await self._get("seeds", "/seeds/schema",
                                       etag=cached[1] if cached else None)
        except ApiRejected as exc:
            if exc.status != 404:
                raise
            return False  # a server from before the route: the wizard says it has no rules
        if response.not_modified and cached is not None:
            self.store.save_seed_schema(cached[0], cached[1], self.clock.now())
            return False
        self.store.save_seed_schema(response.data, response.etag, self.clock.now())
        return True

    async def violations(self) -> bool:
        return await self._delta("violations", self.store.upsert_violations,
                                 self.store.apply_violation_delta)

    async def notifications(self) -> bool:
        cursor = self.store.cursor("notifications")
        after = cursor.cursor
        new = 0
        while True:
            params: dict[str, Any] = {"limit": 500}
            if after:
                params["after"] = after
            response = await self._get("notifications", "/notifications", params)
            items = list(response.data or [])
            new += self.store.add_notifications(items)
            # The server names the last event it sent (oldest first); fall back to the
            # last item for servers that do not.
            last = response.meta.get("last_event_id")
            if last is not None:
                after = str(last)
            elif items:
                after = str(items[-1]["id"])
            if not items or not response.meta.get("next_cursor"):
                break
        self.store.set_cursor("notifications", cursor=after, synced_at=self.clock.now())
        return new > 0
