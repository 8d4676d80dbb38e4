"""The console's chain watch: a full verification at start, cheap increments after, and
a break kept with its seq until the chain is verified whole again."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

from builders import MONDAY, a_config, a_request, days, paris

from callgate.console.chainstate import ChainWatch
from callgate.gate import check_call
from callgate.model import Consent, ConsentScope


async def record_calls(store, count: int, start: datetime = MONDAY) -> None:
    """``count`` recorded decisions, an hour apart, and nothing else in the log (refused
    for want of consent: logged all the same)."""
    for i in range(count):
        await check_call(store, a_config(), a_request(), start + timedelta(hours=i), record=True)


async def tamper(store_url: str, sql: str) -> None:
    """An edit made behind the store's back, as someone with database access could."""
    if store_url.startswith("postgres"):
        import asyncpg

        connection = await asyncpg.connect(store_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()
    else:
        with sqlite3.connect(store_url) as db:
            db.execute(sql)


async def settled(watch: ChainWatch, timeout: float = 10.0):
    """The watch's state once it has no verification under way."""
    async with asyncio.timeout(timeout):
        while watch.state().running:
            await asyncio.sleep(0.01)
    return watch.state()


class Reads:
    """The store, with the ``after_seq`` of each read of the log noted."""

    def __init__(self, store) -> None:
        self._store = store
        self.after: list[int] = []

    async def log_entries(self, query, **kw):
        if not kw.get("last"):
            self.after.append(kw.get("after_seq", 0))
        return await self._store.log_entries(query, **kw)

    def __getattr__(self, name):
        return getattr(self._store, name)


async def test_an_intact_chain_is_verified_at_start(store):
    await record_calls(store, 5)
    watch = ChainWatch(store, batch=2)
    assert watch.state().running and watch.state().checked_at is None  # pending
    watch.start()
    try:
        state = await settled(watch)
    finally:
        await watch.stop()
    assert (state.count, state.last_seq, state.broken) == (5, 5, None)
    assert state.checked_at is not None and state.progress is None


async def test_the_facts_entries_are_walked_with_the_decisions(store):
    await store.add_consent(
        "acme", "+33612345678", Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1))
    )
    await record_calls(store, 2)
    await store.add_refusal("acme", "+33612345678", MONDAY, "agent-key")
    watch = ChainWatch(store, batch=2)
    watch.start()
    try:
        state = await settled(watch)
    finally:
        await watch.stop()
    assert (state.count, state.last_seq, state.broken) == (4, 4, None)


async def test_an_empty_log_is_verified_with_nothing_to_check(store):
    watch = ChainWatch(store)
    watch.start()
    try:
        state = await settled(watch)
    finally:
        await watch.stop()
    assert (state.count, state.last_seq, state.broken) == (0, 0, None)
    assert state.checked_at is not None


async def test_increments_read_only_the_new_entries(store):
    await record_calls(store, 4)
    reads = Reads(store)
    watch = ChainWatch(reads, interval=0.05, batch=3)
    watch.start()
    try:
        first = await settled(watch)
        assert first.last_seq == 4
        reads.after.clear()
        await record_calls(store, 3, start=MONDAY + days(1))
        async with asyncio.timeout(10):
            while watch.state().last_seq < 7:
                await asyncio.sleep(0.02)
    finally:
        await watch.stop()
    assert watch.state().count == 7 and watch.state().broken is None
    assert min(reads.after) >= 4  # nothing verified before was read again


async def test_a_tampered_row_is_found_at_its_seq_by_verify_now(store, store_url):
    await record_calls(store, 5)
    watch = ChainWatch(store, interval=0.05)
    watch.start()
    try:
        assert (await settled(watch)).broken is None
        await tamper(store_url, "UPDATE decisions SET campaign = 'spring' WHERE seq = 3")
        await asyncio.sleep(0.15)  # increments only look past seq 5: they cannot see it
        assert watch.state().broken is None
        await watch.verify_now()
        assert watch.state().running  # at once, so a page shows it under way
        state = await settled(watch)
    finally:
        await watch.stop()
    assert state.broken is not None and state.broken.seq == 3
    assert "edited" in state.broken.problem
    assert state.count == 2 and state.last_seq == 2


