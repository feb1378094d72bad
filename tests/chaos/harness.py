"""What every chaos run shares: a topology of stub processes behind the fault proxy, a
client that reaches it only through the proxy, decisions that both apply and conflict, and
the judge.

A topology (``SingleStub``: one process on SQLite; a replicated one: several processes on
PostgreSQL behind a balancer) is a parameter: the world reads the server's state through
its database URL with SQLAlchemy (SQLite and PostgreSQL alike) and kills one of its
processes at a time.

The judge compares content: for every decision the client queued (``Intent``, taken when
it was queued), the server's audit trail holds it once, with the same approval, action,
category, reason, comment, attachment digests, decider and device; a decision the client
shows rejected carries a code the server really answered for that key (the proxy keeps
every answer: ``FaultProxy.answers``); the final status of every approval is the one its
applied decisions imply. Findings are sorted into ``CATEGORIES``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import create_engine, text

from sync.auth import Authenticator
from sync.engine import SyncEngine
from sync.errors import ServerUnreachable
from sync.models import DecisionAction, OutboxState
from sync.settings import GovernorSettings
from sync.store import LocalStore
from sync.tokens import EncryptedFileVault
from tests.chaos.proxy import FaultProxy, ServerAnswer
from tests.support.server_state import ServerDecision, ServerState, read_server
from tests.support.stub_process import StubProcess

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger(__name__)
REPORT_ENV = "CHAOS_REPORT"


def env_int(name: str, default: int) -> int:
    """A chaos knob from the environment (CI uses the defaults, which meet the issue's
    floor of 200 faults and 50 kills per run)."""
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not an integer; set it to a whole number "
                         "or unset it for the CI default.") from exc


def seed() -> int:
    return env_int("CHAOS_SEED", 20261121)


class Topology(Protocol):
    """Where the stub runs: one process, or replicas behind a balancer. The chaos world puts
    its fault proxy in front of ``address`` and reads state through ``database_url``."""

    name: str

    @property
    def address(self) -> tuple[str, int]:
        """Where requests enter (the stub itself, or the balancer); known before start."""
        ...

    @property
    def control_url(self) -> str:
        """A server's own URL, past the proxy, for the demo endpoints."""
        ...

    def jump_clock(self, seconds: float) -> None:
        """Move the demo clock of every server forward (``POST /v1/demo/clock``)."""
        ...

    @property
    def database_url(self) -> str: ...

    def start(self, env: Mapping[str, str]) -> None:
        """Start every process with ``env`` (GOVSTUB_* settings) added to its own."""
        ...

    def kill_one(self) -> None:
        """kill -9 one server process and start it again on the same port and data."""
        ...

    def disruptions(self) -> dict[str, Callable[[], None]]:
        """Faults beyond the proxy's and ``kill_one`` this topology can suffer (name to
        an action that returns once it is over): none for one process."""
        ...

    def close(self) -> None: ...


def advance_clock(url: str, seconds: float) -> datetime:
    """Move one server's demo clock and return its time after the move; waits out a
    restart running at the same time."""
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=url, timeout=30) as http:
        while True:
            try:
                response = http.post("/v1/demo/clock", json={"advance_seconds": seconds})
                response.raise_for_status()
                return datetime.fromisoformat(response.json()["data"]["now"])
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)


class SingleStub:
    """One ``governor-stub`` process on its SQLite file."""

    name = "single-sqlite"

    def __init__(self, data_dir: Path) -> None:
        self.stub = StubProcess(data_dir)

    @property
    def address(self) -> tuple[str, int]:
        return "127.0.0.1", self.stub.port

    @property
    def control_url(self) -> str:
        return self.stub.url

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.stub.data_dir / 'governance.db'}"

    def start(self, env: Mapping[str, str]) -> None:
        self.stub.env = dict(env)
        self.stub.start()

    def kill_one(self) -> None:
        # The demo clock's offset is lost: to the client, the server's clock jumps back.
        self.stub.stop(kill=True)
        self.stub.start()

    def jump_clock(self, seconds: float) -> None:
        advance_clock(self.stub.url, seconds)

    def disruptions(self) -> dict[str, Callable[[], None]]:
        return {}

    def close(self) -> None:
        self.stub.stop()


