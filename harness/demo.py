"""The main job, locally: Asterisk + `callgate run` on SQLite, and a few real calls.

    python -m harness.demo            # place the demo calls, show what happened, stop
    python -m harness.demo --serve    # then keep running for a softphone, until Ctrl-C

Brings up the cached Debian-unstable Asterisk with asterisk-conf/, a sipp carrier, and
`callgate run` with a demo configuration and a fresh SQLite store in ./demo/. Then
`callgate doctor` checks the PBX, and the agent 1001 (a sipp softphone) places calls:
compliant, rewritten, rejected, emergency.
"""

from __future__ import annotations

import argparse
import json
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.asterisk import REPO, AsteriskInstance, Ports, ensure_root
from harness.gate import GateProcess, callgate_command, console_decisions, write_config
from harness.sipp import Carrier, free_port, place_call

# The demo's own callees: each allowed call counts against the callee's 4 calls in 30
# days, so the numbers docs/softphone.md gives (GUIDE_CALLEES) are left untouched for the
# softphone, and a refused call is no one's either.
SCRIPTED_CALLEE = "0698765432"
UNCONSENTED_CALLEE = "0655443322"
GUIDE_CALLEES = ("0612345678", "0756123456")  # busy and answered by the carrier
CALLS = (
    ("compliant: an NPV of the company", "+33948000001", SCRIPTED_CALLEE),
    ("rewritten: the agent's own mobile as caller ID", "0612345678", SCRIPTED_CALLEE),
    ("rejected: no consent from this callee", "+33948000001", UNCONSENTED_CALLEE),
    ("emergency: 112, routed before the gate", "0612345678", "112"),
)
SIP_ANSWERS = {
    486: "reached the carrier (it answers busy)",
    603: "refused by callgate: 603 Decline",
}


def _port(preferred: int) -> int:
    """The usual port when it is free for TCP and UDP, or any free one."""
    import socket

    try:
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp,
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        ):
            tcp.bind(("127.0.0.1", preferred))
            udp.bind(("127.0.0.1", preferred))
        return preferred
    except OSError:
        return free_port()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="keep running for a softphone")
    parser.add_argument("--workdir", default=str(REPO / "demo"))
    args = parser.parse_args()

    workdir = Path(args.workdir).resolve()
    workdir.mkdir(exist_ok=True)
    db = workdir / "callgate.db"
    for stale in workdir.glob("callgate.db*"):
        stale.unlink()
    password = secrets.token_urlsafe(16)
    password_file = workdir / "ari-password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    ports = Ports(
        sip=_port(5060), http=_port(8088), carrier=_port(5070), agi=_port(4573), ami=_port(5038)
    )
    console = f"127.0.0.1:{_port(8090)}"
    officer_token = secrets.token_hex(16)
    tokens = workdir / "api-tokens"
    tokens.write_text(f"read {officer_token}\n")
    tokens.chmod(0o600)
    config = write_config(
        workdir / "callgate.toml", db=db, ari_url=f"http://127.0.0.1:{ports.http}",
        password_file=password_file, agi_port=ports.agi, ami_port=ports.ami,
        api=(console, tokens),
    )  # fmt: skip

    print("callgate demo: a local Asterisk 22, `callgate run` on SQLite, sipp as agent and carrier")
    asterisk = AsteriskInstance("demo", ports, password, root=ensure_root())
    carrier = Carrier(ports.carrier, workdir)
    gate = GateProcess(
        config, workdir / "gate.log", ari_url=asterisk.ari_url, ari_password=password
    )
    # The FastAGI service answers the agents' keys (*7 refused, *8 withdrawn).
    refusals = GateProcess(
        config, workdir / "agi.log", ari_url=asterisk.ari_url, ari_password=password,
        command="agi",
    )  # fmt: skip
    api = GateProcess(
        config, workdir / "api.log", ari_url=asterisk.ari_url, ari_password=password,
        command="api",
    )  # fmt: skip
    try:
        asterisk.start()
        carrier.start()
        # 0756123456 is answered by the carrier: try *7 and *8 on it. An appointment
        # spanning the demo lets the numbers through at any hour of the real clock (from
        # 2026-08-11 nothing else lifts the days and hours, RULES-FR §2.4).
        now = datetime.now(UTC)
        for number in (SCRIPTED_CALLEE, *GUIDE_CALLEES):
            _cli(config, "consent", "add", "--to", number, "--source", "demo",
                 "--proof", "demo consent", "--channel", "other")  # fmt: skip
            _cli(config, "appointment", "add", "--to", number, "--source", "demo",
                 "--at", (now - timedelta(minutes=1)).isoformat(),
                 "--until", (now + timedelta(hours=12)).isoformat())  # fmt: skip
        gate.start()
        refusals.start()
        # docs/softphone.md stops the gate by its id to show that calls then fail closed.
        for service, name in ((gate, "gate.pid"), (refusals, "agi.pid")):
            assert service.process is not None
            (workdir / name).write_text(f"{service.process.pid}\n")
        print(f"Asterisk SIP on 127.0.0.1:{ports.sip}, ARI on {asterisk.ari_url}; "
              f"store {db}\n")  # fmt: skip
        _doctor(config)
        for title, caller, number in CALLS:
            _demo_call(title, caller, number, ports, carrier, db, workdir)
        api.start()
        _console(console, officer_token, tokens)
        print(_softphone_help(ports, asterisk, carrier, workdir))
        if args.serve:
            print("Serving; Ctrl-C to stop.")
            stops = {signal.SIGINT, signal.SIGTERM}
            # sigwait only returns for blocked signals; unblocked, Ctrl-C would be lost.
            signal.pthread_sigmask(signal.SIG_BLOCK, stops)
            signal.sigwait(stops)
    finally:
        api.stop()
        refusals.stop()
        gate.stop()
        carrier.stop()
        asterisk.stop()
    return 0


