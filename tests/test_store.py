"""The store suite: facts as of an instant, atomic check-and-record, durability."""

import asyncio

import pytest
from builders import MONDAY, a_config, a_request, days, paris

from callgate.gate import check_call
from callgate.model import Consent, ConsentScope, Contract, Purpose
from callgate.store import newest_schema_version, open_store, stored_schema_version

CALLEE = "+33612345678"


async def test_schema_is_versioned_and_migrations_run_once(store_url):
    path = store_url
    first = await open_store(path)
    assert await first.migrate() == newest_schema_version(store_url)
    await first.close()
    again = await open_store(path)
    assert await again.migrate() == newest_schema_version(store_url)
    await again.close()


async def test_facts_come_back_as_of_the_instant(store):
    await store.add_refusal("acme", CALLEE, paris(2026, 11, 2, 12), "test")
    await store.add_consent(
        "acme",
        CALLEE,
        Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1), source="web", proof="form 1"),
    )
    await store.add_contract("acme", CALLEE, Contract(paris(2026, 1, 1)))
    await store.add_oppositions([CALLEE], None, "bloctel", paris(2026, 10, 1))
    await store.revoke_consents("acme", CALLEE, None, paris(2026, 11, 10))

    before = await store.facts("acme", CALLEE, paris(2026, 10, 15), paris(2026, 9, 1))
    assert before.refusals == ()
    assert len(before.consents) == 1 and before.consents[0].revoked_at is None
    assert before.consents[0].proof == "form 1"
    assert len(before.oppositions) == 1 and before.oppositions[0].company is None

    after = await store.facts("acme", CALLEE, paris(2026, 11, 20), paris(2026, 9, 1))
    assert after.refusals == (paris(2026, 11, 2, 12),)
    assert after.consents[0].revoked_at == paris(2026, 11, 10)
    assert len(after.contracts) == 1

    other = await store.facts("globex", CALLEE, paris(2026, 11, 20), paris(2026, 9, 1))
    assert other.consents == () and other.refusals == () and len(other.oppositions) == 1


async def test_facts_are_read_in_one_statement(tmp_path):
    store = await open_store(str(tmp_path / "one.db"))
    statements = []
    await store._db._execute(store._db._conn.set_trace_callback, statements.append)
    await store.facts("acme", CALLEE, MONDAY, MONDAY - days(63))
    await store._db._execute(store._db._conn.set_trace_callback, None)
    await store.close()
    assert len(statements) == 1


async def test_the_facts_read_searches_an_index_in_every_table(tmp_path):
    """No table scanned, no index built on the fly: a Bloctel list of millions must not
    cost each call a pass over it."""
    import sqlite3

    from callgate.store.sqlite import _FACTS_BY_JOB_SQL

    path = tmp_path / "plan.db"
    await (await open_store(str(path))).close()  # creates and migrates the file
    with sqlite3.connect(path) as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + _FACTS_BY_JOB_SQL,
                                              {"jobs": "[]"})]  # fmt: skip
    tables = ("attempts", "refusals", "consents", "contracts", "opposition")
    for table in tables:
        assert any(line.startswith(f"SEARCH {table} USING") for line in plan), (table, plan)
    scans = tuple(f"SCAN {table}" for table in tables)
    assert not any("AUTOMATIC" in line or line.startswith(scans) for line in plan), plan


async def test_removed_opposition_no_longer_counts_and_stays_on_record(store):
    await store.add_oppositions([CALLEE], "acme", "internal", paris(2026, 9, 1))
    assert await store.remove_oppositions(CALLEE, "acme", paris(2026, 10, 1)) == 1
    since = paris(2026, 9, 1)
    [during] = (await store.facts("acme", CALLEE, paris(2026, 9, 15), since)).oppositions
    assert during.active_at(paris(2026, 9, 15)) and during.removed_at is None  # not yet, then
    # Still read once removed (it revoked the consents before it), but no longer active.
    [after] = (await store.facts("acme", CALLEE, paris(2026, 10, 2), since)).oppositions
    assert after.removed_at == paris(2026, 10, 1) and not after.active_at(paris(2026, 10, 2))
    history = [entry async for entry in store.oppositions(CALLEE, "acme")]
    assert history[0].removed_at == paris(2026, 10, 1)


async def test_adding_an_opposition_twice_keeps_one_entry(store):
    assert await store.add_oppositions([CALLEE, CALLEE], None, "bloctel", MONDAY) == 1
    assert await store.add_oppositions([CALLEE], None, "bloctel", MONDAY) == 0
    assert len([e async for e in store.oppositions(None, None)]) == 1


async def test_recorded_allow_counts_an_attempt_and_a_reject_does_not(store):
    config = a_config()
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    allowed = await check_call(store, config, a_request(), MONDAY, record=True)
    assert allowed.allowed
    night = await check_call(store, config, a_request(), paris(2026, 11, 23, 22), record=True)
    assert not night.allowed
    facts = await store.facts("acme", CALLEE, paris(2026, 11, 24), paris(2026, 11, 1))
    assert [a.at for a in facts.attempts] == [MONDAY]
    assert facts.attempts[0].purpose is Purpose.PROSPECTING
    from callgate.store.base import LogQuery

    rows = [(e["id"], e["verdict"]) for e in await store.log_entries(LogQuery())]
    assert rows == [(allowed.decision_id, "allow"), (night.decision_id, "reject")]


