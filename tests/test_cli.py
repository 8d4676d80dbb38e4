"""The real `callgate` command, run as a user runs it."""

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent.parent / "examples" / "callgate.toml"
CALLGATE = shutil.which("callgate", path=str(Path(sys.executable).parent)) or shutil.which(
    "callgate"
)
PUBLIC_KEYS = {
    "verdict", "caller_in", "caller_out", "callee", "territory", "purpose", "reasons",
    "retry_after", "ruleset", "decision_id",
}  # fmt: skip


@pytest.fixture
def run(tmp_path):
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(tmp_path / "cli.db")}
    env.pop("CALLGATE_DEBUG", None)

    def run(*args, check_status=None, config=None):
        command = [CALLGATE, *(["--config", str(config)] if config else []), *args]
        result = subprocess.run(
            command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60
        )
        assert "Traceback" not in result.stderr, result.stderr
        if check_status is not None:
            assert result.returncode == check_status, (result.stdout, result.stderr)
        return result

    return run


def instant(text):
    return datetime.fromisoformat(text)


def verdict(run, *args, status):
    result = run("check", *args, "--json", check_status=status)
    return json.loads(result.stdout)


def record_calls(run, *days):
    """Allowed calls to 0612345678 at 11:00 on each day, counted as attempts."""
    for day in days:
        args = ("--from", "0948000001", "--to", "0612345678", "--at", f"{day}T11:00", "--record")
        verdict(run, *args, status=0)


def test_the_console_script_is_installed():
    assert CALLGATE, "pip install -e . puts callgate on PATH"


def test_check_allows_and_rejects_with_exit_status_and_schema(run):
    run("consent", "add", "--to", "0612345678", "--company", "acme", "--at", "2026-09-01",
        "--source", "web form", "--proof", "form #42", check_status=0)  # fmt: skip
    allowed = verdict(
        run,
        "--from",
        "0948000001",
        "--to",
        "0612345678",
        "--at",
        "2026-11-23T12:59:59+01:00",
        status=0,
    )
    assert set(allowed) == PUBLIC_KEYS
    assert allowed["verdict"] == "allow"
    assert allowed["caller_out"] == "+33948000001"
    assert allowed["callee"] == "+33612345678"
    assert allowed["territory"] == "FR-MET"
    assert allowed["ruleset"] == "fr-2026-08-11"
    rejected = verdict(
        run,
        "--from",
        "0948000001",
        "--to",
        "0612345678",
        "--at",
        "2026-11-23T13:00:00+01:00",
        status=1,
    )
    assert [r["code"] for r in rejected["reasons"]] == ["HOURS_OUTSIDE"]
    assert rejected["retry_after"] == "2026-11-23T14:00:00+01:00"


def test_readable_output_says_it_in_words(run):
    run("consent", "add", "--to", "0696123456", "--at", "2026-09-01", check_status=0)
    at = "2026-11-23T12:00:00+01:00"
    result = run("check", "--from", "0612345678", "--to", "0696123456", "--at", at, check_status=1)
    assert result.stdout.startswith("REJECT  call to +596696123456 (FR-MQ)")
    assert "0612345678 -> +33947700001 (rewritten)" in result.stdout
    assert "HOURS_OUTSIDE" in result.stdout and "07:00 callee time" in result.stdout
    assert "retry from Monday 23 November 2026 10:00 callee time (UTC-04:00)" in result.stdout


def test_record_counts_attempts_up_to_the_cap(run):
    run("consent", "add", "--to", "0612345678", "--at", "2026-09-01", check_status=0)
    record_calls(run, "2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05")
    dry = verdict(
        run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-12-01T11:00", status=1
    )
    assert [r["code"] for r in dry["reasons"]] == ["CAP_30_DAYS"]
    assert dry["retry_after"] == "2026-12-02T10:00:00+01:00"
    verdict(run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-12-02T10:00", status=0)


def test_refusal_blocks_for_61_days(run):
    run("consent", "add", "--to", "0612345678", "--at", "2026-09-01", check_status=0)
    run(
        "outcome",
        "refused",
        "--to",
        "0612345678",
        "--company",
        "acme",
        "--at",
        "2026-11-23T11:00",
        check_status=0,
    )
    rejected = verdict(
        run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-11-24T11:00", status=1
    )
    assert [r["code"] for r in rejected["reasons"]] == ["REFUSAL_COOLDOWN"]
    assert rejected["retry_after"] == "2027-01-25T10:00:00+01:00"  # D+61 = Sat 23 Jan


def test_consent_revoke_and_list(run):
    run(
        "consent",
        "add",
        "--to",
        "0612345678",
        "--at",
        "2026-09-01",
        "--proof",
        "call 2026-08-30",
        "--by",
        "Jeanne Martin",
        "--source",
        "inbound call",
        check_status=0,
    )
    run("consent", "revoke", "--to", "0612345678", "--at", "2026-10-01", check_status=0)
    listed = run("consent", "list", "--to", "0612345678", "--json", check_status=0)
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["proof"], row["given_by"], row["source"]) == (
        "call 2026-08-30",
        "Jeanne Martin",
        "inbound call",
    )
    assert instant(row["revoked_at"]) == instant("2026-10-01T00:00:00+02:00")
    rejected = verdict(
        run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-11-23T11:00", status=1
    )
    assert [r["code"] for r in rejected["reasons"]] == ["CONSENT_REVOKED"]


