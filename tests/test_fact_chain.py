"""The facts' entries in the decision log's chain: every write of a consent, a refusal, a
contract, an opposition entry or an appointment is an entry, and `log verify` holds the fact
tables to what those entries wrote. An edit, a deletion or an insertion made in SQL behind
callgate's back is caught, on both backends, and named: table, row, field."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from builders import MONDAY, a_config, a_request, days, paris

from callgate.cli_log import LogCheck, verify_chain
from callgate.factlog import FactProblem
from callgate.gate import check_call
from callgate.model import Appointment, Consent, ConsentScope, Contract
from callgate.store import open_store
from callgate.store.base import AppointmentRecord, LogQuery, to_micros
from callgate.upgrade import migrate_store

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "callgate.toml"
PREVIOUS = Path(__file__).parent / "fixtures" / "previous-release"

A, B, C = "+33612345678", "+33612345679", "+33612345670"
D, E, F = "+33612345671", "+33612345672", "+33612345673"
NEWCOMER = "+33612345699"  # a number no write of the store ever names
IMPORTED = [f"+3361000{n:04d}" for n in range(50)]
DAY = 86_400_000_000  # microseconds: the stores keep instants as integers
PROSPECTING = ConsentScope.PROSPECTING


# ---------------------------------------------------------------- behind callgate's back


def _is_postgres(url: str) -> bool:
    return url.startswith("postgresql://")


async def _sql(url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """One statement run on the store's database directly, as someone with access to it
    could; ``?`` marks the parameters on either backend."""
    if _is_postgres(url):
        import asyncpg

        parts = statement.split("?")
        numbered = parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))
        connection = await asyncpg.connect(url)
        try:
            return [tuple(row) for row in await connection.fetch(numbered, *params)]
        finally:
            await connection.close()
    db = sqlite3.connect(url)
    try:
        rows = db.execute(statement, params).fetchall()
        db.commit()
        return rows
    finally:
        db.close()


async def _verified(url: str) -> LogCheck:
    """`log verify`'s check, on the store opened anew as it opens it (read-only): nothing
    cached from before the edit."""
    store = await open_store(url, read_only=True)
    try:
        return await verify_chain(store)
    finally:
        await store.close()


async def _last_seq(store) -> int:
    [entry] = await store.log_entries(LogQuery(kind="fact"), limit=1, last=True)
    return entry["seq"]


# ---------------------------------------------------------------- a store of every fact


@dataclass
class Built:
    """What _build wrote: each named row as (table, id, seq of the entry that last wrote
    it), and the import's rows."""

    rows: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    imported: list[int] = field(default_factory=list)
    import_seq: int = 0
    entries: int = 0

    def table(self, name: str) -> str:
        return self.rows[name][0]

    def id(self, name: str) -> int:
        return self.rows[name][1]

    def seq(self, name: str) -> int:
        return self.rows[name][2]


ROWS_BUILT = {"consents": 3, "refusals": 2, "contracts": 2, "opposition": 54, "appointments": 2}


async def _build(store) -> Built:
    """Every kind of write of facts, updates included, with a decision among them."""
    built = Built()

    async def wrote(name: str, table: str, row_id: int) -> None:
        built.rows[name] = (table, row_id, await _last_seq(store))

    consent = await store.add_consent(
        "acme", A, Consent(PROSPECTING, paris(2026, 1, 5, 10), source="web", proof="form 1")
    )
    await wrote("consent", "consents", consent)
    revoked = await store.add_consent("acme", B, Consent(PROSPECTING, paris(2026, 2, 1, 10)))
    assert await store.revoke_consents("acme", B, None, paris(2026, 3, 1, 9)) == 1
    await wrote("revoked consent", "consents", revoked)
    withdrawn = await store.add_consent("acme", C, Consent(PROSPECTING, paris(2026, 2, 1, 10)))
    done = await store.withdraw("acme", C, paris(2026, 4, 1, 11), "agi")
    assert (done.revoked, done.opposed) == (1, True)
    await wrote("withdrawn consent", "consents", withdrawn)
    await wrote("withdrawal's refusal", "refusals", done.refusal_id)
    [opposed] = [entry async for entry in store.oppositions(C, "acme")]
    await wrote("withdrawal's opposition", "opposition", opposed.id)
    # Decisions and facts share one chain: a decision between them must not disturb it.
    await check_call(store, a_config(), a_request(A), MONDAY, record=True)

    refusal = await store.add_refusal("acme", A, paris(2026, 5, 4, 12), "cli")
    await wrote("refusal", "refusals", refusal)
    contract = await store.add_contract("acme", A, Contract(paris(2026, 1, 1)))
    await wrote("contract", "contracts", contract)
    ended = await store.add_contract("acme", B, Contract(paris(2025, 1, 1)))
    assert await store.end_contracts("acme", B, paris(2026, 6, 1)) == 1
    await wrote("ended contract", "contracts", ended)

    assert await store.add_oppositions([D], "acme", "internal", paris(2026, 6, 2)) == 1
    [row] = [entry async for entry in store.oppositions(D, None)]
    await wrote("opposition", "opposition", row.id)
    assert await store.add_oppositions([E], None, "internal", paris(2026, 6, 2)) == 1
    assert await store.remove_oppositions(E, None, paris(2026, 7, 1)) == 1
    [row] = [entry async for entry in store.oppositions(E, None)]
    await wrote("removed opposition", "opposition", row.id)
    assert await store.add_oppositions([F], None, "bloctel", paris(2026, 6, 2)) == 1
    # An import names F again and one number twice: only the 50 new rows are its own.
    origin = {"file": "x.csv", "file_sha256": "ab" * 32, "lines": 52}
    added = await store.add_oppositions(
        [*IMPORTED, F, IMPORTED[0]], None, "bloctel", paris(2026, 6, 3), origin=origin
    )
    assert added == 50
    built.import_seq = await _last_seq(store)
    # By number, not by rank: PostgreSQL numbers an insert's rows in no set order.
    by_number = {e.callee: e.id async for e in store.oppositions(None, None)}
    built.imported = sorted(by_number[number] for number in IMPORTED)
    await wrote("imported", "opposition", by_number[IMPORTED[10]])
    assert await store.remove_oppositions(IMPORTED[0], None, paris(2026, 8, 1)) == 1
    await wrote("imported then removed", "opposition", by_number[IMPORTED[0]])

    booked = AppointmentRecord(0, "acme", A, Appointment(paris(2026, 12, 10, 14)),
                               paris(2026, 12, 1, 9), source="call", proof="rec 1")  # fmt: skip
    appointment = await store.add_appointment("acme", A, booked)
    await wrote("appointment", "appointments", appointment)
    other = AppointmentRecord(0, "acme", A, Appointment(paris(2026, 12, 11, 14)),
                              paris(2026, 12, 1, 9))  # fmt: skip
    cancelled = await store.add_appointment("acme", A, other)
    cancel = await store.cancel_appointments("acme", A, paris(2026, 12, 11, 14), paris(2026, 12, 2))
    assert cancel == 1
    await wrote("cancelled appointment", "appointments", cancelled)
    built.entries = len(await store.log_entries(LogQuery(kind="all")))
    return built


