"""The shared store: PostgreSQL through asyncpg, for several Asterisk nodes and gates.

The check and the recording of an attempt hold a transaction-scoped advisory lock on the
(company, callee): concurrent gates on different machines wait for each other on that
key only. The decision log's chain takes one more lock, so that its entries, decisions
and writes of facts alike, stay in one order whoever writes them.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import asyncpg

from callgate.auditlog import GENESIS, log_entry
from callgate.factlog import FACT_TABLES, RowChange, image
from callgate.model import Consent, ConsentScope, Contract, Decision, Facts
from callgate.store import safe_url, schema_mismatch
from callgate.store.base import (
    LIVE_CLOCK_SKEW,
    RECORD_TABLES,
    Abandoned,
    AppointmentRecord,
    Batch,
    ConsentRecord,
    ContractRecord,
    Cursor,
    Judge,
    LogQuery,
    OppositionRecord,
    Outcome,
    StoreError,
    Withdrawal,
    finish_even_if_abandoned,
    from_micros,
    instant_of,
    order_key,
    to_micros,
)
from callgate.store.factwrite import (
    FACT_CHAIN_VERSION,
    GENESIS_WRITE,
    PURGE_WRITE,
    BulkRows,
    FactWrite,
    Insert,
    Sealed,
    Step,
    appointment_write,
    cancel_write,
    consent_write,
    contract_write,
    end_contracts_write,
    entry_for,
    import_entry,
    insert_sql,
    refusal_write,
    remove_opposition_write,
    revoke_write,
    seal,
    update_params,
    update_sql,
    withdrawal_write,
)
from callgate.store.sql import (
    ANCHOR_HEAD,
    APPOINTMENT_COLUMNS,
    BULK_ENTRIES_BEFORE,
    CHAIN_HEAD,
    CONSENT_COLUMNS,
    DECISION_COLUMNS,
    FACT_ENTRIES_ABOUT,
    FACT_ENTRY_COLUMNS,
    HEAD_SEQ,
    ID_PREFIX_MIN,
    OUTCOME_ENTRIES,
    OUTCOME_REFUSALS,
    PURGE_ROLLUPS,
    PURGE_STOP,
    appointment_from_row,
    consent_from_row,
    count_rows,
    counts_sql,
    covering,
    entry_from_row,
    fact_entry_from_row,
    fact_entry_values,
    facts_from_rows,
    facts_sql,
    id_prefix_range,
    iso_micros,
    log_sql,
    merge_by_seq,
    outcomes_from,
    page_sql,
)

__all__ = ["PostgresStore"]

_CHAIN_LOCK = 7_236_001  # the decision log's own advisory lock key
_MIGRATION_LOCK = 7_236_002

_FACTS_SQL = facts_sql("= :callee")
_FACTS_MANY_SQL = facts_sql("= ANY(:callees)")
_INSERT_FACT_ENTRY = (
    f"INSERT INTO fact_entries ({', '.join(FACT_ENTRY_COLUMNS)})"
    f" VALUES ({', '.join(f'${i}' for i in range(1, len(FACT_ENTRY_COLUMNS) + 1))})"
)
_IMPORT_BATCH = 20_000
_FACT_ROWS_BATCH = 5_000


def positional(sql: str, params: dict[str, Any]) -> tuple[str, list[Any]]:
    """``:name`` parameters (the SQLite style the queries share) to asyncpg's ``$n``."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in names:
            names.append(name)
        return f"${names.index(name) + 1}"

    # A name may hold digits after its first letter (a column such as proof_sha256).
    converted = re.sub(r"(?<![:\w]):([a-z_][a-z0-9_]*)", number, sql)
    return converted, [params[name] for name in names]


