"""SQL the SQLite and PostgreSQL stores share: the facts query and the log's rows."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from callgate.model import Attempt, Consent, ConsentScope, Contract, Facts, Opposition, Purpose
from callgate.store.base import from_micros, instant_of

__all__ = ["DECISION_COLUMNS", "entry_from_row", "facts_from_rows", "facts_sql", "iso_micros"]


def facts_sql(callees: str) -> str:
    """Every fact about one company's callees as of an instant, in one statement.

    The first branch types the columns for PostgreSQL, hence its casts."""
    return f"""
SELECT callee, 'a', at, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), purpose,
       CAST(NULL AS TEXT), CAST(NULL AS TEXT) FROM attempts
  WHERE company = :company AND callee {callees} AND at > :since AND at <= :horizon
UNION ALL
SELECT callee, 'r', at, NULL, NULL, NULL, NULL, NULL FROM refusals
  WHERE company = :company AND callee {callees} AND at > :since AND at <= :horizon
UNION ALL
SELECT callee, 'c', given_at, expires_at, CASE WHEN revoked_at <= :now THEN revoked_at END,
       scope, source, proof FROM consents
  WHERE company = :company AND callee {callees} AND given_at <= :now
UNION ALL
SELECT callee, 'k', start_at, end_at, NULL, NULL, NULL, NULL FROM contracts
  WHERE company = :company AND callee {callees} AND start_at <= :now
UNION ALL
SELECT callee, 'o', added_at, NULL, NULL, source, NULLIF(company, ''), NULL FROM opposition
  WHERE callee {callees} AND company IN ('', :company) AND added_at <= :now
    AND (removed_at IS NULL OR removed_at > :now)
"""


DECISION_COLUMNS = (
    "seq", "id", "at", "node", "channel", "kind", "company", "campaign", "purpose", "dept",
    "caller_in", "caller_out", "callee_in", "callee", "callee_salt", "callee_commit",
    "territory", "verdict", "reasons", "retry_after", "ruleset", "latency_ms", "prev_hash",
    "hash",
)  # fmt: skip


def facts_from_rows(rows: Iterable[Any]) -> dict[str, Facts]:
    found: dict[str, tuple[list[Any], ...]] = {}
    for callee, kind, t1, t2, t3, s1, s2, s3 in rows:
        attempts, refusals, consents, contracts, oppositions = found.setdefault(
            callee, ([], [], [], [], [])
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
    return {callee: Facts(*(tuple(part) for part in parts)) for callee, parts in found.items()}


def iso_micros(micros: int) -> str:
    return instant_of(micros).isoformat()


def entry_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    entry = dict(zip(DECISION_COLUMNS, row, strict=True))
    entry["at"] = iso_micros(entry["at"])
    entry["reasons"] = json.loads(entry["reasons"])
    return entry