async def test_a_store_written_through_its_api_verifies(store):
    built = await _build(store)
    check = await verify_chain(store)
    assert check.ok, str(check)
    assert built.entries == 19  # 18 writes of facts and the decision
    assert (check.verifier.count, check.rows) == (19, sum(ROWS_BUILT.values()))
    facts = await store.log_entries(LogQuery(kind="fact"))
    assert [(e["fact"], e["op"]) for e in facts] == [
        ("consent", "given"), ("consent", "given"), ("consent", "revoked"),
        ("consent", "given"), ("withdrawal", "withdrawn"), ("refusal", "recorded"),
        ("contract", "started"), ("contract", "started"), ("contract", "ended"),
        ("opposition", "added"), ("opposition", "added"), ("opposition", "removed"),
        ("opposition", "added"), ("opposition", "imported"), ("opposition", "removed"),
        ("appointment", "added"), ("appointment", "added"), ("appointment", "cancelled"),
    ]  # fmt: skip
    [imported] = [e for e in facts if e["op"] == "imported"]
    [part] = imported["bulk"]
    assert (part["count"], part["file"], part["lines"], part["source"]) == (
        50, "x.csv", 52, "bloctel"
    )  # fmt: skip
    assert imported["callee"] is None and imported["rows"] == []


# ---------------------------------------------------------------- 1. tampering, per table

Expect = Callable[[Built, int | None], list[FactProblem]]


def differs(name: str, column: str) -> Expect:
    """The row no longer is what the entry that last wrote it says."""
    return lambda b, _: [
        FactProblem(b.table(name), b.id(name), f"differs from what entry {b.seq(name)} wrote",
                    column)
    ]  # fmt: skip


def missing(name: str) -> Expect:
    return lambda b, _: [
        FactProblem(b.table(name), b.id(name), f"the row entry {b.seq(name)} wrote is missing")
    ]


def unchained(table: str) -> Expect:
    return lambda _, new: [FactProblem(table, new, "the row has no entry in the log")]


def undigested() -> Expect:
    """An imported row edited: only the import's digest knows it, and it names its range."""
    return lambda b, _: [
        FactProblem(
            "opposition", b.imported[0],
            f"rows {b.imported[0]} to {b.imported[-1]}, written by bulk entry {b.import_seq}"
            " (50 rows), do not match its digest: one of them was edited since",
        )
    ]  # fmt: skip


def bulk_missing(name: str) -> Expect:
    return lambda b, _: [
        FactProblem("opposition", b.id(name), f"a row bulk entry {b.import_seq} wrote is missing")
    ]


def imported_and_removed_missing() -> Expect:
    # Two entries wrote that row, the import and the removal: each misses it.
    name = "imported then removed"
    return lambda b, _: [*missing(name)(b, None), *bulk_missing(name)(b, None)]


NEW_ROW = {
    "consents": "INSERT INTO consents (company, callee, scope, given_at)"
    f" VALUES ('acme', '{NEWCOMER}', 'prospecting', 1767222000000000) RETURNING id",
    "refusals": "INSERT INTO refusals (company, callee, at, source)"
    f" VALUES ('acme', '{NEWCOMER}', 1767222000000000, 'cli') RETURNING id",
    "contracts": "INSERT INTO contracts (company, callee, start_at)"
    f" VALUES ('acme', '{NEWCOMER}', 1767222000000000) RETURNING id",
    "opposition": "INSERT INTO opposition (callee, company, source, added_at)"
    f" VALUES ('{NEWCOMER}', '', 'bloctel', 1767222000000000) RETURNING id",
    "appointments": "INSERT INTO appointments (company, callee, start_at, recorded_at)"
    f" VALUES ('acme', '{NEWCOMER}', 1796990400000000, 1767222000000000) RETURNING id",
}


def _tamper(case: str, sql: str, target: str | None, expect: Expect) -> Any:
    return pytest.param(sql, target, expect, id=case)


