"""SQL the SQLite and PostgreSQL stores share: the facts query and the log's rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from callgate.model import (
    Appointment,
    Attempt,
    Consent,
    ConsentChannel,
    ConsentScope,
    Contract,
    Facts,
    Opposition,
    Purpose,
)
from callgate.store.base import AppointmentRecord, ConsentRecord, from_micros, instant_of, to_micros

__all__ = [
    "APPOINTMENT_COLUMNS",
    "BY_JOB",
    "CONSENT_COLUMNS",
    "DECISION_COLUMNS",
    "Asked",
    "appointment_from_row",
    "consent_from_row",
    "consent_values",
    "entry_from_row",
    "facts_from_rows",
    "facts_sql",
    "iso_micros",
]


@dataclass(frozen=True)
class Asked:
    """Where the facts query takes what it is asked: named parameters (one company, one
    instant) or the columns of a ``jobs`` relation (one row per question, its key ``i``)."""

    source: str = ""
    key: str = "{table}.callee"
    company: str = ":company"
    now: str = ":now"
    since: str = ":since"
    horizon: str = ":horizon"


BY_PARAMETERS = Asked()
BY_JOB = Asked("jobs, ", "jobs.i", "jobs.company", "jobs.t_now", "jobs.t_since", "jobs.t_horizon")


def facts_sql(callees: str, asked: Asked = BY_PARAMETERS) -> str:
    """Every fact about one company's callees as of an instant, in one statement.

    The first branch types the columns for PostgreSQL, hence its casts. Removed opposition
    entries are read too: an opt-out revoked the consents given before it, even once
    removed. An appointment is read as a replay knew it (recorded by then, not yet
    cancelled) when ``horizon`` is ``now``; a live decision never counts a cancelled one,
    whenever it was cancelled."""
    a = asked

    def key(table: str) -> str:
        return a.key.format(table=table)

    return f"""
SELECT {key("attempts")}, 'a', attempts.at, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
       attempts.purpose, CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM {a.source}attempts
  WHERE attempts.company = {a.company} AND attempts.callee {callees}
    AND attempts.at > {a.since} AND attempts.at <= {a.horizon}
UNION ALL
SELECT {key("refusals")}, 'r', refusals.at, NULL, NULL, NULL, NULL, NULL FROM {a.source}refusals
  WHERE refusals.company = {a.company} AND refusals.callee {callees}
    AND refusals.at > {a.since} AND refusals.at <= {a.horizon}
UNION ALL
SELECT {key("consents")}, 'c', given_at, expires_at,
       CASE WHEN revoked_at <= {a.now} THEN revoked_at END, scope, consents.source, proof
  FROM {a.source}consents
  WHERE consents.company = {a.company} AND consents.callee {callees} AND given_at <= {a.now}
UNION ALL
SELECT {key("contracts")}, 'k', start_at, end_at, NULL, NULL, NULL, NULL FROM {a.source}contracts
  WHERE contracts.company = {a.company} AND contracts.callee {callees} AND start_at <= {a.now}
UNION ALL
SELECT {key("opposition")}, 'o', added_at, CASE WHEN removed_at <= {a.now} THEN removed_at END,
       NULL, opposition.source, NULLIF(opposition.company, ''), NULL FROM {a.source}opposition
  WHERE opposition.callee {callees} AND opposition.company IN ('', {a.company})
    AND added_at <= {a.now}
UNION ALL
SELECT {key("appointments")}, 'p', start_at, end_at, NULL, NULL, NULL, NULL
  FROM {a.source}appointments
  WHERE appointments.company = {a.company} AND appointments.callee {callees}
    AND (end_at > {a.now} OR (end_at IS NULL AND start_at > {a.since}))
    AND CASE WHEN {a.horizon} = {a.now}
             THEN recorded_at <= {a.now} AND (cancelled_at IS NULL OR cancelled_at > {a.now})
             ELSE cancelled_at IS NULL END
