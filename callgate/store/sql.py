"""SQL the SQLite and PostgreSQL stores share: the facts query and the log's rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from callgate.factlog import canonical
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
from callgate.store.base import (
    COUNT_DIMENSIONS,
    AppointmentRecord,
    ConsentRecord,
    Cursor,
    LogQuery,
    Outcome,
    from_micros,
    instant_of,
    to_micros,
)

__all__ = [
    "ANCHOR_HEAD",
    "APPOINTMENT_COLUMNS",
    "BULK_ENTRIES_BEFORE",
    "BY_JOB",
    "CHAIN_HEAD",
    "CONSENT_COLUMNS",
    "DECISION_COLUMNS",
    "FACT_ENTRIES_ABOUT",
    "FACT_ENTRY_COLUMNS",
    "HEAD_SEQ",
    "HOUR",
    "ID_PREFIX_MIN",
    "OUTCOME_ENTRIES",
    "OUTCOME_FILTER",
    "OUTCOME_REFUSALS",
    "PURGE_ROLLUPS",
    "PURGE_STOP",
    "Asked",
    "appointment_from_row",
    "consent_from_row",
    "consent_values",
    "count_rows",
    "counts_sql",
    "covering",
    "entry_from_row",
    "fact_entry_from_row",
    "fact_entry_values",
    "facts_from_rows",
    "facts_sql",
    "id_prefix_range",
    "iso_micros",
    "log_sql",
    "merge_by_seq",
    "outcomes_from",
    "page_sql",
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


# The fewest characters of a decision id that find it (`log explain 3f2a9c1e`).
ID_PREFIX_MIN = 8


def id_prefix_range(prefix: str) -> tuple[str, str]:
    """The ids that start with ``prefix`` are those in [low, high), in code point order."""
    return prefix, prefix + "\U0010ffff"


def iso_micros(micros: int) -> str:
    return instant_of(micros).isoformat()


# The columns of fact_entries, in the order of fact_entry_values.
FACT_ENTRY_COLUMNS = (
    "seq", "at", "node", "fact", "op", "company", "callee", "callee_salt", "callee_commit",
    "changes", "bulk", "prev_hash", "hash",
)  # fmt: skip


def fact_entry_values(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    """A fact entry (factlog.fact_entry) as a fact_entries row."""
    return (
        entry["seq"], to_micros(datetime.fromisoformat(entry["at"])), entry["node"],
        entry["fact"], entry["op"], entry["company"], entry["callee"], entry["callee_salt"],
        entry["callee_commit"], _json(entry["rows"]), _json(entry["bulk"]),
        entry["prev_hash"], entry["hash"],
    )  # fmt: skip


def fact_entry_from_row(row: Sequence[Any]) -> dict[str, Any]:
    """A fact_entries row as the chain entry it was written from."""
    values = dict(zip(FACT_ENTRY_COLUMNS, row, strict=True))
    return {
        "seq": values["seq"], "at": _stored_instant(values["at"]), "node": values["node"],
        "kind": "fact", "fact": values["fact"], "op": values["op"],
        "company": values["company"], "callee": values["callee"],
        "callee_salt": values["callee_salt"], "callee_commit": values["callee_commit"],
        "rows": _stored_json(values["changes"]), "bulk": _stored_json(values["bulk"]),
        "prev_hash": values["prev_hash"], "hash": values["hash"],
    }  # fmt: skip


def _stored_json(text: Any) -> Any:
    """The JSON a row holds; what an edit left unreadable, as it is: the entry's hash
    then says it was edited, where a parser's error would stop `log verify`."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


def _stored_instant(micros: Any) -> Any:
    if isinstance(micros, int) and not isinstance(micros, bool):
        try:
            return instant_of(micros).isoformat()
        except OverflowError:
            pass
    return micros


def _json(value: Any) -> str:
    return canonical(value)