TAMPERS = [
    # consents
    _tamper("consent backdated by one day",
            f"UPDATE consents SET given_at = given_at - {DAY} WHERE id = ?", "consent",
            differs("consent", "given_at")),
    _tamper("revoked consent made active again",
            "UPDATE consents SET revoked_at = NULL WHERE id = ?", "revoked consent",
            differs("revoked consent", "revoked_at")),
    _tamper("withdrawn consent made active again",
            "UPDATE consents SET revoked_at = NULL, revoked_how = NULL WHERE id = ?",
            "withdrawn consent", differs("withdrawn consent", "revoked_at")),
    _tamper("consent moved to another number",
            f"UPDATE consents SET callee = '{NEWCOMER}' WHERE id = ?", "consent",
            differs("consent", "callee")),
    _tamper("consent's proof rewritten",
            "UPDATE consents SET proof = 'form 2' WHERE id = ?", "consent",
            differs("consent", "proof")),
    _tamper("consent deleted", "DELETE FROM consents WHERE id = ?", "consent",
            missing("consent")),
    _tamper("consent inserted", NEW_ROW["consents"], None, unchained("consents")),
    # refusals
    _tamper("refusal moved out of the cool-down",
            f"UPDATE refusals SET at = at - {61 * DAY} WHERE id = ?", "refusal",
            differs("refusal", "at")),
    _tamper("withdrawal's refusal given another source",
            "UPDATE refusals SET source = 'cli' WHERE id = ?", "withdrawal's refusal",
            differs("withdrawal's refusal", "source")),
    _tamper("refusal deleted", "DELETE FROM refusals WHERE id = ?", "refusal",
            missing("refusal")),
    _tamper("refusal inserted", NEW_ROW["refusals"], None, unchained("refusals")),
    # contracts
    _tamper("ended contract made open-ended",
            "UPDATE contracts SET end_at = NULL WHERE id = ?", "ended contract",
            differs("ended contract", "end_at")),
    _tamper("contract deleted", "DELETE FROM contracts WHERE id = ?", "contract",
            missing("contract")),
    _tamper("contract inserted", NEW_ROW["contracts"], None, unchained("contracts")),
    # opposition: rows added by hand
    _tamper("hand-added opposition widened to every company",
            "UPDATE opposition SET company = '' WHERE id = ?", "opposition",
            differs("opposition", "company")),
    _tamper("removed opposition made active again",
            "UPDATE opposition SET removed_at = NULL WHERE id = ?", "removed opposition",
            differs("removed opposition", "removed_at")),
    _tamper("hand-added opposition deleted", "DELETE FROM opposition WHERE id = ?",
            "opposition", missing("opposition")),
    _tamper("withdrawal's opposition deleted", "DELETE FROM opposition WHERE id = ?",
            "withdrawal's opposition", missing("withdrawal's opposition")),
    _tamper("opposition inserted", NEW_ROW["opposition"], None, unchained("opposition")),
    # opposition: rows an import added, vouched for by its digest
    _tamper("imported opposition given another number",
            f"UPDATE opposition SET callee = '{NEWCOMER}' WHERE id = ?", "imported",
            undigested()),
    _tamper("imported opposition removed in SQL",
            "UPDATE opposition SET removed_at = 1790000000000000 WHERE id = ?", "imported",
            undigested()),
    _tamper("imported opposition deleted", "DELETE FROM opposition WHERE id = ?",
            "imported", bulk_missing("imported")),
    _tamper("imported then removed, made active again",
            "UPDATE opposition SET removed_at = NULL WHERE id = ?", "imported then removed",
            differs("imported then removed", "removed_at")),
    _tamper("imported then removed, deleted", "DELETE FROM opposition WHERE id = ?",
            "imported then removed", imported_and_removed_missing()),
    # appointments
    _tamper("cancelled appointment restored",
            "UPDATE appointments SET cancelled_at = NULL WHERE id = ?",
            "cancelled appointment", differs("cancelled appointment", "cancelled_at")),
    _tamper("appointment moved by an hour",
            "UPDATE appointments SET start_at = start_at + 3600000000 WHERE id = ?",
            "appointment", differs("appointment", "start_at")),
    _tamper("appointment deleted", "DELETE FROM appointments WHERE id = ?", "appointment",
            missing("appointment")),
    _tamper("appointment inserted", NEW_ROW["appointments"], None, unchained("appointments")),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "target", "expect"), TAMPERS)
async def test_a_fact_row_tampered_in_sql_is_caught_and_named(store_url, sql, target, expect):
    store = await open_store(store_url)
    try:
        built = await _build(store)
        before = await verify_chain(store)
    finally:
        await store.close()
    assert before.ok, str(before)

    if target is None:
        [(new_id,)] = await _sql(store_url, sql)
    else:
        assert await _sql(store_url, sql, built.id(target)) == []
        new_id = None

    check = await _verified(store_url)
    assert check.broken is None  # the chain itself is intact: only a fact row changed
    assert check.problems == expect(built, new_id)
    assert not check.ok
    assert check.verifier.count == built.entries


EDITED_BACK = [
    (f"UPDATE consents SET given_at = given_at - {DAY} WHERE id = ?",
     f"UPDATE consents SET given_at = given_at + {DAY} WHERE id = ?", "consent"),
    ("UPDATE consents SET revoked_at = NULL WHERE id = ?",
     f"UPDATE consents SET revoked_at = {to_micros(paris(2026, 3, 1, 9))} WHERE id = ?",
     "revoked consent"),
    (f"UPDATE opposition SET callee = '{NEWCOMER}' WHERE id = ?",
     f"UPDATE opposition SET callee = '{IMPORTED[10]}' WHERE id = ?", "imported"),
    ("UPDATE appointments SET cancelled_at = NULL WHERE id = ?",
     f"UPDATE appointments SET cancelled_at = {to_micros(paris(2026, 12, 2))} WHERE id = ?",
     "cancelled appointment"),
]  # fmt: skip


async def test_a_row_edited_then_edited_back_is_no_problem(store_url):
    """What the log vouches for is the row's content, not how often SQL touched it."""
    store = await open_store(store_url)
    try:
        built = await _build(store)
    finally:
        await store.close()
    for edit, undo, target in EDITED_BACK:
        await _sql(store_url, edit, built.id(target))
        assert not (await _verified(store_url)).ok, edit  # each edit alone is caught
        await _sql(store_url, undo, built.id(target))
    check = await _verified(store_url)
    assert check.ok, str(check)
    assert (check.verifier.count, check.rows) == (19, sum(ROWS_BUILT.values()))


