"""The SQLite store's group commit: one crossing to the database thread per group.

Each crossing to aiosqlite's thread and back costs the event loop a wake-up; at a gate's
call rate those wake-ups, not SQLite, were the bulk of a recorded decision's cost."""

import asyncio
import sqlite3
import threading
import time
from datetime import timedelta

import aiosqlite
import pytest
from builders import MONDAY, a_config, a_request, days

from callgate.cli_log import verify_chain
from callgate.gate import check_call
from callgate.model import Consent, ConsentScope
from callgate.store import open_store
from callgate.store.base import LogQuery, StoreError

CALLEES = [f"+336123456{i:02d}" for i in range(10)]


@pytest.fixture
async def store(tmp_path):
    opened = await open_store(str(tmp_path / "hop.db"))
    for callee in CALLEES:
        await opened.add_consent(
            "acme", callee, Consent(ConsentScope.PROSPECTING, MONDAY - days(9))
        )
    yield opened
    await opened.close()


async def _traced(store, statements: list[str]) -> None:
    """Every statement the store's connection runs, appended to ``statements``."""
    await store._db._execute(store._db._conn.set_trace_callback, statements.append)


def _count_hops(store, monkeypatch) -> list[int]:
    """Every crossing to aiosqlite's thread goes through its ``_execute``: count them."""
    hops = [0]
    crossing = store._db._execute

    async def counted(fn, *args, **kwargs):
        hops[0] += 1
        return await crossing(fn, *args, **kwargs)

    monkeypatch.setattr(store._db, "_execute", counted)
    return hops


async def test_aiosqlite_still_runs_a_function_on_its_own_thread(store):
    """The store runs its group commits through aiosqlite's private ``_execute``, on the
    thread and with the sqlite3 connection aiosqlite itself uses: an aiosqlite that drops
    either must fail here, not in a gate."""
    assert callable(getattr(aiosqlite.Connection, "_execute", None)), (
        "aiosqlite.Connection._execute is gone: SqliteStore._on_db_thread needs another"
        " way to run a function on aiosqlite's thread"
    )
    await store._db.create_function("worker", 0, threading.get_ident)
    [(aiosqlite_thread,)] = await store._db.execute_fetchall("SELECT worker()")

    def where(db: sqlite3.Connection) -> tuple[int, int]:
        # A function registered through aiosqlite is seen: the very same connection.
        return threading.get_ident(), db.execute("SELECT worker()").fetchone()[0]

    assert await store._on_db_thread(where) == (aiosqlite_thread, aiosqlite_thread)
    assert aiosqlite_thread != threading.get_ident()


async def test_a_group_commit_crosses_to_the_database_thread_once(store, monkeypatch):
    """A burst of recorded decisions, some callees asked several times (waves): one
    crossing per group, however many statements and waves it takes."""
    statements: list[str] = []
    await _traced(store, statements)
    hops = _count_hops(store, monkeypatch)
    config = a_config()
    decisions = await asyncio.gather(*(
        check_call(store, config, a_request(callee), MONDAY + timedelta(minutes=i),
                   record=True)
        for i in range(7) for callee in CALLEES
    ))  # fmt: skip
    monkeypatch.undo()
    await store._db._execute(store._db._conn.set_trace_callback, None)
    groups = statements.count("BEGIN IMMEDIATE")
    assert 1 <= groups < len(decisions) / 10  # the burst did share commits
    assert statements.count("COMMIT") == groups
    assert hops[0] <= groups  # one crossing per group, none besides
    for callee in CALLEES:  # the waves read what the ones before them wrote: the cap holds
        assert [d.allowed for d in decisions if d.callee == callee] == [True] * 4 + [False] * 3
    check = await verify_chain(store)
    verifier, broken = check.verifier, check.broken
    assert broken is None and verifier.count == len(CALLEES) + len(decisions)  # + consents


