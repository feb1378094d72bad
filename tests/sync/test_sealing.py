"""Data at rest: what the governor typed or attached is sealed in the outbox with the
device key from the token vault, and so are the reasons, comments and notes of the server
data cached beside it; nothing of it is in the database file in clear; an entry the key
does not open is held with the reason, never dropped (a cached row is shown without its
secret text); sign-out keeps the key and the cache."""

from __future__ import annotations

import base64
import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from sync.api import FakeAuthenticator
from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.errors import DeviceKeyError
from sync.models import Attachment, OutboxState, VetoCategory
from sync.sealing import UNREADABLE, OutboxSealer, new_device_key, open_secrets, seal_secrets
from sync.settings import GovernorSettings
from sync.store import LocalStore, Outcome
from sync.tokens import EncryptedFileVault, MemoryVault, StoredTokens
from tests.sync.conftest import GOVERNOR, OTHER, World, run

REASON = "exfiltrates patient records to pastebin-7f3a"
COMMENT = "approved after the call with Dr Quinn-4c1e"
EVIDENCE = b"%PDF-1.7 evidence bytes 9d2b-unique"


class Recording(httpx.AsyncBaseTransport):
    """Passes requests to the fake server and keeps the decision items it was sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.items: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/decisions"):
            self.items += orjson.loads(request.content)["decisions"]
        return await self.inner.handle_async_request(request)


def file_world(tmp_path: Path, vault: Any = None) -> tuple[World, Recording]:
    w = World(store=None)
    w.auth.vault = vault or MemoryVault()
    recording = Recording(w.server)
    w.store = LocalStore(tmp_path / "governor.db")

    def new_engine() -> SyncEngine:
        return SyncEngine(GovernorSettings(server_url="http://127.0.0.1:9", sync_interval=0,
                                           device_id="dev-test", data_dir=tmp_path),
                          authenticator=w.auth, store=w.store, transport=recording,
                          clock=w.clock, rng=random.Random(0))

    w.new_engine = new_engine  # type: ignore[method-assign]
    w.engine = new_engine()
    w.seed_world()
    return w, recording


def raw_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in directory.glob("governor.db*"))


def queue_secrets(w: World) -> None:
    w.engine.approve("APR-0", comment=COMMENT)
    w.engine.veto("APR-W", VetoCategory.SAFETY, REASON, [Attachment(
        name="scan.pdf", content_type="application/pdf",
        data_base64=base64.b64encode(EVIDENCE).decode())])


def test_nothing_typed_or_attached_is_in_the_database_file_in_clear(tmp_path: Path) -> None:
    w, recording = file_world(tmp_path)
    queue_secrets(w)
    raw = raw_bytes(tmp_path)  # the database, its WAL and shared memory
    for secret in (REASON.encode(), COMMENT.encode(), EVIDENCE,
                   base64.b64encode(EVIDENCE), REASON[:16].encode()):
        assert secret not in raw
    # The app still reads them, and the server gets them in clear.
    [veto] = [e for e in w.engine.outbox() if e.approval_id == "APR-W"]
    assert veto.payload["reason"] == REASON
    report = run(w.engine.upload())
    assert report is not None and len(report.applied) == 2
    sent = {i["approval_id"]: i for i in recording.items}
    assert sent["APR-W"]["reason"] == REASON and sent["APR-0"]["comment"] == COMMENT
    assert base64.b64decode(sent["APR-W"]["attachments"][0]["data_base64"]) == EVIDENCE
    assert REASON.encode() not in raw_bytes(tmp_path)  # the applied row stays sealed


def test_an_approval_without_a_comment_is_stored_as_it_is_sent(tmp_path: Path) -> None:
    w, _ = file_world(tmp_path)
    entry = w.engine.approve("APR-1")
    with sqlite3.connect(tmp_path / "governor.db") as db:
        [(stored,)] = db.execute("SELECT payload FROM outbox WHERE id = ?", (entry.id,))
    assert not stored.startswith("sealed:")  # nothing secret in it: no cost to seal


def test_clear_text_entries_of_an_earlier_version_still_send(tmp_path: Path) -> None:
    w, recording = file_world(tmp_path)
    # A row as versions before sealing wrote it: the payload in clear.
    with sqlite3.connect(tmp_path / "governor.db") as db:
        db.execute(
            "INSERT INTO outbox (id, seq, kind, approval_id, action, payload, state, "
            "created_at, updated_at, sub) VALUES ('old-1', 99, 'decision', 'APR-W', 'veto', "
            "?, 'queued', '2026-01-01T12:00:00+00:00', '2026-01-01T12:00:00+00:00', ?)",
            (orjson.dumps({"id": "old-1", "approval_id": "APR-W", "action": "veto",
                           "category": "safety", "reason": "old clear reason",
                           "decided_at": "2026-01-01T12:00:00Z",
                           "device_id": "dev"}).decode(), GOVERNOR.sub))
    assert w.engine.outbox()[0].payload["reason"] == "old clear reason"
    report = run(w.engine.upload())
    assert report is not None and report.applied == ["old-1"]
    assert recording.items[0]["reason"] == "old clear reason"


def test_an_entry_the_device_key_does_not_open_is_held_with_the_reason(
        tmp_path: Path) -> None:
    w, recording = file_world(tmp_path)
    queue_secrets(w)
    # The keychain entry was reset: a new device key, which opens nothing queued earlier.
    w.store.sealer = OutboxSealer(new_device_key)
    report = run(w.engine.upload())
    assert report is not None and report.applied == [] and recording.items == []
    held = w.engine.outbox({OutboxState.HELD})
    assert len(held) == 2  # held, not dropped
    for entry in held:
        assert entry.error_code == "DEVICE_KEY"
        assert repr(entry.id) in (entry.error_message or "")
        assert "restore the device key" in (entry.error_message or "")
    w.engine._check_account()  # signing in again does not release them to fail again
    assert len(w.engine.outbox({OutboxState.HELD})) == 2
    # The keychain entry is restored: the next start tries them again, and they are sent.
    w.store.sealer = OutboxSealer(w.auth.vault.device_key)
    run(w.engine.start())
    report = run(w.engine.upload())
    assert report is not None and len(report.applied) == 2
    assert {i.get("reason") for i in recording.items} >= {REASON}


def test_a_sealed_store_opened_without_the_key_names_the_entry(tmp_path: Path) -> None:
    w, _ = file_world(tmp_path)
    queue_secrets(w)
    bare = LocalStore(tmp_path / "governor.db")
    [veto] = [e for e in bare.entries() if e.approval_id == "APR-W"]
    assert veto.payload == {}  # shown without its text
    with pytest.raises(DeviceKeyError, match=repr(veto.id)):
        bare.attachments([veto.id])


def test_a_sealed_payload_moved_onto_another_entry_does_not_open() -> None:
    sealer = OutboxSealer(new_device_key)
    sealed = sealer.seal('{"reason": "x"}', "entry-a")
    assert sealer.open(sealed, "entry-a") == '{"reason": "x"}'
    with pytest.raises(DeviceKeyError, match="'entry-b'"):
        sealer.open(sealed, "entry-b")


def test_sign_out_removes_the_session_and_keeps_the_device_key(tmp_path: Path) -> None:
    vault = EncryptedFileVault(tmp_path / "data" / "session.enc", tmp_path / "keys" / "k")
    w, recording = file_world(tmp_path, vault)
    vault.save(StoredTokens(sub=GOVERNOR.sub, username="governor", scopes=GOVERNOR.scopes,
                            access_token="a", expires_at=w.clock.now(), refresh_token="r"))
    key = vault.device_key()
    queue_secrets(w)
    vault.clear()  # what sign-out does to the vault
    assert vault.load() is None and not vault.path.exists()
    assert vault.device_key() == key and vault.device_key_path.exists()
    # Another account signs in on this device: the first one's entries are held for it.
    other = FakeAuthenticator(OTHER)
    other.vault = vault
    w.auth = other
    engine = w.new_engine()
    run(engine.upload())
    # Held, and not this account's to see: only counted.
    assert recording.items == [] and engine.outbox() == []
    assert engine.status().other_accounts_count == 2
    # Its author returns: they open with the same device key and are sent.
    w.auth = FakeAuthenticator(GOVERNOR)
    w.auth.vault = vault
    engine = w.new_engine()
    report = run(engine.upload())
    assert report is not None and len(report.applied) == 2
    assert {i.get("reason") for i in recording.items} >= {REASON}


# --- cached server data ----------------------------------------------------------------
NOTE = f"Vetoed (safety): {REASON}"


def vetoed_detail(approval_id: str = "APR-V") -> dict[str, Any]:
    """A request as the server returns it after a veto: the reason is quoted in the
    stage's notes and the decision note."""
    return {"id": approval_id, "agent": {"id": "ag-1", "name": "Atlas"},
            "requester": "ops", "industry": "health", "status": "vetoed", "version": 3,
            "created_at": "2026-01-01T12:00:00+00:00", "decision_note": NOTE,
            "pipeline": [{"stage": "veto_window", "status": "failed", "notes": NOTE},
                         {"stage": "submitted", "status": "passed", "notes": None}]}


