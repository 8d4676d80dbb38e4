"""Real softphones as the agent, against the harness's Asterisk with `callgate run` as the
gate and `callgate agi` for the keys, sipp as the carrier: baresip (Debian's baresip-core,
headless: a WAV file as its voice, what it hears recorded, driven through its control
port) and Linphone's console client (Debian's linphone-cli).

What users of real softphones found: a refusal they took for a failed login, a `*7` lost
when its keys came slowly, an announcement they could not tell from silence. Each test
plays one of those through the phone itself.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from collections.abc import Iterator

import pytest

from harness.baresip import Baresip, rms
from harness.linphone import PASSWORD_PROMPT, Linphonec
from tests.e2e.conftest import AGENT, AGENT_PASSWORD, MONDAY_11H_UTC, Pbx, Site
from tests.e2e.test_announce import RATE, _find, _global, _keep, _sound

BUSY_CALLEE = "0612345678"  # the carrier answers busy
ANSWERING_CALLEE = "0756123456"  # the carrier answers
ANSWERING_E164 = "+33756123456"
UNCONSENTED = "0687654321"
NPV = "+33948000001"  # what the gate presents for agent 1001, whose own is a mobile
# Longer than the two-key feature window of before (featuredigittimeout, 1.5 s), shorter
# than CALLGATE_KEY_WINDOW: the gap Linphone's SIP INFO mode left between "*" and "7".
SLOW_KEYS = 2.0
# Far above silence (0) and below any prompt's level (make-prompts normalises them).
SPEECH_RMS = 500
# What baresip's jitter buffer (5 to 10 packets of 20 ms) still holds when the PBX stops
# sending: never decoded, so never recorded.
UNHEARD_TAIL = RATE // 4


@pytest.fixture(scope="module", autouse=True)
def _softphones_installed() -> None:
    for tool, package in (("baresip", "baresip-core"), ("linphonec", "linphone-cli")):
        if shutil.which(tool) is None:
            pytest.fail(
                f"{tool} is missing: apt-get install {package} (scripts/install-system-deps)"
            )


@pytest.fixture
def gated(site_announce: Site) -> Site:
    """The ARI gate and the keys' FastAGI service, on the clock of a Monday at 11:00."""
    site_announce.gate(fake_now=MONDAY_11H_UTC).start()
    site_announce.gate(fake_now=MONDAY_11H_UTC, command="agi").start()
    return site_announce


@pytest.fixture
def baresip(pbx_announce: Pbx, site_announce: Site) -> Iterator[Baresip]:
    phone = Baresip(site_announce.workdir, pbx_announce.asterisk.ports.sip, AGENT, AGENT_PASSWORD)
    try:
        registered = phone.start()
        assert registered["type"] == "REGISTER_OK", (registered, phone.log.read_text())
        yield phone
    finally:
        phone.stop()


def _refusals(site: Site) -> list[tuple[str, str, str]]:
    with sqlite3.connect(site.db) as db:
        return db.execute("SELECT company, callee, source FROM refusals ORDER BY id").fetchall()


