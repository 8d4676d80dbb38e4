"""The embedded store: one SQLite file in WAL mode, through aiosqlite.

Several processes may share the file (a gate, the CLI, the API): the check and the
recording of an attempt run under ``BEGIN IMMEDIATE``, which takes the file's write lock
before reading, so two deciders can never both see the last free slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiosqlite

from callgate.auditlog import GENESIS, log_entry
from callgate.factlog import FACT_TABLES, RowChange, image
from callgate.model import Consent, ConsentScope, Contract, Decision, Facts
from callgate.store import schema_mismatch
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
    update_params,
    update_sql,
    withdrawal_write,
)
from callgate.store.sql import (
    ANCHOR_HEAD,
    APPOINTMENT_COLUMNS,
    BULK_ENTRIES_BEFORE,
    BY_JOB,
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

__all__ = ["SqliteStore"]


_BUSY_TIMEOUT_MS = 30_000
_IMPORT_BATCH = 20_000
_FACT_ROWS_BATCH = 5_000
_ITER_CHUNK = 64  # aiosqlite's default: rows fetched per round trip when iterating


# One statement, one round trip: every fact about a (company, callee) as of an instant.
# Many questions, each its own (company, callee, instants), in one statement and one
# round trip: the facts of a group of decisions, or of a call list.
_FACTS_BY_JOB_SQL = """
WITH jobs(i, company, callee, t_now, t_since, t_horizon) AS (
  SELECT key, json_extract(value, '$[0]'), json_extract(value, '$[1]'),
         json_extract(value, '$[2]'), json_extract(value, '$[3]'), json_extract(value, '$[4]')
  FROM json_each(:jobs))
