"""The values the core trades in: a call request, the facts about a callee, a decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "Appointment",
    "Attempt",
    "CallRequest",
    "Consent",
    "ConsentChannel",
    "ConsentScope",
    "Contract",
    "Decision",
    "Facts",
    "Opposition",
    "Purpose",
    "Reason",
    "Verdict",
]


class Purpose(StrEnum):
    PROSPECTING = "prospecting"
    CONTRACT = "contract"
    NEWSPAPER = "newspaper"
    SERVICE = "service"

    @property
    def is_solicitation(self) -> bool:
        return self is not Purpose.SERVICE


class ConsentScope(StrEnum):
    PROSPECTING = "prospecting"
    OUT_OF_HOURS = "out_of_hours"


class ConsentChannel(StrEnum):
    """Through which channel a consent was collected (décret of July 2026, R223-1)."""

    WEB = "web"
    PHONE = "phone"
    PAPER = "paper"
    EMAIL = "email"
    SMS = "sms"
    OTHER = "other"


class Verdict(StrEnum):
    ALLOW = "allow"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One outbound call attempt as the shell hands it to the core."""

    caller: str
    callee: str
    company: str | None
    purpose: Purpose | None = None  # None: the configured default
    campaign: str | None = None
    dept: str | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    at: datetime
    purpose: Purpose


@dataclass(frozen=True, slots=True)
class Consent:
    scope: ConsentScope
    given_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    source: str | None = None
    proof: str | None = None
    given_by: str | None = None  # the person who consented, when not the line's holder
    # What the record must say to prove itself (R223-1, R223-2 as reported):
    collected_by: str | None = None  # who collected it (an agent, a partner, a web form)
    channel: ConsentChannel | None = None
    covers: str | None = None  # the products or services consented to
    proof_sha256: str | None = None  # the proof as a file: its digest and its name
    proof_name: str | None = None
    revoked_how: str | None = None  # "revoked" (consent revoke) or "withdrawn" (by voice)


@dataclass(frozen=True, slots=True)
class Contract:
    start: datetime
    end: datetime | None = None

    def active_at(self, instant: datetime) -> bool:
        return self.start <= instant and (self.end is None or instant < self.end)


@dataclass(frozen=True, slots=True)
class Opposition:
    source: str
    added_at: datetime
    company: str | None = None  # None: against every company (a Bloctel entry)
    removed_at: datetime | None = None  # a removed entry still revoked the consents before it

    def active_at(self, instant: datetime) -> bool:
        return self.added_at <= instant and (self.removed_at is None or instant < self.removed_at)


@dataclass(frozen=True, slots=True)
class Appointment:
    """The callee's agreement to a call at a precise date and time (new L223-1)."""

    start: datetime
    end: datetime | None = None  # None: ``appointment_window_minutes`` from the start

    def ends_at(self, window_minutes: int) -> datetime:
        """Its own end, else ``appointment_window_minutes`` after its start (§2.4)."""
        return self.end or self.start + timedelta(minutes=window_minutes)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the store knows about one (company, callee), as of the decision time."""

    attempts: tuple[Attempt, ...] = ()
    refusals: tuple[datetime, ...] = ()
    consents: tuple[Consent, ...] = ()
    contracts: tuple[Contract, ...] = ()
    oppositions: tuple[Opposition, ...] = ()
    appointments: tuple[Appointment, ...] = ()


@dataclass(frozen=True, slots=True)
class Reason:
    """One finding. ``blocking`` findings reject the call; the others only inform.

    ``lifts_at`` is when a blocking finding stops blocking by the passing of time
    alone, or None when time does not lift it.
    """

    code: str
    message: str
    blocking: bool = True
    lifts_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    caller_in: str
    caller_out: str | None
    callee: str | None
    territory: str | None
    purpose: Purpose
    reasons: tuple[Reason, ...]
    retry_after: datetime | None
    ruleset: str
    company: str | None = None
    campaign: str | None = None
    decided_at: datetime | None = None
    callee_in: str | None = None  # as dialled
    dept: str | None = None
    decision_id: str | None = field(default=None, compare=False)

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(reason.code for reason in self.reasons)