@dataclass
class ChaosWorld:
    """A topology behind a ``FaultProxy``; the servers' issuer is the proxy's URL, so token
    calls cross the proxy too and meet the same faults."""

    topology: Topology
    proxy: FaultProxy
    stub_kills: int = 0
    disrupted: Counter[str] = field(default_factory=Counter)

    @classmethod
    def start(cls, topology: Topology, *, access_token_ttl: int = 900,
              delay_s: float = 0.2) -> ChaosWorld:
        proxy = FaultProxy(*topology.address, delay_s=delay_s).start()
        env = {"GOVSTUB_DISABLE_RATE_LIMIT": "true", "GOVSTUB_PUBLIC_URL": proxy.url,
               "GOVSTUB_ACCESS_TOKEN_TTL": str(access_token_ttl),
               "GOVSTUB_LOG_LEVEL": "WARNING"}
        try:
            topology.start(env)
        except BaseException:
            proxy.stop()
            raise
        return cls(topology, proxy)

    def close(self) -> None:
        self.proxy.stop()
        self.topology.close()

    @property
    def url(self) -> str:
        """Where the client talks to: the proxy."""
        return self.proxy.url

    def control(self) -> httpx.Client:
        """Straight to a server, past the proxy: the test's own hand on the world."""
        return httpx.Client(base_url=self.topology.control_url, timeout=30)

    def new_pending(self, n: int) -> None:
        with self.control() as http:
            for _ in range(n):
                http.post("/v1/demo/scenario",
                          json={"event": "new_pending_approval"}).raise_for_status()

    def jump_clock(self, seconds: float) -> None:
        """Move the servers' clock forward (each server's, on a replicated topology)."""
        self.topology.jump_clock(seconds)

    def disrupt(self, name: str) -> None:
        """One of the topology's own disruptions (``Topology.disruptions``), counted."""
        actions = self.topology.disruptions()
        if name not in actions:
            raise KeyError(f"topology {self.topology.name!r} has no disruption {name!r}; "
                           f"it has {sorted(actions) or 'none'}")
        actions[name]()
        self.disrupted[name] += 1

    def kill_and_restart_stub(self) -> None:
        """kill -9 of a server process, then start again on the same port and data."""
        self.topology.kill_one()
        self.stub_kills += 1

    def server(self) -> ServerState:
        return read_server(self.topology.database_url)

    def audit(self) -> list[dict[str, Any]]:
        """The stub's audit trail, one row per applied decision."""
        return [d.row() for d in self.server().decisions]

    def security_audit_keys(self) -> Counter[str] | None:
        """How often each decision id is in the components' tamper-evident audit log
        (``components_audit_log``); None when the stub has no such log."""
        engine = create_engine(self.topology.database_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT details FROM components_audit_log "
                                         "WHERE action LIKE 'decision.%'")).all()
        except Exception as exc:
            if "components_audit_log" in str(exc):
                return None
            raise
        finally:
            engine.dispose()
        return Counter(str(_json(r[0]).get("idempotency_key")) for r in rows)

    def figures(self, client_timeout: float) -> dict[str, Any]:
        """The faults and kills of this world, for the chaos report."""
        return {"topology": self.topology.name,
                "faults_injected": self.proxy.total_injected,
                "faults_that_matter": self.proxy.faults_that_matter(client_timeout),
                "harmless_delays": self.proxy.harmless_delays(client_timeout),
                "faults_by_kind": dict(self.proxy.injected), "stub_kills": self.stub_kills,
                "disruptions": dict(self.disrupted),
                "first_sign_in_retries": FIRST_SIGN_IN_RETRIES[self.url]}


def _json(value: Any) -> dict[str, Any]:
    """A JSON column as SQLAlchemy hands it back: text on SQLite, parsed on PostgreSQL."""
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    return parsed if isinstance(parsed, dict) else {}


def audit_log_gaps(applied_keys: list[str], logged: Counter[str] | None) -> list[str]:
    """Applied decisions the security audit log lacks or holds twice."""
    if logged is None:
        return []
    return [f"{key} is in the audit log {logged.get(key, 0)} times" for key in applied_keys
            if logged.get(key, 0) != 1]


