"""The facts' entries in the decision log's hash chain, and the check of the fact tables
against them.

Every write of a fact (a consent given or revoked, a refusal, a contract, an opposition
entry, an appointment) appends an entry to the same chain as the decisions, in the same
transaction as the write. A write of a few rows carries each row's image before and after
it; a write of many rows (an opposition import, the genesis of facts a migration records,
the snapshot a purge leaves) carries, per table, the rows' ids and a salted digest of their
images. The fact tables must then be exactly what the chain says: ``FactReplay`` reads the
entries in order and checks every row against the last entry that wrote it.

The callee is covered as in a decision (auditlog.callee_commit): a row image leaves it out,
the entry commits to it, and a pseudonymised export drops the number and the salt. Pure:
no I/O.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from callgate.auditlog import FACT_CHAINED_FIELDS, callee_commit, entry_hash, foreign_json

__all__ = [
    "FACT_CHAINED_FIELDS",
    "FACT_KINDS",
    "FACT_TABLES",
    "BulkPart",
    "FactProblem",
    "FactReplay",
    "RowChange",
    "TableCheck",
    "bulk_digest",
    "canonical",
    "fact_entry",
    "fact_summary",
    "id_ranges",
    "image",
]

# The tables whose rows decide calls, and the fact each one records.
FACT_TABLES = {
    "consents": "consent",
    "refusals": "refusal",
    "contracts": "contract",
    "opposition": "opposition",
    "appointments": "appointment",
}
# What a fact entry's "fact" names: a table's fact, a withdrawal (consents, opposition and
# refusal at once), or a write of the whole store.
FACT_KINDS = (*FACT_TABLES.values(), "withdrawal", "genesis", "purge")

# A row's image leaves these out: the id says which row, the entry says whose.
_NOT_IMAGED = ("id", "callee")


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row a write touched: its image before (None: inserted) and after it."""

    table: str
    id: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def as_json(self) -> dict[str, Any]:
        return {"table": self.table, "id": self.id, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class BulkPart:
    """Many rows of one table written at once, as ids and a digest of their images."""

    table: str
    ids: list[list[int]]  # [first, last] ranges, ascending
    count: int
    digest: str
    details: dict[str, Any] = field(default_factory=dict)  # e.g. the imported file's SHA-256

    def as_json(self) -> dict[str, Any]:
        return {"table": self.table, "ids": self.ids, "count": self.count,
                "digest": self.digest, **self.details}  # fmt: skip


def image(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as an entry carries it: every column but its id and its callee."""
    return {name: value for name, value in row.items() if name not in _NOT_IMAGED}


def id_ranges(ids: Iterable[int]) -> list[list[int]]:
    """Ascending ids as [first, last] ranges of consecutive ids."""
    ranges: list[list[int]] = []
    for number in sorted(ids):
        if ranges and number == ranges[-1][1] + 1:
            ranges[-1][1] = number
        else:
            ranges.append([number, number])
    return ranges


def canonical(value: Any) -> str:
    """Canonical JSON, a value of no JSON type as auditlog.foreign_json writes it."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=foreign_json
    )


def bulk_digest(salt: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """The digest of whole rows (callee included), in ascending id order, salted so that a
    digest of one row does not give its number away."""
    digest = hashlib.sha256(salt.encode())
    for row in rows:
        digest.update(_digest_line(row))
    return digest.hexdigest()


def _digest_line(row: Mapping[str, Any]) -> bytes:
    return b"\n" + canonical([row["id"], image(row), row.get("callee")]).encode()


def fact_entry(
    *, fact: str, op: str, seq: int, at: str, node: str | None, company: str | None,
    callee: str | None, salt: str, prev_hash: str, rows: Iterable[RowChange] = (),
    bulk: Iterable[BulkPart] = (),
) -> dict[str, Any]:  # fmt: skip
    """The chain entry of one write of facts, with its hash."""
    entry: dict[str, Any] = {
        "seq": seq, "at": at, "node": node, "kind": "fact", "fact": fact, "op": op,
        "company": company, "callee": callee, "callee_salt": salt,
        "callee_commit": callee_commit(callee, None, salt),
        "rows": [change.as_json() for change in rows],
        "bulk": [part.as_json() for part in bulk], "prev_hash": prev_hash,
    }  # fmt: skip
    entry["hash"] = entry_hash(entry)
    return entry


def fact_summary(entry: Mapping[str, Any]) -> str:
    """What a fact entry wrote, in a few words: the rows per table, with their ids."""
    parts = []
    for change in entry.get("rows") or ():
        verb = "new" if change["before"] is None else "changed"
        parts.append(f"{change['table']} {change['id']} {verb}")
    for bulk in entry.get("bulk") or ():
        ids = bulk["ids"]
        span = f" ({ids[0][0]}..{ids[-1][1]})" if ids else ""
        parts.append(f"{bulk['table']}: {bulk['count']:,} rows{span}")
    return ", ".join(parts) or "-"


# ---------------------------------------------------------------- the check of the tables


@dataclass(frozen=True)
class FactProblem:
    """A fact row the chain does not vouch for, in words an auditor can act on."""

    table: str
    row: int | None
    problem: str
    field: str | None = None

    def __str__(self) -> str:
        where = f"{self.table} row {self.row}" if self.row is not None else self.table
        return f"{where}{f', field {self.field}' if self.field else ''}: {self.problem}"


@dataclass
class _Bulk:
    seq: int
    part: dict[str, Any]
    salt: str


class FactReplay:
    """Reads the chain's fact entries in order; then checks each table's rows against
    what the entries say it holds.

    For a row that a bulk entry wrote and a later entry changed, the bulk's digest is
    checked against the row's image before that change, which the later entry carries.
    """

    def __init__(self) -> None:
        # (table, id) -> (seq, callee, image after the last entry that wrote the row)
        self.expected: dict[tuple[str, int], tuple[int, str | None, dict[str, Any] | None]] = {}
        # (table, id) -> [(seq, callee, image before)] of each entry that changed it
        self._changes: dict[tuple[str, int], list[tuple[int, str | None, Any]]] = {}
        self._bulks: dict[str, list[_Bulk]] = {}
        # Rows a write found already there without an entry of their own: (table, id, seq)
        self._unvouched: list[tuple[str, int, int]] = []
        self.problems: list[FactProblem] = []
        self._chain_problems: list[FactProblem] = []

    def feed(self, entry: Mapping[str, Any]) -> None:
        """The next fact entry of the chain (already verified by the chain's check)."""
        seq, callee = entry["seq"], entry.get("callee")
        for change in entry.get("rows") or ():
            key = (change["table"], change["id"])
            self._check_before(key, seq, callee, change["before"])
            self.expected[key] = (seq, callee, change["after"])
            self._changes.setdefault(key, []).append((seq, callee, change["before"]))
        for part in entry.get("bulk") or ():
            self._bulks.setdefault(part["table"], []).append(
                _Bulk(seq, part, entry.get("callee_salt") or "")
            )

    def _check_before(
        self, key: tuple[str, int], seq: int, callee: str | None, before: Any
    ) -> None:
        """A write read the row as the entry before it left it: else the row was edited
        (or deleted and its id reused) between the two, and the later entry, which took
        the edit for the row's state, must not launder it."""
        table, number = key
        known = self.expected.get(key)
        if known is None:
            if before is not None:  # a bulk entry must vouch for it: checked at the end
                self._unvouched.append((table, number, seq))
            return
        last, known_callee, after = known
        if before is None and after is not None:
            self._fail(table, number, f"the row entry {last} wrote was deleted, and its id"
                       f" taken again by entry {seq}")  # fmt: skip
        elif before is not None and (before != after or callee != known_callee):
            field = "callee" if callee != known_callee else _first_difference(after, before)
            self._fail(table, number, f"was edited between entries {last} and {seq}", field)

    def check_table(self, table: str) -> TableCheck:
        """A check of ``table``'s rows, fed in ascending id order."""
        return TableCheck(self, table)

    def _fail(self, table: str, row: int | None, problem: str, name: str | None = None) -> None:
        self._chain_problems.append(FactProblem(table, row, problem, name))

    def chain_problems(self) -> list[FactProblem]:
        """What the entries themselves show: a row edited between two of them, an id taken
        again, a row a write found without any entry or bulk entry vouching for it."""
        found = list(self._chain_problems)
        for table, number, seq in self._unvouched:
            bulks = self._bulks.get(table, ())
            if not any(_Ranges(bulk.part["ids"]).holds(number) for bulk in bulks):
                problem = (
                    f"entry {seq} changed a row that no entry had written: it was inserted"
                    " behind the log's back"
                )
                found.append(FactProblem(table, number, problem))
        return found


def _first_difference(one: Mapping[str, Any], other: Mapping[str, Any]) -> str | None:
    return next((k for k in sorted(set(one) | set(other)) if one.get(k) != other.get(k)), None)


class TableCheck:
    """One pass over a table's rows, in ascending id order: each row must be what the last
    entry that wrote it says, or be covered by a bulk entry; and each bulk entry's rows, as
    they were when it was written, must match its digest."""

    def __init__(self, replay: FactReplay, table: str) -> None:
        self._replay = replay
        self.table = table
        self._bulks = [_BulkCheck(bulk) for bulk in replay._bulks.get(table, ())]
        self._seen: set[int] = set()

    def row(self, row: Mapping[str, Any]) -> None:
        number = row["id"]
        self._seen.add(number)
        changes = self._replay._changes.get((self.table, number), ())
        covered = False
        for bulk in self._bulks:
            if bulk.ranges.holds(number):
                covered = True
                bulk.feed(self._as_written(row, bulk.seq, changes))
        known = self._replay.expected.get((self.table, number))
        if known is None:
            if not covered:
                self._fail(number, "the row has no entry in the log")
            return
        seq, callee, after = known
        if after is None:
            self._fail(number, f"the row was deleted by entry {seq}, yet it is here")
        elif row.get("callee") != callee:
            self._fail(number, f"differs from what entry {seq} wrote", "callee")
        elif (name := _first_difference(after, image(row))) is not None:
            self._fail(number, f"differs from what entry {seq} wrote", name)

    def done(self) -> None:
        for (name, number), (seq, _, after) in self._replay.expected.items():
            if name == self.table and after is not None and number not in self._seen:
                self._fail(number, f"the row entry {seq} wrote is missing")
        for bulk in self._bulks:
            if problem := bulk.done():
                self._fail(*problem)

    @staticmethod
    def _as_written(
        row: Mapping[str, Any], seq: int, changes: Iterable[tuple[int, str | None, Any]]
    ) -> Mapping[str, Any]:
        """The row as it was right after entry ``seq``: its image before the first later
        entry that changed it, or as it is now."""
        later = next((change for change in changes if change[0] > seq), None)
        if later is None or later[2] is None:
            return row
        return {**later[2], "id": row["id"], "callee": later[1]}

    def _fail(self, row: int | None, problem: str, name: str | None = None) -> None:
        self._replay.problems.append(FactProblem(self.table, row, problem, name))


class _BulkCheck:
    def __init__(self, bulk: _Bulk) -> None:
        self.seq = bulk.seq
        self.part = bulk.part
        self.ranges = _Ranges(bulk.part["ids"])
        self._ids = self.ranges.each()
        self._digest = hashlib.sha256(bulk.salt.encode())
        self._missing: list[int] = []

    def feed(self, row: Mapping[str, Any]) -> None:
        for expected in self._ids:
            if expected == row["id"]:
                break
            self._missing.append(expected)
        self._digest.update(_digest_line(row))

    def done(self) -> tuple[int | None, str] | None:
        self._missing.extend(self._ids)
        if self._missing:
            more = f" ({len(self._missing):,} rows)" if len(self._missing) > 1 else ""
            return self._missing[0], f"a row bulk entry {self.seq} wrote is missing{more}"
        if self._digest.hexdigest() != self.part["digest"]:
            first, last = self.ranges.span()
            count = self.part["count"]
            if count == 1:
                return first, f"differs from what bulk entry {self.seq} wrote (its digest)"
            return first, (
                f"rows {first} to {last}, written by bulk entry {self.seq} ({count:,} rows),"
                " do not match its digest: one of them was edited since"
            )
        return None


class _Ranges:
    def __init__(self, ranges: list[list[int]]) -> None:
        self._ranges = ranges
        self._firsts = [first for first, _ in ranges]

    def holds(self, number: int) -> bool:
        at = bisect_right(self._firsts, number) - 1
        return at >= 0 and number <= self._ranges[at][1]

    def span(self) -> tuple[int | None, int | None]:
        return (self._ranges[0][0], self._ranges[-1][1]) if self._ranges else (None, None)

    def each(self) -> Iterator[int]:
        for first, last in self._ranges:
            yield from range(first, last + 1)