def test_contract_add_end_list(run):
    args = ("--from", "0948000001", "--to", "0612345678", "--purpose", "contract")
    assert (
        verdict(run, *args, "--at", "2026-11-23T11:00", status=1)["reasons"][0]["code"]
        == "CONTRACT_MISSING"
    )
    run("contract", "add", "--to", "0612345678", "--at", "2026-01-01", check_status=0)
    verdict(run, *args, "--at", "2026-11-23T11:00", status=0)
    run("contract", "end", "--to", "0612345678", "--at", "2026-11-24", check_status=0)
    verdict(run, *args, "--at", "2026-11-25T11:00", status=1)
    listed = run("contract", "list", "--json", check_status=0)
    assert instant(json.loads(listed.stdout)["end"]) == instant("2026-11-24T00:00:00+01:00")


def test_optout_add_remove_list(run):
    run("consent", "add", "--to", "0612345678", "--at", "2026-09-01", check_status=0)
    run("optout", "add", "--to", "06 12 34 56 78", "--at", "2026-11-01", check_status=0)
    rejected = verdict(
        run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-11-23T11:00", status=1
    )
    # The opt-out is also a revocation of the consent given before it (RULES-FR §4).
    codes = [r["code"] for r in rejected["reasons"]]
    assert codes == ["OPPOSITION_LISTED", "CONSENT_REVOKED"]
    run("optout", "remove", "--to", "0612345678", "--at", "2026-11-20", check_status=0)
    revoked = verdict(
        run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-11-23T11:00", status=1
    )
    assert [r["code"] for r in revoked["reasons"]] == ["CONSENT_REVOKED"]
    run("consent", "add", "--to", "0612345678", "--at", "2026-11-21", check_status=0)
    verdict(run, "--from", "0948000001", "--to", "0612345678", "--at", "2026-11-23T11:00", status=0)
    listed = run("optout", "list", "--json", check_status=0)
    assert instant(json.loads(listed.stdout)["removed_at"]) == instant("2026-11-20T00:00:00+01:00")


def test_optout_import_reports_bad_lines_and_is_idempotent(run, tmp_path):
    bloctel = tmp_path / "bloctel.csv"
    bloctel.write_text(
        "numero;date\n0612345678;2026-01-01\n+33612345679;x\n\nnot a number\n0033612345680\n"
    )
    first = run("optout", "import", str(bloctel), "--source", "bloctel", check_status=0)
    assert "3 numbers, 3 new entries, 0 already listed, 1 rejected" in first.stdout
    assert "line 5: not a valid number: 'not a number'" in first.stderr
    again = run("optout", "import", str(bloctel), check_status=0)
    assert "0 new entries, 3 already listed" in again.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("check", "--from", "0948000001", "--to", "0612345678", "--at", "yesterday"),
            "not an ISO 8601",
        ),
        (("check", "--from", "0948000001"), "--to"),
        (
            ("check", "--from", "0948000001", "--to", "0612345678", "--purpose", "spam"),
            "invalid choice",
        ),
        (("consent", "add", "--to", "junk"), "not a valid phone number"),
        (
            ("consent", "add", "--to", "0612345678", "--company", "nobody"),
            "unknown company 'nobody'",
        ),
        (("optout", "import", "/no/such/file"), "No such file"),
        (("outcome", "refused", "--to", "0612345678", "--at", "2026-13-01"), "not an ISO 8601"),
        (("--db", "mysql://x/y", "consent", "list"), "unsupported store URL"),
        (("--db", "/no/such/dir/x.db", "consent", "list"), "no store at /no/such/dir/x.db"),
        (("--db", "/no/such/dir/x.db", "optout", "list", "--to", "0612345678"), "no store at"),
        (("--db", "/no/such/dir/x.db", "consent", "add", "--to", "0612345678"), "does not exist"),
    ],
)
def test_bad_input_is_a_clear_error_with_status_2(run, args, message):
    result = run(*args, check_status=2)
    last = result.stderr.strip().splitlines()[-1]
    assert "error:" in last and message in last