def _console(bind: str, token: str, tokens: Path) -> None:
    """The compliance officer's view of the same calls: log in and list the decisions."""
    home = f"http://{bind}/console/"
    listed = console_decisions(home, token)
    print(f"* the compliance console: {home}")
    print(f"  log in with the read token in {tokens} (the second word of its line)")
    print(f"  it lists {listed} decisions, each with its reasons and the rules' legal sources\n")


def _cli(config: Path, *args: str) -> None:
    subprocess.run(
        [*callgate_command(), "--config", str(config), *args],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _doctor(config: Path) -> None:
    """What the telecom team runs first: is this PBX wired right? (One call of its own,
    rejected by the gate, which the carrier never sees.)"""
    print("* callgate doctor: is this PBX wired right?", flush=True)
    with subprocess.Popen(
        [*callgate_command(), "--config", str(config), "doctor"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    ) as doctor:  # fmt: skip
        assert doctor.stdout is not None
        for text in doctor.stdout:  # each check as it completes
            print(f"  {text}", end="", flush=True)
    print()


def _demo_call(
    title: str, caller: str, number: str, ports: Ports, carrier: Carrier, db: Path, workdir: Path
) -> None:
    invites_before = len(carrier.invites())
    decisions_before = _decision_count(db)
    result = place_call(
        pbx_port=ports.sip, agent="1001", password="demo-1001", caller=caller, number=number,
        workdir=workdir,
    )  # fmt: skip
    time.sleep(0.2)
    print(f"* {title}")
    print(f"  agent 1001 dials {number}, presenting {caller}")
    answer = SIP_ANSWERS.get(result.final or 0, "no answer")
    print(f"  agent got: SIP {result.final} ({answer})")
    for invite in carrier.invites()[invites_before:]:
        print(f"  carrier received: INVITE to {invite.uri_user}, From {invite.from_user}, "
              f"P-Asserted-Identity {invite.pai_user}")  # fmt: skip
    if len(carrier.invites()) == invites_before:
        print("  carrier received: nothing")
    for verdict, reasons, retry in _decisions(db)[decisions_before:]:
        codes = [f"{r['code']}" for r in json.loads(reasons)]
        print(f"  callgate: {verdict.upper()} {', '.join(codes) or '(no reason needed)'}"
              + (f", retry after {retry}" if retry else ""))  # fmt: skip
        for reason in json.loads(reasons):
            print(f"    {reason['code']}: {reason['message']}")
    if _decision_count(db) == decisions_before:
        print("  callgate: not asked (emergency numbers bypass the gate)")
    print()


def _decisions(db: Path) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(db) as connection:
        return connection.execute(
            "SELECT verdict, reasons, retry_after FROM decisions ORDER BY at"
        ).fetchall()


def _decision_count(db: Path) -> int:
    return len(_decisions(db)) if db.exists() else 0


def _softphone_help(
    ports: Ports, asterisk: AsteriskInstance, carrier: Carrier, workdir: Path
) -> str:
    return f"""To try more with a softphone (Linphone, Zoiper, baresip) on this machine:
  account 1001, password demo-1001, server 127.0.0.1:{ports.sip} (UDP or TCP)
  dial 0612345678 (consented: the carrier answers busy), 0756123456 (consented: the
  carrier answers; press *7 for "the callee refused", *8 for "ne m'appelez plus"), any
  other number (refused: no consent), or 112 (emergency: never gated).
  docs/softphone.md has the whole tour.
What each part says, as it happens:
  callgate run (the gate's decisions)   {workdir / "gate.log"}, its process id in gate.pid
  callgate agi (the keys *7 and *8)     {workdir / "agi.log"}, its process id in agi.pid
  the carrier's SIP trace (its INVITEs) {carrier.trace}
  Asterisk's console                    {asterisk.console_command()}
Run `make serve` to keep the demo PBX up while you try."""


if __name__ == "__main__":
    sys.exit(main())
