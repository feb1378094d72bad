"""Receipts end to end: a decision made offline and applied later shows a verified
receipt, checked against the key set the client cached, and its audit entry matches."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.models import VetoCategory
from sync.settings import GovernorSettings
from sync.tokens import MemoryVault
from tests.support.stub_process import StubProcess


def test_a_decision_made_offline_and_applied_later_shows_a_verified_receipt(
        tmp_path: Path) -> None:
    stub = StubProcess(tmp_path / "stub", env={"GOVSTUB_DISABLE_RATE_LIMIT": "true"}).start()
    try:
        async def scenario() -> None:
            auth = Authenticator(stub.url, vault=MemoryVault())
            settings = GovernorSettings(server_url=stub.url, data_dir=tmp_path / "client",
                                        sync_interval=0)
            engine = SyncEngine(settings, authenticator=auth)
            await engine.sign_in_with_password("governor", "governor")
            await engine.sync_now()
            assert engine.store.signing_keys()  # cached at sign-in
            pending = engine.approvals("pending")[0].id
            window = engine.approvals("veto_window")[0].id
            stub.stop()  # offline from here
            approve = engine.approve(pending, comment="fine offline")
            veto = engine.veto(window, VetoCategory.SAFETY, "unknown outbound host")
            await engine.upload()
            assert engine.receipt(pending).status == "awaiting"  # type: ignore[union-attr]
            with engine.store.transaction() as conn:  # as if signed in before keys were kept
                conn.exec_driver_sql("DELETE FROM signing_key")
            stub.start()  # back online: the queued decisions are applied now
            await engine.sync_now()
            for approval_id, entry in ((pending, approve), (window, veto)):
                receipt = engine.receipt(approval_id)
                assert receipt is not None and receipt.decision_id == entry.id
                assert receipt.status == "verified", receipt.problem
                assert receipt.audit_seq is not None
            assert engine.store.signing_keys()  # fetched again: the receipts named a key
            # The decider's audit entry matches the receipt and the signed head covers it.
            response = await engine.api.request("GET", f"/v1/mobile/audit/decisions/{veto.id}")
            entry = response.data
            body = {k: entry[k] for k in ("seq", "at", "actor", "action", "resource",
                                          "details", "prev_hash")}
            digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False).encode()).hexdigest()
            assert digest == entry["hash"]
            assert entry["seq"] == engine.receipt(window).audit_seq  # type: ignore[union-attr]
            head = (await engine.api.request("GET", "/v1/mobile/audit/head")).data
            assert head["seq"] >= entry["seq"]
            # The same checks as the engine offers them (the head's signature too).
            assert await engine.check_audit(window) is None
            assert await engine.check_audit(pending) is None
            await engine.stop()
            await auth.aclose()

        asyncio.run(scenario())
    finally:
        stub.stop()
