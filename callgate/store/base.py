"""The store interface every backend implements, and the records it hands back."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from callgate.model import Consent, ConsentScope, Contract, Decision, Facts

__all__ = [
    "ConsentRecord",
    "ContractRecord",
    "OppositionRecord",
    "Store",
    "StoreError",
    "from_micros",
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
class OppositionRecord:
    id: int
    callee: str
    company: str | None
    source: str
    added_at: datetime
    removed_at: datetime | None


Judge = Callable[[Facts], Decision]


class Store(Protocol):
    """Everything the gates, the CLI and the API need; SQLite and PostgreSQL alike.

    Every fact query is "as of" an instant, so a decision can be replayed later on the
    facts that were known when it was made.
    """

    async def close(self) -> None: ...

    async def facts(self, company: str, callee: str, now: datetime, since: datetime) -> Facts:
        """All facts for one (company, callee) in one round trip."""

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

    async def record_decision(self, decision: Decision, channel: str | None = None) -> None:
        """Log a decision made without the store's facts (a gate error), for the audit."""

    async def add_refusal(self, company: str, callee: str, at: datetime, source: str) -> int: ...

    async def decision_key(self, decision_id: str) -> tuple[str, str] | None:
        """The (company, callee) a recorded decision was about, if it exists."""

    async def add_consent(self, company: str, callee: str, consent: Consent) -> int: ...

    async def revoke_consents(
        self, company: str, callee: str, scope: ConsentScope | None, at: datetime
    ) -> int: ...

    async def consents(self, company: str | None, callee: str | None) -> list[ConsentRecord]: ...

    async def add_contract(self, company: str, callee: str, contract: Contract) -> int: ...

    async def end_contracts(self, company: str, callee: str, at: datetime) -> int: ...

    async def contracts(self, company: str | None, callee: str | None) -> list[ContractRecord]: ...

    async def add_oppositions(
        self, callees: Iterable[str], company: str | None, source: str, at: datetime
    ) -> int:
        """Add entries; one already active is left alone. Returns how many were new."""

    async def remove_oppositions(self, callee: str, company: str | None, at: datetime) -> int: ...

    def oppositions(
        self, callee: str | None, company: str | None
    ) -> AsyncIterator[OppositionRecord]: ...


def to_micros(instant: datetime) -> int:
    if instant.tzinfo is None:
        raise ValueError("the store only takes timezone-aware instants")
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int | None) -> datetime | None:
    if micros is None:
        return None
    return _EPOCH + timedelta(microseconds=micros)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