def _wait_for_refusal(site: Site, timeout: float = 10) -> list[tuple[str, str, str]]:
    deadline = time.monotonic() + timeout
    while not (found := _refusals(site)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def test_baresip_registers_with_the_guides_account_line(pbx_announce, site_announce):
    phone = Baresip(site_announce.workdir, pbx_announce.asterisk.ports.sip, AGENT, AGENT_PASSWORD)
    try:
        registered = phone.start()
    finally:
        phone.stop()
    assert registered["type"] == "REGISTER_OK", registered
    assert registered["param"] == "200 OK"
    assert registered["accountaor"] == f"sip:{AGENT}@127.0.0.1:{pbx_announce.asterisk.ports.sip}"


def test_a_compliant_call_from_baresip_reaches_the_carrier(pbx_announce, gated, baresip):
    gated.consent(BUSY_CALLEE)
    before = len(pbx_announce.carrier.invites())
    baresip.dial(BUSY_CALLEE)
    closed = baresip.wait_for("CALL_CLOSED", 30)
    assert closed["param"].startswith("486"), closed  # the carrier simulator's busy
    [invite] = pbx_announce.carrier.invites()[before:]
    assert invite.uri_user == BUSY_CALLEE
    assert (invite.from_user, invite.pai_user) == (NPV, NPV)
    assert gated.decisions()[-1][0] == "allow"


def test_a_refused_call_says_why_in_french_then_declines(pbx_announce, gated, baresip):
    before = len(pbx_announce.carrier.invites())
    baresip.dial(UNCONSENTED)
    closed = baresip.wait_for("CALL_CLOSED", 30)
    # A refusal, not a failed login: 603 Decline.
    assert closed["param"] == "603 Decline", closed
    assert pbx_announce.carrier.invites()[before:] == []
    decision = gated.decisions()[-1]
    assert decision[0] == "reject"
    assert "CONSENT_MISSING" in {reason["code"] for reason in json.loads(decision[1])}

    [recording] = baresip.recordings_made()
    heard = baresip.heard(recording)
    _keep(heard, gated.workdir / "baresip-heard-consent.wav")
    loudness = rms(heard)
    assert loudness > SPEECH_RMS, f"baresip heard silence (RMS {loudness:.0f})"
    # The very prompt, sample for sample but for G.711's rounding; the 603 follows it at
    # once, before baresip's jitter buffer gave up its last packets.
    prompt = _sound(pbx_announce, "callgate/consent", "fr")
    at, alike = _find(heard, prompt[: len(prompt) - UNHEARD_TAIL])
    assert alike > 0.95, f"the consent prompt is not what baresip heard ({alike:.2f})"
    print(f"\nbaresip heard {len(heard) / RATE:.2f} s, RMS {loudness:.0f}; the consent prompt"
          f" from {at / RATE:.2f} s, similarity {alike:.3f}")  # fmt: skip


def _answered_call(pbx: Pbx, site: Site, phone: Baresip) -> None:
    site.consent(ANSWERING_CALLEE, at="2026-11-01")
    phone.dial(ANSWERING_CALLEE)
    phone.wait_for("CALL_ESTABLISHED", 30)


def _hang_up(phone: Baresip) -> None:
    phone.hang_up()
    phone.wait_for("CALL_CLOSED", 10)


def test_star_7_over_rfc_4733_with_slow_keys_records_a_refusal(pbx_announce, gated, baresip):
    _answered_call(pbx_announce, gated, baresip)
    baresip.keys("*")
    time.sleep(SLOW_KEYS)  # paces the agent's keys; nothing is timed
    baresip.keys("7")
    refusals = _wait_for_refusal(gated)
    _hang_up(baresip)
    assert refusals == [("acme", ANSWERING_E164, "agent-key")]
    assert f"REFUSED {ANSWERING_E164} by acme" in gated.gate_log()


def test_outcome_list_shows_the_refusal_of_star_7(pbx_announce, gated, baresip):
    _answered_call(pbx_announce, gated, baresip)
    baresip.keys("*")
    time.sleep(SLOW_KEYS)
    baresip.keys("7")
    _wait_for_refusal(gated)
    _hang_up(baresip)
    printed = gated.cli("outcome", "list", "--to", ANSWERING_CALLEE, "--json").stdout
    listed = [json.loads(line) for line in printed.splitlines()]  # one outcome a line
    assert [(o["kind"], o["company"], o["callee"], o["source"]) for o in listed] == [
        ("refusal", "acme", ANSWERING_E164, "agent-key")
    ]
    assert listed[0]["at"].startswith("2026-11-23T")  # the gate's clock, ISO 8601
    # The log entry that recorded it, which the officer finds with `log --kind refusal`.
    entries = gated.cli("log", "--kind", "refusal", "--json").stdout.splitlines()
    assert [json.loads(e)["seq"] for e in entries] == [listed[0]["seq"]]


def test_star_alone_gives_the_error_tone_and_records_nothing(pbx_announce, gated, baresip):
    with _global(pbx_announce, "CALLGATE_KEY_WINDOW", "1", restore="5"):
        _answered_call(pbx_announce, gated, baresip)
        baresip.keys("*")
        time.sleep(3)  # well past the window: the sequence has timed out
        baresip.keys("7")  # too late: a key for the callee now, not the refusal key
        time.sleep(1)
        _hang_up(baresip)
    assert _refusals(gated) == []
    [recording] = baresip.recordings_made()
    heard = baresip.heard(recording)
    _keep(heard, gated.workdir / "baresip-heard-error-tone.wav")
    # The carrier sends no audio: all the agent hears is the error tone, and baresip's
    # jitter buffer keeps its end, as nothing comes after it.
    tone = _sound(pbx_announce, "beeperr", "fr")
    _, alike = _find(heard, tone[: len(tone) - UNHEARD_TAIL])
    assert alike > 0.9, f"no error tone in what baresip heard ({alike:.2f})"


def test_linphone_takes_a_refusal_for_a_refusal_not_a_failed_login(pbx_announce, gated):
    gated.consent(BUSY_CALLEE)
    phone = Linphonec(gated.workdir, pbx_announce.asterisk.ports.sip, AGENT, AGENT_PASSWORD)
    try:
        phone.start()
        refused = phone.call(UNCONSENTED)
        before = len(pbx_announce.carrier.invites())
        # The next call still authenticates with the password it was given, and goes out.
        allowed = phone.call(BUSY_CALLEE)
        reached = pbx_announce.carrier.invites()[before:]
    finally:
        phone.stop()
    log = phone.log.read_text(errors="replace")
    assert "ended (Call declined)" in refused, refused
    assert "SIP/2.0 603 Decline" in log
    assert not PASSWORD_PROMPT.search(phone.output), phone.output[-2000:]
    assert "authentication fails" not in log
    assert [invite.uri_user for invite in reached] == [BUSY_CALLEE], allowed