# Refusals and withdrawals (Store.outcomes): the refusals rows, and the entries that wrote
# them, by company and callee when given.
OUTCOME_FILTER = (
    "(CAST(:company AS TEXT) IS NULL OR company = :company)"
    " AND (CAST(:callee AS TEXT) IS NULL OR callee = :callee)"
)
OUTCOME_REFUSALS = (
    f"SELECT id, company, callee, at, source FROM refusals WHERE {OUTCOME_FILTER} ORDER BY at, id"
)
OUTCOME_ENTRIES = (
    f"SELECT seq, fact, changes FROM fact_entries WHERE fact IN ('refusal', 'withdrawal')"
    f" AND {OUTCOME_FILTER}"
)
# The writes of facts a decision relied on (Store.fact_entries_about): those about the
# callee for its company or for every company, before the decision; and the bulk ones.
FACT_ENTRIES_ABOUT = (
    f"SELECT {', '.join(FACT_ENTRY_COLUMNS)} FROM fact_entries WHERE callee = :callee"
    " AND (company = :company OR company IS NULL) AND seq < :before ORDER BY seq"
)
BULK_ENTRIES_BEFORE = (
    f"SELECT {', '.join(FACT_ENTRY_COLUMNS)} FROM fact_entries WHERE callee IS NULL"
    " AND seq < :before ORDER BY seq"
)


def outcomes_from(refusals: Iterable[Any], entries: Iterable[Any]) -> list[Outcome]:
    """Outcomes from refusals rows (whole) and the (seq, fact, changes) of the entries that
    may have written them."""
    wrote: dict[int, tuple[int, str]] = {}
    for seq, fact, changes in entries:
        for change in json.loads(changes):
            if change["table"] == "refusals" and change["before"] is None:
                wrote[change["id"]] = (seq, fact)
    outcomes = []
    for row in refusals:
        id_, company, callee, at, source = tuple(row)
        seq, fact = wrote.get(id_, (None, "refusal"))
        outcomes.append(Outcome(id_, fact, company, callee, instant_of(at), source, seq))
    return outcomes


def covering(
    about: list[dict[str, Any]], bulk: list[dict[str, Any]], ids: Mapping[str, list[int]]
) -> list[dict[str, Any]]:
    """``about`` and the entries of ``bulk`` that cover one of ``ids`` (per table), in
    the chain's order."""
    kept = list(about)
    for entry in bulk:
        for part in entry["bulk"]:
            mine = ids.get(part["table"], ())
            if any(first <= i <= last for first, last in part["ids"] for i in mine):
                kept.append(entry)
                break
    return sorted(kept, key=lambda entry: entry["seq"])


# The chain's last entry, a decision or a fact (each side's newest by its key), and, when
# the log holds none, where a purge left it (its anchor).
CHAIN_HEAD = (
    "SELECT seq, hash FROM (SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1) d"
    " UNION ALL SELECT seq, hash FROM (SELECT seq, hash FROM fact_entries ORDER BY seq DESC"
    " LIMIT 1) f ORDER BY seq DESC LIMIT 1"
)
ANCHOR_HEAD = "SELECT seq, hash FROM log_anchor ORDER BY seq DESC LIMIT 1"

# The chain's last seq: what both reads of log_sql stop at.
HEAD_SEQ = (
    "SELECT max(seq) FROM (SELECT max(seq) AS seq FROM decisions"
    " UNION ALL SELECT max(seq) AS seq FROM fact_entries) AS heads"
)