def http_transport() -> httpx.AsyncHTTPTransport:
    """One connection per request: the proxy draws a fault per connection, so every
    request (not just the first on a kept-alive connection) can meet one."""
    return httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))


CLIENT_TIMEOUT = 5.0  # seconds; a proxy delay shorter than this is a fault that does not matter


def client_settings(url: str, data: Path, batch_size: int) -> GovernorSettings:
    return GovernorSettings(server_url=url, data_dir=data, sync_interval=0,
                            batch_size=batch_size, request_timeout=CLIENT_TIMEOUT)


class ChaosAuthenticator(Authenticator):
    """The app's authenticator on a one-request-per-connection client (so token calls
    meet faults too), which it closes with itself."""

    def __init__(self, url: str, data: Path) -> None:
        self.http = httpx.AsyncClient(transport=http_transport(), timeout=5.0)
        super().__init__(url, vault=EncryptedFileVault(data / "tokens", data / "key"),
                         http=self.http, timeout=5.0)

    async def aclose(self) -> None:
        await super().aclose()
        await self.http.aclose()


def authenticator(url: str, data: Path) -> ChaosAuthenticator:
    """The client's session, kept in an encrypted file so a killed client resumes it."""
    return ChaosAuthenticator(url, data)


FIRST_SIGN_IN_TRIES = 3
# Each unanswered first sign-in, by the URL it went to: the chaos report counts them
# (``first_sign_in_retries``) so that a stall shows even in a passing run.
FIRST_SIGN_IN_RETRIES: Counter[str] = Counter()


async def signed_in_engine(url: str, data: Path, *, batch_size: int = 4) -> SyncEngine:
    """A signed-in engine, as the governor gets one: a sign-in the server does not answer
    in the client's timeout is tried again (a CI run once saw the first token exchange
    of a fresh world take over 5 s with no fault injected yet); each retry is logged, and
    a server that stays silent still fails the run."""
    auth = authenticator(url, data)
    for attempt in range(1, FIRST_SIGN_IN_TRIES + 1):
        if auth.account() is not None:
            break
        try:
            await auth.sign_in_with_password("governor", "governor")
        except ServerUnreachable:
            if attempt == FIRST_SIGN_IN_TRIES:
                raise
            FIRST_SIGN_IN_RETRIES[url] += 1
            log.warning("chaos: first sign-in, try %d of %d, went unanswered; trying again",
                        attempt, FIRST_SIGN_IN_TRIES)
    return SyncEngine(client_settings(url, data, batch_size), authenticator=auth,
                      transport=http_transport())


def queue_decisions(store: LocalStore, approvals: list[dict[str, Any]], sub: str,
                    device_id: str, n: int, rng: random.Random, prefix: str) -> list[str]:
    """Queue ``n`` decisions straight into the outbox, several on the same requests and
    with the versions the client last saw, so some apply and the others conflict (or
    find the veto window closed): both outcomes must reach the judge."""
    ids = []
    for i in range(n):
        approval = rng.choice(approvals)
        action = rng.choice(["approve", "request_changes", "veto", "veto"])
        entry_id = f"{prefix}-{i}-{rng.randrange(10**9)}"
        now = datetime.now(UTC)
        payload: dict[str, Any] = {"id": entry_id, "approval_id": approval["id"],
                                   "action": action, "device_id": device_id,
                                   "decided_at": now.isoformat()}
        if action == "veto":
            payload.update(category=rng.choice(["safety", "budget", "constitutional"]),
                           reason=f"chaos veto {i}")
        else:
            payload["expected_version"] = approval["version"]
            payload["reason" if action == "request_changes" else "comment"] = f"chaos {i}"
        store.enqueue(entry_id=entry_id, kind="decision", payload=payload, created_at=now,
                      approval_id=approval["id"], action=DecisionAction(action),
                      expected_version=approval["version"], sub=sub)
        ids.append(entry_id)
    return ids


@dataclass(frozen=True)
class Intent:
    """A decision as the client queued it: what the server's row must hold."""

    approval_id: str
    action: str
    category: str | None
    reason: str | None
    comment: str | None
    sub: str | None
    device_id: str | None
    attachments: tuple[str, ...] = ()  # sha256 of each file, sorted

    def differences(self, row: ServerDecision) -> list[str]:
        return [f"{name}={getattr(row, name)!r}, queued {getattr(self, name)!r}"
                for name in ("approval_id", "action", "category", "reason", "comment", "sub",
                             "device_id", "attachments")
                if getattr(row, name) != getattr(self, name)]


