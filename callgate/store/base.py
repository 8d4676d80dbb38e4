"""The store interface every backend implements, and the records it hands back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from callgate.factlog import FACT_KINDS
from callgate.model import Appointment, Consent, ConsentScope, Contract, Decision, Facts

_log = logging.getLogger("callgate.store")

__all__ = [
    "COUNT_DIMENSIONS",
    "DECISION_KINDS",
    "LOG_KINDS",
    "RECORD_TABLES",
    "WITHDRAWAL_SOURCE",
    "Abandoned",
    "AppointmentRecord",
    "Batch",
    "ConsentRecord",
    "ContractRecord",
    "Cursor",
    "LogQuery",
    "OppositionRecord",
    "Outcome",
    "Store",
    "StoreError",
    "Withdrawal",
    "finish_even_if_abandoned",
    "from_micros",
    "instant_of",
    "order_key",
    "to_micros",
]


class StoreError(Exception):
    """The store cannot answer: the gate must fail closed."""


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    id: int
    company: str
    callee: str
    consent: Consent


@dataclass(frozen=True, slots=True)
class ContractRecord:
    id: int
    company: str
    callee: str
    contract: Contract


@dataclass(frozen=True, slots=True)
class AppointmentRecord:
    id: int
    company: str
    callee: str
    appointment: Appointment
    recorded_at: datetime
    cancelled_at: datetime | None = None
    source: str | None = None
    proof: str | None = None
    agreed_by: str | None = None


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """What recording a spoken withdrawal did (RULES-FR §3.3), in one transaction."""

    revoked: int  # consents revoked
    opposed: bool  # False: the callee was already on the company's list from this source
    refusal_id: int


# The opposition source of an entry a withdrawal adds, and the refusal's.
WITHDRAWAL_SOURCE = "withdrawal"


@dataclass(frozen=True, slots=True)
class OppositionRecord:
    id: int
    callee: str
    company: str | None
    source: str
    added_at: datetime
    removed_at: datetime | None


Judge = Callable[[Facts], Decision]

# Gates on several machines record attempts with their own clocks. A live decision counts
# the attempts and refusals recorded up to this far "in the future", so that a node whose
# clock is behind still sees what a node ahead of it just recorded. Replays use no margin.
LIVE_CLOCK_SKEW = timedelta(seconds=120)


@dataclass(frozen=True, slots=True)
class LogQuery:
    """Filters on the decision log, as `callgate log` and the API take them."""

    since: datetime | None = None
    until: datetime | None = None
    verdict: str | None = None
    reason: str | None = None
    company: str | None = None
    campaign: str | None = None
    callee: str | None = None  # E.164
    caller: str | None = None  # as presented or as rewritten
    # "call" or "dry-run": decisions of that kind; None: every decision. "all": decisions
    # and the writes of facts chained with them; "fact": the writes of facts alone, or
    # one fact of FACT_KINDS ("consent", "refusal"...).
    kind: str | None = None

    @property
    def decisions(self) -> bool:
        """Whether decisions match."""
        return self.kind in (None, "all", *DECISION_KINDS)

    @property
    def facts(self) -> bool:
        """Whether writes of facts match: they have no verdict, reason, campaign or caller."""
        if self.kind not in ("all", "fact", *FACT_KINDS):
            return False
        return all(v is None for v in (self.verdict, self.reason, self.campaign, self.caller))

    def sql(self) -> tuple[str, dict[str, Any]]:
        """`` AND ...`` conditions on decisions with named parameters, and their values."""
        conditions, params = self._common()
        for name in ("verdict", "campaign"):
            value = getattr(self, name)
            if value is not None:
                conditions.append(f"{name} = :{name}")
                params[name] = value
        if self.kind in DECISION_KINDS:
            conditions.append("kind = :kind")
            params["kind"] = self.kind
        if self.caller is not None:
            conditions.append("(caller_in = :caller OR caller_out = :caller)")
            params["caller"] = self.caller
        if self.reason is not None:
            # Reason codes are upper-case words: a quoted match cannot hit a message.
            conditions.append("reasons LIKE :reason")
            params["reason"] = f'%"code": "{self.reason}"%'
        return "".join(f" AND {c}" for c in conditions), params

    def fact_sql(self) -> tuple[str, dict[str, Any]]:
        """`` AND ...`` conditions on fact entries with named parameters, and their values."""
        conditions, params = self._common()
        if self.kind in FACT_KINDS:
            conditions.append("fact = :fact")
            params["fact"] = self.kind
        return "".join(f" AND {c}" for c in conditions), params

    def _common(self) -> tuple[list[str], dict[str, Any]]:
        conditions, params = [], {}
        if self.since:
            conditions.append("at >= :since")
            params["since"] = to_micros(self.since)
        if self.until:
            conditions.append("at < :until")
            params["until"] = to_micros(self.until)
        for name in ("company", "callee"):
            value = getattr(self, name)
            if value is not None:
                conditions.append(f"{name} = :{name}")
                params[name] = value
        return conditions, params


# The kinds of decision the log holds.
DECISION_KINDS = ("call", "dry-run")
# Every value LogQuery.kind takes.
LOG_KINDS = ("all", *DECISION_KINDS, "fact", *FACT_KINDS)


@dataclass(frozen=True, slots=True)
class Cursor:
    """A place in the newest-first decision list: (at in microseconds, seq)."""

    at: int
    seq: int


# What decision_counts groups by.
COUNT_DIMENSIONS = ("hour", "verdict", "company", "campaign", "reason")


# Every table that holds records, in the order a copy restores them; the schema's own
# bookkeeping (its version) is not a record and is not copied.
RECORD_TABLES = (
    "attempts", "refusals", "consents", "contracts", "opposition", "appointments", "decisions",
    "log_anchor", "fact_entries",
)  # fmt: skip


def order_key(table: str) -> str:
    return "seq" if table in ("decisions", "log_anchor", "fact_entries") else "id"


@dataclass(frozen=True, slots=True)
class Outcome:
    """A refusal recorded against a company: the callee refused (*7, the CLI, the API),
    or withdrew by voice (*8), which also revoked consents and opted the number out."""

    id: int  # the refusal's row
    kind: str  # "refusal" or "withdrawal"
    company: str
    callee: str
    at: datetime
    source: str | None
    seq: int | None  # the chain entry that recorded it; None: chained by a genesis or purge


@dataclass(frozen=True)
class Batch:
    """Rows of one table, as a store copy moves them; ``total`` is the table's size."""

    table: str
    total: int
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


