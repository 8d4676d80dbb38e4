"""The decision log's hash chain catches an edit, a deletion and a reordering."""

import json
import sqlite3
import subprocess
import time

import pytest
from builders import MONDAY, a_config, a_request, days, paris
from test_cli import CALLGATE, EXAMPLE

from callgate.auditlog import GENESIS, pseudonymise, verify_chain
from callgate.gate import check_call
from callgate.model import Consent, ConsentScope
from callgate.store import open_store
from callgate.store.base import LogQuery


async def _a_log(path, calls: int = 5, *, consent: bool = True):
    """A log of ``calls`` decisions, after a consent's entry (written now, by the clock)."""
    store = await open_store(str(path))  # a SQLite file or a PostgreSQL URL
    if consent:
        await store.add_consent(
            "acme", "+33612345678", Consent(ConsentScope.PROSPECTING, paris(2026, 1, 1))
        )
    for i in range(calls):
        await check_call(store, a_config(), a_request(), MONDAY + days(i), record=True)
    return store


async def _entries(store_url: str) -> list[dict]:
    """A real log's entries, as the store reads them back."""
    store = await _a_log(store_url)
    try:
        return await store.log_entries(LogQuery(kind="all"))  # the consent is an entry too
    finally:
        await store.close()


async def test_an_intact_log_verifies(store_url):
    entries = await _entries(store_url)
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5, 6]
    assert entries[0]["prev_hash"] == GENESIS
    assert verify_chain(entries) == (6, None)


async def test_an_edit_is_caught_at_the_edited_entry(store_url):
    entries = await _entries(store_url)
    entries[2]["verdict"] = "allow" if entries[2]["verdict"] == "reject" else "reject"
    count, broken = verify_chain(entries)
    assert count == 2
    assert broken.seq == 3 and "edited" in broken.problem


async def test_an_edited_callee_is_caught(store_url):
    entries = await _entries(store_url)
    entries[1]["callee"] = "+33612345679"
    _, broken = verify_chain(entries)
    assert broken.seq == 2 and "callee" in broken.problem


async def test_a_deletion_is_caught_at_the_entry_after_it(store_url):
    entries = await _entries(store_url)
    del entries[1]
    count, broken = verify_chain(entries)
    assert count == 1
    assert broken.seq == 3 and "removed" in broken.problem


async def test_a_deletion_that_renumbers_is_still_caught(store_url):
    entries = await _entries(store_url)
    del entries[1]
    for entry in entries[1:]:
        entry["seq"] -= 1
    _, broken = verify_chain(entries)
    assert broken.position == 2  # renumbering changes the content the hash covers


async def test_a_reordering_is_caught(store_url):
    entries = await _entries(store_url)
    entries[2], entries[3] = entries[3], entries[2]
    count, broken = verify_chain(entries)
    assert count == 2
    assert broken.seq == 4
    assert "entries 3 to 3 before it were removed" in broken.problem


async def test_a_pseudonymised_export_verifies_without_the_numbers(store_url):
    store = await _a_log(store_url)
    entries = [pseudonymise(e) for e in await store.log_entries(LogQuery(kind="all"))]
    await store.close()
    assert all("callee" not in e and "callee_salt" not in e for e in entries)
    assert "+33612345678" not in json.dumps(entries)
    assert verify_chain(entries) == (6, None)


async def test_purge_keeps_the_rest_verifiable(store_url):
    # Decisions alone: the consent's entry, dated today, would stop a purge of older ones.
    store = await _a_log(store_url, consent=False)
    assert await store.purge_log(MONDAY + days(2), MONDAY + days(30)) == 2
    rest = await store.log_entries(LogQuery())
    anchor = await store.log_anchor()
    await check_call(store, a_config(), a_request(), MONDAY + days(7), record=True)
    after = await store.log_entries(LogQuery())
    await store.close()
    assert [e["seq"] for e in rest] == [3, 4, 5]
    assert anchor[0] == 2
    assert verify_chain(rest, anchor) == (3, None)
    assert verify_chain(after, anchor) == (4, None)
    assert verify_chain(rest)[1] is not None  # without the anchor, the start looks cut


