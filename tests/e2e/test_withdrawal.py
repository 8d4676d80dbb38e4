"""The agents' withdrawal key (*8): the callee said "ne m'appelez plus" during the call.

On the real Asterisk, through both gates: the key revokes the callee's consents to the
company, lists the number on the company's opposition list and starts the cool-down, for
that company only; the agent hears a beep and callgate/withdrawn, not the refusal's lone
beep. The agent's RTP goes to a port the test listens on, as in test_announce.py.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
from pathlib import Path

from harness.gate import callgate_command
from harness.sipp import SCENARIOS, CallResult, RtpListener, place_call, ulaw_decode
from tests.e2e.conftest import AGENT, AGENT_PASSWORD, REJECTED, REJECTED_REASON, Pbx, Site
from tests.e2e.test_announce import FRAME, _find, _global, _keep, _sound

CALLEE = "+33756123456"
ANSWERING_CALLEE = "0756123456"  # the carrier answers 07 numbers
NPV = "+33948000001"
OTHER = "globex"
OTHER_NPV = "+33949000001"
# Wednesday 25 November 2026, 11:00 in Paris: inside the calling window.
WEDNESDAY_11H_UTC = "2026-11-25 10:00:00"
WITHDRAWAL_CODES = {"OPPOSITION_LISTED", "CONSENT_REVOKED", "REFUSAL_COOLDOWN"}


def _other_company(site: Site) -> Path:
    """The site's configuration plus a second company, over the same store, for the CLI
    only: the gates keep the one-company file, so the dialplan needs no CALLGATE_COMPANY."""
    both = site.workdir / "callgate-two-companies.toml"
    both.write_text(
        site.config.read_text()
        + f'\n[[companies]]\nid = "{OTHER}"\nname = "Globex"\nnumbers = ["{OTHER_NPV}"]\n'
    )
    return both


def _cli(config: Path, *args: str, status: int = 0) -> str:
    env = {**os.environ, "CALLGATE_CONFIG": str(config)}
    env.pop("CALLGATE_DB", None)
    result = subprocess.run([*callgate_command(), *args], env=env, capture_output=True, text=True)
    assert result.returncode == status, result.stderr
    return result.stdout


def _scenario_heard(site: Site) -> Path:
    """agent_withdraw.xml with its audio sent to the test's RtpListener (``rtp_port``):
    the shipped scenario keeps sipp's own media port, so that it runs without the key."""
    heard = site.workdir / "agent_withdraw_heard.xml"
    text = (SCENARIOS / "agent_withdraw.xml").read_text()
    assert text.count("m=audio [media_port]") == 2
    heard.write_text(text.replace("m=audio [media_port]", "m=audio [rtp_port]"))
    return heard


def _press_star_8(pbx: Pbx, site: Site, ear: RtpListener) -> CallResult:
    return place_call(
        pbx_port=pbx.asterisk.ports.sip, agent=AGENT, password=AGENT_PASSWORD, caller=NPV,
        number=ANSWERING_CALLEE, workdir=pbx.workdir, scenario=str(_scenario_heard(site)),
        keys={"rtp_port": str(ear.port)}, timeout=30,
    )  # fmt: skip


def _assert_heard_the_confirmation(pbx: Pbx, site: Site, ear: RtpListener, lang: str) -> None:
    heard = ulaw_decode(ear.audio())
    _keep(heard, site.workdir / f"heard-withdrawn-{lang}.wav")
    beep, prompt = _sound(pbx, "beep", lang), _sound(pbx, "callgate/withdrawn", lang)
    at_beep, beep_alike = _find(heard, beep)
    assert beep_alike > 0.9, f"no beep before the confirmation (similarity {beep_alike:.2f})"
    # Asterisk may run the next file into the last partial packet of the previous one.
    rest = at_beep + len(beep) - FRAME
    lead, alike = _find(heard[rest:], prompt)
    assert alike > 0.95 and lead <= 2 * FRAME, (
        f"callgate/withdrawn ({lang}) is not what followed the beep: {lead=} {alike=:.2f}"
    )
    # messages.log keeps notices, warnings and errors only: any line naming the prompt is
    # Asterisk complaining about it (a missing file in some language, say).
    log = pbx.asterisk.outside / "log" / "messages.log"
    complaints = log.read_text(errors="replace") if log.exists() else ""
    assert "callgate/withdrawn" not in complaints


def _blocking(decision: tuple) -> set[str]:
    return {r["code"] for r in json.loads(decision[1]) if r["blocking"]}


def _consents(config: Path) -> dict[str, list[dict]]:
    out = _cli(config, "consent", "list", "--to", ANSWERING_CALLEE, "--json")
    found: dict[str, list[dict]] = {}
    for line in out.splitlines():
        record = json.loads(line)
        found.setdefault(record["company"], []).append(record)
    return found


def _refusals(site: Site) -> list[tuple]:
    with sqlite3.connect(site.db) as db:
        return db.execute("SELECT company, callee, source FROM refusals ORDER BY id").fetchall()