def test_a_malformed_number_to_check_is_a_reject_with_a_code(run):
    rejected = verdict(
        run, "--from", "0948000001", "--to", "06-12-xx", "--at", "2026-11-23T11:00", status=1
    )
    assert [r["code"] for r in rejected["reasons"]] == ["DEST_INVALID"]
    assert rejected["retry_after"] is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "[rules]\nrefusal_cooldown_days = 'sixty'\n",
            "rules.refusal_cooldown_days: expected an integer",
        ),
        ("[rules]\nstrict_holiday = true\n", "rules.strict_holiday: unknown key"),
        ("[rules]\ndefault_purpose = 'spam'\n", "rules.default_purpose"),
        ("[[companies]]\nid = 'a'\nnumbers = ['12345']\n", "companies[0].numbers[0]"),
        ("[[companies]]\nname = 'A'\n", "companies[0].id: missing"),
        ("[rules\n", "not valid TOML"),
        ("[rules]\nnpv_prefixes = { '0948' = ['FR-XX'] }\n", "rules.npv_prefixes.0948"),
    ],
)
def test_a_bad_config_stops_naming_the_key(run, tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = run(
        "check", "--from", "0948000001", "--to", "0612345678", config=config, check_status=2
    )
    assert message in result.stderr


def test_missing_config_says_where_it_looked(run):
    result = run("check", "--from", "1", "--to", "2", config="/no/such.toml", check_status=2)
    assert "no such configuration file" in result.stderr


def _race_for_the_last_slot(run, processes, *store):
    """Three calls recorded this month, then ``processes`` `check --record` at once."""
    run(*store, "consent", "add", "--to", "0612345678", "--at", "2026-09-01", check_status=0)
    for day in ("2026-11-02", "2026-11-03", "2026-11-04"):
        args = ("--from", "0948000001", "--to", "0612345678", "--at", f"{day}T11:00", "--record")
        run(*store, "check", *args, check_status=0)
    args = (*store, "check", "--from", "0948000001", "--to", "0612345678",
            "--at", "2026-11-23T11:00", "--record", "--json")  # fmt: skip
    with ThreadPoolExecutor(max_workers=processes) as pool:
        return list(pool.map(lambda _: run(*args), range(processes)))


def test_forty_processes_on_postgresql_one_slot_left_exactly_one_allowed(run, postgres):
    """Two ways in at once (`check --record` processes), one shared PostgreSQL store."""
    results = _race_for_the_last_slot(run, 40, "--db", postgres.new_database())
    statuses = sorted(r.returncode for r in results)
    assert statuses == [0] + [1] * 39, [r.stderr for r in results if r.returncode not in (0, 1)]


def test_twenty_concurrent_processes_one_slot_left_exactly_one_allowed(run):
    results = _race_for_the_last_slot(run, 20)
    statuses = sorted(r.returncode for r in results)
    assert statuses == [0] + [1] * 19, [r.stderr for r in results if r.returncode not in (0, 1)]
    codes = {
        tuple(x["code"] for x in json.loads(r.stdout)["reasons"])
        for r in results
        if r.returncode == 1
    }
    assert codes == {("CAP_30_DAYS",)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[ari]\nurl = 'ftp://x'\n", "ari.url"),
        ("[ari]\ndecision_timeout = 0\n", "ari.decision_timeout"),
        ("[ari]\nmax_concurrent = 0\n", "ari.max_concurrent"),
        ("[ari]\npassword = 'inline'\n", "ari.password: unknown key"),
    ],
)
def test_a_bad_ari_section_stops_naming_the_key(run, tmp_path, content, message):
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = run("run", config=config, check_status=2)
    assert message in result.stderr


def test_run_without_an_ari_password_says_so(run, tmp_path):
    config = tmp_path / "nopass.toml"
    config.write_text("[ari]\nurl = 'http://127.0.0.1:1'\n")
    result = run("run", config=config, check_status=2)
    assert "ari.password_file: not set" in result.stderr