async def test_an_added_key_is_caught_in_the_store_form(store_url):
    """The hash covers the chained fields only: a key beside them is no part of the entry."""
    entries = await _entries(store_url)
    entries[2]["approved_by"] = "DPO, exception 42"
    count, broken = verify_chain(entries)
    assert count == 2
    assert broken.seq == 3 and "'approved_by'" in broken.problem


async def test_a_callee_without_its_salt_is_caught(store_url):
    """Without the salt nothing checks the number: the callee is kept whole or left out."""
    entries = await _entries(store_url)
    del entries[1]["callee_salt"]
    entries[1]["callee"] = "+33612345679"
    _, broken = verify_chain(entries)
    assert broken.seq == 2 and "'callee_salt'" in broken.problem


# ---------------------------------------------------------------- the auditor's commands


def _cli(tmp_path, *args, status=0):
    env = {
        "CALLGATE_CONFIG": str(EXAMPLE),
        "CALLGATE_DB": str(tmp_path / "log.db"),
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run([CALLGATE, *args], capture_output=True, text=True, env=env, timeout=60)
    assert "Traceback" not in result.stderr
    assert result.returncode == status, (result.stdout, result.stderr)
    return result


async def test_the_auditors_workflow(tmp_path):
    """Export a month, verify it, and find why a given call was refused."""
    store = await _a_log(tmp_path / "log.db", calls=1)  # 23 November: allowed
    await store.close()
    _cli(tmp_path, "check", "--from", "0948000001", "--to", "0612345678", "--record",
         "--at", "2026-11-23T21:00:00+01:00", status=1)  # fmt: skip
    _cli(tmp_path, "check", "--from", "0948000001", "--to", "0699999999", "--record",
         "--at", "2026-11-24T11:00:00+01:00", status=1)  # fmt: skip
    _cli(tmp_path, "check", "--from", "0948000001", "--to", "0612345678", "--record",
         "--at", "2026-12-01T11:00:00+01:00")  # fmt: skip
    export = tmp_path / "november.jsonl"
    _cli(
        tmp_path,
        "log",
        "export",
        "--since",
        "2026-11-01",
        "--until",
        "2026-12-01",
        "-o",
        str(export),
    )
    lines = export.read_text().splitlines()
    # It joins the chain after the consent's entry (dated today): the anchor says where.
    assert len(lines) == 4 and lines[0].startswith('{"anchor": {"seq": 1,')
    assert "OK" in _cli(tmp_path, "log", "verify", str(export)).stdout
    refused = _cli(
        tmp_path, "log", "--callee", "0699999999", "--verdict", "reject", "--json"
    ).stdout
    decision_id = json.loads(refused.splitlines()[0])["id"]
    explained = _cli(tmp_path, "log", "explain", decision_id[:8]).stdout
    assert "CONSENT_MISSING" in explained
    assert "prospecting_consent" in explained and "Loi 2025-594" in explained
    # An auditor's copy that someone edited afterwards:
    edited = [json.loads(line) for line in lines]
    edited[2]["verdict"] = "allow"  # line 1 is the anchor
    export.write_text("\n".join(json.dumps(e) for e in edited) + "\n")
    broken = _cli(tmp_path, "log", "verify", str(export), status=1).stdout
    assert "BROKEN" in broken and "line 3" in broken and "edited" in broken


async def test_editing_the_store_is_caught_by_verify(tmp_path):
    store = await _a_log(tmp_path / "log.db", calls=3)
    await store.close()
    with sqlite3.connect(tmp_path / "log.db") as db:
        db.execute("UPDATE decisions SET verdict = 'reject' WHERE seq = 2")
    result = _cli(tmp_path, "log", "verify", status=1).stdout
    assert "seq 2" in result and "edited" in result
    with sqlite3.connect(tmp_path / "log.db") as db:
        db.execute("DELETE FROM decisions WHERE seq = 2")
    assert "removed" in _cli(tmp_path, "log", "verify", status=1).stdout


# Recorded in this order: the fourth with a past date, after newer ones.
BACKDATED = (
    "2026-11-21T11:00+01:00", "2026-11-22T11:00+01:00", "2026-11-23T11:00+01:00",
    "2020-01-01T11:00+01:00", "2026-11-25T11:00+01:00",
)  # fmt: skip


def test_purge_keeps_a_backdated_decision_behind_newer_ones_and_says_so(tmp_path):
    """Before, `purge --before 2021-01-01` cut the chain up to the backdated decision:
    "purged 4 decisions", the three of November 2026 among them, and verify said OK."""
    for at in BACKDATED:
        _cli(tmp_path, "check", "--from", "0948000001", "--to", "0612345678", "--record",
             "--at", at, status=1)  # fmt: skip
    purged = _cli(tmp_path, "log", "purge", "--before", "2021-01-01").stdout
    assert purged.startswith("purged 0 decisions before 2021-01-01T00:00:00+01:00;")
    assert (
        "kept 1 decisions dated before 2021-01-01T00:00:00+01:00: they come after seq 1,"
        " dated 2026-11-21T10:00:00+00:00, and a purge removes only the start of the log"
    ) in purged
    assert len(_cli(tmp_path, "log", "--json").stdout.splitlines()) == 5
    purged = _cli(tmp_path, "log", "purge", "--before", "2026-11-23").stdout
    assert purged.startswith("purged 2 decisions") and "kept 1 decisions" in purged
    assert "seq 3, dated 2026-11-23T10:00:00+00:00" in purged
    purged = _cli(tmp_path, "log", "purge", "--before", "2026-11-24").stdout
    assert purged.startswith("purged 2 decisions") and "dated before" not in purged
    entries = [json.loads(e) for e in _cli(tmp_path, "log", "--json").stdout.splitlines()]
    assert [(e["seq"], e["at"]) for e in entries] == [(5, "2026-11-25T10:00:00+00:00")]
    verified = _cli(tmp_path, "log", "verify").stdout
    assert verified == "OK: the store: 1 entries, the hash chain is intact\n"


def test_exports_plain_and_pseudonymised_verify_after_a_purge(tmp_path):
    """What `log export` writes, with the anchor a purge leaves, verifies in either form;
    and so does the store it came from."""
    for at in BACKDATED:
        _cli(tmp_path, "check", "--from", "0948000001", "--to", "0612345678", "--record",
             "--at", at, status=1)  # fmt: skip
    _cli(tmp_path, "log", "purge", "--before", "2026-11-22")
    for form in ((), ("--pseudonymise",)):
        export = tmp_path / "export.jsonl"
        _cli(tmp_path, "log", "export", *form, "-o", str(export))
        assert '"anchor"' in export.read_text().splitlines()[0]
        verified = _cli(tmp_path, "log", "verify", str(export)).stdout
        assert verified == f"OK: {export}: 4 entries, the hash chain is intact\n"
    assert "4 entries, the hash chain is intact" in _cli(tmp_path, "log", "verify").stdout


def test_verify_of_a_store_without_entries_says_it_holds_none(tmp_path):
    _cli(tmp_path, "check", "--from", "0948000001", "--to", "0612345678", "--record",
         "--at", BACKDATED[0], status=1)  # fmt: skip
    _cli(tmp_path, "log", "purge", "--before", "2027-01-01")
    verified = _cli(tmp_path, "log", "verify").stdout
    assert verified == "OK: the store: 0 entries: it holds no log entry, so nothing was checked\n"


def test_follow_sees_a_decision_made_by_another_process(tmp_path):
    _cli(tmp_path, "db", "migrate")  # creates the store
    env = {
        "CALLGATE_CONFIG": str(EXAMPLE),
        "CALLGATE_DB": str(tmp_path / "log.db"),
        "PATH": "/usr/bin:/bin",
    }
    follower = subprocess.Popen(
        [CALLGATE, "log", "--follow", "--json"], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        time.sleep(1.0)
        _cli(tmp_path, "check", "--from", "0948000001", "--to", "0612345678", "--record",
             "--at", "2026-11-23T11:00:00+01:00", status=1)  # fmt: skip
        line = follower.stdout.readline()
        assert json.loads(line)["callee"] == "+33612345678"
    finally:
        follower.terminate()
        follower.wait(timeout=5)


@pytest.mark.parametrize(
    "args", [("log", "explain", "nope"), ("log", "verify", "/no/such/file"), ("log", "replay")]
)
def test_log_usage_errors_are_clear(tmp_path, args):
    result = _cli(tmp_path, *args, status=2)
    assert "error:" in result.stderr