def log_sql(
    query: LogQuery, after_seq: int, limit: int | None, last: bool, head: int | None = None
) -> list[tuple[str, dict[str, Any], Callable[[Any], dict[str, Any]]]]:
    """The statements that read the log's entries for ``query`` (decisions, writes of
    facts, or both), each with its parameters and what makes an entry of its rows.

    Two statements see two moments: a decision and then a fact committed between them
    would leave the fact without the decision before it. Both stop at ``head`` (HEAD_SEQ,
    read first): every entry up to it was committed before it, since entries are
    numbered and committed in order under the chain's lock."""
    order = f" ORDER BY seq {'DESC' if last else ''}" + (f" LIMIT {int(limit)}" if limit else "")
    bound = {"after_seq": after_seq, "head": head if head is not None else 2**63 - 1}
    start = "WHERE seq > :after_seq AND seq <= :head"
    statements = []
    if query.decisions:
        where, params = query.sql()
        sql = f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions {start}"
        statements.append((sql + where + order, {**params, **bound}, entry_from_row))
    if query.facts:
        where, params = query.fact_sql()
        sql = f"SELECT {', '.join(FACT_ENTRY_COLUMNS)} FROM fact_entries {start}"
        statements.append((sql + where + order, {**params, **bound}, fact_entry_from_row))
    return statements


def merge_by_seq(
    entries: list[dict[str, Any]], limit: int | None, last: bool
) -> list[dict[str, Any]]:
    """Entries read from both tables, in the chain's order: the first ``limit``, or with
    ``last`` the newest ``limit``."""
    entries.sort(key=lambda entry: entry["seq"])
    if limit:
        entries = entries[-limit:] if last else entries[:limit]
    return entries


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


# ---------------------------------------------------------------- the console's reads

HOUR = 3_600_000_000  # microseconds


def page_sql(query: LogQuery, before: Cursor | None, limit: int) -> tuple[str, dict[str, Any]]:
    """The newest-first page of the log matching ``query``, strictly before ``before``.

    Every filter has an index that ends in (at, seq), so the page is read in the index's
    order and stops after ``limit`` rows, however deep the cursor. A reason filter walks
    decision_reasons (code, at, seq) and fetches each decision by seq."""
    by_reason = query.reason is not None
    order = "r" if by_reason else "d"  # whose (at, seq) the page follows
    conditions: list[str] = []
    params: dict[str, Any] = {"limit": int(limit)}
    if by_reason:
        conditions += ["r.code = :reason", "d.seq = r.seq"]
        params["reason"] = query.reason
    if query.since is not None:
        conditions.append(f"{order}.at >= :since")
        params["since"] = to_micros(query.since)
    if query.until is not None:
        conditions.append(f"{order}.at < :until")
        params["until"] = to_micros(query.until)
    # kind has no index of its own: it filters the rows of the index the other filters
    # choose, in that index's order (calls are nearly all of a log, so a page of calls
    # still ends after about ``limit`` rows).
    for name in ("verdict", "company", "campaign", "callee", "kind"):
        if (value := getattr(query, name)) is not None:
            conditions.append(f"d.{name} = :{name}")
            params[name] = value
    if query.caller is not None:
        conditions.append("(d.caller_in = :caller OR d.caller_out = :caller)")
        params["caller"] = query.caller
    if before is not None:
        # Spelled out rather than as a row value: "at <=" bounds the index range.
        conditions.append(
            f"{order}.at <= :before_at AND ({order}.at < :before_at OR {order}.seq < :before_seq)"
        )
        params.update(before_at=before.at, before_seq=before.seq)
    source = "decision_reasons r, decisions d" if by_reason else "decisions d"
    where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
    sql = (
        f"SELECT {', '.join(f'd.{name}' for name in DECISION_COLUMNS)} FROM {source}{where}"
        f" ORDER BY {order}.at DESC, {order}.seq DESC LIMIT :limit"
    )
    return sql, params


_COUNT_COLUMNS = {
    "hour": "hour", "verdict": "verdict", "company": "company", "campaign": "campaign",
    "reason": "code",
}  # fmt: skip


