"""The store's reads for the compliance console: the hourly rollups stay equal to the log
whatever writes it, the newest-first pages follow a keyset, on both backends."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from callgate.model import Decision, Purpose, Reason, Verdict
from callgate.store import open_store
from callgate.store.base import Cursor, LogQuery, to_micros
from callgate.store.copy import copy_store
from callgate.store.sql import page_sql

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
EVER = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
CALLEES = ("+33612345678", "+33698765432", "+33711223344")
DIMENSIONS = ("hour", "verdict", "company", "campaign")


def a_decision(
    at: datetime, *, verdict: str = "reject", company: str | None = "acme",
    campaign: str | None = None, codes: tuple[str, ...] = ("CONSENT_MISSING",),
    callee: str = CALLEES[0], caller: str = "+33948000001",
) -> Decision:  # fmt: skip
    return Decision(
        Verdict(verdict), caller, caller, callee, "FR", Purpose.PROSPECTING,
        tuple(Reason(code, f"{code} found", verdict == "reject") for code in codes), None,
        "fr-2026", company=company, campaign=campaign, decided_at=at, callee_in=callee,
        decision_id=uuid4().hex,
    )  # fmt: skip


def variety(i: int, at: datetime) -> Decision:
    """The i-th of a mix of verdicts, companies, campaigns, callees and reason codes, some
    missing, some repeated within one decision."""
    codes = [("CONSENT_MISSING",), ("HOURS_OUTSIDE", "CAP_30_DAYS"), (),
             ("OPPOSITION", "OPPOSITION"), ("CAP_30_DAYS",)][i % 5]  # fmt: skip
    return a_decision(
        at, verdict="allow" if not codes else "reject", company=[None, "acme", "globex"][i % 3],
        campaign=[None, "spring", "autumn", None][i % 4], codes=codes,
        callee=CALLEES[i % 3], caller=["+33948000001", "+33140000000"][i % 2],
    )  # fmt: skip


async def record_mix(store, count: int, start: datetime, *, step: timedelta) -> None:
    """Through every write path: a group commit of recorded calls (concurrent deciders),
    and single recorded decisions of other kinds and nodes, some backdated."""
    group = []
    for i in range(count):
        at = start + i * step
        decision = variety(i, at)
        if i % 3 == 0:
            store.node = ["gate-a", "gate-b"][i % 2]
            kind = "dry-run" if i % 2 else "call"
            backdated = at - timedelta(days=3) if i % 7 == 0 else at
            await store.record_decision(_at(decision, backdated), "chan-1", kind=kind)
        else:
            since = at - timedelta(days=60)
            group.append(store.decide(decision.company or "", decision.callee, at, since,
                                      _judged(decision), record=True))  # fmt: skip
    await asyncio.gather(*group)


def _at(decision: Decision, at: datetime) -> Decision:
    from dataclasses import replace

    return replace(decision, decided_at=at)


def _judged(decision: Decision):
    return lambda facts: decision


async def every_entry(store) -> list[dict]:
    return await store.log_entries(LogQuery())


def grouped(entries: list[dict], by: tuple[str, ...], kind: str = "call") -> Counter:
    """What decision_counts must say, counted from the log itself."""
    counts: Counter = Counter()
    for entry in entries:
        if entry["kind"] != kind:
            continue
        at = datetime.fromisoformat(entry["at"])
        values = {"hour": at.replace(minute=0, second=0, microsecond=0), **entry}
        codes = {reason["code"] for reason in entry["reasons"]} if "reason" in by else {None}
        for code in codes:
            values["reason"] = code
            counts[tuple(values[name] for name in by)] += 1
    return counts


async def counted(store, by: tuple[str, ...], kind: str = "call", span=EVER) -> Counter:
    rows = await store.decision_counts(*span, by, kind=kind)
    assert len({row[:-1] for row in rows}) == len(rows)  # one row per group
    return Counter({row[:-1]: row[-1] for row in rows})


async def assert_rollups_match(store) -> None:
    entries = await every_entry(store)
    for kind in ("call", "dry-run"):
        for size in (0, 1, 2, 4, 5):
            for by in itertools.combinations((*DIMENSIONS, "reason"), size):
                expected = grouped(entries, by, kind)
                if not by:  # the total, zero included
                    expected = Counter({(): sum(expected.values())})
                assert await counted(store, by, kind) == expected, (kind, by)
    heads: dict[str, dict] = {}
    for entry in entries:
        heads[entry["node"]] = max(heads.get(entry["node"], entry), entry, key=_seq)
    assert await store.node_heads() == sorted(
        (node, datetime.fromisoformat(e["at"]), e["seq"]) for node, e in heads.items()
    )


def _seq(entry: dict) -> int:
    return entry["seq"]


def newest_first(entries: list[dict]) -> list[dict]:
    return sorted(entries, key=lambda e: (datetime.fromisoformat(e["at"]), e["seq"]),
                  reverse=True)  # fmt: skip


async def other_store_url(store_url, request, tmp_path) -> str:
    if store_url.startswith("postgres"):
        return request.getfixturevalue("postgres").new_database()
    return str(tmp_path / "copy.db")


# ---------------------------------------------------------------- rollups


async def test_the_rollups_equal_the_log_after_records_a_purge_and_a_restore(
    store, store_url, request, tmp_path
):
    await record_mix(store, 90, T0, step=timedelta(minutes=17))
    assert len(await every_entry(store)) == 90
    await assert_rollups_match(store)

    purged = await store.purge_log(T0 + timedelta(hours=9), T0 + timedelta(days=40))
    assert purged > 0
    await assert_rollups_match(store)
    await record_mix(store, 12, T0 + timedelta(days=2), step=timedelta(minutes=5))
    await assert_rollups_match(store)

    target = await open_store(await other_store_url(store_url, request, tmp_path))
    try:
        await copy_store(store, target, batch=7)
        await assert_rollups_match(target)
        assert await target.node_heads() == await store.node_heads()
        assert await target.last_purge() == await store.last_purge()
    finally:
        await target.close()


async def test_a_purge_of_the_whole_log_empties_the_rollups(store):
    await record_mix(store, 20, T0, step=timedelta(minutes=30))
    await store.purge_log(T0 + timedelta(days=30), T0 + timedelta(days=31))
    assert await every_entry(store) == []
    assert await store.decision_counts(*EVER, DIMENSIONS) == []
    assert await store.decision_counts(*EVER, ("reason",)) == []
    assert await store.decision_counts(*EVER, ()) == [(0,)]
    assert await store.node_heads() == []


async def test_hours_split_at_the_hour_and_until_is_exclusive(store):
    noon = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
    for at in (noon + timedelta(minutes=59, seconds=59, microseconds=999_999),
               noon + timedelta(hours=1)):  # fmt: skip
        await store.record_decision(a_decision(at, company=None))
    one = noon + timedelta(hours=1)
    assert await store.decision_counts(noon, noon + timedelta(hours=2), ("hour",)) == [
        (noon, 1), (one, 1)
    ]  # fmt: skip
    assert await store.decision_counts(noon, one, ("hour", "company")) == [(noon, None, 1)]
    assert await store.decision_counts(one, one + timedelta(hours=1), ("hour",)) == [(one, 1)]
    # Every hour that overlaps the span counts, whole: the rollup keeps no finer grain.
    half_past = noon + timedelta(minutes=30)
    assert await store.decision_counts(half_past, half_past + timedelta(hours=1), ()) == [(2,)]
    assert await store.decision_counts(one, one, ()) == [(0,)]


async def test_counts_are_per_kind_and_refuse_unknown_groupings(store):
    await store.record_decision(a_decision(T0), kind="dry-run")
    assert await store.decision_counts(*EVER, ("verdict",)) == []
    assert await store.decision_counts(*EVER, ("verdict",), kind="dry-run") == [("reject", 1)]
    for by in (("node",), ("hour", "hour"), ("verdict; DROP TABLE decisions",)):
        with pytest.raises(ValueError):
            await store.decision_counts(*EVER, by)


# ---------------------------------------------------------------- pages


FILTERS = [
    LogQuery(),
    LogQuery(verdict="allow"),
    LogQuery(verdict="reject"),
    LogQuery(reason="CAP_30_DAYS"),
    LogQuery(reason="NO_SUCH_CODE"),
    LogQuery(company="globex"),
    LogQuery(campaign="spring"),
    LogQuery(callee=CALLEES[1]),
    LogQuery(caller="+33140000000"),
    LogQuery(company="acme", verdict="reject"),
    LogQuery(company="acme", reason="OPPOSITION"),
    LogQuery(since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=7)),
    LogQuery(since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=7), company="acme"),
    LogQuery(since=T0 + timedelta(hours=3), reason="CAP_30_DAYS", verdict="reject"),
    LogQuery(kind="dry-run"),
    LogQuery(kind="call", company="acme"),
    LogQuery(kind="call", reason="CAP_30_DAYS", since=T0 + timedelta(hours=1)),
    LogQuery(kind="call", since=T0 + timedelta(hours=3), until=T0 + timedelta(hours=7)),
]


def matches(entry: dict, query: LogQuery) -> bool:
    at = datetime.fromisoformat(entry["at"])
    return (
        (query.since is None or at >= query.since)
        and (query.until is None or at < query.until)
        and all(getattr(query, name) in (None, entry[name])
                for name in ("verdict", "company", "campaign", "callee"))
        and query.caller in (None, entry["caller_in"], entry["caller_out"])
        and (query.reason is None or query.reason in {r["code"] for r in entry["reasons"]})
        and query.kind in (None, entry["kind"])
    )  # fmt: skip


@pytest.mark.parametrize("query", FILTERS, ids=repr)
async def test_each_filter_gives_its_entries_newest_first(store, query):
    await record_mix(store, 60, T0, step=timedelta(minutes=9))
    entries = await every_entry(store)
    expected = newest_first([entry for entry in entries if matches(entry, query)])
    assert await store.decision_page(query, limit=1000) == expected
    assert await store.decision_page(query, limit=5) == expected[:5]
    if expected:
        middle = expected[len(expected) // 2]
        cursor = Cursor(to_micros(datetime.fromisoformat(middle["at"])), middle["seq"])
        after = expected[len(expected) // 2 + 1 :]
        assert await store.decision_page(query, before=cursor, limit=1000) == after


async def test_paging_gives_each_entry_once_while_decisions_arrive(store):
    await record_mix(store, 300, T0, step=timedelta(minutes=3))
    existing = {entry["seq"] for entry in await every_entry(store)}
    seen: list[int] = []
    cursor = None
    pages = 0
    while page := await store.decision_page(LogQuery(), before=cursor, limit=50):
        pages += 1
        seen += [entry["seq"] for entry in page]
        last = page[-1]
        cursor = Cursor(to_micros(datetime.fromisoformat(last["at"])), last["seq"])
        # New decisions between pages: newer ones, and one backdated into the past.
        newest = T0 + timedelta(days=1, minutes=pages)
        await record_mix(store, 4, newest, step=timedelta(seconds=1))
        await store.record_decision(a_decision(T0 + timedelta(minutes=3 * pages + 1)))
    assert pages >= 6
    assert len(seen) == len(set(seen))
    assert existing <= set(seen)


async def test_a_page_with_no_match_and_a_cursor_before_everything_are_empty(store):
    await record_mix(store, 10, T0, step=timedelta(minutes=1))
    assert await store.decision_page(LogQuery(company="nobody")) == []
    oldest = Cursor(to_micros(T0 - timedelta(days=3)), 1)  # seq 1, backdated 3 days
    assert await store.decision_page(LogQuery(), before=oldest) == []


# ---------------------------------------------------------------- heads and purges


async def test_node_heads_follow_the_last_recorded_decision(store):
    assert await store.node_heads() == []
    store.node = "gate-a"
    await store.record_decision(a_decision(T0 + timedelta(hours=2)))
    store.node = "gate-b"
    await store.record_decision(a_decision(T0 + timedelta(hours=1)))
    store.node = "gate-a"
    await store.record_decision(a_decision(T0))  # backdated: still its last decision
    assert await store.node_heads() == [("gate-a", T0, 3), ("gate-b", T0 + timedelta(hours=1), 2)]


async def test_last_purge_tells_the_latest_purge(store):
    assert await store.last_purge() is None
    await record_mix(store, 10, T0, step=timedelta(hours=1))
    first = T0 + timedelta(days=30)
    await store.purge_log(T0 + timedelta(hours=3), first)
    await store.purge_log(T0 + timedelta(hours=6), first + timedelta(days=1))
    anchor_seq, _ = await store.log_anchor()
    assert await store.last_purge() == (anchor_seq, first + timedelta(days=1))


# ---------------------------------------------------------------- migration and plans


async def test_migrating_a_store_with_decisions_fills_the_rollups(store_url, monkeypatch):
    if store_url.startswith("postgres"):
        from callgate.store import postgres as backend
    else:
        from callgate.store import sqlite as backend
    every = backend._migrations
    monkeypatch.setattr(backend, "_migrations", lambda: [m for m in every() if m[0] <= 3])
    # A callgate of schema 3 chained decisions alone: it had no fact_entries table.
    head = backend.CHAIN_HEAD
    monkeypatch.setattr(
        backend, "CHAIN_HEAD", "SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1"
    )
    old = await open_store(store_url)
    await record_mix(old, 40, T0, step=timedelta(minutes=23))
    await old.close()
    monkeypatch.setattr(backend, "_migrations", every)
    monkeypatch.setattr(backend, "CHAIN_HEAD", head)
    store = await open_store(store_url)
    try:
        assert await store.migrate() == every()[-1][0]
        assert await store.decision_counts(*EVER, ()) != [(0,)]
        await assert_rollups_match(store)
        expected = newest_first([e for e in await every_entry(store) if matches(e, FILTERS[3])])
        assert await store.decision_page(FILTERS[3], limit=100) == expected
    finally:
        await store.close()


PLANNED = [query for query in FILTERS if query.caller is None] + [
    LogQuery(since=T0 - timedelta(days=30), until=T0 - timedelta(days=29), verdict="reject"),
    LogQuery(company="acme", campaign="spring"),
]


async def test_every_page_is_read_in_an_index_order(store):
    """No sort of the matching rows and no scan of the log: a page deep in 10 M entries
    costs what the first one does."""
    before = Cursor(to_micros(T0), 1_000)
    for query, cursor in itertools.product(PLANNED, (None, before)):
        sql, params = page_sql(query, cursor, 50)
        plan = await _plan(store, sql, params)
        assert "TEMP B-TREE" not in plan and "Sort" not in plan, (query, plan)
        assert "SCAN d" not in plan.replace("SCAN d USING INDEX", ""), (query, plan)
        assert "Seq Scan" not in plan, (query, plan)


async def test_the_kind_filter_keeps_the_index_the_other_filters_choose(store):
    """kind has no index: added to a filter, it must ride on that filter's index range,
    never turn it into a scan of the log."""
    for query in PLANNED:
        alone = await _plan(store, *page_sql(query, None, 50))
        for kind in ("call", "dry-run"):
            plan = await _plan(store, *page_sql(replace(query, kind=kind), None, 50))
            assert "TEMP B-TREE" not in plan and "Sort" not in plan, (query, plan)
            assert "SCAN d" not in plan.replace("SCAN d USING INDEX", ""), (query, plan)
            assert "Seq Scan" not in plan, (query, plan)
            assert _indexes(plan) == _indexes(alone), (query, alone, plan)


def _indexes(plan: str) -> list[str]:
    """The indexes a plan reads, in order (SQLite's and PostgreSQL's wording)."""
    sqlite = r"USING (?:COVERING |INTEGER )?(?:INDEX (\w+)|(PRIMARY KEY))"
    postgres = r"Index (?:Only )?Scan (?:Backward )?using (\w+)"
    return ["".join(found) for found in re.findall(f"{sqlite}|{postgres}", plan)]


async def _plan(store, sql: str, params: dict) -> str:
    if hasattr(store, "_db"):
        rows = await store._select("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row[3]) for row in rows)
    from callgate.store.postgres import positional

    converted, values = positional(sql, params)
    async with store._pool.acquire() as db, db.transaction():
        # An empty table is cheapest to scan: ask for the plan the indexes make possible.
        await db.execute("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        rows = await db.fetch("EXPLAIN " + converted, *values)
    return "\n".join(row[0] for row in rows)


async def test_a_decision_is_found_by_its_first_characters_and_never_by_a_wildcard(store):
    first, second = a_decision(T0), a_decision(T0 + timedelta(seconds=1))
    for decision in (first, second):
        await store.record_decision(decision)
    found = await store.log_entry(first.decision_id[:8])
    shared = first.decision_id[:8] == second.decision_id[:8]
    assert (found is None) if shared else (found["id"] == first.decision_id)
    assert (await store.log_entry(second.decision_id))["id"] == second.decision_id
    assert await store.log_entry(first.decision_id[:7]) is None  # too short to be an id
    assert await store.log_entry("%" * 8) is None
    assert await store.log_entry(first.decision_id[:4] + "____") is None