def cache_secrets(store: LocalStore) -> None:
    store.save_approval_detail(vetoed_detail())
    store.save_dashboard({"active_agents": 1, "pending_approvals": 0, "in_veto_window": 0,
                          "generated_at": "2026-01-01T12:00:00Z", "recent_vetoes": [
        {"approval_id": "APR-V", "agent_name": "Atlas", "category": "safety",
         "reason": REASON, "decided_by": "governor"}]}, None, datetime.now(UTC))
    store.add_notifications([{"id": "ev-1", "type": "governance.approval.decided",
                              "timestamp": "2026-01-01T12:00:00Z", "source": "stub",
                              "data": {"approval_id": "APR-V", "reason": REASON,
                                       "comment": COMMENT}}])


class CountingSealer(OutboxSealer):
    def __init__(self, key: bytes) -> None:
        super().__init__(lambda: key)
        self.opened = 0

    def open(self, stored: str, entry_id: str, part: int | str | None = None) -> str:
        self.opened += 1
        return super().open(stored, entry_id, part)


def test_cached_server_data_holds_no_reason_or_comment_in_clear(tmp_path: Path) -> None:
    sealer = CountingSealer(new_device_key())
    store = LocalStore(tmp_path / "governor.db", sealer=sealer)
    cache_secrets(store)
    raw = raw_bytes(tmp_path)
    for secret in (REASON.encode(), COMMENT.encode(), REASON[:16].encode()):
        assert secret not in raw
    # What SQL lists, filters and searches on stays in clear.
    assert b"Atlas" in raw and b"vetoed" in raw and b"APR-V" in raw
    # Read back transparently.
    detail, is_detail = store.approval("APR-V")  # type: ignore[misc]
    assert is_detail and detail["decision_note"] == NOTE
    assert detail["pipeline"][0]["notes"] == NOTE and detail["pipeline"][1]["notes"] is None
    dashboard = store.load_dashboard()
    assert dashboard is not None and dashboard[0]["recent_vetoes"][0]["reason"] == REASON
    [(note, _read)] = store.notifications()
    assert note["data"] == {"approval_id": "APR-V", "reason": REASON, "comment": COMMENT}
    # The list decrypts nothing it does not show.
    sealer.opened = 0
    [(summary, _)] = store.approval_page("all", "", datetime.now(UTC), 50, 0)
    assert summary["status"] == "vetoed" and sealer.opened == 0
    assert store.approval_total("all", "atlas", datetime.now(UTC)) == 1


