"""`callgate doctor`'s pure parts: dialplan routes, each check's judgement, the report;
the store's decision-by-channel read; and the command itself with nothing to talk to."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from builders import MONDAY, a_config, a_request

from callgate.dialplan import INPUT_VARIABLES
from callgate.doctor import checks
from callgate.doctor.checks import AriSetup, CallTrace, Check, HttpReply, Status
from callgate.doctor.report import as_json, line, overall, summary
from callgate.doctor.routes import Priority, chosen_extension, parse_listing, trace
from callgate.gate import check_call
from callgate.store import newest_schema_version, open_store

CALLGATE = shutil.which("callgate", path=str(Path(sys.executable).parent)) or shutil.which(
    "callgate"
)
SETUP = AriSetup("http://127.0.0.1:8088", "callgate", "/etc/callgate/ari-password", "callgate")


def step(context: str, extension: str, priority: int, app: str, data: str = "", label=None):
    return Priority(context, extension, priority, label, app, data)


# ---------------------------------------------------------------- what ShowDialPlan lists

EMERGENCY_112 = (step("emergency", "112", 1, "Goto", "emergency-dial,${EXTEN},1"),)
VIA_ARI = (
    step("callgate-via-ari", "_[+0-9].", 1, "NoOp", "callgate (ARI)"),
    step("callgate-via-ari", "_[+0-9].", 2, "Set", "TIMEOUT(absolute)=${CALLGATE_WAIT}"),
    step("callgate-via-ari", "_[+0-9].", 3, "Stasis", "callgate"),
    step("callgate-via-ari", "_[+0-9].", 4, "GotoIf",
         '$["${STASISSTATUS}" != "SUCCESS"]?callgate-verdict,${EXTEN},gate-down'),
    step("callgate-via-ari", "_[+0-9].", 5, "Goto", "callgate-verdict,${EXTEN},1"),
)  # fmt: skip
EMERGENCY_DIAL = (
    step("emergency-dial", "_X.", 1, "NoOp", "emergency"),
    step("emergency-dial", "_X.", 2, "Dial", "PJSIP/${EXTEN}@carrier"),
    step("emergency-dial", "_X.", 3, "Hangup"),
)
SHIPPED = {
    ("callgate-outbound", "112"): EMERGENCY_112 + VIA_ARI,
    ("emergency-dial", "112"): EMERGENCY_DIAL,
    ("callgate-outbound", "+000000"): VIA_ARI,
}


def test_a_listing_keeps_priorities_and_leaves_hints_and_headers_out():
    events = [
        {"Response": "Success", "EventList": "start", "Message": "DialPlan list will follow"},
        {"Event": "ListDialplan", "Context": "emergency", "Extension": "112", "Priority": "1",
         "Application": "Goto", "AppData": "emergency-dial,${EXTEN},1", "Registrar": "pbx_config"},
        {"Event": "ListDialplan", "Context": "agents", "Extension": "1001", "Priority": "hint",
         "Application": "PJSIP/1001"},
        {"Event": "ListDialplan", "Context": "agents", "IncludeContext": "emergency"},
        {"Event": "ListDialplan", "Context": "x", "Extension": "s", "Priority": "2",
         "ExtensionLabel": "refuse", "Application": "Hangup", "AppData": "21"},
        {"Event": "ShowDialPlanComplete", "EventList": "Complete", "ListItems": "3"},
    ]  # fmt: skip
    assert parse_listing(events) == (
        EMERGENCY_112[0],
        step("x", "s", 2, "Hangup", "21", label="refuse"),
    )


def test_the_first_context_listed_wins_and_in_it_an_exact_extension_beats_patterns():
    listing = (
        step("mine", "_X.", 1, "NoOp", "any"),
        step("mine", "_11X", 1, "NoOp", "narrower"),
        step("mine", "_1XX", 1, "NoOp", "wider"),
        step("mine", "112", 2, "Dial", "exact"),
        step("mine", "112", 1, "NoOp", "exact"),
        step("included", "112", 1, "NoOp", "later"),
    )
    assert [s.data for s in chosen_extension(listing)] == ["exact", "exact"]
    assert [s.priority for s in chosen_extension(listing)] == [1, 2]
    patterns = tuple(s for s in listing if s.extension.startswith("_"))
    assert [s.data for s in chosen_extension(patterns)] == ["narrower"]
    assert chosen_extension(()) == ()


def test_an_emergency_number_included_first_is_dialled_without_the_gate():
    found = trace(SHIPPED, "callgate-outbound", "112")
    assert found.missing == frozenset()
    assert found.matched and found.first == EMERGENCY_112[0]
    assert found.gates == ()
    assert [str(s) for s in found.dials] == ["Dial(PJSIP/${EXTEN}@carrier)"]


def test_the_trace_asks_for_the_listings_it_needs():
    first = trace({("callgate-outbound", "112"): EMERGENCY_112}, "callgate-outbound", "112")
    assert first.missing == {("emergency-dial", "112")}


def test_without_the_include_an_emergency_number_meets_the_gate():
    found = trace({("callgate-outbound", "112"): VIA_ARI}, "callgate-outbound", "112")
    assert [str(s) for s in found.gates] == ["Stasis(callgate)"]
    assert found.dials == ()


def test_every_branch_of_a_gotoif_is_followed_and_labels_are_found():
    listings = {
        ("ctx", "112"): (
            step("ctx", "112", 1, "GotoIf", '$["${X}" = "1"]?gated:other,${EXTEN},1'),
            step("ctx", "112", 2, "Stasis", "callgate", label="gated"),
        ),
        ("other", "112"): (step("other", "_X.", 1, "Dial", "PJSIP/${EXTEN}@carrier"),),
    }
    found = trace(listings, "ctx", "112")
    assert [str(s) for s in found.gates] == ["Stasis(callgate)"]
    assert [str(s) for s in found.dials] == ["Dial(PJSIP/${EXTEN}@carrier)"]


def test_a_one_branch_gotoif_falls_through_and_hangup_ends_a_route():
    listings = {
        ("ctx", "112"): (
            step("ctx", "112", 1, "GotoIf", "${NIGHT}?night,1"),
            step("ctx", "112", 2, "Hangup"),
            step("ctx", "112", 3, "Stasis", "callgate"),
        ),
        ("ctx", "night"): (step("ctx", "night", 1, "Dial", "PJSIP/112@night-carrier"),),
    }
    found = trace(listings, "ctx", "112")
    assert found.gates == ()
    assert [s.data for s in found.dials] == ["PJSIP/112@night-carrier"]


def test_a_jump_to_a_variable_cannot_be_followed_and_says_so():
    listings = {("ctx", "112"): (step("ctx", "112", 1, "Goto", "${ROUTE},${EXTEN},1"),)}
    found = trace(listings, "ctx", "112")
    assert found.unresolved == ("Goto(${ROUTE},${EXTEN},1) in [ctx]",)


def test_a_looping_dialplan_is_walked_once():
    listings = {("ctx", "112"): (step("ctx", "112", 1, "Goto", "1"),)}
    assert trace(listings, "ctx", "112").gates == ()


def test_only_the_check_endpoint_of_agi_is_the_gate():
    listings = {
        ("ctx", "+000000"): (
            step("ctx", "_+X.", 1, "AGI", "agi://127.0.0.1:4573/cdr"),
            step("ctx", "_+X.", 2, "AGI", "agi://127.0.0.1:4573/check,${CALLGATE_COMPANY}"),
        )
    }
    assert [s.data for s in trace(listings, "ctx", "+000000").gates] == [
        "agi://127.0.0.1:4573/check,${CALLGATE_COMPANY}"
    ]


# ---------------------------------------------------------------- ARI, version, modules


def test_ari_access_says_what_is_wrong_and_where():
    assert checks.ari_access(SETUP, None, HttpReply(200, {})).status is Status.OK
    refused = checks.ari_access(SETUP, None, HttpReply(401, {"message": "Authentication required"}))
    assert refused.status is Status.FAIL
    assert "ari.conf [callgate]" in refused.fix and "/etc/callgate/ari-password" in refused.fix
    down = checks.ari_access(SETUP, None, HttpReply(None, error="connection refused"))
    assert "connection refused" in down.detail and "http.conf" in down.fix
    unread = checks.ari_access(SETUP, "ari.password_file: cannot read /x: No such file", None)
    assert unread.status is Status.FAIL and "password_file" in unread.fix
    assert "res_ari_asterisk.so" in checks.ari_access(SETUP, None, HttpReply(404, "")).fix


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("22.10.1+dfsg+~cs6.17.60671434-1", (22, 10, 1)),
        ("certified/20.7-cert1", (20, 7, 0)),
        ("GIT-master-abc", None),
    ],
)
def test_versions_are_read_from_what_asterisk_says(text, version):
    assert checks.parse_version(text) == version


@pytest.mark.parametrize(
    ("version", "status"),
    [
        ("16.30.0", Status.FAIL),
        ("18.20.0", Status.WARN),
        ("22.10.1", Status.OK),
        ("x", Status.WARN),
    ],
)
def test_the_asterisk_release(version, status):
    assert checks.asterisk_release({"system": {"version": version}}).status is status


POOL_GATE = step("callgate-via-ari-pool", "_[+0-9].", 4, "StasisBroadcast", "500,^callgate")
BROADCAST = frozenset(checks.BROADCAST_MODULES)


@pytest.mark.parametrize(
    ("version", "loaded", "gate", "status"),
    [
        ("22.10.1", BROADCAST, POOL_GATE, Status.OK),
        ("22.9.0", frozenset(), POOL_GATE, Status.FAIL),  # 22.10.0 is the first with it
        ("20.20.0", frozenset(), POOL_GATE, Status.FAIL),  # has it, not loaded
        ("22.9.0", frozenset(), None, Status.OK),  # not used: only noted
        ("21.12.0", frozenset(), None, Status.OK),
    ],
)
def test_stasis_broadcast_matters_only_to_the_pool_flavour(version, loaded, gate, status):
    check = checks.stasis_broadcast({"system": {"version": version}}, loaded, gate)
    assert check.status is status, check


def test_stasis_broadcast_missing_names_the_modules_to_load():
    check = checks.stasis_broadcast({"system": {"version": "22.10.1"}}, frozenset(), POOL_GATE)
    assert check.fix == (
        "modules.conf: load => app_stasis_broadcast.so; load => res_stasis_broadcast.so"
    )


def _running(*names: str) -> list[dict[str, str]]:
    return [{"name": name, "status": "Running"} for name in names]


def test_modules_names_each_missing_one_with_its_load_line():
    every = [module for module, _ in checks.modules_needed(agi=True)]
    assert checks.modules(_running(*every), agi=True).status is Status.OK
    others = [m for m in every if m != "func_cut.so"]
    listed = [*_running(*others), {"name": "func_cut.so", "status": "Not Running"}]
    check = checks.modules(listed, agi=True)
    assert check.status is Status.FAIL
    assert "func_cut.so" in check.detail and "load => func_cut.so" in check.fix
    no_agi = [m for m in every if m != "res_agi.so"]
    assert checks.modules(_running(*no_agi), agi=False).status is Status.OK
    assert checks.modules(_running(*no_agi), agi=True).status is Status.FAIL


# ---------------------------------------------------------------- the app name

GATE_FILTER = {"events_allowed": [{"type": t} for t in sorted(checks.GATE_EVENTS)]}
STASIS = step("callgate-via-ari", "_[+0-9].", 4, "Stasis", "callgate")
AGI = step("callgate-via-agi", "_[+0-9].", 4, "AGI", "agi://127.0.0.1:4573/check")


@pytest.mark.parametrize(
    ("reply", "gate", "status"),
    [
        (HttpReply(404, {"message": "Application not found"}), None, Status.WARN),
        (HttpReply(404, {"message": "Application not found"}), STASIS, Status.WARN),
        (HttpReply(404, {"message": "Application not found"}), AGI, Status.OK),
        (HttpReply(200, GATE_FILTER), STASIS, Status.OK),
        (HttpReply(200, GATE_FILTER), None, Status.OK),
        (HttpReply(200, {"events_allowed": []}), None, Status.FAIL),  # takes every event
        (HttpReply(200, GATE_FILTER), step("x", "_X.", 1, "Stasis", "other"), Status.FAIL),
        (HttpReply(200, GATE_FILTER), POOL_GATE, Status.OK),
        (HttpReply(200, GATE_FILTER), step("x", "_X.", 1, "StasisBroadcast", "500,^gate-"),
         Status.FAIL),
    ],
)  # fmt: skip
def test_the_app_name_is_free_or_held_by_a_callgate_gate(reply, gate, status):
    check = checks.gate_app(SETUP, reply, gate, "callgate-outbound")
    assert check.status is status, check


def test_another_client_on_the_app_name_is_named_with_the_fix():
    check = checks.gate_app(SETUP, HttpReply(200, {"events_allowed": []}), None, "ctx")
    assert "another client" in check.detail and "every event" in check.detail
    assert "[ari] app" in check.fix


# ---------------------------------------------------------------- the trunk


def _endpoint(**attributes: str) -> HttpReply:
    values = {"from_user": "", "send_pai": "true", **attributes}
    return HttpReply(200, [{"attribute": k, "value": v} for k, v in values.items()])


def test_from_user_on_the_trunk_fails_with_the_line_to_remove():
    check = checks.trunk_from_user("carrier", _endpoint(from_user="0948000001"))
    assert check.status is Status.FAIL
    assert check.fix.startswith("pjsip.conf [carrier]: remove the line from_user = 0948000001")
    assert checks.trunk_from_user("carrier", _endpoint()).status is Status.OK


def test_a_trunk_without_pai_warns_and_a_missing_one_fails():
    assert checks.trunk_pai("carrier", _endpoint()).status is Status.OK
    quiet = checks.trunk_pai("carrier", _endpoint(send_pai="false"))
    assert quiet.status is Status.WARN and "send_pai = yes" in quiet.fix
    missing = HttpReply(404, {"message": "Object with id 'nope' not found"})
    assert checks.trunk_from_user("nope", missing).status is Status.FAIL
    assert "--trunk" in checks.trunk_from_user("nope", missing).fix
    assert checks.trunk_pai("nope", missing).status is Status.SKIP


# ---------------------------------------------------------------- the store


def test_the_store_check():
    assert checks.store("x.db", None, 2, 2).status is Status.OK
    assert checks.store("x.db", "cannot open", None, 2).status is Status.FAIL
    newer = checks.store("x.db", None, 3, 2)
    assert newer.status is Status.FAIL and "newer" in newer.detail


async def test_a_decision_is_found_by_its_channel(store_url):
    store = await open_store(store_url)
    try:
        config = a_config()
        request = a_request(callee="+000000")
        await check_call(store, config, request, MONDAY, record=True, channel="chan-1")
        await check_call(store, config, request, MONDAY, record=True, channel="chan-2")
        found = await store.decision_for_channel("chan-1", MONDAY - timedelta(minutes=1))
        assert found is not None and found["channel"] == "chan-1"
        assert [r["code"] for r in found["reasons"]] == ["DEST_INVALID"]
        assert await store.decision_for_channel("chan-1", MONDAY + timedelta(seconds=1)) is None
        assert await store.decision_for_channel("chan-3", MONDAY - timedelta(days=1)) is None
        assert await store.migrate() == newest_schema_version(store_url)
    finally:
        await store.close()


# ---------------------------------------------------------------- emergency numbers


def test_emergency_routes_pass_when_every_number_is_dialled_before_the_gate():
    traced = [trace(SHIPPED, "callgate-outbound", "112")]
    check = checks.emergency_routes("callgate-outbound", traced, context_missing=False)
    assert check.status is Status.OK
    assert "[emergency]" in check.detail and "Dial(PJSIP/${EXTEN}@carrier)" in check.detail


def test_emergency_routes_through_the_gate_fail_with_the_include_to_add():
    traced = [trace({("callgate-outbound", "112"): VIA_ARI}, "callgate-outbound", "112")]
    check = checks.emergency_routes("callgate-outbound", traced, context_missing=False)
    assert check.status is Status.FAIL
    assert "112 reaches the gate" in check.detail
    assert check.fix.startswith("extensions.conf [callgate-outbound]: include => emergency")


def test_emergency_routes_that_match_nothing_or_end_undialled_fail():
    nothing = [trace({("ctx", "112"): None}, "ctx", "112")]
    assert checks.emergency_routes("ctx", nothing, False).status is Status.FAIL
    dead = [trace({("ctx", "112"): (step("ctx", "_X.", 1, "Hangup", "21"),)}, "ctx", "112")]
    assert "ends without a Dial()" in checks.emergency_routes("ctx", dead, False).detail
    unsure = [trace({("ctx", "112"): (step("ctx", "_X.", 1, "Goto", "${R},1"),)}, "ctx", "112")]
    assert checks.emergency_routes("ctx", unsure, False).status is Status.WARN
    assert checks.emergency_routes("ctx", [], True).status is Status.FAIL


def test_without_ami_the_emergency_routes_are_not_checked_and_that_is_no_failure():
    check = checks.emergency_without_ami()
    assert check.status is Status.SKIP and "[ami]" in check.detail
    assert overall([check]) is Status.OK


# ---------------------------------------------------------------- the doctor's call

REJECTED = {"id": "4c0f13bd-0000", "verdict": "reject", "reasons": [{"code": "DEST_INVALID"}]}
# asterisk-conf/'s refusal: 603 for an agent's PJSIP call, cause 21 for the doctor's Local one.
GATED_RUN = (
    "[callgate-via-ari] Stasis(callgate)",
    '[callgate-verdict] ExecIf($["Local" = "PJSIP"]?PJSIPHangup(603))',
    "[callgate-verdict] Hangup(21)",
)
# A PBX that refuses every call with cause 21 (a 403 for a softphone) fails closed too.
HANGUP_21_RUN = ("[callgate-via-ari] Stasis(callgate)", "[callgate-verdict] Hangup(21)")


def a_call(**changes) -> CallTrace:
    base = CallTrace(
        "callgate-outbound", "+000000", "chan-2", cause=21, cause_text="Call Rejected",
        ran=GATED_RUN, decision=REJECTED, channelvars=dict.fromkeys(INPUT_VARIABLES, ""),
    )  # fmt: skip
    return replace(base, **changes)


@pytest.mark.parametrize("ran", [GATED_RUN, HANGUP_21_RUN], ids=["ours", "hangup-21"])
def test_the_call_passes_when_the_gate_rejected_it_and_it_hung_up_with_cause_21(ran):
    check = checks.synthetic_call(a_call(ran=ran), 10)
    assert check.status is Status.OK and "decision 4c0f13bd" in check.detail


def test_a_pjsip_hangup_alone_leaves_a_local_call_without_a_cause():
    ran = ("[callgate-via-ari] Stasis(callgate)", "[callgate-verdict] PJSIPHangup(603)")
    check = checks.synthetic_call(a_call(ran=ran, cause=0, cause_text="Unknown"), 10)
    assert check.status is Status.FAIL
    assert "cause 0" in check.detail and "PJSIPHangup() refuses PJSIP channels only" in check.detail
    assert check.fix is not None and "then Hangup(21)" in check.fix


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"decision": None, "ran": ("[ctx] NoOp(x)", "[ctx] Hangup(21)")}, "never asked the gate"),
        ({"decision": None}, "no gate decided it"),
        ({"decision": None, "ran": ()}, "nothing ran"),
        ({"decision": None, "ran": ("[ctx] Dial(PJSIP/+000000@carrier)",)}, "was dialled"),
        ({"decision": None, "timed_out": True}, "still up after 10 s"),
        ({"cause": 16, "cause_text": "Normal Clearing"}, "cause 16"),
        ({"decision": {**REJECTED, "verdict": "allow"}}, "must reject DEST_INVALID"),
        ({"originate_error": "HTTP 400 Allocation failed"}, "cannot originate"),
        ({"store_error": "locked"}, "cannot read the decision log"),
    ],
)
def test_the_call_fails_saying_what_happened(changes, words):
    check = checks.synthetic_call(a_call(**changes), 10)
    assert check.status is Status.FAIL and words in check.detail, check
    assert check.fix or "store_error" in changes


def test_channelvars_warns_with_the_exact_line_when_missing():
    assert checks.channelvars(a_call()).status is Status.OK
    for carried in (None, {"CALLGATE_COMPANY": "acme"}):
        check = checks.channelvars(a_call(channelvars=carried))
        assert check.status is Status.WARN
        assert check.fix == (
            "ari.conf [general]: channelvars = CALLGATE_COMPANY,CALLGATE_PURPOSE,"
            "CALLGATE_CAMPAIGN,CALLGATE_DEPT, then `module reload res_ari.so`"
        )
    assert checks.channelvars(a_call(originate_error="x")).status is Status.SKIP


# ---------------------------------------------------------------- the report


def test_a_line_shows_the_fix_under_anything_but_ok():
    good = Check("ari", Status.OK, "fine", "never shown")
    assert line(good) == "ok    ari               fine"
    bad = Check("trunk", Status.FAIL, "from_user set", "pjsip.conf [carrier]: remove it")
    assert line(bad).splitlines() == [
        "FAIL  trunk             from_user set",
        "                        fix: pjsip.conf [carrier]: remove it",
    ]


def test_the_result_is_the_worst_status_and_skips_do_not_count():
    ok, warn = Check("a", Status.OK, ""), Check("b", Status.WARN, "")
    fail, skip = Check("c", Status.FAIL, ""), Check("d", Status.SKIP, "")
    assert overall([ok, skip]) is Status.OK
    assert overall([ok, warn, skip]) is Status.WARN
    assert overall([warn, fail]) is Status.FAIL
    assert summary([ok, warn, skip]).startswith("doctor: 1 ok, 1 warn, 1 skip: this PBX works")
    assert as_json([fail]) == {
        "result": "fail",
        "checks": [{"name": "c", "status": "fail", "detail": "", "fix": None}],
    }


# ---------------------------------------------------------------- the command


def _doctor(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    password = tmp_path / "ari-password"
    password.write_text("secret-of-the-test")
    config = tmp_path / "callgate.toml"
    config.write_text(
        f'[store]\nurl = "{tmp_path / "doctor.db"}"\n'
        f'[ari]\nurl = "http://127.0.0.1:9"\npassword_file = "{password}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    return subprocess.run(
        [CALLGATE, "--config", str(config), "doctor", *args],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip


def test_a_store_that_does_not_exist_is_a_finding_not_created(tmp_path):
    result = _doctor(tmp_path)
    assert f"FAIL  store             no store at {tmp_path / 'doctor.db'}" in result.stdout
    assert not (tmp_path / "doctor.db").exists()


def test_a_store_behind_this_callgate_is_found_and_left_as_it_is(tmp_path):
    with sqlite3.connect(tmp_path / "doctor.db") as db:  # as an older callgate left it
        db.execute("PRAGMA user_version = 1")
    result = _doctor(tmp_path)
    assert "FAIL  store" in result.stdout
    assert "schema version 1, older than this callgate's (5)" in result.stdout
    with sqlite3.connect(tmp_path / "doctor.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1


def test_with_no_pbx_to_talk_to_the_doctor_fails_cleanly(tmp_path):
    _doctor(tmp_path)  # writes the configuration
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    subprocess.run([CALLGATE, "--config", str(tmp_path / "callgate.toml"), "db", "migrate"],
                   check=True, capture_output=True, env=env)  # fmt: skip
    result = _doctor(tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines()[0].startswith("FAIL  ari")
    assert "cannot reach ARI at http://127.0.0.1:9: connection refused" in result.stdout
    assert "ok    store" in result.stdout and "skip  emergency" in result.stdout
    assert "secret-of-the-test" not in result.stdout
    report = json.loads(_doctor(tmp_path, "--json").stdout)
    assert report["result"] == "fail"


@pytest.mark.parametrize("args", [("--context", "a@b"), ("--trunk", ""), ("--nope",)])
def test_usage_errors_exit_2_without_a_traceback(tmp_path, args):
    result = _doctor(tmp_path, *args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "error:" in result.stderr


def test_a_malformed_store_url_is_a_finding_and_its_password_stays_hidden(tmp_path):
    password = tmp_path / "ari-password"
    password.write_text("x")
    config = tmp_path / "callgate.toml"
    config.write_text(
        '[store]\nurl = "postgresql://u@127.0.0.1:99999/db?password=hunter2"\n'
        f'[ari]\nurl = "http://127.0.0.1:9"\npassword_file = "{password}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
    result = subprocess.run(
        [CALLGATE, "--config", str(config), "doctor", "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    [store] = [check for check in report["checks"] if check["name"] == "store"]
    assert store["status"] == "fail"
    assert "hunter2" not in result.stdout + result.stderr