"""


DECISION_COLUMNS = (
    "seq", "id", "at", "node", "channel", "kind", "company", "campaign", "purpose", "dept",
    "caller_in", "caller_out", "callee_in", "callee", "callee_salt", "callee_commit",
    "territory", "verdict", "reasons", "retry_after", "ruleset", "latency_ms", "prev_hash",
    "hash",
)  # fmt: skip


def facts_from_rows(rows: Iterable[Any]) -> dict[Any, Facts]:
    """The facts per key: the callee, or the question's index for BY_JOB."""
    found: dict[Any, tuple[list[Any], ...]] = {}
    for key, kind, t1, t2, t3, s1, s2, s3 in rows:
        attempts, refusals, consents, contracts, oppositions, appointments = found.setdefault(
            key, ([], [], [], [], [], [])
        )
        at = instant_of(t1)
        if kind == "a":
            attempts.append(Attempt(at, Purpose(s1)))
        elif kind == "r":
            refusals.append(at)
        elif kind == "c":
            consents.append(Consent(ConsentScope(s1), at, from_micros(t2), from_micros(t3), s2, s3))
        elif kind == "k":
            contracts.append(Contract(at, from_micros(t2)))
        elif kind == "o":
            oppositions.append(Opposition(s1, at, s2, from_micros(t2)))
        else:
            appointments.append(Appointment(at, from_micros(t2)))
    return {key: Facts(*(tuple(part) for part in parts)) for key, parts in found.items()}


def iso_micros(micros: int) -> str:
    return instant_of(micros).isoformat()


def entry_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    entry = dict(zip(DECISION_COLUMNS, row, strict=True))
    entry["at"] = iso_micros(entry["at"])
    entry["reasons"] = json.loads(entry["reasons"])
    return entry


CONSENT_COLUMNS = (
    "id", "company", "callee", "scope", "given_at", "expires_at", "revoked_at", "source",
    "proof", "given_by", "collected_by", "channel", "covers", "proof_sha256", "proof_name",
    "revoked_how",
)  # fmt: skip


def consent_values(company: str, callee: str, consent: Consent) -> tuple[Any, ...]:
    """The values of CONSENT_COLUMNS but ``id``, for an insert."""
    return (
        company, callee, consent.scope.value, to_micros(consent.given_at),
        _micros(consent.expires_at), _micros(consent.revoked_at), consent.source,
        consent.proof, consent.given_by, consent.collected_by,
        consent.channel.value if consent.channel else None, consent.covers,
        consent.proof_sha256, consent.proof_name, consent.revoked_how,
    )  # fmt: skip


def consent_from_row(row: Any) -> ConsentRecord:
    """A ConsentRecord from a row of CONSENT_COLUMNS, in that order."""
    (id_, company, callee, scope, given, expires, revoked, source, proof, given_by,
     collected_by, channel, covers, sha256, name, how) = tuple(row)  # fmt: skip
    consent = Consent(
        ConsentScope(scope), instant_of(given), from_micros(expires), from_micros(revoked),
        source, proof, given_by, collected_by, ConsentChannel(channel) if channel else None,
        covers, sha256, name, how,
    )  # fmt: skip
    return ConsentRecord(int(id_), company, callee, consent)


APPOINTMENT_COLUMNS = (
    "id", "company", "callee", "start_at", "end_at", "recorded_at", "cancelled_at", "source",
    "proof", "agreed_by",
)  # fmt: skip


def appointment_from_row(row: Any) -> AppointmentRecord:
    """An AppointmentRecord from a row of APPOINTMENT_COLUMNS, in that order."""
    id_, company, callee, start, end, recorded, cancelled, source, proof, by = tuple(row)
    return AppointmentRecord(
        int(id_), company, callee, Appointment(instant_of(start), from_micros(end)),
        instant_of(recorded), from_micros(cancelled), source, proof, by,
    )  # fmt: skip


def _micros(instant: Any) -> int | None:
    return None if instant is None else to_micros(instant)