class _WrittenMeanwhile:
    """The store as `log verify` reads it, while a gate writes a fact through another
    store object between the walk of the log and the read of the tables: on a store in
    service, a refusal (*7) or a withdrawal (*8) can land at any instant."""

    def __init__(self, store, write: Callable[[], Any]) -> None:
        self._store = store
        self._write: Callable[[], Any] | None = write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def fact_rows(self, table: str, low: int | None = None, high: int | None = None):
        if self._write is not None:
            write, self._write = self._write, None
            await write()
        async for row in self._store.fact_rows(table, low, high):
            yield row


async def test_verify_on_a_store_in_service_reports_no_break_for_a_write_made_meanwhile(
    store_url,
):
    """A write made through the store's API while `log verify` runs is no tampering: the
    check must see the log and the tables as of one instant, or say nothing of that row."""
    reader, gate = await open_store(store_url), await open_store(store_url)
    try:
        await reader.add_consent("acme", A, Consent(PROSPECTING, paris(2026, 1, 5, 10)))
        meanwhile = _WrittenMeanwhile(reader, lambda: gate.add_refusal("acme", A, MONDAY, "agi"))
        during = await verify_chain(meanwhile)
        after = await verify_chain(reader)
    finally:
        await reader.close()
        await gate.close()
    assert after.ok and after.verifier.count == 2  # the store is intact, the refusal chained
    assert during.ok, str(during)


# ---------------------------------------------------------------- 2. genesis via migration


@pytest.fixture
def previous_url(request, store_url) -> str:
    """A store the previous release (schema 2) made, at store_url."""
    if not _is_postgres(store_url):
        shutil.copy(PREVIOUS / "callgate.db", store_url)
        return store_url
    server = request.getfixturevalue("postgres")
    subprocess.run(
        [str(server.bindir / "psql"), "--quiet", "-v", "ON_ERROR_STOP=1", "-d", store_url,
         "-f", str(PREVIOUS / "postgres.sql")],
        check=True, capture_output=True,
    )  # fmt: skip
    return store_url


GENESIS_SEQ = 8  # the fixture's log ends at seq 7, after a purge


def genesis_digest(table: str, first: int, last: int, count: int) -> list[FactProblem]:
    if count == 1:
        problem = f"differs from what bulk entry {GENESIS_SEQ} wrote (its digest)"
    else:
        problem = (
            f"rows {first} to {last}, written by bulk entry {GENESIS_SEQ} ({count} rows),"
            " do not match its digest: one of them was edited since"
        )
    return [FactProblem(table, first, problem)]


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        pytest.param(f"UPDATE consents SET given_at = given_at - {DAY} WHERE id = 1",
                     genesis_digest("consents", 1, 3, 3), id="consent backdated"),
        pytest.param("UPDATE consents SET revoked_at = NULL WHERE id = 2",
                     genesis_digest("consents", 1, 3, 3), id="revoked consent made active"),
        pytest.param("UPDATE opposition SET removed_at = NULL WHERE id = 1",
                     genesis_digest("opposition", 1, 2, 2), id="removed opposition restored"),
        pytest.param("UPDATE contracts SET end_at = 1767222000000000 WHERE id = 1",
                     genesis_digest("contracts", 1, 1, 1), id="contract ended"),
        pytest.param("DELETE FROM refusals WHERE id = 1",
                     [FactProblem("refusals", 1,
                                  f"a row bulk entry {GENESIS_SEQ} wrote is missing")],
                     id="refusal deleted"),
    ],
)  # fmt: skip
async def test_a_migrated_store_verifies_and_its_older_rows_are_vouched_for(
    previous_url, sql, expected
):
    report = await migrate_store(previous_url)
    assert report.ok and (report.from_version, report.to_version) == (2, 5)
    check = await _verified(previous_url)
    assert check.ok, str(check)
    assert (check.verifier.count, check.rows) == (6, 7)  # 5 decisions, the genesis; 7 rows
    store = await open_store(previous_url)
    try:
        [genesis] = await store.log_entries(LogQuery(kind="genesis"))
        # Rows from before the chain have no entry of their own to show.
        outcomes = await store.outcomes(None, None)
    finally:
        await store.close()
    assert genesis["seq"] == GENESIS_SEQ and genesis["rows"] == []
    assert {p["table"]: (p["ids"], p["count"]) for p in genesis["bulk"]} == {
        "consents": ([[1, 3]], 3), "refusals": ([[1, 1]], 1), "contracts": ([[1, 1]], 1),
        "opposition": ([[1, 2]], 2), "appointments": ([], 0),
    }  # fmt: skip
    assert [(o.id, o.kind, o.seq) for o in outcomes] == [(1, "refusal", None)]

    await _sql(previous_url, sql)
    check = await _verified(previous_url)
    assert check.broken is None
    assert check.problems == expected


async def test_an_older_row_changed_after_the_migration_is_held_to_that_change(previous_url):
    """The genesis digest is checked against the row as it was before the revocation (the
    revocation's entry carries it), and the row against the revocation."""
    await migrate_store(previous_url)
    store = await open_store(previous_url)
    try:
        assert await store.revoke_consents("acme", A, None, paris(2026, 11, 1)) == 1
        revocation = await _last_seq(store)
        assert await store.remove_oppositions("+33612345672", None, paris(2026, 11, 2)) == 1
    finally:
        await store.close()
    assert revocation == GENESIS_SEQ + 1
    assert (await _verified(previous_url)).ok

    await _sql(previous_url, "UPDATE consents SET revoked_at = NULL WHERE id = 1")
    check = await _verified(previous_url)
    assert check.problems == [
        FactProblem("consents", 1, f"differs from what entry {revocation} wrote", "revoked_at")
    ]
    await _sql(previous_url, "UPDATE consents SET revoked_at = ? WHERE id = 1",
               to_micros(paris(2026, 11, 1)))  # fmt: skip
    assert (await _verified(previous_url)).ok
    [(new_id,)] = await _sql(previous_url, NEW_ROW["consents"])
    assert new_id == 4
    check = await _verified(previous_url)
    assert check.problems == [FactProblem("consents", 4, "the row has no entry in the log")]