def test_a_server_answer_merged_into_the_cache_keeps_it_sealed(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "governor.db", sealer=OutboxSealer(new_device_key))
    store.save_approval_detail({**vetoed_detail(), "status": "approved", "version": 2,
                                "decision_note": None, "pipeline": []})
    # A batch answer carrying only what the decision changed.
    store.record_outcomes([Outcome("e-1", True, approval={
        "id": "APR-V", "status": "vetoed", "version": 3, "decision_note": NOTE,
        "pipeline": vetoed_detail()["pipeline"]})], datetime.now(UTC))
    assert REASON.encode() not in raw_bytes(tmp_path)
    detail, _ = store.approval("APR-V")  # type: ignore[misc]
    assert detail["decision_note"] == NOTE and detail["requester"] == "ops"


def test_cached_rows_written_in_clear_by_an_earlier_version_still_read(
        tmp_path: Path) -> None:
    LocalStore(tmp_path / "governor.db").save_approval_detail(vetoed_detail())  # no key
    assert REASON.encode() in raw_bytes(tmp_path)
    store = LocalStore(tmp_path / "governor.db", sealer=OutboxSealer(new_device_key))
    detail, _ = store.approval("APR-V")  # type: ignore[misc]
    assert detail["pipeline"][0]["notes"] == NOTE