async def test_a_dry_run_records_nothing(store):
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    await check_call(store, a_config(), a_request(), MONDAY, record=False)
    facts = await store.facts("acme", CALLEE, paris(2026, 11, 24), paris(2026, 11, 1))
    assert facts.attempts == ()


async def test_the_fifth_call_is_refused_through_the_store(store):
    config = a_config()
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    verdicts = [
        (await check_call(store, config, a_request(), MONDAY + days(i), record=True)).codes
        for i in range(5)
    ]
    assert verdicts[:4] == [()] * 4
    assert verdicts[4] == ("CAP_30_DAYS",)


async def test_records_survive_a_restart(store_url):
    path = store_url
    store = await open_store(path)
    await store.add_refusal("acme", CALLEE, MONDAY, "test")
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    await check_call(store, a_config(), a_request(), MONDAY, record=True)
    await store.close()
    reopened = await open_store(path)
    facts = await reopened.facts("acme", CALLEE, MONDAY + days(1), MONDAY - days(1))
    await reopened.close()
    assert len(facts.refusals) == 1 and len(facts.consents) == 1
    assert facts.attempts == ()  # that call met the refusal: rejected, not an attempt


async def test_concurrent_deciders_on_two_connections_never_overrun_the_cap(store_url):
    path = store_url
    config = a_config()
    setup = await open_store(path)
    await setup.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    for i in range(3):
        prior = await check_call(
            setup, config, a_request(), MONDAY - days(7 * (i + 1)), record=True
        )
        assert prior.allowed
    other = await open_store(path)
    stores = [setup, other]
    decisions = await asyncio.gather(
        *(check_call(stores[i % 2], config, a_request(), MONDAY, record=True) for i in range(20))
    )
    await setup.close()
    await other.close()
    assert sum(d.allowed for d in decisions) == 1
    assert {d.codes for d in decisions if not d.allowed} == {("CAP_30_DAYS",)}


async def test_contracts_end_and_consents_list(store):
    await store.add_contract("acme", CALLEE, Contract(paris(2026, 1, 1)))
    assert await store.end_contracts("acme", CALLEE, paris(2026, 6, 1)) == 1
    [record] = await store.contracts("acme", CALLEE)
    assert record.contract.end == paris(2026, 6, 1)
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.OUT_OF_HOURS, paris(2026, 1, 1)))
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 2)))
    assert (
        await store.revoke_consents("acme", CALLEE, ConsentScope.OUT_OF_HOURS, paris(2026, 2, 1))
        == 1
    )
    listed = await store.consents("acme", None)
    assert [(r.consent.scope, r.consent.revoked_at is not None) for r in listed] == [
        (ConsentScope.OUT_OF_HOURS, True),
        (ConsentScope.PROSPECTING, False),
    ]


async def test_a_decision_past_its_deadline_records_nothing_and_the_store_recovers(tmp_path):
    import sqlite3

    path = tmp_path / "slow.db"
    store = await open_store(str(path))
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    holder = sqlite3.connect(path, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await check_call(store, a_config(), a_request(), MONDAY, record=True)
    holder.execute("ROLLBACK")
    holder.close()
    await asyncio.sleep(0.5)
    later = await check_call(store, a_config(), a_request(), MONDAY, record=True)
    assert later.allowed
    facts = await store.facts("acme", CALLEE, MONDAY, MONDAY - days(1))
    await store.close()
    assert len(facts.attempts) == 1  # the late one was rolled back, not counted


async def test_a_node_whose_clock_is_behind_still_sees_the_last_slot_taken(store_url):
    """Clock skew between gates: an attempt recorded "a second later" by a node ahead."""
    from datetime import timedelta

    store = await open_store(store_url)
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    for i in range(3):
        await check_call(store, a_config(), a_request(), MONDAY - days(7 * (i + 1)), record=True)
    ahead = await check_call(
        store, a_config(), a_request(), MONDAY + timedelta(seconds=1), record=True
    )
    behind = await check_call(store, a_config(), a_request(), MONDAY, record=True)
    replayed = await store.facts("acme", CALLEE, MONDAY, MONDAY - days(40))
    await store.close()
    assert ahead.allowed
    assert behind.codes == ("CAP_30_DAYS",)
    assert len(replayed.attempts) == 3  # as of MONDAY, for a replay, it was not there yet


async def test_many_deciders_on_one_store_share_commits_and_never_overrun_the_cap(store):
    """A burst on one store object (one gate): decisions queued together are committed
    together, yet each sees the attempts recorded before it (a few seconds apart: within
    the clock skew a live decision allows for)."""
    config = a_config()
    callees = [f"+336123456{i:02d}" for i in range(8)]
    for callee in callees:
        await store.add_consent("acme", callee, Consent(ConsentScope.PROSPECTING, MONDAY - days(9)))
    decisions = await asyncio.gather(*(
        check_call(store, config, a_request(callee), MONDAY + days(i) / 86400, record=True)
        for callee in callees for i in range(6)
    ))  # fmt: skip
    for callee in callees:
        mine = [d for d in decisions if d.callee == callee]
        assert sum(d.allowed for d in mine) == 4, callee  # the cap, exactly
        facts = await store.facts("acme", callee, MONDAY + days(1), MONDAY - days(1))
        assert len(facts.attempts) == 4
    from callgate.cli_log import verify_chain

    check = await verify_chain(store)

    verifier, broken = check.verifier, check.problems or check.broken
    # Each consent is an entry of the chain too.
    assert broken is None and verifier.count == len(decisions) + len(callees)


async def test_a_failing_judge_fails_its_call_alone(store):
    from datetime import timedelta

    config = a_config()
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, MONDAY - days(9)))

    def broken(facts):
        raise ValueError("a bug in one decision")

    good = [
        check_call(store, config, a_request(), MONDAY + timedelta(minutes=i), record=True)
        for i in range(3)
    ]
    bad = store.decide("acme", CALLEE, MONDAY, MONDAY - days(40), broken, record=True)
    results = await asyncio.gather(*good[:2], bad, good[2], return_exceptions=True)
    assert isinstance(results[2], ValueError)
    assert [r.allowed for r in results if not isinstance(r, Exception)] == [True] * 3
    facts = await store.facts("acme", CALLEE, MONDAY + days(1), MONDAY - days(1))
    assert len(facts.attempts) == 3