async def test_a_break_stays_until_the_chain_is_whole_again(store, store_url):
    await record_calls(store, 3)
    await tamper(store_url, "UPDATE decisions SET campaign = 'x' WHERE seq = 2")
    watch = ChainWatch(store, interval=0.02)
    watch.start()
    try:
        assert (await settled(watch)).broken.seq == 2
        await record_calls(store, 2, start=MONDAY + days(1))
        await asyncio.sleep(0.1)
        assert watch.state().broken.seq == 2  # increments do not clear it
        await tamper(store_url, "UPDATE decisions SET campaign = NULL WHERE seq = 2")
        await watch.verify_now()
        state = await settled(watch)
    finally:
        await watch.stop()
    assert state.broken is None and state.last_seq == 5


async def test_a_purge_between_two_checks_is_no_break(store):
    await record_calls(store, 6)
    watch = ChainWatch(store, interval=0.02)
    watch.start()
    try:
        await settled(watch)
        await record_calls(store, 3, start=MONDAY + days(2))
        # Purged past what the watch verified so far: the rest joins the new anchor.
        await store.purge_log(MONDAY + days(2) + timedelta(hours=1), datetime.now(UTC))
        await asyncio.sleep(0.1)
        await record_calls(store, 1, start=MONDAY + days(3))
        async with asyncio.timeout(10):
            while watch.state().last_seq < 10:
                await asyncio.sleep(0.02)
        assert watch.state().broken is None
    finally:
        await watch.stop()


async def test_progress_is_counted_while_it_runs(store):
    await record_calls(store, 9)
    seen: list[tuple[int, int]] = []
    watch = ChainWatch(store, batch=2)

    async def note() -> None:
        while True:
            if (progress := watch.state().progress) is not None:
                seen.append(progress)
            await asyncio.sleep(0)

    noting = asyncio.create_task(note())
    watch.start()
    try:
        await settled(watch)
    finally:
        noting.cancel()
        await watch.stop()
    assert seen and all(total == 9 for _, total in seen)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert max(done for done, _ in seen) >= 8


async def test_stop_ends_the_task(store):
    watch = ChainWatch(store, interval=3600)
    watch.start()
    await settled(watch)
    await watch.stop()
    await watch.stop()  # twice is harmless
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "chain-watch"]


async def test_a_nudge_checks_new_entries_at_once_not_within_the_minute(store):
    await record_calls(store, 3)
    watch = ChainWatch(store, interval=3600)
    watch.start()
    try:
        assert (await settled(watch)).last_seq == 3
        await record_calls(store, 2, MONDAY + timedelta(hours=1))
        await asyncio.sleep(0.2)
        assert watch.state().last_seq == 3  # the next check is an hour away
        watch.nudge()
        async with asyncio.timeout(5):
            while watch.state().last_seq != 5:
                await asyncio.sleep(0.01)
    finally:
        await watch.stop()
    assert watch.state().broken is None


async def test_a_row_edited_after_it_was_verified_is_found_by_the_periodic_full_pass(
    store, store_url
):
    await record_calls(store, 6)
    watch = ChainWatch(store, interval=0.02, full_interval=0.3, batch=2)
    watch.start()
    try:
        first = await settled(watch)
        assert first.broken is None and first.full_checked_at is not None
        flip = "CASE verdict WHEN 'allow' THEN 'reject' ELSE 'allow' END"
        await tamper(store_url, f"UPDATE decisions SET verdict = {flip} WHERE seq = 5")
        async with asyncio.timeout(10):  # nobody asks: the periodic pass finds it
            while watch.state().broken is None:
                await asyncio.sleep(0.02)
        state = watch.state()
    finally:
        await watch.stop()
    assert state.broken.seq == 5 and "edited" in state.broken.problem
    assert state.full_checked_at > first.full_checked_at


async def test_the_last_full_pass_is_kept_apart_from_the_last_increment(store):
    watch = ChainWatch(store, interval=0.02, full_interval=3600)
    assert watch.state().full_checked_at is None  # not yet fully verified
    await record_calls(store, 2)
    watch.start()
    try:
        full = (await settled(watch)).full_checked_at
        assert full is not None and watch.state().checked_at == full
        await record_calls(store, 2, start=MONDAY + days(1))
        async with asyncio.timeout(10):
            while watch.state().last_seq < 4:
                await asyncio.sleep(0.02)
        state = watch.state()
    finally:
        await watch.stop()
    assert state.full_checked_at == full  # increments do not pass for a full verification
    assert state.checked_at > full
