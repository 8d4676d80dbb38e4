"""End to end through FastAGI, and the agents' refusal key (*7)."""

from __future__ import annotations

import json
import signal
import socket
import sqlite3
import threading
import time

from tests.e2e.conftest import REJECTED, REJECTED_REASON

CALLEE = "0612345678"
ANSWERING_CALLEE = "0756123456"  # the carrier answers 07 numbers
NPV = "+33948000001"
BUSY = 486
# Wednesday 25 November 2026, 11:00 in Paris; D + 61 days is Monday 25 January 2027.
WEDNESDAY_11H_UTC = "2026-11-25 10:00:00"


def new_invites(pbx, before: int):
    return pbx.carrier.invites()[before:]


def test_agi_allows_a_compliant_call_untouched(pbx_agi, site_agi):
    site_agi.consent(CALLEE)
    site_agi.gate(command="agi").start()
    before = len(pbx_agi.carrier.invites())
    assert pbx_agi.call(NPV, CALLEE).final == BUSY
    [invite] = new_invites(pbx_agi, before)
    assert (invite.uri_user, invite.from_user, invite.pai_user) == (CALLEE, NPV, NPV)
    [decision] = site_agi.decisions()
    assert decision[0] == "allow" and decision[5]  # the channel's unique id


def test_agi_rewrites_a_mobile_caller_id(pbx_agi, site_agi):
    site_agi.consent(CALLEE)
    site_agi.gate(command="agi").start()
    before = len(pbx_agi.carrier.invites())
    assert pbx_agi.call("0612345678", CALLEE).final == BUSY
    [invite] = new_invites(pbx_agi, before)
    assert (invite.from_user, invite.pai_user) == (NPV, NPV)


def test_agi_rejects_a_call_without_consent(pbx_agi, site_agi):
    site_agi.gate(command="agi").start()
    before = len(pbx_agi.carrier.invites())
    result = pbx_agi.call(NPV, CALLEE)
    assert (result.final, result.reason) == (REJECTED, REJECTED_REASON)
    assert new_invites(pbx_agi, before) == []
    [decision] = site_agi.decisions()
    assert [r["code"] for r in json.loads(decision[1])] == ["CONSENT_MISSING"]


def test_agi_fails_closed_when_callgate_agi_is_down(pbx_agi, site_agi):
    site_agi.consent(CALLEE)
    before = len(pbx_agi.carrier.invites())
    assert pbx_agi.call(NPV, CALLEE).final == REJECTED
    assert new_invites(pbx_agi, before) == []
    gate = site_agi.gate(command="agi")
    gate.start()
    assert pbx_agi.call(NPV, CALLEE).final == BUSY
    assert gate.stop() == 0


def test_a_port_probe_cannot_freeze_the_agi_server(pbx_agi, site_agi):
    """A bare connect/close, and a client that sends half a header, then a real call."""
    site_agi.consent(CALLEE)
    site_agi.gate(command="agi").start()
    port = pbx_agi.asterisk.ports.agi
    socket.create_connection(("127.0.0.1", port), timeout=2).close()
    with socket.create_connection(("127.0.0.1", port), timeout=2) as half:
        half.sendall(b"agi_network: yes\n")
    time.sleep(0.2)
    started = time.monotonic()
    assert pbx_agi.call(NPV, CALLEE).final == BUSY
    assert time.monotonic() - started < 5


def test_the_refusal_key_starts_the_cool_down(pbx_agi, site_agi):
    # A recent consent: it must still hold when the cool-down lifts, for a retry time.
    site_agi.consent(ANSWERING_CALLEE, at="2026-11-01")
    site_agi.gate(fake_now=WEDNESDAY_11H_UTC, command="agi").start()
    before = len(pbx_agi.carrier.invites())
    answered = pbx_agi.call(NPV, ANSWERING_CALLEE, scenario="agent_refuse.xml")
    assert answered.final == 200
    assert len(new_invites(pbx_agi, before)) == 1
    assert "REFUSED +33756123456 by acme" in site_agi.gate_log()
    again = pbx_agi.call(NPV, ANSWERING_CALLEE)
    assert again.final == REJECTED
    assert len(new_invites(pbx_agi, before)) == 1
    last = site_agi.decisions()[-1]
    assert [r["code"] for r in json.loads(last[1])] == ["REFUSAL_COOLDOWN"]
    assert "retry=2027-01-25T10:00:00+01:00" in _last_line(site_agi.gate_log(), "REJECT")
    # The CLI sees the same refusal: still blocked the evening before D + 61.
    checked = site_agi.cli(
        "check", "--from", NPV, "--to", ANSWERING_CALLEE, "--json",
        "--at", "2027-01-24T23:59:59+01:00", status=1,
    )  # fmt: skip
    codes = {reason["code"] for reason in json.loads(checked.stdout)["reasons"]}
    assert codes == {"DAY_WEEKEND", "REFUSAL_COOLDOWN"}


def test_the_refusal_key_works_with_the_ari_gate_too(pbx, site):
    site.consent(ANSWERING_CALLEE)
    site.gate(fake_now=WEDNESDAY_11H_UTC).start()
    site.gate(fake_now=WEDNESDAY_11H_UTC, command="agi").start()
    assert pbx.call(NPV, ANSWERING_CALLEE, scenario="agent_refuse.xml").final == 200
    assert pbx.call(NPV, ANSWERING_CALLEE).final == REJECTED


def _last_line(log: str, marker: str) -> str:
    return next(line for line in reversed(log.splitlines()) if marker in line)


def test_killing_callgate_agi_mid_decision_lets_no_call_through(pbx_agi, site_agi):
    site_agi.consent(CALLEE)
    gate = site_agi.gate(command="agi")
    gate.start()
    before = len(pbx_agi.carrier.invites())
    holder = sqlite3.connect(site_agi.db, isolation_level=None, timeout=10)
    holder.execute("BEGIN IMMEDIATE")  # the decision waits on the store
    results = []
    caller = threading.Thread(target=lambda: results.append(pbx_agi.call(NPV, CALLEE)))
    caller.start()
    deadline = time.monotonic() + 5
    # Wait until the channel sits in AGI(), its decision blocked on the store.
    while "!AGI!" not in pbx_agi.asterisk.rx("core show channels concise"):
        assert time.monotonic() < deadline, "the call never reached AGI()"
        time.sleep(0.05)
    gate.stop(signal.SIGKILL)
    holder.execute("ROLLBACK")
    holder.close()
    caller.join(timeout=30)
    assert results and results[0].final == REJECTED
    assert new_invites(pbx_agi, before) == []
