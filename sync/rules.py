"""The rules of governance this client applies, each in one place.

The engine, the in-memory client, the fake server, the notifier, the cold start and the
app's view models all ask this module; none keeps a copy. Every rule is a constant or a
pure function (no I/O, no clock of its own: the time is passed in), so each is tested
alone (``tests/sync/test_rules.py``).

- which statuses a decision can still change (``VETOABLE``, ``can_take``),
- veto limits (``MAX_REASON``, ``MAX_ATTACHMENTS``, ``MAX_ATTACHMENT_BYTES``,
  ``reason_problem``, ``attachments_problem``),
- whether a veto window is open (``window_open``),
- urgency per event type (``urgency``),
- quiet hours (``is_quiet``),
- reminder times before an unsent veto's deadline (``REMINDERS``, ``reminder_due``),
- permissions per scope (``scope_for``, ``may``),
- staleness of cached data (``DASHBOARD_TTL_S``, ``is_stale``),
- the undo window (``UNDO_SECONDS``) and the step-up (``STEP_UP_FOR_VETO``).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time
from enum import StrEnum
from urllib.parse import urlsplit

from sync.models import (
    AGENT_VIOLATED,
    APPROVAL_DECIDED,
    APPROVAL_DEPLOYED,
    BANNER_OUTCOME,
    BUDGET_THRESHOLD,
    DECISION_REFUSED,
    SCOPE_VETO,
    SCOPE_WRITE,
    SEED_AUTO_APPROVED,
    SEED_CHANGED,
    VETO_UNSENT,
    Account,
    ApprovalStatus,
    Attachment,
    CachedDashboard,
    DecisionAction,
)

# --- which statuses a decision can change ---------------------------------------------

# A veto stops a request until it is deployed: while pending, and through the veto window
# after an approval (by a governor or by a precedent seed).
VETOABLE: frozenset[ApprovalStatus] = frozenset({
    ApprovalStatus.PENDING_APPROVAL, ApprovalStatus.APPROVED, ApprovalStatus.AUTO_APPROVED})


def can_take(action: DecisionAction, status: ApprovalStatus) -> bool:
    """Whether a request in ``status`` can still take ``action``: a veto while vetoable,
    approve and request-changes only while pending."""
    if action == DecisionAction.VETO:
        return status in VETOABLE
    return status == ApprovalStatus.PENDING_APPROVAL


def window_open(deadline: datetime | None, now: datetime) -> bool:
    """A veto window with no deadline never closes; otherwise it is open strictly before
    the deadline (``now`` is the server's time as this device knows it)."""
    return deadline is None or deadline > now


# --- veto limits (the contract's) --------------------------------------------------------

MAX_REASON = 2000  # characters, after trimming
MAX_ATTACHMENTS = 5
MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024  # all of a veto's files together


def reason_problem(reason: str, what: str = "veto") -> str | None:
    """Why ``reason`` (trimmed) is not a valid ``what`` reason; None when it is."""
    length = len(reason.strip())
    if length == 0:
        return f"The {what} reason is empty; say why in 1 to {MAX_REASON} characters."
    if length > MAX_REASON:
        return (f"The {what} reason is {length} characters (1 to {MAX_REASON} allowed); "
                f"shorten it to {MAX_REASON}.")
    return None


def comment_problem(comment: str | None) -> str | None:
    """Why an approval's optional comment is not valid; None when it is."""
    if comment is not None and len(comment) > MAX_REASON:
        return f"The comment is {len(comment)} characters; keep it to {MAX_REASON}."
    return None


def attachments_problem(sizes: list[int]) -> str | None:
    """Why files of these sizes (bytes) cannot go with one veto; None when they can."""
    if len(sizes) > MAX_ATTACHMENTS:
        return (f"a veto carries at most {MAX_ATTACHMENTS} files; remove "
                f"{len(sizes) - MAX_ATTACHMENTS}.")
    total = sum(sizes)
    if total > MAX_ATTACHMENT_BYTES:
        return (f"the attachments come to {total} bytes, over the limit of 5 MB "
                f"({MAX_ATTACHMENT_BYTES} bytes) in all; remove or shrink some.")
    return None


def veto_problem(reason: str, attachments: Sequence[Attachment] = ()) -> str | None:
    """Why this veto cannot be queued (its files, then its reason); None when it can."""
    sizes = []
    for f in attachments:
        try:
            sizes.append(len(base64.b64decode(f.data_base64, validate=True)))
        except ValueError:
            return f"attachment {f.name!r} is not valid base64; attach the file again."
    return attachments_problem(sizes) or reason_problem(reason, "veto")


def shown_pending(actions: Sequence[DecisionAction]) -> DecisionAction | None:
    """Which of the unanswered decisions on one request (oldest first) it shows as
    pending: a veto wins over an earlier approval, else the latest counts."""
    if DecisionAction.VETO in actions:
        return DecisionAction.VETO
    return actions[-1] if actions else None


def queued_blocks(pending: DecisionAction | None, action: DecisionAction) -> bool:
    """Whether a decision already queued for a request (``pending``) blocks ``action``: the
    same decision twice, or anything but a veto after another decision (a veto is absolute:
    it may follow a queued approval)."""
    return pending is not None and (pending == action or action != DecisionAction.VETO)


# --- urgency per event type --------------------------------------------------------------

class Urgency(StrEnum):
    HIGH = "high"  # goes through quiet hours
    NORMAL = "normal"
    LOW = "low"  # for information: the person need not act


URGENT_BUDGET_PERCENT = 95.0
_FOR_INFORMATION = frozenset({APPROVAL_DECIDED, SEED_AUTO_APPROVED, APPROVAL_DEPLOYED,
                              SEED_CHANGED, BANNER_OUTCOME})


def urgency(event_type: str, threshold: float = 0.0) -> Urgency:
    """High: every violation, a budget at 95 % or more, a reminder that an unsent veto's
    window is closing and a decision the server refused. Low: what is for information
    only (and what became of a banner acted on). Normal: the rest."""
    if event_type in (AGENT_VIOLATED, VETO_UNSENT, DECISION_REFUSED):
        return Urgency.HIGH
    if event_type == BUDGET_THRESHOLD:
        return Urgency.HIGH if threshold >= URGENT_BUDGET_PERCENT else Urgency.NORMAL
    if event_type in _FOR_INFORMATION:
        return Urgency.LOW
    return Urgency.NORMAL


# --- quiet hours --------------------------------------------------------------------------

def is_quiet(start: time, end: time, local: time) -> bool:
    """Whether the local time of day ``local`` falls in the quiet period [start, end),
    which may run over midnight (22:00 to 07:00); ``start == end`` means none."""
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


# --- reminders before an unsent veto's deadline ---------------------------------------

@dataclass(frozen=True)
class Reminder:
    bit: int  # kept per outbox entry, so each reminder is given once
    seconds: float  # how long before the deadline
    label: str


REMINDERS: tuple[Reminder, ...] = (Reminder(1, 3600.0, "1 hour"),
                                   Reminder(2, 600.0, "10 minutes"))


def reminder_due(left_s: float, given: int) -> tuple[int, str] | None:
    """The reminder due for an unsent veto whose deadline is ``left_s`` seconds away
    (negative: passed), given the reminder bits already marked: the bits to mark (a later
    reminder covers the earlier ones) and how long is left in words; None when none is
    due."""
    due = [r for r in REMINDERS if left_s <= r.seconds]
    if not due:
        return None
    latest = min(due, key=lambda r: r.seconds)
    if given & latest.bit:
        return None
    bits = 0
    for r in due:
        bits |= r.bit
    return bits, ("no time" if left_s <= 0 else latest.label)


# --- permissions per scope ------------------------------------------------------------

def scope_for(action: DecisionAction | None) -> str:
    """The scope an account needs for ``action`` (None: any other write, a seed)."""
    return SCOPE_VETO if action == DecisionAction.VETO else SCOPE_WRITE


def may(account: Account | None, action: DecisionAction | None) -> bool:
    """Whether ``account`` may take ``action``: signed in with the scope it needs."""
    return account is not None and account.can(scope_for(action))


def read_only(account: Account | None) -> bool:
    """Signed in, but with no write scope at all (the auditor): offer no write action."""
    return account is not None and not (account.can(SCOPE_WRITE) or account.can(SCOPE_VETO))


# --- staleness ------------------------------------------------------------------------------

DASHBOARD_TTL_S = 300.0  # seconds before a cached dashboard is shown as stale


def age_s(fetched_at: datetime, now: datetime) -> float:
    """How old something fetched at ``fetched_at`` is; never negative (a clock that moved
    back must not make data younger than fresh)."""
    return max(0.0, (now - fetched_at).total_seconds())


def is_stale(fetched_at: datetime, now: datetime, ttl_s: float = DASHBOARD_TTL_S) -> bool:
    return (now - fetched_at).total_seconds() > ttl_s


def dashboard_as_of(cached: CachedDashboard, now: datetime,
                    ttl_s: float = DASHBOARD_TTL_S) -> CachedDashboard:
    """The cached dashboard with its age and staleness as of ``now`` (the engine's cache
    and the cold start's first screen, read from that cache, answer under this one rule)."""
    return cached.model_copy(update={"stale": is_stale(cached.fetched_at, now, ttl_s),
                                     "age_s": age_s(cached.fetched_at, now)})


# --- where the client may talk to ---------------------------------------------------------

def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def secure_url(url: str) -> bool:
    """Whether ``url`` keeps passwords and tokens off the network in clear: https, or plain
    http to this machine (anything else needs the development-only override)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    return scheme == "https" or (scheme == "http" and is_loopback(parts.hostname or ""))


# --- the undo window and the step-up ----------------------------------------------------

# A confirmed decision stays on the device this long, with a way to take it back, before
# it is queued (the engine sends queued decisions at once).
UNDO_SECONDS = 5.0
# A veto is final: it asks for the governor's password again unless settings turn it off.
STEP_UP_FOR_VETO = True


__all__ = [
    "DASHBOARD_TTL_S", "MAX_ATTACHMENTS", "MAX_ATTACHMENT_BYTES", "MAX_REASON", "REMINDERS",
    "STEP_UP_FOR_VETO", "UNDO_SECONDS", "URGENT_BUDGET_PERCENT", "VETOABLE", "Reminder",
    "Urgency", "age_s", "attachments_problem", "can_take", "comment_problem",
    "dashboard_as_of", "is_loopback", "is_quiet", "is_stale", "may", "queued_blocks",
    "read_only", "reason_problem", "reminder_due", "scope_for", "secure_url",
    "shown_pending", "urgency", "veto_problem", "window_open",
]