async def test_a_failing_judge_or_an_abandoned_call_fails_alone_and_the_chain_holds(store):
    config = a_config()

    def broken(facts):
        raise ValueError("a bug in one decision")

    async with store._lock:  # the whole burst queues for one group commit
        calls = [
            asyncio.create_task(check_call(store, config, a_request(callee), MONDAY,
                                           record=True))
            for callee in CALLEES
        ]  # fmt: skip
        bad = asyncio.create_task(
            store.decide("acme", CALLEES[0], MONDAY, MONDAY - days(40), broken, record=True)
        )
        await asyncio.sleep(0)
        calls[3].cancel()  # its caller gave up before its turn
        await asyncio.sleep(0)
    results = await asyncio.gather(*calls, bad, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert isinstance(results[-1], ValueError)
    recorded = [r for r in results if not isinstance(r, BaseException)]
    assert len(recorded) == len(CALLEES) - 1 and all(d.allowed for d in recorded)
    entries = await store.log_entries(LogQuery())
    assert [e["id"] for e in entries] == [d.decision_id for d in recorded]
    check = await verify_chain(store)
    verifier, broken_at = check.verifier, check.broken
    assert broken_at is None and verifier.count == len(CALLEES) + len(recorded)
    facts = await store.facts("acme", CALLEES[3], MONDAY + days(1), MONDAY - days(1))
    assert facts.attempts == ()  # the abandoned call was not counted


# The insert fails midway (after the attempts went in), or only the COMMIT does: a
# deferred foreign key is checked then, and SQLite leaves the transaction open.
FAILURES = {
    "insert": [
        "CREATE TRIGGER refuse BEFORE INSERT ON decisions"
        " BEGIN SELECT RAISE(ABORT, 'the log refuses'); END",
    ],
    "commit": [
        "PRAGMA foreign_keys = ON",
        "CREATE TABLE parent (id INTEGER PRIMARY KEY)",
        "CREATE TABLE child (parent_id INTEGER REFERENCES parent (id)"
        " DEFERRABLE INITIALLY DEFERRED)",
        "CREATE TRIGGER refuse AFTER INSERT ON decisions BEGIN INSERT INTO child VALUES (-1); END",
    ],
}


@pytest.mark.parametrize("failing", list(FAILURES))
async def test_a_failed_group_records_nothing_fails_every_call_and_the_store_recovers(
    store, failing
):
    for sql in FAILURES[failing]:
        await store._db.execute(sql)
    config = a_config()
    results = await asyncio.gather(*(
        check_call(store, config, a_request(callee), MONDAY, record=True)
        for callee in CALLEES
    ), return_exceptions=True)  # fmt: skip
    assert all(isinstance(r, StoreError) for r in results), results
    assert await store.log_entries(LogQuery()) == []
    for callee in CALLEES:
        facts = await store.facts("acme", callee, MONDAY + days(1), MONDAY - days(1))
        assert facts.attempts == ()  # rolled back with the decisions
    await store._db.execute("DROP TRIGGER refuse")
    later = await check_call(store, config, a_request(CALLEES[0]), MONDAY, record=True)
    assert later.allowed
    check = await verify_chain(store)
    verifier, broken = check.verifier, check.broken
    assert broken is None and verifier.count == len(CALLEES) + 1  # the consents, one call


async def test_a_write_cancelled_before_its_begin_ran_leaves_no_transaction_open(store):
    """A BEGIN queued on the database thread still runs after its task is cancelled: the
    transaction it opens is rolled back there, and the store goes on recording."""
    slow = asyncio.create_task(store._on_db_thread(lambda db: time.sleep(0.3)))

    async def write() -> None:
        async with store._transaction():
            await store._db.execute("SELECT 1")

    writer = asyncio.create_task(write())
    await asyncio.sleep(0.05)  # its BEGIN waits behind the slow work
    writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await writer
    await slow
    assert await store._on_db_thread(lambda db: db.in_transaction) is False
    config = a_config()
    decision = await check_call(store, config, a_request(), MONDAY, record=True)
    assert decision.decision_id
