"""End to end: sipp agent -> Asterisk -> Stasis(callgate) -> `callgate run` -> sipp carrier."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import signal
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

from harness.gate import ari_request

from .conftest import MONDAY_21H_UTC, REJECTED, REJECTED_REASON

CALLEE = "0612345678"
NPV = "+33948000001"
BUSY = 486  # the carrier answers busy


def new_invites(pbx, before: int):
    return pbx.carrier.invites()[before:]


def test_a_compliant_call_reaches_the_carrier_with_its_caller_id_untouched(pbx, site):
    site.consent(CALLEE)
    site.gate().start()
    before = len(pbx.carrier.invites())
    result = pbx.call(NPV, CALLEE)
    assert result.final == BUSY
    [invite] = new_invites(pbx, before)
    assert (invite.uri_user, invite.from_user, invite.pai_user) == (CALLEE, NPV, NPV)
    [decision] = site.decisions()
    assert decision[0] == "allow"
    assert json.loads(decision[1]) == []
    assert decision[5]  # the channel id
    # Asterisk sends the gate only the events it acts on.
    status, app = ari_request(pbx.asterisk.ari_url, pbx.password, "GET", "/applications/callgate")
    assert status == 200
    assert {event["type"] for event in app["events_allowed"]} == {
        "StasisStart", "CallBroadcast", "ApplicationReplaced",
    }  # fmt: skip


def test_a_mobile_caller_id_is_rewritten_to_the_pool_npv(pbx, site):
    site.consent(CALLEE)
    site.gate().start()
    before = len(pbx.carrier.invites())
    assert pbx.call("0612345678", CALLEE).final == BUSY
    [invite] = new_invites(pbx, before)
    assert invite.from_user == NPV
    assert invite.pai_user == NPV
    [decision] = site.decisions()
    codes = [reason["code"] for reason in json.loads(decision[1])]
    assert codes == ["CLI_REWRITTEN", "CLI_MOBILE", "CLI_NOT_NPV", "CLI_NOT_ASSIGNED"]
    assert decision[2:4] == ("0612345678", NPV)


def test_a_call_without_consent_never_reaches_the_carrier(pbx, site):
    site.gate().start()
    before = len(pbx.carrier.invites())
    result = pbx.call(NPV, CALLEE)
    assert result.final == REJECTED
    assert result.reason == REJECTED_REASON
    assert new_invites(pbx, before) == []
    [decision] = site.decisions()
    assert decision[0] == "reject"
    assert [r["code"] for r in json.loads(decision[1])] == ["CONSENT_MISSING"]


def test_a_call_outside_hours_never_reaches_the_carrier(pbx, site):
    site.consent(CALLEE)
    site.gate(fake_now=MONDAY_21H_UTC).start()
    before = len(pbx.carrier.invites())
    assert pbx.call(NPV, CALLEE).final == REJECTED
    assert new_invites(pbx, before) == []
    [decision] = site.decisions()
    assert [r["code"] for r in json.loads(decision[1])] == ["HOURS_OUTSIDE"]
    assert "retry=2026-11-24T10:00:00+01:00" in site.gate_log()


def test_on_the_real_clock_a_consented_any_hour_call_goes_through(pbx, site):
    # An appointment around now: allowed whatever the CI's wall-clock time (from
    # 2026-08-11 an out_of_hours consent lifts nothing; RULES-FR §2.4).
    site.consent(CALLEE, at=None)
    now = datetime.now(UTC)
    site.cli("appointment", "add", "--to", CALLEE,
             "--at", (now - timedelta(minutes=5)).isoformat(),
             "--until", (now + timedelta(hours=1)).isoformat())  # fmt: skip
    site.gate(fake_now=None).start()
    before = len(pbx.carrier.invites())
    assert pbx.call(NPV, CALLEE).final == BUSY
    assert len(new_invites(pbx, before)) == 1


def test_with_the_gate_stopped_calls_are_refused_then_flow_after_a_restart(pbx, site):
    site.consent(CALLEE)
    gate = site.gate()
    gate.start()
    assert gate.stop() == 0  # SIGTERM: a clean stop
    before = len(pbx.carrier.invites())
    down = pbx.call(NPV, CALLEE)
    assert down.final == REJECTED
    assert new_invites(pbx, before) == []
    site.gate().start()  # no Asterisk restart
    assert pbx.call(NPV, CALLEE).final == BUSY
    assert len(new_invites(pbx, before)) == 1


def test_an_emergency_number_reaches_the_carrier_when_the_gate_is_down(pbx, site):
    before = len(pbx.carrier.invites())
    result = pbx.call("anonymous", "112")
    assert result.final == BUSY
    [invite] = new_invites(pbx, before)
    assert invite.uri_user == "112"
    assert site.decisions() == []  # routed before the gate


def test_an_ari_originate_through_the_local_context_is_gated(pbx, site):
    site.consent(CALLEE)
    site.gate().start()
    before = len(pbx.carrier.invites())
    status, _ = ari_request(
        pbx.asterisk.ari_url, pbx.password, "POST", "/channels",
        {
            "endpoint": f"Local/{CALLEE}@callgate-outbound",
            "context": "originate-demo", "extension": "s", "priority": 1,
            "callerId": "0612345678",
        },
    )  # fmt: skip
    assert status == 200
    invites = _wait_for(lambda: new_invites(pbx, before), timeout=10)
    assert [(i.uri_user, i.from_user) for i in invites] == [(CALLEE, NPV)]
    [decision] = _wait_for(site.decisions, timeout=5)
    assert decision[0] == "allow"
    assert decision[2:4] == ("0612345678", NPV)


def test_an_unconsented_originate_never_reaches_the_carrier(pbx, site):
    site.gate().start()
    before = len(pbx.carrier.invites())
    status, _ = ari_request(
        pbx.asterisk.ari_url, pbx.password, "POST", "/channels",
        {
            "endpoint": f"Local/{CALLEE}@callgate-outbound",
            "context": "originate-demo", "extension": "s", "callerId": NPV,
        },
    )  # fmt: skip
    assert status == 200
    [decision] = _wait_for(site.decisions, timeout=10)
    assert decision[0] == "reject"
    time.sleep(0.5)
    assert new_invites(pbx, before) == []


def test_killing_the_gate_mid_decision_lets_no_call_through(pbx, site):
    """The gate is killed while it waits on the store: the call must not leave."""
    before = len(pbx.carrier.invites())
    with _call_waiting_on_the_store(pbx, site) as (gate, outcome):
        gate.stop(signal.SIGKILL)
    result = outcome.result(timeout=30)
    assert result.final is not None and result.final >= 400
    assert new_invites(pbx, before) == []


def test_a_channel_left_in_stasis_is_decided_after_a_restart(pbx, site):
    """Killed mid-decision, restarted within the wait: the new gate decides the call."""
    before = len(pbx.carrier.invites())
    with _call_waiting_on_the_store(pbx, site) as (gate, outcome):
        gate.stop(signal.SIGKILL)
    site.gate().start()
    assert outcome.result(timeout=30).final == BUSY
    assert len(new_invites(pbx, before)) == 1
    assert "was waiting for a verdict" in site.gate_log()


def test_sigterm_releases_a_call_in_flight_as_a_rejection(pbx, site):
    before = len(pbx.carrier.invites())
    with _call_waiting_on_the_store(pbx, site) as (gate, outcome):
        gate.process.send_signal(signal.SIGTERM)
        assert outcome.result(timeout=30).final == REJECTED
    assert gate.stop() == 0
    assert new_invites(pbx, before) == []


# ---------------------------------------------------------------- helpers


def _wait_for(probe, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"nothing after {timeout} s")


def _app_channels(pbx) -> str:
    status, body = ari_request(pbx.asterisk.ari_url, pbx.password, "GET", "/applications/callgate")
    return "channel" if status == 200 and body.get("channel_ids") else ""


class _Outcome:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.value = None

    def result(self, timeout: float):
        assert self.done.wait(timeout), "the call did not end"
        return self.value


def _call_in_background(pbx, caller: str, number: str) -> _Outcome:
    outcome = _Outcome()

    def run() -> None:
        outcome.value = pbx.call(caller, number)
        outcome.done.set()

    threading.Thread(target=run, daemon=True).start()
    return outcome


@contextlib.contextmanager
def _call_waiting_on_the_store(pbx, site):
    """A consented call sitting in Stasis, its decision blocked on a locked store."""
    site.consent(CALLEE)
    gate = site.gate()
    gate.start()
    with _store_locked(site.db):
        outcome = _call_in_background(pbx, NPV, CALLEE)
        _wait_for(lambda: "channel" in _app_channels(pbx), timeout=5)
        yield gate, outcome


class _store_locked:
    """Hold the SQLite write lock, so the gate's decision waits on the store."""

    def __init__(self, path) -> None:
        self.path = path

    def __enter__(self):
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=10)
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def test_the_gate_reconnects_after_asterisk_restarts(pbx, site):
    site.consent(CALLEE)
    gate = site.gate()
    gate.start()
    pbx.asterisk.stop()
    pbx.asterisk.start()
    _wait_for(lambda: "ARI back after" in site.gate_log(), timeout=15)
    before = len(pbx.carrier.invites())
    assert pbx.call(NPV, CALLEE).final == BUSY
    assert len(new_invites(pbx, before)) == 1
    assert site.gate_log().count("cannot reach ARI") <= 1  # one line per outage