# ---------------------------------------------------------------- 3. purge


async def test_a_purge_keeps_the_facts_vouched_for(store_url):
    """Every entry that wrote the facts purged: the purge's own entry vouches for them."""
    store = await open_store(store_url)
    try:
        built = await _build(store)  # its entries are dated now by the store's clock
        cutoff = max(datetime.now(UTC), MONDAY) + timedelta(hours=1)
        await check_call(store, a_config(), a_request(B), MONDAY + days(1), record=True)
        kept = await check_call(store, a_config(), a_request(B), cutoff + days(1), record=True)
        assert await store.purge_log(cutoff, cutoff) == 2  # the decisions before the cutoff
        anchor = await store.log_anchor()
        [purge] = await store.log_entries(LogQuery(kind="purge"))
        check = await verify_chain(store)
        assert check.ok, str(check)
        assert await store.revoke_consents("acme", A, None, paris(2026, 12, 1)) == 1
        revocation = await _last_seq(store)
        entries = await store.log_entries(LogQuery(kind="all"))
    finally:
        await store.close()
    assert anchor[0] == built.entries + 1  # the last decision before the cutoff
    assert [e.get("id") for e in entries[:1]] == [kept.decision_id]
    assert purge["seq"] == built.entries + 3 and revocation == purge["seq"] + 1
    assert {p["table"]: p["count"] for p in purge["bulk"]} == ROWS_BUILT
    assert (check.verifier.count, check.rows) == (2, sum(ROWS_BUILT.values()))
    assert (await _verified(store_url)).ok

    # A row whose every entry was purged: only the purge's digest vouches for it.
    await _sql(store_url, f"UPDATE refusals SET at = at - {61 * DAY} WHERE id = ?",
               built.id("refusal"))  # fmt: skip
    [(first, last)] = await _sql(store_url, "SELECT min(id), max(id) FROM refusals")
    check = await _verified(store_url)
    assert check.broken is None
    assert check.problems == [
        FactProblem("refusals", first,
                    f"rows {first} to {last}, written by bulk entry {purge['seq']} (2 rows),"
                    " do not match its digest: one of them was edited since")
    ]  # fmt: skip
    await _sql(store_url, f"UPDATE refusals SET at = at + {61 * DAY} WHERE id = ?",
               built.id("refusal"))  # fmt: skip
    assert (await _verified(store_url)).ok

    # A row changed after the purge: held to that change.
    await _sql(store_url, "UPDATE consents SET revoked_at = NULL WHERE id = ?", built.id("consent"))
    await _sql(store_url, "DELETE FROM contracts WHERE id = ?", built.id("contract"))
    check = await _verified(store_url)
    assert check.problems == [
        FactProblem("consents", built.id("consent"),
                    f"differs from what entry {revocation} wrote", "revoked_at"),
        FactProblem("contracts", built.id("contract"),
                    f"a row bulk entry {purge['seq']} wrote is missing"),
    ]  # fmt: skip


async def test_a_purge_after_the_migration_leaves_two_digests_and_each_catches_an_edit(
    previous_url,
):
    """The purge stops at the genesis (dated at the migration, after the cutoff): both
    bulk entries cover the older rows, and each checks them."""
    await migrate_store(previous_url)
    store = await open_store(previous_url)
    try:
        assert await store.purge_log(paris(2026, 11, 24), paris(2026, 12, 1)) == 5
        entries = await store.log_entries(LogQuery(kind="all"))
        check = await verify_chain(store)
    finally:
        await store.close()
    assert [(e["seq"], e["fact"]) for e in entries] == [(8, "genesis"), (9, "purge")]
    assert check.ok and (check.verifier.count, check.rows) == (2, 7)

    await _sql(previous_url, "UPDATE consents SET given_at = given_at - 1 WHERE id = 2")
    check = await _verified(previous_url)
    assert check.problems == [
        FactProblem("consents", 1, f"rows 1 to 3, written by bulk entry {seq} (3 rows), do not"
                    " match its digest: one of them was edited since")
        for seq in (8, 9)
    ]  # fmt: skip


# ---------------------------------------------------------------- 4. many writes, at once


@dataclass
class Tally:
    """What a workload did, from what each write said it changed."""

    entries: int = 0  # writes of facts that changed something: one chain entry each
    decisions: int = 0
    rows: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)  # per kind, the writes that changed

    def changed(self, kind: str, done: bool, **rows: int) -> None:
        if done:
            self.entries += 1
            self.kinds[kind] += 1
        self.rows.update(rows)


POOL = [f"+3361234{n:04d}" for n in range(300)]
KINDS = {
    "consent": 16, "revoke": 6, "refusal": 8, "withdrawal": 3, "contract": 6, "end": 4,
    "oppose": 6, "oppose many": 2, "unoppose": 4, "import": 1, "appointment": 6, "cancel": 4,
    "decision": 34,
}  # fmt: skip
SLOTS = [paris(2026, 12, 14 + day, 15) for day in range(4)]  # appointments' starts


