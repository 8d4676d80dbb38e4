"""`callgate db migrate` on stores the previous release made (tests/fixtures/previous-release,
from scripts/make-previous-stores): nothing lost, the log's chain intact, on both backends."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from builders import a_config, a_request, paris

from callgate.cli_log import verify_chain
from callgate.gate import check_call
from callgate.store import open_store, stored_schema_version
from callgate.store.base import LogQuery
from callgate.upgrade import migrate_store, report_lines

FIXTURES = Path(__file__).parent / "fixtures" / "previous-release"
EXPECTED = {
    "attempts": 4, "refusals": 1, "consents": 3, "contracts": 1, "opposition": 2,
    "appointments": 0, "decisions": 5, "log_anchor": 1,
}  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def previous_store(request, tmp_path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "callgate.db"
        shutil.copy(FIXTURES / "callgate.db", path)
        return str(path)
    server = request.getfixturevalue("postgres")
    url = server.new_database()
    subprocess.run(
        [str(server.bindir / "psql"), "--quiet", "-v", "ON_ERROR_STOP=1", "-d", url,
         "-f", str(FIXTURES / "postgres.sql")],
        check=True, capture_output=True,
    )  # fmt: skip
    return url


async def test_a_previous_release_store_migrates_with_nothing_lost(previous_store):
    assert await stored_schema_version(previous_store) == 2
    report = await migrate_store(previous_store)
    assert (report.from_version, report.to_version) == (2, 5)
    assert report.before == {**EXPECTED, "fact_entries": 0}
    assert report.after == {**EXPECTED, "fact_entries": 1}  # the genesis of facts
    # What the purge left, after its anchor, and the genesis of facts the migration chained.
    assert report.ok and report.entries == 6
    assert "store migrated from schema version 2 to 5" in report_lines(report)
    assert "the facts it held are chained: 7 rows, in one genesis entry" in report_lines(report)

    store = await open_store(previous_store)
    try:
        records = await store.consents(None, None)
        consents = {(c.callee, c.consent.scope.value): c.consent for c in records}
        kept = consents[("+33612345678", "prospecting")]
        assert (kept.source, kept.proof) == ("web form", "form #4711")
        assert kept.given_by == "Jeanne Martin"
        assert kept.channel is None and kept.collected_by is None and kept.revoked_how is None
        assert consents[("+33612345679", "prospecting")].revoked_at == paris(2026, 10, 1)
        # The console's hourly counts were filled from the decisions the purge left.
        counted = await store.decision_counts(paris(2000, 1, 1), paris(2100, 1, 1), ())
        calls = [e for e in await store.log_entries(LogQuery()) if e["kind"] == "call"]
        assert calls and counted == [(len(calls),)]
        removed = [e async for e in store.oppositions("+33612345671", None)]
        assert removed[0].removed_at == paris(2026, 9, 20)
        # The old history still decides: its 4 attempts and the refusal of 2026-11-23.
        decision = await check_call(store, a_config(companies=[
            {"id": "acme", "numbers": ["+33948000001"]},
        ]), a_request(), paris(2026, 11, 30, 11), record=True)  # fmt: skip
        assert decision.codes == ("CAP_30_DAYS", "REFUSAL_COOLDOWN")
        check = await verify_chain(store)
        verifier, broken = check.verifier, check.problems or check.broken
        assert broken is None and verifier.count == 7  # the new entry extends the chain
        [genesis] = await store.log_entries(LogQuery(kind="genesis"))
        counts = {part["table"]: part["count"] for part in genesis["bulk"]}
        assert counts == {"consents": 3, "refusals": 1, "contracts": 1, "opposition": 2,
                          "appointments": 0}  # fmt: skip
    finally:
        await store.close()

    again = await migrate_store(previous_store)
    assert again.from_version == again.to_version == 5 and again.ok
    assert report_lines(again)[0] == "already at schema version 5: nothing to do"
    assert again.chain_head != report.chain_head  # the entry added since


def test_db_migrate_from_the_command_line(tmp_path):
    path = tmp_path / "callgate.db"
    shutil.copy(FIXTURES / "callgate.db", path)
    config = tmp_path / "callgate.toml"
    config.write_text('[[companies]]\nid = "acme"\nnumbers = ["+33948000001"]\n')
    command = [sys.executable, "-m", "callgate", "--config", str(config), "--db", str(path),
               "db", "migrate"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "store migrated from schema version 2 to 5" in done.stdout
    assert "  consents: 3 -> 3" in done.stdout and "decision log verifies: 6 entries" in done.stdout
    # A new installation: the store is created at this release's schema.
    new = subprocess.run([*command[:-4], "--db", str(tmp_path / "new.db"), "db", "migrate"],
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert new.returncode == 0 and "store created at schema version 5" in new.stdout
    nowhere = tmp_path / "no" / "such" / "folder.db"
    lost = subprocess.run([*command[:-4], "--db", str(nowhere), "db", "migrate"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert lost.returncode == 2 and "does not exist" in lost.stderr
    assert "Traceback" not in lost.stderr


def test_log_purge_keeps_every_consent_and_says_so(tmp_path):
    path = tmp_path / "callgate.db"
    shutil.copy(FIXTURES / "callgate.db", path)
    config = tmp_path / "callgate.toml"
    config.write_text('[[companies]]\nid = "acme"\nnumbers = ["+33948000001"]\n')
    base = [sys.executable, "-m", "callgate", "--config", str(config), "--db", str(path)]
    done = subprocess.run([*base, "log", "purge", "--before", "2027-01-01"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "consent records and their proofs are not purged" in done.stdout
    assert "(3 consent records kept)" in done.stdout
    listed = subprocess.run([*base, "consent", "list", "--json"], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert len(listed.stdout.splitlines()) == 3