""" + facts_sql("= jobs.callee", BY_JOB)
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (company, callee, at, purpose, decision_id) VALUES (?, ?, ?, ?, ?)"
)
_DECISION_INSERT_COLUMNS = [name for name in DECISION_COLUMNS if name != "at"]
_INSERT_DECISION = (
    f"INSERT INTO decisions (at, {', '.join(_DECISION_INSERT_COLUMNS)})"
    f" VALUES (?, {', '.join('?' for _ in _DECISION_INSERT_COLUMNS)})"
)
_INSERT_FACT_ENTRY = (
    f"INSERT INTO fact_entries ({', '.join(FACT_ENTRY_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(FACT_ENTRY_COLUMNS))})"
)
Question = tuple[str, str, datetime, datetime, bool]  # company, callee, now, since, live
_T = TypeVar("_T")


# A group commit holds the write lock; a bound keeps other writers' wait short.
_GROUP_MAX = 64


@dataclass(slots=True)
class _Job:
    """One check-and-record waiting for the next group commit."""

    company: str
    callee: str
    now: datetime
    since: datetime
    judge: Judge
    channel: str | None
    started: float
    done: asyncio.Future[Decision]

    @property
    def abandoned(self) -> bool:
        """The caller gave up waiting (its deadline passed): awaiting ``done`` directly,
        its cancellation cancelled the future."""
        return self.done.cancelled()


class SqliteStore:
    def __init__(
        self, connection: aiosqlite.Connection, raw: sqlite3.Connection, path: str
    ) -> None:
        self._db = connection
        # The sqlite3 connection aiosqlite wraps: only ever used on aiosqlite's thread,
        # by the functions handed to _on_db_thread.
        self._raw = raw
        self.path = path
        # aiosqlite runs one connection on one thread; transactions must not interleave.
        self._lock = asyncio.Lock()
        self._queue: list[_Job] = []
        self._committer: asyncio.Task[None] | None = None
        self.node = socket.gethostname()  # who decided, in the log

    @classmethod
    async def open(
        cls, path: str, *, synchronous: str = "full", read_only: bool = False
    ) -> SqliteStore:
        """The store in that file, migrated; or, ``read_only``, only read (the file is
        neither created nor migrated, and must be at this callgate's schema)."""
        if synchronous not in ("full", "normal"):
            raise StoreError(f"synchronous must be full or normal, not {synchronous!r}")
        if path == ":memory:":
            read_only = False  # nothing to protect: a fresh, empty store
        else:
            _check_folder(path)
        store = cls(*await _connect(path, read_only), path)
        try:
            try:
                await store._prepare(synchronous, read_only)
            except sqlite3.OperationalError as error:
                if not _immutable_will_do(error, path, read_only):
                    raise
                # The log's shared-memory index cannot be created on a read-only mount;
                # with no write-ahead log left, the file alone is the whole store.
                await store._db.close()
                store = cls(*await _connect(path, read_only, immutable=True), path)
                await store._prepare(synchronous, read_only)
        except BaseException as error:
            # An open connection keeps aiosqlite's thread, and so the process, alive.
            await _close_quietly(store._db)
            if isinstance(error, sqlite3.Error):
                raise StoreError(_cannot_open(path, error, read_only)) from error
            raise
        return store

    async def _prepare(self, synchronous: str, read_only: bool) -> None:
        await self._db.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        if read_only:
            # The schema's page, read as every query will: a damaged file fails here.
            await _one(self._db, "SELECT count(*) FROM sqlite_master")
            (version,) = await _one(self._db, "PRAGMA user_version")
            if problem := schema_mismatch(version, _migrations()[-1][0]):
                raise StoreError(f"cannot read the store {self.path}: {problem}")
            return
        await self._db.execute("PRAGMA journal_mode = WAL")
        await self._db.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        await self.migrate()

    async def close(self) -> None:
        if self._committer is not None:  # let the queued decisions finish or roll back
            await asyncio.wait({self._committer}, timeout=_BUSY_TIMEOUT_MS / 1000)
        await self._db.close()

    async def migrate(self) -> int:
        """Bring the schema to the newest version; returns the version."""
        async with self._transaction():
            (version,) = await _one(self._db, "PRAGMA user_version")
            for number, script in _migrations():
                if number > version:
                    await _run_script(self._db, script)
                    if number == FACT_CHAIN_VERSION:
                        await self._on_db_thread(self._chain_tables, GENESIS_WRITE)
                    await self._db.execute(f"PRAGMA user_version = {number}")
                    version = number
        return version

    def _chain_tables(self, db: sqlite3.Connection, write: FactWrite) -> None:
        """Every fact row as the tables hold it, chained as one dated entry with each
        table's ids and digest (none for a store without facts): the genesis of facts a
        migration records, or what a purge leaves for the rows whose entries it took."""
        tables = [
            BulkRows(table, _dicts(db.execute(f"SELECT * FROM {table} ORDER BY id")))
            for table in FACT_TABLES
        ]
        if any(part.rows for part in tables):
            self._append_fact(db, write, [], tables)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[None]:
        """A write transaction that holds the file's write lock from its first read."""
        async with self._lock:
            try:
                await self._db.execute("BEGIN IMMEDIATE")
                yield
                await self._db.execute("COMMIT")
            except BaseException:  # cancellation too: never leave the write lock held
                # Asked on the database thread, after whatever this task had queued there
                # (a BEGIN or a COMMIT still runs once queued, cancelled or not), and
                # shielded: a second cancellation must not skip it.
                await asyncio.shield(self._on_db_thread(_roll_back_if_open))
                raise

    async def _on_db_thread(self, work: Callable[..., _T], *args: Any) -> _T:
        """``work(connection, *args)`` on aiosqlite's thread, the one that owns the
        connection: many statements for one crossing there and back, where each awaited
        statement costs the event loop a wake-up.

        aiosqlite has no public way to run a function on its thread; ``_execute`` is the
        one its own methods queue their work through (aiosqlite 0.22).
        tests/test_store_group_hop.py fails if an upgrade takes it away."""
        return await self._db._execute(work, self._raw, *args)

    async def _in_one_hop(self, work: Callable[..., _T], *args: Any) -> _T:
        """``work(connection, *args)`` in a write transaction, begun, run and committed
        (or rolled back) in one crossing to the database thread. The lock, held
        throughout, keeps this process's other statements out of it."""
        async with self._lock:
            return await self._on_db_thread(_in_transaction, work, *args)

    async def facts(
        self, company: str, callee: str, now: datetime, since: datetime,
        *, live: bool = False,
    ) -> Facts:  # fmt: skip
        async with self._lock:
            return await self._facts(company, callee, now, since, live=live)

    async def _facts(
        self, company: str, callee: str, now: datetime, since: datetime, *, live: bool = True
    ) -> Facts:
        [facts] = await self._on_db_thread(_facts_of, [(company, callee, now, since, live)])
        return facts

    async def facts_many(
        self, company: str, callees: list[str], now: datetime, since: datetime
    ) -> dict[str, Facts]:
        """The facts of many callees of one company in one round trip (list scrubbing)."""
        async with self._lock:
            questions = [(company, c, now, since, True) for c in callees]
            facts = await self._on_db_thread(_facts_of, questions)
        return dict(zip(callees, facts, strict=True))

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
        if not record:
            return judge(await self.facts(company, callee, now, since, live=True))
        job = _Job(company, callee, now, since, judge, channel, time.perf_counter(),
                   asyncio.get_running_loop().create_future())  # fmt: skip
        self._queue.append(job)
        if self._committer is None or self._committer.done():
            self._committer = asyncio.create_task(self._commit_queued())
        # The committer, not the caller, runs the transaction: a caller giving up (its
        # deadline passed) never cuts it between BEGIN and COMMIT. A call abandoned before
        # its turn is skipped: it is not recorded, since it was refused for lateness. One
        # abandoned after its turn stays recorded (the stricter error).
        return await job.done

    async def _commit_queued(self) -> None:
        """Group commit: the decisions queued while a commit was under way share the next
        one. Each sees the attempts recorded before it; none is answered before its commit
        is durable."""
        while self._queue:
            group, self._queue = self._queue[:_GROUP_MAX], self._queue[_GROUP_MAX:]
            try:
                outcomes = await self._in_one_hop(self._decide_group, group)
            except Exception as error:  # the commit failed: none of the group is recorded
                outcomes = [error] * len(group)
            # The futures belong to the event loop: answered here, never from the database
            # thread.
            for job, outcome in zip(group, outcomes, strict=True):
                if job.done.done():  # abandoned: nobody waits for it any more
                    continue
                if isinstance(outcome, BaseException):
                    job.done.set_exception(outcome)
                else:
                    job.done.set_result(outcome)

    def _decide_group(
        self, db: sqlite3.Connection, group: list[_Job]
    ) -> list[Decision | BaseException]:
        """Read, judge and record a group in waves: one facts statement and two inserts a
        wave. A callee asked twice goes to the next wave, which reads what this one wrote.

        Runs on the database thread, inside the group's transaction: so do the judges,
        which are plain functions of the facts. A job's future is only looked at there
        (has its caller given up?), never set."""
        outcomes: dict[int, Decision | BaseException] = {}
        head = _chain_head(db)
        pending = list(enumerate(group))
        while pending:
            wave: list[tuple[int, _Job]] = []
            later: list[tuple[int, _Job]] = []
            asked: set[tuple[str, str]] = set()
            for index, job in pending:
                key = (job.company, job.callee)
                (later if key in asked else wave).append((index, job))
                asked.add(key)
            facts = _facts_of(
                db, [(job.company, job.callee, job.now, job.since, True) for _, job in wave]
            )
            attempts: list[tuple[Any, ...]] = []
            entries: list[tuple[Any, ...]] = []
            for (index, job), known in zip(wave, facts, strict=True):
                try:
                    if job.abandoned:
                        raise Abandoned
                    decision = job.judge(known)
                except Exception as error:  # this call alone: abandoned, or its judge failed
                    outcomes[index] = error
                    continue
                latency_ms = round((time.perf_counter() - job.started) * 1000, 3)
                if decision.allowed:
                    attempts.append((job.company, job.callee, to_micros(job.now),
                                     decision.purpose.value, decision.decision_id))  # fmt: skip
                row, head = self._decision_row(decision, job.now, job.channel, "call",
                                               latency_ms, head)  # fmt: skip
                entries.append(row)
                outcomes[index] = decision
            if attempts:
                db.executemany(_INSERT_ATTEMPT, attempts)
            if entries:
                db.executemany(_INSERT_DECISION, entries)
            pending = later
        return [outcomes[index] for index in range(len(group))]

    async def record_decision(
        self, decision: Decision, channel: str | None = None, *, kind: str = "call",
        latency_ms: float | None = None,
    ) -> None:  # fmt: skip
        at = decision.decided_at
        assert at is not None
        await self._in_one_hop(self._insert_decision, decision, at, channel, kind, latency_ms)

    def _insert_decision(
        self, db: sqlite3.Connection, decision: Decision, now: datetime, channel: str | None,
        kind: str, latency_ms: float | None,
    ) -> None:  # fmt: skip
        """Append to the hash chain; on the database thread, in the write transaction."""
        row, _ = self._decision_row(decision, now, channel, kind, latency_ms, _chain_head(db))
        db.execute(_INSERT_DECISION, row)

    def _decision_row(
        self, decision: Decision, now: datetime, channel: str | None, kind: str,
        latency_ms: float | None, head: tuple[int, str],
    ) -> tuple[tuple[Any, ...], tuple[int, str]]:  # fmt: skip
        """The decisions row that follows ``head`` in the chain, and the new head."""
        at = to_micros(now)
        entry = log_entry(
            decision, seq=head[0] + 1, at=iso_micros(at), node=self.node, channel=channel,
            kind=kind, latency_ms=latency_ms, salt=secrets.token_hex(16), prev_hash=head[1],
        )  # fmt: skip
        values = [
            json.dumps(entry[name], ensure_ascii=False) if name == "reasons" else entry[name]
            for name in _DECISION_INSERT_COLUMNS
        ]
        return (at, *values), (entry["seq"], entry["hash"])

    async def log_entries(
        self, query: LogQuery, *, after_seq: int = 0, limit: int | None = None,
        last: bool = False,
    ) -> list[dict[str, Any]]:  # fmt: skip
        """Entries of the decision log in order: the first ``limit`` after ``after_seq``,
        or with ``last``, the newest ``limit``."""
        head = None
        if query.decisions and query.facts:
            [(head,)] = await self._select(HEAD_SEQ, {})
        entries = []
        for sql, params, shape in log_sql(query, after_seq, limit, last, head):
            entries += [shape(row) for row in await self._select(sql, params)]
        return merge_by_seq(entries, limit, last)

    async def log_entry(self, decision_id: str) -> dict[str, Any] | None:
        """One entry by its id, or by the first 8 or more characters of it when unique."""
        select = f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions"
        rows = await self._select(f"{select} WHERE id = :id", {"id": decision_id})
        if not rows and len(decision_id) >= ID_PREFIX_MIN:
            # A range, not LIKE: LIKE would scan the whole log, and read % and _ as wildcards.
            low, high = id_prefix_range(decision_id)
            rows = await self._select(
                f"{select} WHERE id >= :low AND id < :high LIMIT 2", {"low": low, "high": high}
            )
        return entry_from_row(rows[0]) if len(rows) == 1 else None

    async def log_counts(self, query: LogQuery, by: str) -> list[tuple[str, int]]:
        """How many decisions per verdict, company, reason code or hour of day (UTC)."""
        where, params = query.sql()
        grouped = {
            "verdict": ("verdict", "decisions"),
            "company": ("coalesce(company, '-')", "decisions"),
            "hour": ("strftime('%Y-%m-%d %H:00', at / 1000000, 'unixepoch')", "decisions"),
            "reason": ("json_extract(r.value, '$.code')", "decisions, json_each(reasons) r"),
        }
        expression, source = grouped[by]
        rows = await self._select(
            f"SELECT {expression}, count(*) FROM {source} WHERE 1 = 1{where}"
            " GROUP BY 1 ORDER BY 2 DESC, 1",
            params,
        )
        return [(str(row[0]), int(row[1])) for row in rows]

    async def log_anchor(self) -> tuple[int, str] | None:
        rows = await self._select(ANCHOR_HEAD, {})
        return (rows[0][0], rows[0][1]) if rows else None

    async def purge_log(self, before: datetime, at: datetime) -> int:
        """Delete the log's oldest entries, up to the first one dated at or after
        ``before``, keeping the chain verifiable.

        Only the chain's start can go: the anchor vouches for what was cut. A decision may
        be recorded with a past date (`check --record --at`, the API), so an entry dated
        before ``before`` may come after a newer one: it stays, as does all from that
        newer one on."""
        async with self._lock:
            return await self._on_db_thread(_in_transaction, self._purge, before, at)

    def _purge(self, db: sqlite3.Connection, before: datetime, at: datetime) -> int:
        last = db.execute(PURGE_STOP, {"before": to_micros(before)}).fetchone()
        if last is None:
            return 0
        for sql in PURGE_ROLLUPS:
            db.execute(sql, {"last": last[0], "before": to_micros(before)})
        count = db.execute("DELETE FROM decisions WHERE seq <= ?", (last[0],)).rowcount
        db.execute("DELETE FROM fact_entries WHERE seq <= ?", (last[0],))
        db.execute(
            "INSERT INTO log_anchor (seq, hash, purged_at) VALUES (?, ?, ?)",
            (last[0], last[1], to_micros(at)),
        )
        # The entries that wrote the facts may be gone: the tables are chained again.
        self._chain_tables(db, PURGE_WRITE)
        return int(count)

    # ------------------------------------------------------------ the console's reads

    async def decision_page(
        self, query: LogQuery, *, before: Cursor | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        sql, params = page_sql(query, before, limit)
        return [entry_from_row(row) for row in await self._select(sql, params)]

    async def decision_counts(
        self, since: datetime, until: datetime, by: tuple[str, ...], *, kind: str = "call"
    ) -> list[tuple[Any, ...]]:
        sql, params = counts_sql(since, until, by, kind)
        return count_rows(by, await self._select(sql, params))

    async def node_heads(self) -> list[tuple[str, datetime, int]]:
        rows = await self._select("SELECT node, at, seq FROM decision_nodes ORDER BY node", {})
        return [(node, instant_of(at), int(seq)) for node, at, seq in rows]

    async def last_purge(self) -> tuple[int, datetime] | None:
        rows = await self._select(
            "SELECT seq, purged_at FROM log_anchor ORDER BY seq DESC LIMIT 1", {}
        )
        return (int(rows[0][0]), instant_of(rows[0][1])) if rows else None

    async def _write_facts(self, write: FactWrite) -> list[list[RowChange]]:
        """Carry out a write of facts and append its entry to the chain, in one
        transaction; the rows each step changed."""
        return await self._in_one_hop(self._apply_facts, write)

    def _apply_facts(self, db: sqlite3.Connection, write: FactWrite) -> list[list[RowChange]]:
        done = [_run_step(db, step) for step in write.steps]
        changes = [change for step in done for change in step]
        if changes:
            self._append_fact(db, write, changes, [])
        return done

    def _append_fact(
        self, db: sqlite3.Connection, write: FactWrite, changes: list[RowChange],
        bulk: list[BulkRows],
    ) -> dict[str, Any]:  # fmt: skip
        """Chain the entry of a write just carried out; in the write's transaction."""
        seq, prev_hash = _chain_head(db)
        entry = entry_for(write, changes, bulk, seq=seq + 1, at=datetime.now(UTC),
                          node=self.node, prev_hash=prev_hash)  # fmt: skip
        db.execute(_INSERT_FACT_ENTRY, fact_entry_values(entry))
        return entry

    async def add_refusal(self, company: str, callee: str, at: datetime, source: str) -> int:
        [[refusal]] = await self._write_facts(refusal_write(company, callee, at, source))
        return refusal.id

    async def decision_key(self, decision_id: str) -> tuple[str, str] | None:
        rows = await self._select(
            "SELECT company, callee FROM decisions WHERE id = :id AND company IS NOT NULL"
            " AND callee IS NOT NULL",
            {"id": decision_id},
        )
        return (rows[0][0], rows[0][1]) if rows else None

    async def decision_for_channel(self, channel: str, since: datetime) -> dict[str, Any] | None:
        rows = await self._select(
            f"SELECT {', '.join(DECISION_COLUMNS)} FROM decisions"
            " WHERE at >= :since AND channel = :channel ORDER BY seq DESC LIMIT 1",
            {"since": to_micros(since), "channel": channel},
        )
        return entry_from_row(rows[0]) if rows else None

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
        rows = await self._select(
            f"SELECT {', '.join(CONSENT_COLUMNS)} FROM consents"
            " WHERE (:company IS NULL OR company = :company)"
            " AND (:callee IS NULL OR callee = :callee) ORDER BY given_at, id",
            {"company": company, "callee": callee},
        )
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
        rows = await self._select(
            f"SELECT {', '.join(APPOINTMENT_COLUMNS)} FROM appointments"
            " WHERE (:company IS NULL OR company = :company)"
            " AND (:callee IS NULL OR callee = :callee) ORDER BY start_at, id",
            {"company": company, "callee": callee},
        )
        return [appointment_from_row(row) for row in rows]

    async def add_contract(self, company: str, callee: str, contract: Contract) -> int:
        [[added]] = await self._write_facts(contract_write(company, callee, contract))
        return added.id

    async def end_contracts(self, company: str, callee: str, at: datetime) -> int:
        [ended] = await self._write_facts(end_contracts_write(company, callee, at))
        return len(ended)

    async def contracts(self, company: str | None, callee: str | None) -> list[ContractRecord]:
        rows = await self._select(
            "SELECT id, company, callee, start_at, end_at FROM contracts"
            " WHERE (:company IS NULL OR company = :company)"
            " AND (:callee IS NULL OR callee = :callee) ORDER BY start_at, id",
            {"company": company, "callee": callee},
        )
        return [
            ContractRecord(
                row[0], row[1], row[2], Contract(instant_of(row[3]), from_micros(row[4]))
            )
            for row in rows
        ]

    async def add_oppositions(
        self, callees: Iterable[str], company: str | None, source: str, at: datetime,
        *, origin: Mapping[str, Any] | None = None,
    ) -> int:  # fmt: skip
        """Add entries; one already active is left alone. Returns how many were new.

        An import (``origin`` says from what file) is one entry of the chain, with the
        new rows' ids and digest; a single number is an entry with its row."""
        micros = to_micros(at)
        rows = ((callee, company or "", source, micros) for callee in callees)
        async with self._lock:
            return await self._on_db_thread(
                _in_transaction, self._import_oppositions, rows, company, source, origin
            )

    def _import_oppositions(
        self, db: sqlite3.Connection, rows: Iterator[tuple[Any, ...]], company: str | None,
        source: str, origin: Mapping[str, Any] | None,
    ) -> int:  # fmt: skip
        (last_id,) = db.execute("SELECT coalesce(max(id), 0) FROM opposition").fetchone()
        while batch := _take(rows, _IMPORT_BATCH):
            db.executemany(
                "INSERT OR IGNORE INTO opposition (callee, company, source, added_at)"
                " VALUES (?, ?, ?, ?)",
                batch,
            )
        # A new row's id is above every id before it: the write lock is held throughout.
        added = _dicts(db.execute("SELECT * FROM opposition WHERE id > ? ORDER BY id", (last_id,)))
        if parts := import_entry(added, company, source, origin):
            self._append_fact(db, *parts)
        return len(added)

    async def remove_oppositions(self, callee: str, company: str | None, at: datetime) -> int:
        [removed] = await self._write_facts(remove_opposition_write(callee, company, at))
        return len(removed)

    async def oppositions(
        self, callee: str | None, company: str | None
    ) -> AsyncIterator[OppositionRecord]:
        rows = await self._select(
            "SELECT id, callee, NULLIF(company, ''), source, added_at, removed_at"
            " FROM opposition WHERE (:callee IS NULL OR callee = :callee)"
            " AND (:company IS NULL OR company = :company) ORDER BY id",
            {"callee": callee, "company": company},
        )
        for row in rows:
            yield OppositionRecord(
                row[0], row[1], row[2], row[3], instant_of(row[4]), from_micros(row[5])
            )

    async def outcomes(self, company: str | None, callee: str | None) -> list[Outcome]:
        params = {"company": company, "callee": callee}
        refusals = await self._select(OUTCOME_REFUSALS, params)
        entries = await self._select(OUTCOME_ENTRIES, params)
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
            async with self._lock:
                cursor = await self._db.execute(
                    f"SELECT * FROM {table} WHERE id {since} ? AND id <= ? ORDER BY id LIMIT ?",
                    (after, last, _FACT_ROWS_BATCH),
                )
                names = [column[0] for column in cursor.description]
                rows = [dict(zip(names, row, strict=True)) for row in await cursor.fetchall()]
                await cursor.close()
            for row in rows:
                yield row
            if len(rows) < _FACT_ROWS_BATCH:
                return
            after, since = rows[-1]["id"], ">"

    async def fact_entries_about(
        self, company: str, callee: str, before_seq: int
    ) -> list[dict[str, Any]]:
        params = {"company": company, "callee": callee, "before": before_seq}
        about = await self._select(FACT_ENTRIES_ABOUT, params)
        ids = {table: [row[0] for row in await self._select(
            f"SELECT id FROM {table} WHERE callee = :callee", params)]
            for table in FACT_TABLES}  # fmt: skip
        bulk = await self._select(BULK_ENTRIES_BEFORE, params)
        return covering([fact_entry_from_row(row) for row in about],
                        [fact_entry_from_row(row) for row in bulk], ids)  # fmt: skip

    # ------------------------------------------------------------ copy

    async def snapshot(self, batch: int) -> AsyncIterator[Batch]:
        async with self._lock:
            # A read transaction: in WAL mode it sees one instant while gates write on.
            await self._db.execute("BEGIN")
            try:
                for table in RECORD_TABLES:
                    (total,) = await _one(self._db, f"SELECT count(*) FROM {table}")
                    sql = f"SELECT * FROM {table} ORDER BY {order_key(table)}"
                    async with self._db.execute(sql) as cursor:
                        columns = tuple(column[0] for column in cursor.description)
                        rows = [tuple(row) for row in await cursor.fetchmany(batch)]
                        yield Batch(table, total, columns, rows)
                        while rows := [tuple(row) for row in await cursor.fetchmany(batch)]:
                            yield Batch(table, total, columns, rows)
            finally:
                await self._db.execute("COMMIT")

    async def restore(self, batches: AsyncIterator[Batch]) -> dict[str, int]:
        loaded = dict.fromkeys(RECORD_TABLES, 0)
        async with self._transaction():
            for table in RECORD_TABLES:
                (count,) = await _one(self._db, f"SELECT count(*) FROM {table}")
                if count:
                    raise StoreError(f"{self.path} holds records: {table} has {count:,}")
            async for batch in batches:
                if batch.rows:
                    marks = ", ".join("?" * len(batch.columns))
                    sql = f"INSERT INTO {batch.table} ({', '.join(batch.columns)}) VALUES ({marks})"
                    await self._db.executemany(sql, batch.rows)
                    loaded[batch.table] += len(batch.rows)
        return loaded

    async def _select(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async with self._lock:
            return list(await self._db.execute_fetchall(sql, params))


# ------------------------------------------------------------ on the database thread
# Plain functions of the sqlite3 connection, run through SqliteStore._on_db_thread.


def _in_transaction(db: sqlite3.Connection, work: Callable[..., _T], *args: Any) -> _T:
    """``work(db, *args)`` in a write transaction that holds the file's write lock from
    its first read; rolled back on any error, a failed COMMIT's too (SQLite keeps the
    transaction open when COMMIT fails, and the next BEGIN would fail)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db, *args)
        db.execute("COMMIT")
    except BaseException:
        _roll_back_if_open(db)
        raise
    return result


def _roll_back_if_open(db: sqlite3.Connection) -> None:
    """End a transaction left open: a failed COMMIT keeps it (and the file's write lock),
    and the next BEGIN would fail."""
    if db.in_transaction:
        db.execute("ROLLBACK")


def _facts_of(db: sqlite3.Connection, questions: list[Question]) -> list[Facts]:
    """The facts for each question, in one statement."""
    # A list's questions share their instants, a group's mostly: convert each once.
    micros: dict[datetime, int] = {}

    def stamp(instant: datetime) -> int:
        if (found := micros.get(instant)) is None:
            found = micros[instant] = to_micros(instant)
        return found

    jobs = [
        (company, callee, stamp(now), stamp(since),
         stamp(now + LIVE_CLOCK_SKEW if live else now))
        for company, callee, now, since, live in questions
    ]  # fmt: skip
    rows = db.execute(_FACTS_BY_JOB_SQL, {"jobs": json.dumps(jobs)}).fetchall()
    found = facts_from_rows(rows)
    return [found.get(index, Facts()) for index in range(len(questions))]


def _run_step(db: sqlite3.Connection, step: Step) -> list[RowChange]:
    """One step of a write of facts; each row it changed, read before and after."""
    if isinstance(step, Insert):
        rows = _dicts(db.execute(insert_sql(step), dict(step.values)))
        return [RowChange(step.table, row["id"], None, image(row)) for row in rows]
    select, update = update_sql(step)
    changes = []
    for before in _dicts(db.execute(select, dict(step.params))):
        [after] = _dicts(db.execute(update, update_params(step, before["id"])))
        changes.append(RowChange(step.table, before["id"], image(before), image(after)))
    return changes


def _dicts(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _chain_head(db: sqlite3.Connection) -> tuple[int, str]:
    """The last entry's (seq, hash), decision or fact, or the purge anchor's, or the
    genesis."""
    row = db.execute(CHAIN_HEAD).fetchone() or db.execute(ANCHOR_HEAD).fetchone()
    return (int(row[0]), str(row[1])) if row is not None else (0, GENESIS)


def _check_folder(path: str) -> None:
    try:
        parent = Path(path).expanduser().resolve().parent
    except (OSError, ValueError) as error:  # a NUL byte, a loop of links
        raise StoreError(f"cannot open the store {path}: {error}") from None
    if not parent.is_dir():
        raise StoreError(f"cannot open the store {path}: {parent} does not exist")
    target = Path(path).expanduser()
    if target.exists() and not target.is_file():  # a FIFO would block the open forever
        raise StoreError(f"cannot open the store {path}: not a regular file")


async def _connect(
    path: str, read_only: bool, *, immutable: bool = False
) -> tuple[aiosqlite.Connection, sqlite3.Connection]:
    """The file opened, then handed to aiosqlite's thread: a file that cannot be opened
    leaves no thread behind (aiosqlite's own failed connect leaves one that outlives the
    event loop and prints a traceback). Returns aiosqlite's connection and the sqlite3
    one it wraps, for the work run on its thread (SqliteStore._on_db_thread)."""
    target = _read_only_uri(path, immutable) if read_only else path
    try:
        raw = await asyncio.to_thread(
            sqlite3.connect, target, uri=read_only, isolation_level=None,
            check_same_thread=False,  # made here, used only on aiosqlite's one thread
        )  # fmt: skip
    except (sqlite3.Error, ValueError) as error:  # ValueError: a NUL byte in the name
        raise StoreError(f"cannot open the store {path}: {error}") from None
    return await aiosqlite.Connection(lambda: raw, _ITER_CHUNK), raw


def _read_only_uri(path: str, immutable: bool) -> str:
    return f"file:{quote(path)}?mode=ro" + ("&immutable=1" if immutable else "")


def _immutable_will_do(error: sqlite3.OperationalError, path: str, read_only: bool) -> bool:
    """Reading a WAL store needs its -shm index, which a read-only folder cannot hold.
    Without a -wal file every committed row is in the file itself; such a folder's file
    cannot change under us, so it may be read as immutable."""
    return (
        read_only
        and error.sqlite_errorcode & 0xFF == sqlite3.SQLITE_CANTOPEN  # or an extended code
        and not Path(f"{path}-wal").exists()
    )


def _cannot_open(path: str, error: sqlite3.Error, read_only: bool) -> str:
    message = f"cannot open the store {path}: {error}"
    folder = Path(path).expanduser().resolve().parent
    if not read_only and not os.access(folder, os.W_OK):
        message += f" ({folder} cannot be written here: only the commands that read work there)"
    elif read_only and Path(f"{path}-wal").exists() and not os.access(folder, os.W_OK):
        # Its -wal file holds committed rows that only a writable folder lets SQLite read.
        message += (
            f" (its write-ahead log {path}-wal needs a writable folder: copy both files to"
            " one, or checkpoint the store before taking the copy)"
        )
    return message


async def _close_quietly(connection: aiosqlite.Connection) -> None:
    with contextlib.suppress(sqlite3.Error, ValueError):
        await connection.close()


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("callgate.store") / "migrations" / "sqlite"
    scripts = sorted(
        (int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )
    return scripts


async def _run_script(db: aiosqlite.Connection, script: str) -> None:
    # executescript() would COMMIT first; run statement by statement to stay in BEGIN.
    for statement in _statements(script):
        await db.execute(statement)


def _statements(script: str) -> list[str]:
    """The script's statements; a trigger's body keeps its own semicolons."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    statements, pending = [], ""
    for part in "\n".join(lines).split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \n;"):
        statements.append(pending.strip())
    return statements


async def _one(db: aiosqlite.Connection, sql: str) -> tuple[Any, ...]:
    async with db.execute(sql) as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return tuple(row)


def _take(rows: Iterable[tuple[Any, ...]], size: int) -> list[tuple[Any, ...]]:
    iterator = iter(rows)
    batch = []
    for row in iterator:
        batch.append(row)
        if len(batch) >= size:
            break
    return batch