def _operations(count: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """A fixed mix of writes: drawn once, so concurrency cannot change what is written."""
    rng = random.Random(seed)
    fresh = iter(range(10**6))
    ops = []
    for _ in range(count):
        kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
        callee = rng.choice(POOL)
        company = rng.choice(("acme", "acme", "globex"))
        at = paris(2026, 1, 1) + timedelta(minutes=rng.randrange(480_000))
        op: dict[str, Any] = {"callee": callee, "company": company, "at": at}
        if kind in ("oppose", "oppose many", "unoppose", "import"):
            op["company"] = rng.choice((None, "acme"))
        if kind == "oppose many":
            op["callees"] = rng.sample(POOL, 2)
        elif kind == "import":
            # Some numbers listed before, some new: an import adds only the new ones.
            op["callees"] = rng.sample(POOL, 20) + [f"+3362{next(fresh):07d}" for _ in range(20)]
        elif kind in ("appointment", "cancel"):
            op["start"] = rng.choice(SLOTS)
        elif kind == "decision":
            op["at"] = MONDAY + timedelta(minutes=rng.randrange(600))
        ops.append((kind, op))
    return ops


async def _write(store, tally: Tally, kind: str, op: dict[str, Any]) -> None:
    callee, company, at = op["callee"], op["company"], op["at"]
    if kind == "consent":
        await store.add_consent(company, callee, Consent(PROSPECTING, at, source="web"))
        tally.changed(kind, True, consents=1)
    elif kind == "revoke":
        tally.changed(kind, await store.revoke_consents(company, callee, None, at) > 0)
    elif kind == "refusal":
        await store.add_refusal(company, callee, at, "cli")
        tally.changed(kind, True, refusals=1)
    elif kind == "withdrawal":
        done = await store.withdraw(company, callee, at, "agi")
        tally.changed(kind, True, refusals=1, opposition=int(done.opposed))
    elif kind == "contract":
        await store.add_contract(company, callee, Contract(at))
        tally.changed(kind, True, contracts=1)
    elif kind == "end":
        tally.changed(kind, await store.end_contracts(company, callee, at) > 0)
    elif kind in ("oppose", "oppose many"):
        callees = op.get("callees", [callee])
        added = await store.add_oppositions(callees, company, "internal", at)
        tally.changed(kind, added > 0, opposition=added)
    elif kind == "unoppose":
        tally.changed(kind, await store.remove_oppositions(callee, company, at) > 0)
    elif kind == "import":
        origin = {"file": "bloctel.csv", "file_sha256": "cd" * 32, "lines": len(op["callees"])}
        added = await store.add_oppositions(op["callees"], company, "bloctel", at, origin=origin)
        tally.changed(kind, True, opposition=added)  # an import is chained, new rows or not
    elif kind == "appointment":
        booked = AppointmentRecord(0, company, callee, Appointment(op["start"]), at)
        await store.add_appointment(company, callee, booked)
        tally.changed(kind, True, appointments=1)
    elif kind == "cancel":
        tally.changed(kind, await store.cancel_appointments(company, callee, op["start"], at) > 0)
    else:
        await check_call(store, a_config(), a_request(callee), at, record=True)
        tally.decisions += 1


async def _run(store, tally: Tally, ops: list[tuple[str, dict[str, Any]]], at_once: int) -> None:
    for start in range(0, len(ops), at_once):
        await asyncio.gather(*(_write(store, tally, *op) for op in ops[start : start + at_once]))


async def test_ten_thousand_mixed_writes_some_concurrent_keep_the_chain_whole(store_url):
    ops = _operations(10_000, seed=20261206)
    one = await open_store(store_url)
    other = await open_store(store_url)  # a second process's store, on the same database
    try:
        phases = [Tally(), Tally(), Tally(), Tally()]
        for kind, op in ops[:3000]:
            await _write(one, phases[0], kind, op)
        await _run(one, phases[1], ops[3000:6000], at_once=50)
        await asyncio.gather(
            _run(one, phases[2], ops[6000:8000], at_once=25),
            _run(other, phases[3], ops[8000:], at_once=25),
        )
        check = await verify_chain(one)
        facts = await one.log_entries(LogQuery(kind="fact"))
        decisions = await one.log_entries(LogQuery())
    finally:
        await one.close()
        await other.close()

    for phase in phases:  # every kind of write changed something in every phase
        assert set(phase.kinds) == set(KINDS) - {"decision"}, phase.kinds
        assert phase.decisions > 0
    written = sum(phase.entries for phase in phases)
    recorded = sum(phase.decisions for phase in phases)
    rows = sum((phase.rows for phase in phases), Counter())
    assert check.ok, str(check)
    assert len(facts) == written
    assert len(decisions) == recorded
    assert check.verifier.count == written + recorded
    assert check.rows == sum(rows.values())
    assert [e["seq"] for e in sorted(facts + decisions, key=lambda e: e["seq"])] == list(
        range(1, written + recorded + 1)
    )
    # Each table holds exactly the rows the writes said they added.
    for table, count in rows.items():
        assert await _sql(store_url, f"SELECT count(*) FROM {table}") == [(count,)], table


# ---------------------------------------------------------------- 5. the command line


def _cli(url: str, cwd: Path, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
    env = {"CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": url, "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "callgate", *args], capture_output=True,
                            text=True, env=env, cwd=cwd, timeout=60)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == status, (args, result.stdout, result.stderr)
    return result


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


LISTED = "numero;date\n0611111111;2026-01-01\n+33622222222\n0633333333\n06 11 11 11 11\n"
LISTED_NUMBERS = ("+33611111111", "+33622222222", "+33633333333")


async def test_the_facts_chain_as_a_user_sees_it_on_the_command_line(store_url, tmp_path):
    url = store_url
    run = _cli
    run(url, tmp_path, "consent", "add", "--to", "0612345678", "--at", "2026-01-05T10:00+01:00",
        "--source", "web", "--proof", "form 1")  # fmt: skip

    def decided(callee: str, status: int) -> dict[str, Any]:
        out = run(url, tmp_path, "check", "--from", "0948000001", "--to", callee, "--record",
                  "--at", "2026-11-23T11:00+01:00", "--json", status=status).stdout  # fmt: skip
        return json.loads(out)

    allowed = decided("0612345678", 0)
    run(url, tmp_path, "consent", "add", "--to", "0612345679", "--at", "2026-02-01T10:00+01:00")
    withdrawn = run(url, tmp_path, "outcome", "withdrawn", "--to", "0612345679",
                    "--at", "2026-11-20T10:00+01:00").stdout  # fmt: skip
    assert "1 consent(s) revoked, added to its opposition list, refusal 1 recorded" in withdrawn
    refused = run(url, tmp_path, "outcome", "refused", "--to", "0612345670",
                  "--at", "2026-11-21T10:00+01:00").stdout  # fmt: skip
    assert refused.startswith(f"refusal 2: {C} refused acme at 2026-11-21 10:00 CET")
    listed = tmp_path / "list.csv"
    listed.write_bytes(LISTED.encode())
    imported = run(url, tmp_path, "optout", "import", str(listed)).stdout
    assert "5 lines, 4 numbers, 3 new entries, 1 already listed" in imported
    # A company the example configuration lacks, written through the store as an API would.
    store = await open_store(url)
    try:
        await store.add_refusal("globex", C, paris(2026, 11, 22, 10), "api")
    finally:
        await store.close()
    refused_call = decided("0612345679", 1)

    # The refusals in the log: the two refusal entries, not the withdrawal.
    table = run(url, tmp_path, "log", "--kind", "refusal").stdout.splitlines()
    assert table[0].split() == ["time", "(Paris)", "verdict", "callee", "caller", "reasons",
                                "retry", "id"]  # fmt: skip
    assert [line.split()[2:] for line in table[1:]] == [
        ["REFUSAL", "recorded", C, "-", "refusals", "2", "new", "-", "#5"],
        ["REFUSAL", "recorded", C, "-", "refusals", "3", "new", "-", "#7"],
    ]
    facts = _json_lines(run(url, tmp_path, "log", "--kind", "fact", "--json").stdout)
    assert [(e["seq"], e["fact"], e["op"], e["company"], e.get("callee")) for e in facts] == [
        (1, "consent", "given", "acme", A),
        (3, "consent", "given", "acme", B),
        (4, "withdrawal", "withdrawn", "acme", B),
        (5, "refusal", "recorded", "acme", C),
        (6, "opposition", "imported", None, None),
        (7, "refusal", "recorded", "globex", C),
    ]
    assert [(c["table"], c["id"], c["before"] is None) for c in facts[2]["rows"]] == [
        ("consents", 2, False), ("opposition", 1, True), ("refusals", 1, True),
    ]  # fmt: skip
    [part] = facts[4]["bulk"]
    assert {k: v for k, v in part.items() if k != "digest"} == {
        "table": "opposition", "ids": [[2, 4]], "count": 3, "source": "bloctel",
        "file": str(listed), "file_sha256": hashlib.sha256(LISTED.encode()).hexdigest(),
        "lines": 5,
    }  # fmt: skip

    # Refusals and withdrawals, each with the entry that recorded it.
    outcomes = _json_lines(run(url, tmp_path, "outcome", "list", "--json").stdout)
    assert [list(o) for o in outcomes] == [["at", "kind", "callee", "company", "source", "id",
                                            "seq"]] * 3  # fmt: skip
    assert outcomes == [
        {"at": "2026-11-20T09:00:00+00:00", "kind": "withdrawal", "callee": B, "company": "acme",
         "source": "cli", "id": 1, "seq": 4},
        {"at": "2026-11-21T09:00:00+00:00", "kind": "refusal", "callee": C, "company": "acme",
         "source": "cli", "id": 2, "seq": 5},
        {"at": "2026-11-22T09:00:00+00:00", "kind": "refusal", "callee": C, "company": "globex",
         "source": "api", "id": 3, "seq": 7},
    ]  # fmt: skip

    def ids(*filters: str) -> list[int]:
        out = run(url, tmp_path, "outcome", "list", *filters, "--json").stdout
        return [o["id"] for o in _json_lines(out)]

    assert ids("--to", "06 12 34 56 70") == [2, 3]
    assert ids("--company", "acme") == [1, 2]
    assert ids("--to", "0612345670", "--company", "acme") == [2]
    assert ids("--to", "0612345678") == []
    plain = run(url, tmp_path, "outcome", "list", "--company", "acme").stdout.splitlines()
    assert plain[0].split() == ["at", "kind", "callee", "company", "source", "id", "seq"]
    assert [line.split()[3:] for line in plain[1:]] == [
        ["withdrawal", B, "acme", "cli", "1", "4"], ["refusal", C, "acme", "cli", "2", "5"],
    ]  # fmt: skip

    # Which writes of facts each rule relied on.
    explained = run(url, tmp_path, "log", "explain", allowed["decision_id"]).stdout.splitlines()
    cited = [i for i, line in enumerate(explained) if "on the facts of log entries" in line]
    assert [explained[i].strip() for i in cited] == ["on the facts of log entries #1"]
    assert explained[cited[0] - 1].split()[:2] == ["prospecting_consent", "passed"]
    as_json = json.loads(run(url, tmp_path, "log", "explain", refused_call["decision_id"],
                             "--json").stdout)  # fmt: skip
    assert {r["rule"]: r["fact_entries"] for r in as_json["rules"]} == {
        "caller_id": [], "destination_in_scope": [], "calling_hours": [], "thirty_day_cap": [],
        "refusal_cooldown": [4], "sector_ban": [], "opposition_listed": [4],
        "prospecting_consent": [3, 4], "contract_in_progress": [],
    }  # fmt: skip

    verified = run(url, tmp_path, "log", "verify").stdout
    assert verified == (
        "OK: the store: 8 entries, the hash chain is intact\n"
        "  and the fact tables are what it says: 9 rows checked\n"
    )

    # Exports, whole and pseudonymised, verify on their own, fact entries inside.
    whole, hidden = tmp_path / "whole.jsonl", tmp_path / "hidden.jsonl"
    run(url, tmp_path, "log", "export", "-o", str(whole))
    run(url, tmp_path, "log", "export", "--pseudonymise", "-o", str(hidden))
    for export in (whole, hidden):
        entries = _json_lines(export.read_text())
        assert [e["seq"] for e in entries] == list(range(1, 9))
        assert [e["seq"] for e in entries if e["kind"] == "fact"] == [1, 3, 4, 5, 6, 7]
        verified = run(url, tmp_path, "log", "verify", str(export)).stdout
        assert verified == f"OK: {export}: 8 entries, the hash chain is intact\n"
    numbers = (A, B, C, *LISTED_NUMBERS)
    national = tuple("0" + n[3:] for n in numbers)
    fact_lines = [line for line in hidden.read_text().splitlines() if '"kind": "fact"' in line]
    assert len(fact_lines) == 6
    for line in fact_lines:
        assert not [n for n in (*numbers, *national) if n in line], line
        assert '"callee"' not in line and '"callee_salt"' not in line
    assert A in whole.read_text()  # the whole export does hold them

    # Edited in SQL: the auditor's command names the table, the row and the field.
    await _sql(url, f"UPDATE consents SET given_at = given_at - {DAY} WHERE id = 1")
    broken = run(url, tmp_path, "log", "verify", status=1).stdout
    assert broken == (
        "BROKEN: the store: 1 fact row(s) differ from the log's entries\n"
        "  consents row 1, field given_at: differs from what entry 1 wrote\n"
        "  the hash chain itself is intact: 8 entries\n"
    )
    await _sql(url, "DELETE FROM refusals WHERE id = 2")
    await _sql(url, NEW_ROW["opposition"])
    broken = run(url, tmp_path, "log", "verify", status=1).stdout
    assert broken == (
        "BROKEN: the store: 3 fact row(s) differ from the log's entries\n"
        "  consents row 1, field given_at: differs from what entry 1 wrote\n"
        "  refusals row 2: the row entry 5 wrote is missing\n"
        "  opposition row 5: the row has no entry in the log\n"
        "  the hash chain itself is intact: 8 entries\n"
    )
    # The exports taken before the edit still verify: they are the auditor's evidence.
    run(url, tmp_path, "log", "verify", str(whole))


# ---------------------------------------------------------------- an edit the next write reads


async def test_an_edit_read_by_a_later_write_is_still_caught(store_url):
    """The revocation reads the backdated consent as its "before": the edit stays found,
    between the entry that wrote the row and the one that read it."""
    store = await open_store(store_url)
    try:
        await store.add_consent("acme", A, Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1)))
        await _sql(store_url, f"UPDATE consents SET given_at = given_at - {86_400_000_000}")
        await store.revoke_consents("acme", A, None, paris(2026, 11, 1))
    finally:
        await store.close()
    check = await _verified(store_url)
    assert check.broken is None
    assert check.problems == [
        FactProblem("consents", 1, "was edited between entries 1 and 2", "given_at")
    ]


