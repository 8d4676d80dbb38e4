"""Writes of facts as both stores carry them out: the rows to insert or update, and the
chain entry that goes with them, in the same transaction (callgate/factlog.py).

A store method describes its write as a ``FactWrite``; the backend runs each step, reads
the rows it touched before and after, and appends the entry. The SQL is shared: named
parameters (``:name``), which PostgreSQL's store turns into positional ones.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callgate.factlog import BulkPart, RowChange, bulk_digest, fact_entry, id_ranges, image
from callgate.model import Consent, ConsentScope, Contract
from callgate.store.base import WITHDRAWAL_SOURCE, AppointmentRecord, to_micros
from callgate.store.sql import CONSENT_COLUMNS, consent_values

__all__ = [
    "FACT_CHAIN_VERSION",
    "GENESIS_WRITE",
    "PURGE_WRITE",
    "BulkRows",
    "FactWrite",
    "Insert",
    "Sealed",
    "Step",
    "Update",
    "appointment_write",
    "cancel_write",
    "consent_write",
    "contract_write",
    "end_contracts_write",
    "entry_for",
    "import_entry",
    "insert_sql",
    "refusal_write",
    "remove_opposition_write",
    "revoke_write",
    "seal",
    "update_params",
    "update_sql",
    "withdrawal_write",
]


@dataclass(frozen=True)
class Insert:
    """One row into ``table``; with ``skip_existing``, none if a unique index holds it."""

    table: str
    values: Mapping[str, Any]
    skip_existing: bool = False


@dataclass(frozen=True)
class Update:
    """``SET`` on the rows of ``table`` matching ``where`` (named parameters)."""

    table: str
    values: Mapping[str, Any]
    where: str
    params: Mapping[str, Any] = field(default_factory=dict)


Step = Insert | Update


@dataclass(frozen=True)
class FactWrite:
    """One write of facts about one (company, callee): what the chain entry will say."""

    fact: str
    op: str
    company: str | None
    callee: str | None
    steps: Sequence[Step]


def insert_sql(step: Insert) -> str:
    names = list(step.values)
    return (
        f"INSERT INTO {step.table} ({', '.join(names)})"
        f" VALUES ({', '.join(f':{name}' for name in names)})"
        + (" ON CONFLICT DO NOTHING" if step.skip_existing else "")
        + " RETURNING *"
    )


def update_sql(step: Update) -> tuple[str, str]:
    """The SELECT of the rows an update will touch (by id, to read them before), and the
    update of one row by ``:id``."""
    select = f"SELECT * FROM {step.table} WHERE {step.where} ORDER BY id"
    assignments = ", ".join(f"{name} = :set_{name}" for name in step.values)
    return select, f"UPDATE {step.table} SET {assignments} WHERE id = :id RETURNING *"


def update_params(step: Update, row_id: int) -> dict[str, Any]:
    return {**{f"set_{name}": value for name, value in step.values.items()}, "id": row_id}


# The schema version from which every write of a fact is chained (its migration records
# the genesis of facts: the rows the store held then).
FACT_CHAIN_VERSION = 5


# ---------------------------------------------------------------- the writes

# A revocation ends the consents given by then (RULES-FR §4: "given before the call").
_REVOCABLE = (
    "company = :company AND callee = :callee AND revoked_at IS NULL AND given_at <= :at"
    " AND (CAST(:scope AS TEXT) IS NULL OR scope = :scope)"
)


GENESIS_WRITE = FactWrite("genesis", "chained", None, None, [])
PURGE_WRITE = FactWrite("purge", "chained", None, None, [])


def refusal_write(company: str, callee: str, at: datetime, source: str) -> FactWrite:
    return FactWrite(
        "refusal", "recorded", company, callee, [_refusal(company, callee, at, source)]
    )


def _refusal(company: str, callee: str, at: datetime, source: str) -> Insert:
    values = {"company": company, "callee": callee, "at": to_micros(at), "source": source}
    return Insert("refusals", values)


def consent_write(company: str, callee: str, consent: Consent) -> FactWrite:
    values = dict(zip(CONSENT_COLUMNS[1:], consent_values(company, callee, consent), strict=True))
    return FactWrite("consent", "given", company, callee, [Insert("consents", values)])


def _revoke(
    company: str, callee: str, scope: ConsentScope | None, at: datetime, how: str
) -> Update:
    micros = to_micros(at)
    params = {"company": company, "callee": callee, "at": micros,
              "scope": scope.value if scope else None}  # fmt: skip
    return Update("consents", {"revoked_at": micros, "revoked_how": how}, _REVOCABLE, params)


def revoke_write(company: str, callee: str, scope: ConsentScope | None, at: datetime) -> FactWrite:
    return FactWrite("consent", "revoked", company, callee,
                     [_revoke(company, callee, scope, at, "revoked")])  # fmt: skip


def withdrawal_write(company: str, callee: str, at: datetime, source: str) -> FactWrite:
    """The callee withdrew by voice (RULES-FR §3.3): consents revoked, the number on the
    company's opposition list, a refusal; three steps, one entry."""
    opposed = {"callee": callee, "company": company, "source": WITHDRAWAL_SOURCE,
               "added_at": to_micros(at)}  # fmt: skip
    return FactWrite("withdrawal", "withdrawn", company, callee, [
        _revoke(company, callee, None, at, "withdrawn"),
        Insert("opposition", opposed, skip_existing=True),
        _refusal(company, callee, at, source),
    ])  # fmt: skip