class Store(Protocol):
    """Everything the gates, the CLI and the API need; SQLite and PostgreSQL alike.

    Every fact query is "as of" an instant, so a decision can be replayed later on the
    facts that were known when it was made.
    """

    node: str  # this machine's name in the decision log

    async def close(self) -> None: ...

    def snapshot(self, batch: int) -> AsyncIterator[Batch]:
        """Every record of every table, as of one instant, a batch at a time (each table
        yields at least one batch, empty if the table is)."""
        ...

    async def restore(self, batches: AsyncIterator[Batch]) -> dict[str, int]:
        """Load a snapshot into this store in one transaction; refuse if it holds records.
        Returns the rows loaded per table."""
        ...

    async def facts(
        self, company: str, callee: str, now: datetime, since: datetime,
        *, live: bool = False,
    ) -> Facts:  # fmt: skip
        """All facts for one (company, callee) in one round trip, as of ``now``; ``live``
        also counts what other nodes recorded within ``LIVE_CLOCK_SKEW`` ahead."""

    async def facts_many(
        self, company: str, callees: list[str], now: datetime, since: datetime
    ) -> dict[str, Facts]:
        """The facts of many callees of one company in one round trip (list scrubbing)."""

    async def decide(
        self,
        company: str,
        callee: str,
        now: datetime,
        since: datetime,
        judge: Judge,
        *,
        record: bool,
        channel: str | None = None,
    ) -> Decision:
        """Read the facts, judge, and, if ``record``, store the decision and (when the call
        is allowed) the attempt, all in one atomic step per (company, callee)."""

    async def record_decision(
        self, decision: Decision, channel: str | None = None, *, kind: str = "call",
        latency_ms: float | None = None,
    ) -> None:  # fmt: skip
        """Log a decision made without recording an attempt: a gate error, a dry run."""

    async def log_entries(
        self, query: LogQuery, *, after_seq: int = 0, limit: int | None = None,
        last: bool = False,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Entries of the decision log in order (callgate.auditlog's shape)."""

    async def log_entry(self, decision_id: str) -> dict[str, Any] | None: ...

    async def log_counts(self, query: LogQuery, by: str) -> list[tuple[str, int]]: ...

    async def log_anchor(self) -> tuple[int, str] | None:
        """(seq, hash) of the last purged entry, if the log was purged."""

    async def purge_log(self, before: datetime, at: datetime) -> int:
        """Delete the entries older than ``before``, keeping the rest verifiable."""

    async def decision_page(
        self, query: LogQuery, *, before: Cursor | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """Entries matching ``query``, newest first by (at, seq), strictly before ``before``;
        each entry as log_entries gives it. Keyset pagination: page 10,000 is as fast as
        page 1."""
        ...

    async def decision_counts(
        self, since: datetime, until: datetime, by: tuple[str, ...], *, kind: str = "call"
    ) -> list[tuple[Any, ...]]:
        """Counts of decisions of ``kind`` in every hour that overlaps [since, until), from
        the hourly rollup (never a scan of the log), grouped by ``by`` (names from
        COUNT_DIMENSIONS): each row the values of ``by`` in that order, then the count.
        "hour" is a UTC datetime on the hour; company and campaign may be None. With
        "reason", a decision counts once per reason code it logged."""
        ...

    async def node_heads(self) -> list[tuple[str, datetime, int]]:
        """(node, instant of its last decision, that decision's seq), one per node."""
        ...

    async def last_purge(self) -> tuple[int, datetime] | None:
        """(seq up to which the log was purged, when) of the latest purge, if any."""
        ...

    async def add_refusal(self, company: str, callee: str, at: datetime, source: str) -> int: ...

    async def decision_key(self, decision_id: str) -> tuple[str, str] | None:
        """The (company, callee) a recorded decision was about, if it exists."""

    async def decision_for_channel(self, channel: str, since: datetime) -> dict[str, Any] | None:
        """The latest entry of the decision log for this channel (ARI: the channel id;
        AGI: agi_uniqueid), recorded at ``since`` or later, which bounds the search."""

    async def add_consent(self, company: str, callee: str, consent: Consent) -> int: ...

    async def revoke_consents(
        self, company: str, callee: str, scope: ConsentScope | None, at: datetime
    ) -> int: ...

    async def consents(self, company: str | None, callee: str | None) -> list[ConsentRecord]: ...

    async def withdraw(self, company: str, callee: str, at: datetime, source: str) -> Withdrawal:
        """The callee withdrew consent by voice at ``at`` (RULES-FR §3.3), atomically, for
        this company only: revoke its consents given by then, list the callee on its
        opposition list, and record a refusal (the cool-down starts)."""

    async def add_appointment(self, company: str, callee: str, record: AppointmentRecord) -> int:
        """Record an appointment (``record.id`` is ignored)."""

    async def cancel_appointments(
        self, company: str, callee: str, start: datetime, at: datetime
    ) -> int:
        """Cancel the appointments of (company, callee) that start at ``start``."""

    async def appointments(
        self, company: str | None, callee: str | None
    ) -> list[AppointmentRecord]: ...

    async def add_contract(self, company: str, callee: str, contract: Contract) -> int: ...

    async def end_contracts(self, company: str, callee: str, at: datetime) -> int: ...

    async def contracts(self, company: str | None, callee: str | None) -> list[ContractRecord]: ...

    async def add_oppositions(
        self, callees: Iterable[str], company: str | None, source: str, at: datetime,
        *, origin: Mapping[str, Any] | None = None,
    ) -> int:  # fmt: skip
        """Add entries; one already active is left alone. Returns how many were new. An
        import (``origin``: its file's name, SHA-256 and lines, read once the numbers are)
        is one entry of the log, with the new rows' ids and digest."""

    async def remove_oppositions(self, callee: str, company: str | None, at: datetime) -> int: ...

    def oppositions(
        self, callee: str | None, company: str | None
    ) -> AsyncIterator[OppositionRecord]: ...

    async def outcomes(self, company: str | None, callee: str | None) -> list[Outcome]:
        """The refusals and withdrawals recorded, oldest first."""
        ...

    def fact_rows(
        self, table: str, low: int | None = None, high: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row of a fact table (factlog.FACT_TABLES) whole, by ascending id, within
        [low, high] when given: what `log verify` checks against the chain."""
        ...

    async def fact_entries_about(
        self, company: str, callee: str, before_seq: int
    ) -> list[dict[str, Any]]:
        """The chain's writes of facts about (company, callee), or about the callee for
        every company, that came before entry ``before_seq``; and the bulk entries."""
        ...


class Abandoned(Exception):
    """The caller stopped waiting before its decision was recorded: roll it back."""


async def finish_even_if_abandoned(
    background: set[asyncio.Future[Decision]],
    work: Callable[[asyncio.Event], Awaitable[Decision]],
) -> Decision:
    """Run a check-and-record so that a caller giving up (its deadline passed) never cuts
    it between BEGIN and COMMIT: the work goes on in its own task, sees ``abandoned`` set,
    and rolls back instead of recording a call that was refused for lateness."""
    abandoned = asyncio.Event()
    task = asyncio.ensure_future(work(abandoned))
    background.add(task)
    task.add_done_callback(_settled(background))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        abandoned.set()
        raise


def _settled(
    background: set[asyncio.Future[Decision]],
) -> Callable[[asyncio.Future[Decision]], None]:
    def settled(task: asyncio.Future[Decision]) -> None:
        background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.info("a decision finished after its caller gave up: %s", task.exception())

    return settled


def to_micros(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("the store only takes timezone-aware instants")
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int | None) -> datetime | None:
    if micros is None:
        return None
    return _EPOCH + timedelta(microseconds=micros)


def instant_of(micros: int) -> datetime:
    """A stored instant that cannot be missing."""
    return _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