async def test_a_row_inserted_in_sql_then_updated_by_a_write_is_caught(store_url):
    store = await open_store(store_url)
    try:
        await store.add_consent("acme", A, Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1)))
        await _sql(
            store_url,
            "INSERT INTO consents (id, company, callee, scope, given_at) VALUES (?, ?, ?, ?, ?)",
            7, "acme", B, "prospecting", to_micros(paris(2026, 9, 1)),
        )  # fmt: skip
        await store.revoke_consents("acme", B, None, paris(2026, 11, 1))
    finally:
        await store.close()
    check = await _verified(store_url)
    assert [(p.table, p.row) for p in check.problems] == [("consents", 7)]
    assert "inserted behind the log's back" in check.problems[0].problem


async def test_a_deleted_row_whose_id_is_taken_again_is_caught(store_url):
    store = await open_store(store_url)
    try:
        await store.add_refusal("acme", A, paris(2026, 11, 1), "api")
        second = await store.add_refusal("acme", B, paris(2026, 11, 2), "api")
        await _sql(store_url, "DELETE FROM refusals WHERE id = ?", second)
        # SQLite gives the next row the highest id again; PostgreSQL's sequence moves on.
        again = await store.add_refusal("acme", C, paris(2026, 11, 3), "api")
    finally:
        await store.close()
    check = await _verified(store_url)
    assert check.problems
    assert all(p.table == "refusals" and p.row == second for p in check.problems)
    if again == second:
        assert "taken again" in check.problems[0].problem
    else:
        assert "missing" in check.problems[0].problem


async def test_the_lowest_possible_id_is_checked_too(store_url):
    await (await open_store(store_url)).close()
    await _sql(
        store_url,
        "INSERT INTO consents (id, company, callee, scope, given_at) VALUES (?, ?, ?, ?, ?)",
        -(2**63), "acme", A, "prospecting", to_micros(paris(2026, 9, 1)),
    )  # fmt: skip
    check = await _verified(store_url)
    assert [(p.table, p.row) for p in check.problems] == [("consents", -(2**63))]


async def test_a_purge_refuses_a_log_that_does_not_verify(store_url):
    from callgate.cli_log import PurgeRefused, purge_verified

    store = await open_store(store_url)
    try:
        await store.add_refusal("acme", A, paris(2026, 11, 1), "api")
        await _sql(store_url, "DELETE FROM refusals")
        with pytest.raises(PurgeRefused, match="refusals row 1"):
            await purge_verified(store, paris(2030, 1, 1), paris(2030, 1, 1))
        assert await store.log_anchor() is None  # nothing was purged
    finally:
        await store.close()