def counts_sql(
    since: Any, until: Any, by: tuple[str, ...], kind: str
) -> tuple[str, dict[str, Any]]:
    """The rollup's counts in every hour that overlaps [since, until), grouped by ``by``."""
    unknown = [name for name in by if name not in COUNT_DIMENSIONS]
    if unknown or len(set(by)) != len(by):
        raise ValueError(f"cannot count by {by!r}: use names from {COUNT_DIMENSIONS}")
    table = "decision_reason_hours" if "reason" in by else "decision_hours"
    columns = ", ".join(_COUNT_COLUMNS[name] for name in by)
    grouped = f" GROUP BY {columns} ORDER BY {columns}" if by else ""
    sql = (
        f"SELECT {columns + ', ' if by else ''}sum(count) FROM {table}"
        f" WHERE kind = :kind AND hour > :after AND hour < :until{grouped}"
    )
    # An hour overlaps [since, until) when it starts after since - 1 h and before until.
    return sql, {"kind": kind, "after": to_micros(since) - HOUR, "until": to_micros(until)}


def count_rows(by: tuple[str, ...], rows: Iterable[Any]) -> list[tuple[Any, ...]]:
    """The rollup's rows as decision_counts hands them back."""
    found = []
    for row in rows:
        values: list[Any] = []
        for name, value in zip(by, row, strict=False):
            if name == "hour":
                value = instant_of(value)
            elif name in ("company", "campaign"):
                value = value or None  # stored as '' (see migration 0004)
            values.append(value)
        found.append((*values, int(row[len(by)] or 0)))
    return found


# Where a purge stops: the last entry (decision or fact) before the first one dated at or
# after ``:before``, by seq; none when the log holds nothing older.
PURGE_STOP = """
WITH entries AS (SELECT seq, hash, at FROM decisions UNION ALL
                 SELECT seq, hash, at FROM fact_entries),
     stop AS (SELECT min(seq) AS seq FROM entries WHERE at >= :before)
SELECT e.seq, e.hash FROM entries e, stop
WHERE stop.seq IS NULL OR e.seq < stop.seq ORDER BY e.seq DESC LIMIT 1
"""

# A purge takes the log's start, ``seq <= :last`` (all dated before ``:before``): the
# rollups lose what it held, in a few set operations over the purged rows, before they go.
PURGE_ROLLUPS = (
    """UPDATE decision_hours SET count = decision_hours.count - gone.n FROM (
         SELECT kind, at - at % 3600000000 AS hour, verdict, coalesce(company, '') AS company,
                coalesce(campaign, '') AS campaign, count(*) AS n
         FROM decisions WHERE seq <= :last GROUP BY 1, 2, 3, 4, 5) AS gone
       WHERE decision_hours.kind = gone.kind AND decision_hours.hour = gone.hour
         AND decision_hours.verdict = gone.verdict AND decision_hours.company = gone.company
         AND decision_hours.campaign = gone.campaign""",
    """UPDATE decision_reason_hours SET count = decision_reason_hours.count - gone.n FROM (
         SELECT d.kind, d.at - d.at % 3600000000 AS hour, r.code, d.verdict,
                coalesce(d.company, '') AS company, coalesce(d.campaign, '') AS campaign,
                count(*) AS n
         FROM decision_reasons r, decisions d
         WHERE r.code IN (SELECT DISTINCT code FROM decision_reason_hours)
           AND r.at < :before AND r.seq <= :last AND d.seq = r.seq
         GROUP BY 1, 2, 3, 4, 5, 6) AS gone
       WHERE decision_reason_hours.kind = gone.kind AND decision_reason_hours.hour = gone.hour
         AND decision_reason_hours.code = gone.code
         AND decision_reason_hours.verdict = gone.verdict
         AND decision_reason_hours.company = gone.company
         AND decision_reason_hours.campaign = gone.campaign""",
    # Every purged decision is dated before the cutoff: a range per code.
    """DELETE FROM decision_reasons
       WHERE code IN (SELECT DISTINCT code FROM decision_reason_hours)
         AND at < :before AND seq <= :last""",
    "DELETE FROM decision_hours WHERE count <= 0",
    "DELETE FROM decision_reason_hours WHERE count <= 0",
    # A node whose last decision is purged has all its decisions purged.
    "DELETE FROM decision_nodes WHERE seq <= :last",
)