async def test_the_schema_version_is_read_without_migrating(store_url):
    if store_url.startswith("postgresql"):
        assert await stored_schema_version(store_url) == 0  # a database never migrated
    store = await open_store(store_url)
    await store.close()
    assert await stored_schema_version(store_url) == newest_schema_version(store_url)


# ---------------------------------------------------------------- purging the decision log

# Recorded in this order: a decision recorded with a past date (`check --record --at`, the
# API's "record": true) comes after newer ones in the chain.
PURGE_DATES = (
    paris(2026, 11, 21, 11), paris(2026, 11, 22, 11), paris(2026, 11, 23, 11),
    paris(2020, 1, 1, 11), paris(2026, 11, 25, 11),
)  # fmt: skip


async def _log_recorded_at(store, dates) -> list[int]:
    from callgate.store.base import LogQuery

    for at in dates:
        await check_call(store, a_config(), a_request(), at, record=True)
    return [e["seq"] for e in await store.log_entries(LogQuery())]


async def _verifies(store) -> tuple[int, object]:
    from callgate.auditlog import verify_chain
    from callgate.store.base import LogQuery

    # Decisions and the writes of facts (a purge of a store with facts is one).
    entries = await store.log_entries(LogQuery(kind="all"))
    return verify_chain(entries, await store.log_anchor())


async def test_purge_never_deletes_a_decision_newer_than_the_cutoff(store):
    """Before, the purge cut the chain up to the last entry dated before the cutoff, here
    the backdated seq 4: three November decisions went with it."""
    assert await _log_recorded_at(store, PURGE_DATES) == [1, 2, 3, 4, 5]
    assert await store.purge_log(paris(2021, 1, 1), MONDAY + days(30)) == 0
    assert await store.log_anchor() is None
    assert await _verifies(store) == (5, None)


async def test_purge_stops_at_the_first_entry_at_or_after_the_cutoff(store):
    from datetime import timedelta

    from callgate.store.base import LogQuery

    await _log_recorded_at(store, PURGE_DATES)
    # Exactly at seq 3's instant: seq 3 is not before the cutoff, it stays.
    assert await store.purge_log(PURGE_DATES[2], MONDAY + days(30)) == 2
    assert [e["seq"] for e in await store.log_entries(LogQuery())] == [3, 4, 5]
    assert (await store.log_anchor())[0] == 2
    assert await _verifies(store) == (3, None)
    # A microsecond later, seq 3 goes, and the backdated seq 4 with it: both are before.
    later = PURGE_DATES[2] + timedelta(microseconds=1)
    assert await store.purge_log(later, MONDAY + days(30)) == 2
    assert [e["seq"] for e in await store.log_entries(LogQuery())] == [5]
    assert (await store.log_anchor())[0] == 4
    assert await _verifies(store) == (1, None)


async def test_purge_of_a_log_all_before_the_cutoff_takes_it_all(store):
    await _log_recorded_at(store, PURGE_DATES)
    assert await store.purge_log(paris(2027, 1, 1), MONDAY + days(30)) == 5
    assert (await store.log_anchor())[0] == 5
    await check_call(store, a_config(), a_request(), paris(2027, 1, 4, 11), record=True)
    assert await _verifies(store) == (1, None)  # the next entry follows the anchor