def intents(store: LocalStore, ids: Iterable[str]) -> dict[str, Intent]:
    """What the client queued under ``ids``, read at once (the outbox drops a file's bytes
    once it is applied, so this is taken when the decision is queued)."""
    ids = list(ids)
    files = store.attachments(ids)
    made: dict[str, Intent] = {}
    for entry_id in ids:
        entry = store.entry(entry_id)
        if entry is None:
            raise LookupError(f"outbox entry {entry_id!r} is not in the store; take its "
                              "intent right after queueing it")
        p = entry.payload
        made[entry_id] = Intent(
            approval_id=str(p["approval_id"]), action=str(p["action"]),
            category=p.get("category"), reason=p.get("reason"), comment=p.get("comment"),
            sub=entry.sub, device_id=p.get("device_id"),
            attachments=tuple(sorted(hashlib.sha256(base64.b64decode(f["data_base64"]))
                                     .hexdigest() for f in files.get(entry_id, []))))
    return made


CATEGORIES = {
    "lost": "the client holds it applied (or no longer holds it) and the server has no row",
    "duplicated": "the server applied one key more than once",
    "wrong_content": "the server's row differs from what the client queued",
    "unexplained_rejection": "shown rejected with a code the server never answered for "
                             "that key, without a message, or while the server applied it",
    "wrong_status": "an approval's final status is not what its applied decisions imply",
    "unfinished": "still queued, sending or held after the final drain",
    "foreign": "the server applied, for this device, a key the client never made",
}
# What the last applied decision on a request leaves it as (approved ones deploy when
# their window ends); a request no decision touched is pending, auto-approved or deployed.
IMPLIED_STATUS = {"approve": {"approved", "deployed"}, "request_changes": {"changes_requested"},
                  "veto": {"vetoed"}, None: {"pending_approval", "auto_approved", "deployed"}}


@dataclass
class Verdict:
    applied: int = 0
    rejected: int = 0
    rejection_codes: Counter[str] = field(default_factory=Counter)
    findings: dict[str, list[str]] = field(
        default_factory=lambda: {name: [] for name in CATEGORIES})

    def add(self, category: str, message: str) -> None:
        self.findings[category].append(message)

    @property
    def problems(self) -> list[str]:
        return [f"{name}: {m}" for name, found in self.findings.items() for m in found]

    def found(self) -> set[str]:
        """The categories with at least one finding."""
        return {name for name, found in self.findings.items() if found}

    def as_dict(self) -> dict[str, Any]:
        return {"applied": self.applied, "rejected": self.rejected,
                "rejection_codes": dict(self.rejection_codes),
                "findings": {name: len(found) for name, found in self.findings.items()},
                "problems": self.problems[:20]}


