"""PostgreSQL with a standby: after a failover, the gates' store finds the new primary by
itself (a multi-host URL with target_session_attrs=read-write), and the history is there."""

import asyncio
import time

import pytest
from builders import MONDAY, a_config, a_request, days, paris

from callgate.cli_log import verify_chain
from callgate.gate import check_call
from callgate.model import Consent, ConsentScope
from callgate.store import StoreError, open_store

CALLEE = "+33612345678"


@pytest.fixture
def primary_and_standby(postgres):  # the session server proves PostgreSQL is installed
    from harness.postgres import PostgresServer

    primary = PostgresServer()
    primary.start()
    url = primary.new_database()
    standby = primary.standby()
    yield primary, standby, url.rsplit("/", 1)[1]
    standby.stop()
    primary.stop()


async def _replicated(standby_url: str, count: int) -> None:
    """Wait until the standby has replayed ``count`` attempts (replication is async)."""
    import asyncpg

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        connection = await asyncpg.connect(standby_url)
        try:
            if await connection.fetchval("SELECT count(*) FROM attempts") >= count:
                return
        except asyncpg.UndefinedTableError:
            pass  # the schema itself is not replayed yet
        finally:
            await connection.close()
        await asyncio.sleep(0.1)
    raise AssertionError("the standby did not catch up")


async def test_after_a_failover_the_store_finds_the_new_primary_with_the_history(
    primary_and_standby,
):
    primary, standby, name = primary_and_standby
    # The standby first: read-write must make the store pass it over while it is one.
    hosts = f"127.0.0.1:{standby.port},127.0.0.1:{primary.port}"
    url = f"postgresql://callgate@{hosts}/{name}?target_session_attrs=read-write"
    store = await open_store(url)
    try:
        consent = Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1))
        await store.add_consent("acme", CALLEE, consent)
        for day in (21, 14, 7):
            call = await check_call(store, a_config(), a_request(), MONDAY - days(day), record=True)
            assert call.allowed
        await _replicated(f"postgresql://callgate@127.0.0.1:{standby.port}/{name}", 3)

        primary.pause()  # the primary is lost
        with pytest.raises(StoreError):
            await check_call(store, a_config(), a_request(), MONDAY, record=True)
        standby.promote()

        decisions = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and len(decisions) < 2:
            try:
                decisions.append(await check_call(
                    store, a_config(), a_request(), MONDAY + days(len(decisions)) / 24,
                    record=True,
                ))  # fmt: skip
            except StoreError:
                await asyncio.sleep(0.2)
        # The three attempts made before the failover still count: the 4th is allowed,
        # the 5th meets the cap.
        assert [d.codes for d in decisions] == [(), ("CAP_30_DAYS",)]
        check = await verify_chain(store)
        verifier, broken = check.verifier, check.problems or check.broken
        assert broken is None and verifier.count == 6  # the consent's entry, 5 decisions
    finally:
        await store.close()


async def test_a_url_naming_only_the_standby_is_refused_with_a_reason(primary_and_standby):
    _, standby, name = primary_and_standby
    with pytest.raises(StoreError, match="read-only there"):
        await open_store(f"postgresql://callgate@127.0.0.1:{standby.port}/{name}")