class PostgresStore:
    def __init__(self, pool: asyncpg.Pool, url: str) -> None:
        self._pool = pool
        self.url = url
        self.node = socket.gethostname()
        self._background: set[asyncio.Future[Decision]] = set()

    @classmethod
    async def open(cls, url: str, *, read_only: bool = False) -> PostgresStore:
        """The store, migrated; or, ``read_only``, as it is (a standby can serve it),
        provided its schema is this callgate's."""
        try:
            pool = await asyncpg.create_pool(url, min_size=1, max_size=16, command_timeout=30)
        except (OSError, asyncpg.PostgresError) as error:
            raise StoreError(f"cannot reach PostgreSQL: {error}") from error
        except (ValueError, OverflowError, asyncpg.InterfaceError) as error:  # a malformed URL
            raise StoreError(f"invalid PostgreSQL URL {safe_url(url)}: {error}") from None
        store = cls(pool, url)
        try:
            if read_only:
                await store._check_schema()
            else:
                await store.migrate()
        except StoreError:
            await pool.close()
            raise
        except asyncpg.ReadOnlySQLTransactionError:
            await pool.close()
            raise StoreError(
                "PostgreSQL is read-only there (a standby?): point the URL at the primary,"
                " or list both hosts with ?target_session_attrs=read-write"
            ) from None
        except asyncpg.PostgresError as error:
            await pool.close()
            raise StoreError(f"cannot prepare the PostgreSQL store: {error}") from error
        return store

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=30)
        await self._pool.close()

    async def _check_schema(self) -> None:
        async with self._pool.acquire() as db:
            exists = await db.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
            version = await db.fetchval("SELECT max(version) FROM schema_version") if exists else 0
        if problem := schema_mismatch(int(version or 0), _newest_version()):
            raise StoreError(f"cannot read the PostgreSQL store: {problem}")

    async def migrate(self) -> int:
        async with self._pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
            version = await db.fetchval("SELECT max(version) FROM schema_version") or 0
            if version < FACT_CHAIN_VERSION:
                # Before any script: one that locks a table a decision writes (0004's
                # trigger), then waited for the chain, would deadlock with a decision that
                # holds the chain and waits for that table.
                await db.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
            for number, script in _migrations():
                if number > version:
                    await db.execute(script)
                    if number == FACT_CHAIN_VERSION:
                        await self._chain_tables(db, GENESIS_WRITE)
                    await db.execute("INSERT INTO schema_version VALUES ($1)", number)
                    version = number
        return int(version)

    async def _chain_tables(self, db: Any, write: FactWrite) -> None:
        """Every fact row, chained as one dated entry with each table's ids and digest
        (none for a store without facts): see SqliteStore._chain_tables."""
        tables = [BulkRows(table, await _whole_rows(db, table)) for table in FACT_TABLES]
        if any(part.rows for part in tables):
            await self._append_fact(db, write, [], tables)

    # ------------------------------------------------------------ facts and decisions

    async def _facts_on(
        self, db: Any, company: str, callee: str, now: datetime, since: datetime,
        *, live: bool = True,
    ) -> Facts:  # fmt: skip
        horizon = now + LIVE_CLOCK_SKEW if live else now
        sql, args = positional(
            _FACTS_SQL,
            {
                "company": company,
                "callee": callee,
                "now": to_micros(now),
                "since": to_micros(since),
                "horizon": to_micros(horizon),
            },
        )
        return facts_from_rows(await db.fetch(sql, *args)).get(callee, Facts())

    async def facts(
        self, company: str, callee: str, now: datetime, since: datetime,
        *, live: bool = False,
    ) -> Facts:  # fmt: skip
        async with self._pool.acquire() as db:
            return await self._facts_on(db, company, callee, now, since, live=live)

    async def facts_many(
        self, company: str, callees: list[str], now: datetime, since: datetime
    ) -> dict[str, Facts]:
        sql, args = positional(
            _FACTS_MANY_SQL,
            {
                "company": company,
                "callees": callees,
                "now": to_micros(now),
                "since": to_micros(since),
                "horizon": to_micros(now + LIVE_CLOCK_SKEW),
            },
        )
        async with self._pool.acquire() as db:
            return facts_from_rows(await db.fetch(sql, *args))

    async def decide(
        self, company: str, callee: str, now: datetime, since: datetime, judge: Judge,
        *, record: bool, channel: str | None = None,
    ) -> Decision:  # fmt: skip
        try:
            return await self._decide(company, callee, now, since, judge, record, channel)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            raise StoreError(f"PostgreSQL failed: {error}") from error

    async def _decide(
        self, company: str, callee: str, now: datetime, since: datetime, judge: Judge,
        record: bool, channel: str | None,
    ) -> Decision:  # fmt: skip
        if not record:
            return judge(await self.facts(company, callee, now, since, live=True))
        started = time.perf_counter()
        return await finish_even_if_abandoned(
            self._background,
            lambda abandoned: self._decide_and_record(
                company, callee, now, since, judge, channel, abandoned, started
            ),
        )

    async def _decide_and_record(
        self, company: str, callee: str, now: datetime, since: datetime, judge: Judge,
        channel: str | None, abandoned: asyncio.Event, started: float,
    ) -> Decision:  # fmt: skip
        async with self._pool.acquire() as db, db.transaction():
            await db.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"{company}|{callee}"
            )
            decision = judge(await self._facts_on(db, company, callee, now, since))
            if abandoned.is_set():
                raise Abandoned  # rolls the transaction back
            if decision.allowed:
                await db.execute(
                    "INSERT INTO attempts (company, callee, at, purpose, decision_id)"
                    " VALUES ($1, $2, $3, $4, $5)",
                    company, callee, to_micros(now), decision.purpose.value, decision.decision_id,
                )  # fmt: skip
            latency_ms = round((time.perf_counter() - started) * 1000, 3)
            await self._insert_decision(db, decision, now, channel, "call", latency_ms)
        return decision

    async def record_decision(
        self, decision: Decision, channel: str | None = None, *, kind: str = "call",
        latency_ms: float | None = None,
    ) -> None:  # fmt: skip
        at = decision.decided_at
        assert at is not None
        async with self._pool.acquire() as db, db.transaction():
            await self._insert_decision(db, decision, at, channel, kind, latency_ms)

    async def _insert_decision(
        self, db: Any, decision: Decision, now: datetime, channel: str | None, kind: str,
        latency_ms: float | None,
    ) -> None:  # fmt: skip
        await db.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
        seq, prev_hash = await _chain_head(db)
        at = to_micros(now)
        entry = log_entry(
            decision, seq=seq + 1, at=iso_micros(at), node=self.node, channel=channel, kind=kind,
            latency_ms=latency_ms, salt=secrets.token_hex(16), prev_hash=prev_hash,
        )  # fmt: skip
        columns = [name for name in DECISION_COLUMNS if name != "at"]
        values = [
            json.dumps(entry[name], ensure_ascii=False) if name == "reasons" else entry[name]
            for name in columns
        ]
        placeholders = ", ".join(f"${n}" for n in range(2, len(columns) + 2))
        await db.execute(
            f"INSERT INTO decisions (at, {', '.join(columns)}) VALUES ($1, {placeholders})",
            at, *values,
        )  # fmt: skip

    async def decision_key(self, decision_id: str) -> tuple[str, str] | None:
        row = await self._fetchrow(
            "SELECT company, callee FROM decisions WHERE id = $1 AND company IS NOT NULL"
            " AND callee IS NOT NULL",
            decision_id,
        )
        return (row["company"], row["callee"]) if row else None

    async def decision_for_channel(self, channel: str, since: datetime) -> dict[str, Any] | None:
        rows = await self._fetch(
            f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions"
            " WHERE at >= $1 AND channel = $2 ORDER BY seq DESC LIMIT 1",
            to_micros(since), channel,
        )  # fmt: skip
        return entry_from_row(tuple(rows[0])) if rows else None

    # ------------------------------------------------------------ the decision log

    async def log_entries(
        self, query: LogQuery, *, after_seq: int = 0, limit: int | None = None,
        last: bool = False,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Entries of the decision log in order: the first ``limit`` after ``after_seq``,
        or with ``last``, the newest ``limit``."""
        head = None
        if query.decisions and query.facts:
            head = (await self._fetch(HEAD_SEQ))[0][0]
        entries = []
        for sql, params, shape in log_sql(query, after_seq, limit, last, head):
            entries += [shape(tuple(row)) for row in await self._fetch(*_bound(sql, params))]
        return merge_by_seq(entries, limit, last)

    async def log_entry(self, decision_id: str) -> dict[str, Any] | None:
        select = f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions"
        rows = await self._fetch(f"{select} WHERE id = $1", decision_id)
        if not rows and len(decision_id) >= ID_PREFIX_MIN:
            # In code point order (the index decisions_by_id_prefix), whatever the collation.
            rows = await self._fetch(
                f'{select} WHERE id COLLATE "C" >= $1 AND id COLLATE "C" < $2 LIMIT 2',
                *id_prefix_range(decision_id),
            )
        return entry_from_row(tuple(rows[0])) if len(rows) == 1 else None

    async def log_counts(self, query: LogQuery, by: str) -> list[tuple[str, int]]:
        where, params = query.sql()
        grouped = {
            "verdict": ("verdict", "decisions"),
            "company": ("coalesce(company, '-')", "decisions"),
            "hour": ("to_char(to_timestamp(at / 1000000.0) AT TIME ZONE 'UTC',"
                     " 'YYYY-MM-DD HH24:00')", "decisions"),
            "reason": ("r.value ->> 'code'",
                       "decisions, jsonb_array_elements(reasons::jsonb) AS r(value)"),
        }  # fmt: skip
        expression, source = grouped[by]
        sql, args = positional(
            f"SELECT {expression}, count(*) FROM {source} WHERE 1 = 1{where}"
            " GROUP BY 1 ORDER BY 2 DESC, 1",
            params,
        )
        return [(str(row[0]), int(row[1])) for row in await self._fetch(sql, *args)]

    async def log_anchor(self) -> tuple[int, str] | None:
        row = await self._fetchrow(ANCHOR_HEAD)
        return (row["seq"], row["hash"]) if row else None

    async def purge_log(self, before: datetime, at: datetime) -> int:
        """Delete the log's oldest entries, up to the first one dated at or after
        ``before`` (see SqliteStore.purge_log: only the chain's start can go)."""
        async with self._pool.acquire() as db, db.transaction():
            await db.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
            last = await db.fetchrow(*_bound(PURGE_STOP, {"before": to_micros(before)}))
            if last is None:
                return 0
            for sql in PURGE_ROLLUPS:
                await db.execute(*_bound(sql, {"last": last["seq"], "before": to_micros(before)}))
            status = await db.execute("DELETE FROM decisions WHERE seq <= $1", last["seq"])
            await db.execute("DELETE FROM fact_entries WHERE seq <= $1", last["seq"])
            await db.execute(
                "INSERT INTO log_anchor (seq, hash, purged_at) VALUES ($1, $2, $3)",
                last["seq"], last["hash"], to_micros(at),
            )  # fmt: skip
            # The entries that wrote the facts may be gone: the tables are chained again.
            await self._chain_tables(db, PURGE_WRITE)
        return int(status.split()[-1])

    # ------------------------------------------------------------ the console's reads

    async def decision_page(
        self, query: LogQuery, *, before: Cursor | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        rows = await self._fetch(*_bound(*page_sql(query, before, limit)))
        return [entry_from_row(tuple(row)) for row in rows]

    async def decision_counts(
        self, since: datetime, until: datetime, by: tuple[str, ...], *, kind: str = "call"
    ) -> list[tuple[Any, ...]]:
        rows = await self._fetch(*_bound(*counts_sql(since, until, by, kind)))
        return count_rows(by, (tuple(row) for row in rows))

    async def node_heads(self) -> list[tuple[str, datetime, int]]:
        rows = await self._fetch("SELECT node, at, seq FROM decision_nodes ORDER BY node")
        return [(row["node"], instant_of(row["at"]), int(row["seq"])) for row in rows]

    async def last_purge(self) -> tuple[int, datetime] | None:
        row = await self._fetchrow(
            "SELECT seq, purged_at FROM log_anchor ORDER BY seq DESC LIMIT 1"
        )
        return (int(row["seq"]), instant_of(row["purged_at"])) if row else None

    # ------------------------------------------------------------ records

    async def _write_facts(self, write: FactWrite) -> list[list[RowChange]]:
        """Carry out a write of facts and append its entry to the chain, in one
        transaction; the rows each step changed."""
        async with self._pool.acquire() as db, db.transaction():
            # First, before any row: a fact write holds the chain and then rows of the fact
            # tables, never a callee's lock, so it cannot deadlock with a decision.
            await db.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
            done = [await _run_step(db, step) for step in write.steps]
            changes = [change for step in done for change in step]
            if changes:
                await self._append_fact(db, write, changes, [])
        return done

    async def _append_fact(
        self, db: Any, write: FactWrite, changes: list[RowChange],
        bulk: list[BulkRows] | Sealed,
    ) -> dict[str, Any]:  # fmt: skip
        """Chain the entry of a write just carried out; in the write's transaction, which
        holds the chain's lock."""
        seq, prev_hash = await _chain_head(db)
        entry = entry_for(write, changes, bulk, seq=seq + 1, at=datetime.now(UTC),
                          node=self.node, prev_hash=prev_hash)  # fmt: skip
        await db.execute(_INSERT_FACT_ENTRY, *fact_entry_values(entry))
        return entry

    async def add_refusal(self, company: str, callee: str, at: datetime, source: str) -> int:
        [[refusal]] = await self._write_facts(refusal_write(company, callee, at, source))
        return refusal.id

    async def add_consent(self, company: str, callee: str, consent: Consent) -> int:
        [[added]] = await self._write_facts(consent_write(company, callee, consent))
        return added.id

    async def revoke_consents(
        self, company: str, callee: str, scope: ConsentScope | None, at: datetime
    ) -> int:
        [revoked] = await self._write_facts(revoke_write(company, callee, scope, at))
        return len(revoked)

    async def withdraw(self, company: str, callee: str, at: datetime, source: str) -> Withdrawal:
        revoked, opposed, [refusal] = await self._write_facts(
            withdrawal_write(company, callee, at, source)
        )
        return Withdrawal(len(revoked), bool(opposed), refusal.id)

    async def consents(self, company: str | None, callee: str | None) -> list[ConsentRecord]:
        rows = await self._fetch(
            f"SELECT {', '.join(CONSENT_COLUMNS)} FROM consents"
            " WHERE ($1::text IS NULL OR company = $1)"
            " AND ($2::text IS NULL OR callee = $2) ORDER BY given_at, id",
            company, callee,
        )  # fmt: skip
        return [consent_from_row(row) for row in rows]

    async def add_appointment(self, company: str, callee: str, record: AppointmentRecord) -> int:
        [[added]] = await self._write_facts(appointment_write(company, callee, record))
        return added.id

    async def cancel_appointments(
        self, company: str, callee: str, start: datetime, at: datetime
    ) -> int:
        [cancelled] = await self._write_facts(cancel_write(company, callee, start, at))
        return len(cancelled)

    async def appointments(
        self, company: str | None, callee: str | None
    ) -> list[AppointmentRecord]:
        rows = await self._fetch(
            f"SELECT {', '.join(APPOINTMENT_COLUMNS)} FROM appointments"
            " WHERE ($1::text IS NULL OR company = $1) AND ($2::text IS NULL OR callee = $2)"
            " ORDER BY start_at, id",
            company, callee,
        )  # fmt: skip
        return [appointment_from_row(row) for row in rows]

    async def add_contract(self, company: str, callee: str, contract: Contract) -> int:
        [[added]] = await self._write_facts(contract_write(company, callee, contract))
        return added.id

    async def end_contracts(self, company: str, callee: str, at: datetime) -> int:
        [ended] = await self._write_facts(end_contracts_write(company, callee, at))
        return len(ended)

    async def contracts(self, company: str | None, callee: str | None) -> list[ContractRecord]:
        rows = await self._fetch(
            "SELECT id, company, callee, start_at, end_at FROM contracts"
            " WHERE ($1::text IS NULL OR company = $1) AND ($2::text IS NULL OR callee = $2)"
            " ORDER BY start_at, id",
            company, callee,
        )  # fmt: skip
        return [
            ContractRecord(r["id"], r["company"], r["callee"],
                           Contract(instant_of(r["start_at"]), from_micros(r["end_at"])))
            for r in rows
        ]  # fmt: skip

    async def add_oppositions(
        self, callees: Iterable[str], company: str | None, source: str, at: datetime,
        *, origin: Mapping[str, Any] | None = None,
    ) -> int:  # fmt: skip
        """Add entries; one already active is left alone. Returns how many were new.

        An import (``origin`` says from what file) is one entry of the chain, with the
        new rows' ids and digest; a single number is an entry with its row."""
        added: list[dict[str, Any]] = []
        batch: list[str] = []
        micros = to_micros(at)

        async def flush(db: Any) -> None:
            rows = await db.fetch(
                "INSERT INTO opposition (callee, company, source, added_at)"
                " SELECT DISTINCT unnest($1::text[]), $2::text, $3::text, $4::bigint"
                " ON CONFLICT (callee, company, source) WHERE removed_at IS NULL DO NOTHING"
                " RETURNING *",
                batch, company or "", source, micros,
            )  # fmt: skip
            added.extend(dict(row) for row in rows)

        async with self._pool.acquire() as db, db.transaction():
            # The chain's lock only for the entry, at the end: every recorded decision
            # takes it, and an import reading a big file would hold calls back meanwhile.
            # The rows it added are its own (RETURNING), whoever else writes meanwhile.
            for callee in callees:
                batch.append(callee)
                if len(batch) >= _IMPORT_BATCH:
                    await flush(db)
                    batch = []
            if batch:
                await flush(db)
            # RETURNING hands a statement's rows back in no set order: the digest takes
            # them by id.
            added.sort(key=lambda row: row["id"])
            if parts := import_entry(added, company, source, origin):
                write, changes, bulk = parts
                sealed = seal(bulk)  # the digest of every new row: before the lock
                await db.execute("SELECT pg_advisory_xact_lock($1)", _CHAIN_LOCK)
                await self._append_fact(db, write, changes, sealed)
        return len(added)

    async def remove_oppositions(self, callee: str, company: str | None, at: datetime) -> int:
        [removed] = await self._write_facts(remove_opposition_write(callee, company, at))
        return len(removed)

    async def oppositions(
        self, callee: str | None, company: str | None
    ) -> AsyncIterator[OppositionRecord]:
        rows = await self._fetch(
            "SELECT id, callee, NULLIF(company, '') AS company, source, added_at, removed_at"
            " FROM opposition WHERE ($1::text IS NULL OR callee = $1)"
            " AND ($2::text IS NULL OR company = $2) ORDER BY id",
            callee, company,
        )  # fmt: skip
        for r in rows:
            yield OppositionRecord(
                r["id"], r["callee"], r["company"], r["source"], instant_of(r["added_at"]),
                from_micros(r["removed_at"]),
            )  # fmt: skip

    async def outcomes(self, company: str | None, callee: str | None) -> list[Outcome]:
        params = {"company": company, "callee": callee}
        refusals = await self._fetch(*_bound(OUTCOME_REFUSALS, params))
        entries = await self._fetch(*_bound(OUTCOME_ENTRIES, params))
        return outcomes_from(refusals, entries)

    async def fact_rows(
        self, table: str, low: int | None = None, high: int | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        if table not in FACT_TABLES:
            raise ValueError(f"not a fact table: {table}")
        # The first batch from ``low`` itself: "id > low - 1" would skip the lowest id.
        after, since = (low if low is not None else -(2**63)), ">="
        last = high if high is not None else 2**63 - 1
        while True:
            rows = await self._fetch(
                f"SELECT * FROM {table} WHERE id {since} $1 AND id <= $2 ORDER BY id LIMIT $3",
                after, last, _FACT_ROWS_BATCH,
            )  # fmt: skip
            for row in rows:
                yield dict(row)
            if len(rows) < _FACT_ROWS_BATCH:
                return
            after, since = rows[-1]["id"], ">"

    async def fact_entries_about(
        self, company: str, callee: str, before_seq: int
    ) -> list[dict[str, Any]]:
        params = {"company": company, "callee": callee, "before": before_seq}
        async with self._pool.acquire() as db:
            about = await db.fetch(*_bound(FACT_ENTRIES_ABOUT, params))
            ids = {table: [row["id"] for row in await db.fetch(
                f"SELECT id FROM {table} WHERE callee = $1", callee)]
                for table in FACT_TABLES}  # fmt: skip
            bulk = await db.fetch(*_bound(BULK_ENTRIES_BEFORE, params))
        return covering([fact_entry_from_row(tuple(row)) for row in about],
                        [fact_entry_from_row(tuple(row)) for row in bulk], ids)  # fmt: skip

    # ------------------------------------------------------------ plumbing

    # ------------------------------------------------------------ copy

    async def snapshot(self, batch: int) -> AsyncIterator[Batch]:
        async with (
            self._pool.acquire() as db,
            db.transaction(isolation="repeatable_read", readonly=True),
        ):  # one instant for every table, while gates write on
            for table in RECORD_TABLES:
                total = await db.fetchval(f"SELECT count(*) FROM {table}")
                query = await db.prepare(f"SELECT * FROM {table} ORDER BY {order_key(table)}")
                columns = tuple(attribute.name for attribute in query.get_attributes())
                rows: list[tuple[Any, ...]] = []
                yielded = False
                async for record in query.cursor(prefetch=batch):
                    rows.append(tuple(record))
                    if len(rows) == batch:
                        yield Batch(table, total, columns, rows)
                        rows, yielded = [], True
                if rows or not yielded:
                    yield Batch(table, total, columns, rows)

    async def restore(self, batches: AsyncIterator[Batch]) -> dict[str, int]:
        loaded = dict.fromkeys(RECORD_TABLES, 0)
        async with self._pool.acquire() as db, db.transaction():
            for table in RECORD_TABLES:
                count = await db.fetchval(f"SELECT count(*) FROM {table}")
                if count:
                    raise StoreError(f"the PostgreSQL store holds records: {table} has {count:,}")
            async for batch in batches:
                if batch.rows:
                    await db.copy_records_to_table(
                        batch.table, records=batch.rows, columns=list(batch.columns)
                    )
                    loaded[batch.table] += len(batch.rows)
            # The copied ids were given explicitly: new rows must number after them.
            for table in RECORD_TABLES:
                if order_key(table) == "id":
                    await db.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" coalesce(max(id), 0) + 1, false) FROM {table}"
                    )
        return loaded

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        async with self._pool.acquire() as db:
            return list(await db.fetch(sql, *args))

    async def _fetchrow(self, sql: str, *args: Any) -> Any:
        async with self._pool.acquire() as db:
            return await db.fetchrow(sql, *args)


async def _run_step(db: Any, step: Step) -> list[RowChange]:
    """One step of a write of facts; each row it changed, read before and after."""
    if isinstance(step, Insert):
        rows = await db.fetch(*_bound(insert_sql(step), dict(step.values)))
        return [RowChange(step.table, row["id"], None, image(dict(row))) for row in rows]
    select, update = update_sql(step)
    changes = []
    for before in await db.fetch(*_bound(select, dict(step.params))):
        after = await db.fetchrow(*_bound(update, update_params(step, before["id"])))
        changes.append(RowChange(step.table, before["id"], image(dict(before)), image(dict(after))))
    return changes


async def _chain_head(db: Any) -> tuple[int, str]:
    """The last entry's (seq, hash), decision or fact, or the purge anchor's, or the
    genesis. The caller holds the chain's lock."""
    row = await db.fetchrow(CHAIN_HEAD) or await db.fetchrow(ANCHOR_HEAD)
    return (int(row["seq"]), str(row["hash"])) if row is not None else (0, GENESIS)


async def _whole_rows(db: Any, table: str) -> list[dict[str, Any]]:
    return [dict(row) for row in await db.fetch(f"SELECT * FROM {table} ORDER BY id")]


def _bound(sql: str, params: dict[str, Any]) -> list[Any]:
    """``positional``'s statement and values as one list of arguments to ``execute``."""
    converted, values = positional(sql, params)
    return [converted, *values]


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("callgate.store") / "migrations" / "postgres"
    return sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )


def _newest_version() -> int:
    return _migrations()[-1][0]