def test_the_withdrawal_key_revokes_opts_out_and_cools_down_for_that_company_only(
    pbx_agi, site_agi
):
    both = _other_company(site_agi)
    site_agi.consent(ANSWERING_CALLEE, at="2026-11-01")
    _cli(both, "consent", "add", "--to", ANSWERING_CALLEE, "--company", OTHER,
         "--at", "2026-11-01")  # fmt: skip
    site_agi.gate(fake_now=WEDNESDAY_11H_UTC, command="agi").start()
    before = len(pbx_agi.carrier.invites())

    with RtpListener() as ear:
        answered = _press_star_8(pbx_agi, site_agi, ear)
    assert answered.final == 200
    assert len(pbx_agi.carrier.invites()) - before == 1
    [allowed] = site_agi.decisions()
    assert allowed[0] == "allow"
    log = site_agi.gate_log()
    assert f"WITHDRAWN {CALLEE} by acme (decision " in log
    assert "1 consent(s) revoked, opposition listed" in log
    assert "REFUSED" not in log
    _assert_heard_the_confirmation(pbx_agi, site_agi, ear, "fr")

    consents = _consents(both)
    [acme] = consents["acme"]
    assert acme["revoked_at"] and acme["revoked_how"] == "withdrawn"
    [globex] = consents[OTHER]
    assert globex["revoked_at"] is None and globex["revoked_how"] is None
    out = _cli(both, "optout", "list", "--to", ANSWERING_CALLEE, "--json")
    [opposition] = [json.loads(line) for line in out.splitlines()]
    assert (opposition["company"], opposition["source"]) == ("acme", "withdrawal")
    assert opposition["removed_at"] is None
    assert _refusals(site_agi) == [("acme", CALLEE, "agent-key")]

    again = pbx_agi.call(NPV, ANSWERING_CALLEE)
    assert (again.final, again.reason) == (REJECTED, REJECTED_REASON)
    assert len(pbx_agi.carrier.invites()) - before == 1
    assert _blocking(site_agi.decisions()[-1]) == WITHDRAWAL_CODES
    # The other company may still call: its consent, its list and its history are its own.
    checked = _cli(both, "check", "--company", OTHER, "--from", OTHER_NPV,
                   "--to", ANSWERING_CALLEE, "--at", "2026-11-25T11:05", "--json")  # fmt: skip
    assert json.loads(checked)["verdict"] == "allow"


def test_the_withdrawal_key_works_with_the_ari_gate_too_in_english(pbx, site):
    site.consent(ANSWERING_CALLEE)
    site.gate(fake_now=WEDNESDAY_11H_UTC).start()
    site.gate(fake_now=WEDNESDAY_11H_UTC, command="agi").start()
    # The confirmation is said in the language the refusal prompts use.
    with _global(pbx, "CALLGATE_LANGUAGE", "en", restore="fr"), RtpListener() as ear:
        assert _press_star_8(pbx, site, ear).final == 200
    assert f"WITHDRAWN {CALLEE} by acme" in site.gate_log()
    _assert_heard_the_confirmation(pbx, site, ear, "en")
    again = pbx.call(NPV, ANSWERING_CALLEE)
    assert again.final == REJECTED
    assert _blocking(site.decisions()[-1]) == WITHDRAWAL_CODES


def test_the_withdrawal_key_on_a_call_without_a_decision_records_nothing(pbx_agi, site_agi):
    """What Asterisk would send for *8 on a call the gate never saw, straight to the FastAGI
    port: the agent gets the error tone, and nothing is written."""
    site_agi.consent(ANSWERING_CALLEE)
    site_agi.gate(command="agi").start()
    for decision in ("200 result=0", "200 result=1 (no-such-decision)"):
        commands = _agi_conversation(
            pbx_agi.asterisk.ports.agi, "withdrawn", replies=[decision, "200 result=0"]
        )
        assert commands == ["GET VARIABLE CALLGATE_DECISION_ID", 'EXEC Playback "beeperr"']
    log = site_agi.gate_log()
    # The first press is an error naming the channel; the second, within 10 s, is counted.
    first = "withdrawal key on a call with no callgate decision: PJSIP/1001-0000cafe"
    assert log.count(first) == 1
    assert "WITHDRAWN" not in log
    [consent] = _consents(site_agi.config)["acme"]
    assert consent["revoked_at"] is None
    assert _refusals(site_agi) == []


def _agi_conversation(port: int, script: str, replies: list[str]) -> list[str]:
    """Play Asterisk's side of one FastAGI request; the commands the gate sent, in order."""
    headers = (
        f"agi_network: yes\nagi_network_script: {script}\n"
        "agi_channel: PJSIP/1001-0000cafe\nagi_uniqueid: 1700000000.1\n\n"
    )
    commands = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(headers.encode())
        stream = connection.makefile("rwb")
        for reply in replies:
            line = stream.readline()
            if not line:
                break
            commands.append(line.decode().rstrip("\n"))
            stream.write(reply.encode() + b"\n")
            stream.flush()
        assert stream.readline() == b"", "the gate sent more than expected"
    return commands