async def test_application_replaced_stops_the_gate_cleanly(pbx, site):
    import aiohttp

    gate = site.gate()
    gate.start()
    token = base64.b64encode(f"callgate:{pbx.password}".encode()).decode()
    headers = {"Authorization": f"Basic {token}"}
    url = pbx.asterisk.ari_url.replace("http", "ws", 1) + "/ari/events"
    async with (
        aiohttp.ClientSession(headers=headers) as session,
        session.ws_connect(url, params={"app": "callgate"}),
    ):
        deadline = time.monotonic() + 10
        while gate.process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert gate.process.returncode == 1
    assert "took the ARI app 'callgate' over" in site.gate_log()


def test_a_slow_store_refuses_the_call_in_time_and_the_gate_recovers(pbx, site):
    site.consent(CALLEE)
    site.gate().start()
    before = len(pbx.carrier.invites())
    with _store_locked(site.db):
        started = time.monotonic()
        late = pbx.call(NPV, CALLEE)
        waited = time.monotonic() - started
    assert late.final == REJECTED
    assert waited < 4.5  # the 2 s decision deadline, not the dialplan's 5 s wait
    assert "GATE_ERROR" in site.gate_log() and "no decision within 2 s" in site.gate_log()
    _wait_for(lambda: "rolled back" in site.gate_log() or site.decisions() == [], timeout=5)
    assert pbx.call(NPV, CALLEE).final == BUSY
    assert len(new_invites(pbx, before)) == 1
    # The late decision left no attempt; the refusal it became is in the log.
    assert [row[0] for row in site.decisions()] == ["reject", "allow"]
    assert json.loads(site.decisions()[0][1])[0]["code"] == "GATE_ERROR"


def test_the_gate_serves_its_metrics(pbx, site):
    import urllib.request

    from harness.sipp import free_port

    site.consent(CALLEE)
    port = free_port()
    gate = site.gate()
    gate.extra_args = ["--metrics", f"127.0.0.1:{port}"]
    gate.start()
    assert pbx.call(NPV, CALLEE).final == BUSY
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    assert 'callgate_decisions_total{verdict="allow"} 1.0' in text
    assert "callgate_ari_connected 1.0" in text
    # The shipped ari.conf's channelvars carry every input: none was read from the channel.
    assert 'callgate_input_reads_total{gate="ari"}' not in text