def test_a_cache_the_device_key_does_not_open_shows_without_its_secrets(
        tmp_path: Path) -> None:
    w, _ = file_world(tmp_path)
    cache_secrets(w.store)
    # The keychain entry was reset: a new device key opens nothing cached earlier.
    w.store.sealer = OutboxSealer(new_device_key)
    detail = w.engine.approval("APR-V")  # validates: the screen shows, with the marker
    assert detail is not None and detail.status.value == "vetoed"
    assert detail.pipeline[0].notes == UNREADABLE
    cached = w.engine.dashboard()
    assert cached is not None
    assert cached.dashboard.recent_vetoes[0]["reason"] == UNREADABLE
    [note] = [n for n in w.engine.notifications() if n.id == "ev-1"]
    assert note.data["reason"] == UNREADABLE and note.data["approval_id"] == "APR-V"
    # Nothing was dropped: the old key still opens what is stored.
    w.store.sealer = OutboxSealer(w.auth.vault.device_key)
    assert w.engine.approval("APR-V").pipeline[0].notes == NOTE  # type: ignore[union-attr]
    # Without any key (a store opened bare) the same holds.
    bare = LocalStore(tmp_path / "governor.db")
    assert bare.approval("APR-V")[0]["decision_note"] == UNREADABLE  # type: ignore[index]


def test_a_sealed_cache_value_moved_onto_another_row_does_not_open() -> None:
    sealer = OutboxSealer(new_device_key)
    sealed = seal_secrets({"reason": REASON}, sealer, "approval/APR-1")
    assert open_secrets(sealed, sealer, "approval/APR-1") == {"reason": REASON}
    assert open_secrets(sealed, sealer, "approval/APR-2") == {"reason": UNREADABLE}
    # Sealing again carries the sealed values over; attachments that do not open read as
    # none.
    again = seal_secrets(sealed, sealer, "approval/APR-1")
    assert open_secrets(again, sealer, "approval/APR-1") == {"reason": REASON}
    files = seal_secrets({"attachments": [{"name": "scan.pdf"}]}, sealer, "n/1")
    assert open_secrets(files, sealer, "n/2") == {"attachments": []}


def test_without_the_key_the_cold_start_leaves_the_secrets_out() -> None:
    sealer = OutboxSealer(new_device_key)
    sealed = seal_secrets({"id": "N-1", "reason": REASON, "attachments": [{"name": "a"}],
                           "nested": {"comment": "c", "kept": 1}}, sealer, "notification/N-1")
    assert open_secrets(sealed, None, "notification/N-1", unopened=None) == {
        "id": "N-1", "reason": None, "attachments": [], "nested": {"comment": None,
                                                                   "kept": 1}}
    # A row without sealed values is read as it is; nothing is added to it.
    assert open_secrets({"id": "N-2", "data": {"x": 1}}, None, "notification/N-2",
                        unopened=None) == {"id": "N-2", "data": {"x": 1}}


def test_attachment_names_are_sealed_in_the_outbox(tmp_path: Path) -> None:
    w, _ = file_world(tmp_path)
    queue_secrets(w)
    assert b"scan.pdf" not in raw_bytes(tmp_path)
    [veto] = [e for e in w.engine.outbox() if e.approval_id == "APR-W"]
    assert w.store.attachments([veto.id])[veto.id][0]["name"] == "scan.pdf"