def judge(store: LocalStore, made: Mapping[str, Intent], server: ServerState,
          answers: Mapping[str, Sequence[ServerAnswer]]) -> Verdict:
    """Judge the client's outbox (``store``) and what it queued (``made``) against the
    server's state and every answer the server gave (``answers``, per decision key)."""
    verdict = Verdict()
    entries = {e.id: e for e in store.entries()}
    rows: dict[str, list[ServerDecision]] = defaultdict(list)
    for decision in server.decisions:
        if decision.key is not None:
            rows[decision.key].append(decision)
    for key, intent in made.items():
        applied = rows.get(key, [])
        if len(applied) > 1:
            verdict.add("duplicated", f"{key} is applied {len(applied)} times")
        for row in applied:
            wrong = intent.differences(row)
            if wrong:
                verdict.add("wrong_content", f"{key} is held with {'; '.join(wrong)}")
        entry = entries.get(key)
        if entry is None:
            verdict.add("lost", f"{key} is no longer in the outbox"
                        + ("" if applied else " and the server never applied it"))
        elif entry.state == OutboxState.APPLIED:
            verdict.applied += 1
            if not applied:
                verdict.add("lost", f"{key} is applied on the client but the server holds "
                            "no decision under that key")
        elif entry.state == OutboxState.REJECTED:
            verdict.rejected += 1
            code = entry.error_code or ""
            verdict.rejection_codes[code or "?"] += 1
            heard = sorted({str(a.code) for a in answers.get(key, ())
                            if a.outcome in ("rejected", "refused") and a.code})
            if applied:
                verdict.add("unexplained_rejection", f"{key} is rejected on the client "
                            f"({code}) but the server applied it")
            elif not code or not entry.error_message:
                verdict.add("unexplained_rejection", f"{key} is rejected without a code and "
                            "a message to show")
            elif code not in heard:
                verdict.add("unexplained_rejection", f"{key} is rejected on the client with "
                            f"{code}, which the server never answered for it (it answered: "
                            f"{', '.join(heard) or 'no rejection'})")
        else:
            verdict.add("unfinished", f"{key} is still {entry.state.value} after the final "
                        "drain")
    devices = {i.device_id for i in made.values()}
    for decision in server.decisions:
        if decision.device_id in devices and decision.key not in made:
            verdict.add("foreign", f"the server applied {decision.key} on "
                        f"{decision.device_id}, which this client never made")
    _judge_statuses(server, verdict)
    return verdict


def _judge_statuses(server: ServerState, verdict: Verdict) -> None:
    by_approval: dict[str, list[ServerDecision]] = defaultdict(list)
    keys: set[tuple[str, str]] = set()
    for decision in server.decisions:
        if decision.key is not None:  # a key applied twice is "duplicated", counted once here
            if (decision.sub, decision.key) in keys:
                continue
            keys.add((decision.sub, decision.key))
        by_approval[decision.approval_id].append(decision)
    for approval in server.approvals.values():
        applied = by_approval.get(approval.id, [])
        actions = Counter(d.action for d in applied)
        if actions["approve"] + actions["request_changes"] > 1 or actions["veto"] > 1:
            verdict.add("wrong_status", f"{approval.id} took {dict(actions)}: a request "
                        "takes one approve or request-changes and at most one veto")
        last = applied[-1] if applied else None
        expected = IMPLIED_STATUS.get(last.action if last else None, set())
        if approval.status not in expected:
            verdict.add("wrong_status", f"{approval.id} is {approval.status}, but its "
                        f"applied decisions ({[d.action for d in applied]}) leave it "
                        f"{' or '.join(sorted(expected))}")
        elif last is not None and approval.decided_by != last.sub:
            verdict.add("wrong_status", f"{approval.id} was decided by {last.sub!r} but "
                        f"shows {approval.decided_by!r}")


def write_report(name: str, figures: dict[str, Any]) -> None:
    """Add this run's counts to the chaos report (printed at the end of the session by
    ``tests/chaos/conftest.py``; kept as JSON when ``CHAOS_REPORT`` names a file)."""
    REPORTS[name] = figures
    path = os.environ.get(REPORT_ENV)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({"topologies": by_topology(), "runs": REPORTS},
                                         indent=2, default=str))


def by_topology() -> dict[str, dict[str, Any]]:
    """The runs' faults and kills summed per topology: what the issue's floor (200 faults
    that matter and 50 kills per topology per CI run) is measured on."""
    totals: dict[str, dict[str, Any]] = {}
    for figures in REPORTS.values():
        t = totals.setdefault(str(figures.get("topology", "?")), {
            "faults_that_matter": 0, "harmless_delays": 0, "faults_by_kind": Counter(),
            "client_kills": 0, "stub_kills": 0, "kills": 0, "runs": 0,
            "disruptions": Counter()})
        t["runs"] += 1
        for name in ("faults_that_matter", "harmless_delays", "client_kills", "stub_kills"):
            t[name] += int(figures.get(name, 0))
        t["kills"] = t["client_kills"] + t["stub_kills"]
        t["faults_by_kind"].update(figures.get("faults_by_kind", {}))
        t["disruptions"].update(figures.get("disruptions", {}))
    return {name: {**t, "faults_by_kind": dict(t["faults_by_kind"]),
                   "disruptions": dict(t["disruptions"])}
            for name, t in totals.items()}


REPORTS: dict[str, dict[str, Any]] = {}
