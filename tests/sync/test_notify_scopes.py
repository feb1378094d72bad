"""Alerts offer only what the signed-in account may do: no Approve or Veto on any
surface (banner, desktop, the phone's channel) for a read-only auditor."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sync.alerts import ActionId, Alert, NotifierInfo, alert_for, may_act, permitted
from sync.models import Account
from sync.notify import ActionHandler, NotificationDispatcher
from sync.push import PushEvent
from tests.sync.conftest import AUDITOR, GOVERNOR


def pending() -> PushEvent:
    return PushEvent(id="1", type="governance.approval.pending",
                     timestamp=datetime(2026, 1, 1, 12, tzinfo=UTC),
                     source="platform", metadata={}, cursor="1",
                     data={"approval_id": "APR-1", "agent_name": "Ledger Bot"})


class Shown:
    def __init__(self) -> None:
        self.alerts: list[Alert] = []

    def info(self) -> list[NotifierInfo]:
        return [NotifierInfo("recorder", True, "test")]

    async def show(self, alert: Alert) -> None:
        self.alerts.append(alert)

    async def withdraw(self, alert_id: str) -> None:
        pass

    def set_action_handler(self, handler: ActionHandler) -> None:
        pass  # nothing here is pressed


def actions_shown_to(account: Account | None) -> list[ActionId]:
    shown = Shown()
    dispatcher = NotificationDispatcher(shown, now=lambda: datetime(2026, 1, 1, 12,
                                                                    tzinfo=UTC),
                                        account=lambda: account)
    asyncio.run(dispatcher.deliver_event(pending()))
    [alert] = shown.alerts
    return [a.id for a in alert.actions]


def test_every_surface_offers_the_auditor_only_open() -> None:
    assert actions_shown_to(GOVERNOR) == [ActionId.APPROVE, ActionId.VETO]
    assert actions_shown_to(AUDITOR) == [ActionId.OPEN]
    assert actions_shown_to(None) == [ActionId.OPEN]


def test_each_action_needs_its_scope() -> None:
    approver = Account(sub="s", username="approver",
                       scopes=frozenset({"governance:read", "governance:write"}))
    assert may_act(approver, ActionId.APPROVE) and not may_act(approver, ActionId.VETO)
    assert may_act(AUDITOR, ActionId.OPEN) and may_act(None, ActionId.OPEN)
    alert = alert_for(pending())
    assert [a.id for a in permitted(alert, approver).actions] == [ActionId.APPROVE,
                                                               ActionId.OPEN]
    assert permitted(alert, GOVERNOR) is alert
