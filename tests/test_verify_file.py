"""`callgate log verify FILE` on whatever the file holds: an auditor's tool reports a break
(BROKEN at that line, exit 1), it never crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from builders import MONDAY, a_config, a_request, days

from callgate.gate import check_call
from callgate.store import open_store
from callgate.store.base import LogQuery

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "callgate.toml"


@pytest.fixture
async def entries(tmp_path) -> list[dict]:
    """Three decisions of a real log, as `log export` writes them."""
    store = await open_store(str(tmp_path / "log.db"))
    try:
        for day in range(3):
            await check_call(store, a_config(), a_request(), MONDAY + days(day), record=True)
        return await store.log_entries(LogQuery())
    finally:
        await store.close()


def verify(tmp_path: Path, lines: list[bytes]) -> tuple[int, str, Path]:
    """`log verify` by the real command on a file of these lines: (status, stdout, file)."""
    export = tmp_path / "export.jsonl"
    export.write_bytes(b"".join(line + b"\n" for line in lines))
    env = {
        **os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(tmp_path / "cli.db"),
        "PYTHONPATH": str(ROOT),
    }  # fmt: skip
    env.pop("CALLGATE_DEBUG", None)
    result = subprocess.run(
        [sys.executable, "-m", "callgate", "log", "verify", str(export)],
        capture_output=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    stderr = result.stderr.decode(errors="replace")
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    return result.returncode, result.stdout.decode(errors="replace"), export


def line(entry: object) -> bytes:
    return json.dumps(entry).encode()


def edited(entry: dict, **changes: object) -> dict:
    return {**entry, **changes}


def without(entry: dict, key: str) -> dict:
    return {k: v for k, v in entry.items() if k != key}


# Each makes the third line from the third entry (or ignores it).
BAD_THIRD_LINES = {
    "a list": lambda e: b"[1, 2]",
    "a string": lambda e: b'"x"',
    "a number": lambda e: b"42",
    "null": lambda e: b"null",
    "true": lambda e: b"true",
    "the word anchor": lambda e: b'"anchor"',
    "not UTF-8": lambda e: b"\xff\xfe" + line(e)[2:],
    "UTF-8 cut in the middle": lambda e: line(e)[:-2] + b"\xc3",
    "not JSON": lambda e: line(e)[:-1],
    "an integer of 5000 digits": lambda e: b'{"seq": ' + b"7" * 5000 + b"}",
    "nested without end": lambda e: b"[" * 100_000 + b"]" * 100_000,
    "seq a string": lambda e: line(edited(e, seq="x")),
    "seq true": lambda e: line(edited(e, seq=True)),
    "seq huge": lambda e: line(edited(e, seq=10**40)),
    "seq negative": lambda e: line(edited(e, seq=-3)),
    "no seq": lambda e: line(without(e, "seq")),
    "no hash": lambda e: line(without(e, "hash")),
    "hash a number": lambda e: line(edited(e, hash=10**30)),
    "prev_hash a list": lambda e: line(edited(e, prev_hash=[e["prev_hash"]])),
    "reasons an object": lambda e: line(edited(e, reasons={"code": {"x": [None]}})),
    "a lone surrogate": lambda e: line(edited(e, campaign="\ud800")),
    "a lone surrogate callee": lambda e: line(edited(e, callee="\udfff")),
    "an over-long line": lambda e: b'"' + b"x" * (17 << 20) + b'"',
}


@pytest.mark.parametrize("make", BAD_THIRD_LINES.values(), ids=BAD_THIRD_LINES.keys())
async def test_a_bad_line_is_a_break_at_that_line(tmp_path, entries, make):
    status, out, export = verify(tmp_path, [line(entries[0]), line(entries[1]), make(entries[2])])
    assert status == 1, out
    assert out.startswith(f"BROKEN: {export} line 3: entry 3 ("), out
    assert out.endswith("\n  2 entries verified before it\n"), out
    assert len(out) < 500  # the line that broke is named, not printed


ANCHOR = {"seq": 1, "hash": "0" * 64}
BAD_ANCHORS = {
    "a number": 5,
    "null": None,
    "a list": [1, "0" * 64],
    "no hash": {"seq": 1},
    "no seq": {"hash": "0" * 64},
    "seq a string": {**ANCHOR, "seq": "1"},
    "seq negative": {**ANCHOR, "seq": -1},
    "seq a float": {**ANCHOR, "seq": 1.0},
    "hash too short": {**ANCHOR, "hash": "0" * 63},
    "hash not hex": {**ANCHOR, "hash": "g" * 64},
    "hash a number": {**ANCHOR, "hash": 0},
}


@pytest.mark.parametrize("anchor", BAD_ANCHORS.values(), ids=BAD_ANCHORS.keys())
async def test_a_malformed_anchor_is_a_break_at_line_1(tmp_path, entries, anchor):
    status, out, export = verify(tmp_path, [line({"anchor": anchor}), line(entries[1])])
    assert status == 1, out
    assert out.startswith(f"BROKEN: {export} line 1: ") and "anchor" in out, out


async def test_a_good_anchor_still_verifies_the_rest(tmp_path, entries):
    anchor = {"anchor": {"seq": 1, "hash": entries[0]["hash"]}}
    status, out, export = verify(tmp_path, [line(anchor), line(entries[1]), line(entries[2])])
    assert (status, out) == (0, f"OK: {export}: 2 entries, the hash chain is intact\n")


async def test_a_normal_break_keeps_its_report(tmp_path, entries):
    second = edited(entries[1], verdict="allow" if entries[1]["verdict"] == "reject" else "reject")
    status, out, export = verify(tmp_path, [line(entries[0]), line(second), line(entries[2])])
    assert status == 1
    assert out == (
        f"BROKEN: {export} line 2: entry 2 (seq 2, id {entries[1]['id']}): edited: its content"
        " does not match its hash\n  1 entries verified before it\n"
    )


async def test_a_forged_id_does_not_reach_the_terminal(tmp_path, entries):
    """A report prints no escape sequence, nor a megabyte, that a file put in an id."""
    for forged in ("\x1b]0;owned\x07\x1b[2J", "x" * 1_000_000):
        status, out, _ = verify(tmp_path, [line(entries[0]), line(edited(entries[1], id=forged))])
        assert status == 1 and "line 2" in out
        assert "\x1b" not in out and len(out) < 500


def test_an_export_is_verified_on_a_machine_with_no_store(tmp_path, entries):
    """The auditor's laptop: no configuration, no store, a store folder that does not exist;
    the export alone is checked, and nothing is created."""
    export = tmp_path / "export.jsonl"
    export.write_bytes(b"".join(line(entry) + b"\n" for entry in entries))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALLGATE_DB": str(tmp_path / "no" / "x.db")}
    env.pop("CALLGATE_CONFIG", None)
    result = subprocess.run(
        [sys.executable, "-m", "callgate", "log", "verify", str(export)],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, "")
    assert "OK" in result.stdout and "3 entries" in result.stdout
    assert not (tmp_path / "no").exists()


# ---------------------------------------------------------------- exactly the hashed keys


def first_key_twice(entry: dict, key: str, value: object) -> bytes:
    """The entry's line with ``key`` given first with ``value``: json keeps the last one,
    which the hash covers; a person or grep sees the first."""
    first = json.dumps({key: value})[1:-1].encode()
    return b"{" + first + b", " + line(entry)[1:]


def pseudonymised(entry: dict) -> dict:
    return {k: v for k, v in entry.items() if k not in ("callee", "callee_in", "callee_salt")}


def flipped(entry: dict) -> str:
    return "allow" if entry["verdict"] == "reject" else "reject"


# Each makes the second line from the second entry; the hash still matches every one.
FORGED_SECOND_LINES = {
    "a key added": (lambda e: line({**e, "approved_by": "DPO, exception 42"}), "'approved_by'"),
    "a key added, pseudonymised": (
        lambda e: line({**pseudonymised(e), "approved_by": "DPO"}), "'approved_by'"
    ),
    "a key given twice, first": (
        lambda e: first_key_twice(e, "verdict", flipped(e)), "'verdict' is given twice"
    ),
    "a key given twice, nested": (
        lambda e: line(e).replace(b'"code": ', b'"code": "DPO_EXCEPTION", "code": ', 1),
        "'code' is given twice",
    ),
    "a callee changed, its salt removed": (
        lambda e: line({**without(e, "callee_salt"), "callee": "+33699999999"}),
        "'callee_salt'",
    ),
    "a callee as dialled added to a pseudonymised entry": (
        lambda e: line({**pseudonymised(e), "callee_in": "0699999999"}), "'callee_in'"
    ),
    "a null key removed": (lambda e: line(without(e, "channel")), "'channel' was removed"),
}  # fmt: skip


@pytest.mark.parametrize(
    "make, named", FORGED_SECOND_LINES.values(), ids=FORGED_SECOND_LINES.keys()
)
async def test_a_key_the_hash_does_not_vouch_for_is_a_break(tmp_path, entries, make, named):
    """Before, each verified OK: the hash covers some keys, and json keeps the last of two."""
    status, out, export = verify(tmp_path, [line(entries[0]), make(entries[1]), line(entries[2])])
    assert status == 1, out
    assert out.startswith(f"BROKEN: {export} line 2: entry 2 ("), out
    assert named in out and "edited" in out, out
    assert out.endswith("\n  1 entries verified before it\n"), out


async def test_a_forged_key_does_not_reach_the_terminal(tmp_path, entries):
    for forged in ("\x1b]0;owned\x07", "k" * 1_000_000):
        second = line({**entries[1], forged: 1})
        status, out, _ = verify(tmp_path, [line(entries[0]), second])
        assert status == 1 and "line 2" in out
        assert "\x1b" not in out and len(out) < 500


FORGED_ANCHORS = {
    "a key beside the anchor": lambda h: {"anchor": {"seq": 1, "hash": h}, "approved_by": "x"},
    "a key in the anchor": lambda h: {"anchor": {"seq": 1, "hash": h, "note": "x"}},
}


@pytest.mark.parametrize("make", FORGED_ANCHORS.values(), ids=FORGED_ANCHORS.keys())
async def test_an_anchor_with_another_key_is_a_break_at_line_1(tmp_path, entries, make):
    status, out, export = verify(tmp_path, [line(make(entries[0]["hash"])), line(entries[1])])
    assert status == 1, out
    assert out.startswith(f"BROKEN: {export} line 1: ") and "no other key" in out, out


async def test_an_anchor_given_twice_is_a_break_at_line_1(tmp_path, entries):
    anchor = {"seq": 1, "hash": entries[0]["hash"]}
    twice = first_key_twice({"anchor": anchor}, "anchor", {"seq": 0, "hash": "0" * 64})
    status, out, export = verify(tmp_path, [twice, line(entries[1])])
    assert status == 1, out
    assert out.startswith(f"BROKEN: {export} line 1: ") and "'anchor' is given twice" in out


async def test_both_forms_of_an_entry_verify(tmp_path, entries):
    """Whole, as the store keeps it, and pseudonymised, as `log export --pseudonymise`."""
    for form in (lambda e: e, pseudonymised):
        status, out, export = verify(tmp_path, [line(form(e)) for e in entries])
        assert (status, out) == (0, f"OK: {export}: 3 entries, the hash chain is intact\n")


@pytest.mark.parametrize("content", [[], [b""], [b"", b"  "]], ids=["empty", "blank", "blanks"])
def test_an_export_without_entries_is_ok_and_says_it_holds_none(tmp_path, content):
    """Exit 0: an export of a day without calls (a Sunday) is a true extract. But the OK
    vouches for nothing, and says so, rather than "0 entries, the hash chain is intact"."""
    status, out, export = verify(tmp_path, content)
    assert (status, out) == (
        0, f"OK: {export}: 0 entries: it holds no log entry, so nothing was checked\n"
    )  # fmt: skip


async def test_an_export_of_an_anchor_alone_says_it_holds_no_entry(tmp_path, entries):
    anchor = {"anchor": {"seq": 3, "hash": entries[2]["hash"]}}
    status, out, _ = verify(tmp_path, [line(anchor)])
    assert status == 0 and "0 entries: it holds no log entry" in out