def test_sign_out_keeps_the_cache_sealed_and_readable_and_removes_the_session(
        tmp_path: Path) -> None:
    """What sign-out (``SyncEngine.sign_out`` over the real ``Authenticator``) removes: the
    session in the vault. What it keeps for the next account on this device: the device
    key, the cache (still sealed, still readable), the receipts and the outbox (held)."""
    vault = EncryptedFileVault(tmp_path / "data" / "session.enc", tmp_path / "keys" / "k")
    w, _ = file_world(tmp_path, vault)

    def offline(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("offline", request=request)

    vault.save(StoredTokens(sub=GOVERNOR.sub, username="governor", scopes=GOVERNOR.scopes,
                            access_token="a", expires_at=w.clock.now(), refresh_token="r"))
    auth = Authenticator("http://127.0.0.1:9", vault=vault,
                         http=httpx.AsyncClient(transport=httpx.MockTransport(offline)))
    w.auth = auth  # type: ignore[assignment]
    w.engine = engine = w.new_engine()
    assert auth.account() is not None
    key = vault.device_key()
    cache_secrets(w.store)
    queue_secrets(w)
    receipts = len(w.store.receipt_rows())
    run(engine.sign_out())  # offline: the revocation is best effort
    # Removed: the session.
    assert auth.account() is None and vault.load() is None and not vault.path.exists()
    # Kept: the device key, and with it a cache that still reads and still is sealed.
    assert vault.device_key() == key
    assert engine.approval("APR-V").pipeline[0].notes == NOTE  # type: ignore[union-attr]
    assert engine.dashboard() is not None and len(w.store.receipt_rows()) == receipts
    # The governor's notifications and outbox stay, shown to no one until it returns.
    assert engine.notifications() == [] and engine.outbox() == []
    assert engine.status().other_accounts_count == 2
    w.store.serve(GOVERNOR.sub)
    assert engine.notifications() and len(engine.outbox({OutboxState.HELD})) == 2
    raw = raw_bytes(tmp_path)
    assert REASON.encode() not in raw and COMMENT.encode() not in raw


def test_what_an_earlier_version_cached_in_clear_is_sealed_once_at_start(
        tmp_path: Path) -> None:
    bare = LocalStore(tmp_path / "governor.db")  # as versions before sealing wrote it
    cache_secrets(bare)
    bare.enqueue(entry_id="e-1", kind="decision", payload={"reason": "r"},
                 created_at=datetime.now(UTC), attachments=[Attachment(
                     name="scan.pdf", content_type="application/pdf", data_base64="eA==")])
    bare.close()
    assert REASON.encode() in raw_bytes(tmp_path) and b"scan.pdf" in raw_bytes(tmp_path)
    store = LocalStore(tmp_path / "governor.db", sealer=OutboxSealer(new_device_key))
    # The request's summary and detail, the dashboard, the notification, the file name.
    assert store.seal_clear_cache() == 5
    raw = raw_bytes(tmp_path)
    for secret in (REASON.encode(), COMMENT.encode(), b"scan.pdf"):
        assert secret not in raw
    assert store.approval("APR-V")[0]["pipeline"][0]["notes"] == NOTE  # type: ignore[index]
    assert store.attachments(["e-1"])["e-1"][0]["name"] == "scan.pdf"
    assert store.seal_clear_cache() == 0  # once


def test_the_engine_seals_what_was_cached_in_clear_when_it_starts(tmp_path: Path) -> None:
    w, _ = file_world(tmp_path)
    assert w.store.get_meta("cache_sealed") is None
    run(w.engine.start())
    run(w.engine.stop())
    assert w.store.get_meta("cache_sealed") == "v1"


def test_a_merge_that_leaves_a_sealed_value_in_place_carries_it_over(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "governor.db", sealer=OutboxSealer(new_device_key))
    store.save_approval_detail(vetoed_detail())
    # An answer that replaces the pipeline but not the sealed decision note.
    stage = {"stage": "deployed", "status": "skipped", "notes": f"{COMMENT} (by the server)"}
    store.record_outcomes([Outcome("e-1", True, approval={
        "id": "APR-V", "status": "vetoed", "version": 4, "pipeline": [stage]})],
        datetime.now(UTC))
    raw = raw_bytes(tmp_path)
    assert REASON.encode() not in raw and COMMENT.encode() not in raw
    detail, _ = store.approval("APR-V")  # type: ignore[misc]
    assert detail["decision_note"] == NOTE and detail["pipeline"] == [stage]
    assert detail["version"] == 4 and "$secrets" not in detail
