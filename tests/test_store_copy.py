"""`callgate db copy`: every record moves, the log still verifies, the copy goes on living."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import MONDAY, a_config, a_request, days, paris

from callgate.cli_log import verify_chain
from callgate.gate import check_call
from callgate.model import Appointment, Consent, ConsentScope, Contract
from callgate.store import StoreError, open_store
from callgate.store.base import RECORD_TABLES, AppointmentRecord, LogQuery
from callgate.store.copy import copy_store

EXAMPLE = Path(__file__).parent.parent / "examples" / "callgate.toml"
CALLEE = "+33612345678"
OTHER = "+33698765432"


def _url(backend: str, tmp_path, request, name: str) -> str:
    if backend == "sqlite":
        return str(tmp_path / f"{name}.db")
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture(params=[("sqlite", "postgres"), ("postgres", "sqlite")], ids="-to-".join)
def urls(request, tmp_path):
    source, target = request.param
    return _url(source, tmp_path, request, "source"), _url(target, tmp_path, request, "target")


async def _fill(store) -> None:
    """Records in every table, a purged log (an anchor) and a revoked consent among them."""
    config = a_config()
    # The log's start, purged: before the facts, whose entries are dated when written (now).
    for at in [MONDAY - days(40), MONDAY - days(39), MONDAY - days(38)]:
        await check_call(store, config, a_request(), at, record=True)
    await store.purge_log(MONDAY - days(35), MONDAY)
    # Given after the crm opt-out below: an opt-out revokes the consents given before it.
    await store.add_consent("acme", CALLEE, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 4)))
    await store.add_consent("acme", OTHER, Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1)))
    await store.revoke_consents("acme", OTHER, None, paris(2026, 2, 1))
    await store.add_contract("acme", OTHER, Contract(paris(2025, 6, 1), paris(2026, 6, 1)))
    await store.add_oppositions([CALLEE], "acme", "crm", paris(2026, 1, 2))
    await store.remove_oppositions(CALLEE, "acme", paris(2026, 1, 3))
    await store.add_oppositions([OTHER], None, "bloctel", paris(2026, 1, 2))
    for at in [MONDAY - days(7), MONDAY - days(6), MONDAY - days(5)]:
        await check_call(store, config, a_request(), at, record=True)
    await store.add_refusal("acme", OTHER, paris(2026, 3, 1), "agent")
    await store.add_appointment("acme", OTHER, AppointmentRecord(
        0, "acme", OTHER, Appointment(MONDAY + days(5), None), paris(2026, 1, 5), source="call",
    ))  # fmt: skip


async def _state(store) -> dict:
    facts = [
        await store.facts("acme", callee, MONDAY + days(1), MONDAY - days(60))
        for callee in (CALLEE, OTHER)
    ]
    entries = await store.log_entries(LogQuery(), after_seq=0, limit=1000)
    return {
        "facts": facts,
        "log": entries,
        "anchor": await store.log_anchor(),
        "consents": await store.consents("acme", None),
        "contracts": await store.contracts("acme", None),
        "appointments": await store.appointments("acme", None),
    }


async def test_a_copy_holds_every_record_and_its_log_verifies(urls):
    source_url, target_url = urls
    source = await open_store(source_url)
    await _fill(source)
    target = await open_store(target_url)
    try:
        shown = []
        copied = await copy_store(source, target, batch=2, progress=shown.append)
        assert copied["decisions"] == 3 and copied["log_anchor"] == 1
        assert copied["attempts"] == 3 and copied["consents"] == 2
        assert {batch.table for batch in shown} == set(RECORD_TABLES)
        assert await _state(target) == await _state(source)
        check = await verify_chain(target)
        verifier, broken = check.verifier, check.problems or check.broken
        assert broken is None and verifier.count == 12  # 3 decisions, 9 writes of facts
        # The copy goes on: new ids follow the copied ones, the chain extends.
        await target.add_consent("acme", OTHER, Consent(ConsentScope.PROSPECTING, MONDAY))
        assert len({c.id for c in await target.consents("acme", None)}) == 3
        calls = [
            await check_call(target, a_config(), a_request(), MONDAY + days(n), record=True)
            for n in (1, 2)
        ]
        assert [call.codes for call in calls] == [(), ("CAP_30_DAYS",)]  # 3 copied + 1
        check = await verify_chain(target)
        verifier, broken = check.verifier, check.problems or check.broken
        assert broken is None and verifier.count == 15
    finally:
        await source.close()
        await target.close()


async def test_a_copy_into_a_store_with_records_is_refused_and_changes_nothing(urls):
    source_url, target_url = urls
    source, target = await open_store(source_url), await open_store(target_url)
    try:
        await _fill(source)
        await target.add_refusal("acme", CALLEE, MONDAY, "crm")
        before = await _state(target)
        with pytest.raises(StoreError, match="refusals has 1"):
            await copy_store(source, target)
        assert await _state(target) == before
    finally:
        await source.close()
        await target.close()


def _callgate(*args: str, db: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CALLGATE_DB": db, "CALLGATE_CONFIG": str(EXAMPLE)}
    return subprocess.run(
        [sys.executable, "-m", "callgate", *args], env=env, capture_output=True, text=True
    )


async def test_db_copy_from_the_command_line(tmp_path, postgres):
    source_url = str(tmp_path / "callgate.db")
    target_url = postgres.new_database().replace("callgate@", "callgate:s3cret@")
    source = await open_store(source_url)
    await _fill(source)
    await source.close()
    done = _callgate("db", "copy", "--to", target_url, db=source_url)
    assert done.returncode == 0, done.stderr
    assert "copied 23 records" in done.stdout  # 9 of them the facts' entries
    assert "the copy's decision log verifies: 12 entries, 7 fact rows" in done.stdout
    assert "  attempts: 3" in done.stderr
    assert "callgate:***@" in done.stderr and "s3cret" not in done.stderr + done.stdout
    again = _callgate("db", "copy", "--to", target_url, db=source_url)
    assert again.returncode != 0 and "holds records" in again.stderr
    assert "Traceback" not in again.stderr
    missing = _callgate("db", "copy", db=source_url)
    assert missing.returncode != 0 and "needs --to" in missing.stderr
    verify = _callgate("log", "verify", db=target_url)
    assert verify.returncode == 0 and "12 entries" in verify.stdout
