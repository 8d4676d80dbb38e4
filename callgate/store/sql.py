"""SQL the SQLite and PostgreSQL stores share: the facts query and the log's rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from callgate.model import Attempt, Consent, ConsentScope, Contract, Facts, Opposition, Purpose
from callgate.store.base import from_micros, instant_of

__all__ = [
    "BY_JOB",
    "DECISION_COLUMNS",
    "Asked",
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

    The first branch types the columns for PostgreSQL, hence its casts."""
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
SELECT {key("opposition")}, 'o', added_at, NULL, NULL, opposition.source,
       NULLIF(opposition.company, ''), NULL FROM {a.source}opposition
  WHERE opposition.callee {callees} AND opposition.company IN ('', {a.company})
    AND added_at <= {a.now} AND (removed_at IS NULL OR removed_at > {a.now})
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
        attempts, refusals, consents, contracts, oppositions = found.setdefault(
            key, ([], [], [], [], [])
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
        else:
            oppositions.append(Opposition(s1, at, s2))
    return {key: Facts(*(tuple(part) for part in parts)) for key, parts in found.items()}


def iso_micros(micros: int) -> str:
    return instant_of(micros).isoformat()


def entry_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    entry = dict(zip(DECISION_COLUMNS, row, strict=True))
    entry["at"] = iso_micros(entry["at"])
    entry["reasons"] = json.loads(entry["reasons"])
    return entry