def appointment_write(company: str, callee: str, record: AppointmentRecord) -> FactWrite:
    a = record.appointment
    values = {
        "company": company, "callee": callee, "start_at": to_micros(a.start),
        "end_at": to_micros(a.end) if a.end else None,
        "recorded_at": to_micros(record.recorded_at), "cancelled_at": None,
        "source": record.source, "proof": record.proof, "agreed_by": record.agreed_by,
    }  # fmt: skip
    return FactWrite("appointment", "added", company, callee, [Insert("appointments", values)])


def cancel_write(company: str, callee: str, start: datetime, at: datetime) -> FactWrite:
    where = "company = :company AND callee = :callee AND start_at = :start AND cancelled_at IS NULL"
    params = {"company": company, "callee": callee, "start": to_micros(start)}
    step = Update("appointments", {"cancelled_at": to_micros(at)}, where, params)
    return FactWrite("appointment", "cancelled", company, callee, [step])


def contract_write(company: str, callee: str, contract: Contract) -> FactWrite:
    values = {"company": company, "callee": callee, "start_at": to_micros(contract.start),
              "end_at": to_micros(contract.end) if contract.end else None}  # fmt: skip
    return FactWrite("contract", "started", company, callee, [Insert("contracts", values)])


def end_contracts_write(company: str, callee: str, at: datetime) -> FactWrite:
    micros = to_micros(at)
    where = (
        "company = :company AND callee = :callee AND start_at <= :at"
        " AND (end_at IS NULL OR end_at > :at)"
    )
    step = Update("contracts", {"end_at": micros}, where,
                  {"company": company, "callee": callee, "at": micros})  # fmt: skip
    return FactWrite("contract", "ended", company, callee, [step])


def remove_opposition_write(callee: str, company: str | None, at: datetime) -> FactWrite:
    where = "callee = :callee AND company = :company AND removed_at IS NULL"
    step = Update("opposition", {"removed_at": to_micros(at)}, where,
                  {"callee": callee, "company": company or ""})  # fmt: skip
    return FactWrite("opposition", "removed", company, callee, [step])


def import_entry(
    added: list[dict[str, Any]], company: str | None, source: str,
    origin: Mapping[str, Any] | None,
) -> tuple[FactWrite, list[RowChange], list[BulkRows]] | None:  # fmt: skip
    """The entry of opposition rows added at once: a number added by hand is an entry with
    its row; an import (``origin``: its file's name, SHA-256 and lines) one with their ids
    and digest, even when it added nothing new. None: nothing to record."""
    if origin is None and len(added) <= 1:
        if not added:
            return None
        row = added[0]
        change = RowChange("opposition", row["id"], None, image(row))
        return FactWrite("opposition", "added", company, row["callee"], []), [change], []
    details = {"source": source, **(origin or {})}
    write = FactWrite("opposition", "imported" if origin else "added", company, None, [])
    return write, [], [BulkRows("opposition", added, details)]


@dataclass(frozen=True)
class BulkRows:
    """Whole rows of one table a bulk entry covers, before their digest is taken."""

    table: str
    rows: list[dict[str, Any]]
    details: Mapping[str, Any] = field(default_factory=dict)

    def part(self, salt: str) -> BulkPart:
        return BulkPart(
            self.table, id_ranges(row["id"] for row in self.rows), len(self.rows),
            bulk_digest(salt, self.rows), dict(self.details),
        )  # fmt: skip


@dataclass(frozen=True)
class Sealed:
    """Bulk rows digested with the salt of the entry to come: the part of an entry's work
    that needs no place in the chain, done before the chain's lock is taken."""

    salt: str
    parts: list[BulkPart]


def seal(bulk: Sequence[BulkRows]) -> Sealed:
    salt = secrets.token_hex(16)
    return Sealed(salt, [rows.part(salt) for rows in bulk])


def entry_for(
    write: FactWrite, changes: list[RowChange], bulk: Sequence[BulkRows] | Sealed, *,
    seq: int, at: datetime, node: str | None, prev_hash: str,
) -> dict[str, Any]:  # fmt: skip
    """The chain entry of a write, following the entry (``seq`` - 1, ``prev_hash``)."""
    sealed = bulk if isinstance(bulk, Sealed) else seal(bulk)
    return fact_entry(
        fact=write.fact, op=write.op, seq=seq, at=at.isoformat(), node=node,
        company=write.company, callee=write.callee, salt=sealed.salt, prev_hash=prev_hash,
        rows=changes, bulk=sealed.parts,
    )  # fmt: skip
