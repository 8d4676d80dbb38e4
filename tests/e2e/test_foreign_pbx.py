"""A PBX we did not configure: its own ari.conf (with or without channelvars) and its own
outbound routes, which set the inputs as channel variables and ask the gate with no
arguments, as the dialplan contract allows. It must get the verdicts ours gets.

Each route is an extension prefix the agent dials before the number: the first digit says
which inputs the route sets, the second how it asks the gate.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest

from harness.asterisk import CONF_DIR, AsteriskInstance, Ports, ensure_root
from harness.gate import GateProcess, callgate_command, write_config
from harness.sipp import Carrier, free_port, place_call

from .conftest import AGENT, AGENT_PASSWORD, MONDAY_11H_UTC, MONDAY_21H_UTC, REJECTED

CALLEE = "0612345678"
NPV = "+33948000001"
BUSY = 486

# What each route sets before the gate, as a campaign's dialplan would.
SETS = {
    "1": "Set(CALLGATE_PURPOSE=prospecting)",
    "2": "Set(CALLGATE_COMPANY=nope)",
    "3": "Set(CALLGATE_PURPOSE=service)",
    "4": "Set(CALLGATE_PURPOSE=spam)",
    "5": "Set(CALLGATE_PURPOSE=service)",  # overridden by the gate's arguments below
}
# How each route asks the gate.
GATES = {
    "1": "Stasis(callgate)",
    "2": "AGI(agi://127.0.0.1:4573/check)",
    "3": "Stasis(callgate,purpose=prospecting)",  # needs no channelvars
    "4": "AGI(agi://127.0.0.1:4573/check,${CALLGATE_COMPANY},${CALLGATE_PURPOSE},,)",
}
STATUS = {"1": "STASISSTATUS", "2": "AGISTATUS", "3": "STASISSTATUS", "4": "AGISTATUS"}
ARI_BARE, AGI_BARE, ARI_ARGS, AGI_ARGS = "1", "2", "3", "4"


def _dialplan() -> str:
    """The shipped extensions.conf with the agents' context replaced by our routes."""
    shipped = (CONF_DIR / "extensions.conf").read_text()
    start = shipped.index("[agents]\n")
    end = shipped.index("\n[", start + 1)
    routes = ["[agents]", "include => emergency"]
    for setup, action in SETS.items():
        for gate in GATES:
            routes += [
                f"exten => _{setup}{gate}X.,1,{action}",
                f" same => n,Goto(route-{gate},${{EXTEN:2}},1)",
            ]
    for gate, ask in GATES.items():
        routes += [
            f"[route-{gate}]",
            "exten => _[+0-9].,1,Set(TIMEOUT(absolute)=5)",
            f" same => n,{ask}",
            f' same => n,GotoIf($["${{{STATUS[gate]}}}" != "SUCCESS"]'
            "?callgate-verdict,${EXTEN},gate-down)",
            " same => n,Goto(callgate-verdict,${EXTEN},1)",
        ]
    return shipped[:start] + "\n".join(routes) + "\n" + shipped[end:]


def _ari_conf(channelvars: bool) -> str:
    lines = ["[general]", "enabled = yes", "pretty = yes"]
    if channelvars:
        # A PBX that already lists a variable of its own.
        lines.append("channelvars = FOO_ACCOUNT,CALLGATE_COMPANY,CALLGATE_PURPOSE")
    return "\n".join(
        [*lines, "", "[callgate]", "type = user", "read_only = no", "password = set-by-test", ""]
    )


class ForeignPbx:
    def __init__(self, workdir: Path, channelvars: bool) -> None:
        conf = workdir / "conf"
        shutil.copytree(CONF_DIR, conf)
        (conf / "extensions.conf").write_text(_dialplan())
        (conf / "ari.conf").write_text(_ari_conf(channelvars))
        self.workdir = workdir
        self.password = secrets.token_urlsafe(16)
        ports = Ports(sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port())
        self.asterisk = AsteriskInstance(
            f"e2e-foreign-{int(channelvars)}-{os.getpid()}", ports, self.password,
            root=ensure_root(), globals_={"CALLGATE_ANNOUNCE": "no"}, conf_dir=conf,
        )  # fmt: skip
        self.carrier = Carrier(ports.carrier, workdir)

    def start(self) -> None:
        self.asterisk.start()
        self.carrier.start()

    def stop(self) -> None:
        self.carrier.stop()
        self.asterisk.stop()

    def call(self, setup: str, gate: str, number: str = CALLEE) -> tuple[int | None, int]:
        """The agent's final answer, and how many INVITEs the carrier got for the call."""
        before = len(self.carrier.invites())
        final = place_call(
            pbx_port=self.asterisk.ports.sip, agent=AGENT, password=AGENT_PASSWORD,
            caller=NPV, number=f"{setup}{gate}{number}", workdir=self.workdir,
        ).final  # fmt: skip
        return final, len(self.carrier.invites()) - before


@pytest.fixture(scope="module", params=[False, True], ids=["no-channelvars", "channelvars"])
def foreign(request, tmp_path_factory):
    pbx = ForeignPbx(tmp_path_factory.mktemp("foreign"), channelvars=request.param)
    pbx.start()
    yield pbx
    pbx.stop()


class Gates:
    """`callgate run` and `callgate agi` on one store and config, on a faked clock."""

    def __init__(self, pbx: ForeignPbx, workdir: Path, fake_now: str, **rules) -> None:
        password_file = workdir / "ari-password"
        password_file.write_text(pbx.password)
        self.db = workdir / "callgate.db"
        self.config = write_config(
            workdir / "callgate.toml", db=self.db, ari_url=pbx.asterisk.ari_url,
            password_file=password_file, agi_port=pbx.asterisk.ports.agi, **rules,
        )  # fmt: skip
        self.log = workdir / "gate.log"
        self.processes = [
            GateProcess(self.config, self.log, ari_url=pbx.asterisk.ari_url,
                        ari_password=pbx.password, fake_now=fake_now, command=command)
            for command in ("run", "agi")
        ]  # fmt: skip
        self.metrics_port = free_port()
        self.processes[0].extra_args = ["--metrics", f"127.0.0.1:{self.metrics_port}"]
        for process in self.processes:
            process.start()

    def kill(self) -> None:
        for process in self.processes:
            process.kill()

    def codes(self) -> list[list[str]]:
        with sqlite3.connect(self.db) as db:
            rows = db.execute("SELECT reasons FROM decisions ORDER BY at").fetchall()
        return [[reason["code"] for reason in json.loads(row[0])] for row in rows]

    def ari_reads(self) -> float:
        """What `callgate run` counted of inputs read from channels."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as reply:
            text = reply.read().decode()
        found = re.search(r'(?m)^callgate_input_reads_total\{gate="ari"\} (\S+)$', text)
        return float(found.group(1)) if found else 0.0

    def cli(self, *args: str) -> None:
        env = {**os.environ, "CALLGATE_CONFIG": str(self.config)}
        env.pop("CALLGATE_DB", None)
        subprocess.run([*callgate_command(), *args], env=env, check=True, capture_output=True)


@pytest.fixture
def gates_factory(foreign, tmp_path):
    started: list[Gates] = []

    def start(fake_now: str, **rules) -> Gates:
        gates = Gates(foreign, tmp_path, fake_now, **rules)
        started.append(gates)
        return gates

    yield start
    for gates in started:
        gates.kill()


@pytest.mark.parametrize("gate", [ARI_BARE, AGI_BARE, AGI_ARGS], ids=["ari", "agi", "agi-args"])
def test_a_prospecting_campaign_is_not_judged_as_the_default_service(foreign, gates_factory, gate):
    """The leak case: default purpose service, the dialplan says prospecting, no consent."""
    gates = gates_factory(MONDAY_11H_UTC, default_purpose="service")
    assert foreign.call("1", gate) == (REJECTED, 0)
    assert gates.codes() == [["CONSENT_MISSING"]]


@pytest.mark.parametrize("gate", [ARI_BARE, AGI_BARE, AGI_ARGS], ids=["ari", "agi", "agi-args"])
def test_an_unknown_company_is_rejected_not_charged_to_the_only_one(foreign, gates_factory, gate):
    gates = gates_factory(MONDAY_11H_UTC)
    gates.cli("consent", "add", "--to", CALLEE, "--at", "2026-01-01")
    assert foreign.call("2", gate) == (REJECTED, 0)
    # acme's consent would let the call through: it is not charged to acme.
    [codes] = gates.codes()
    assert "UNKNOWN_COMPANY" in codes


@pytest.mark.parametrize("gate", [ARI_BARE, AGI_BARE, AGI_ARGS], ids=["ari", "agi", "agi-args"])
def test_a_service_call_outside_hours_is_allowed(foreign, gates_factory, gate):
    gates = gates_factory(MONDAY_21H_UTC, default_purpose="prospecting")
    assert foreign.call("3", gate) == (BUSY, 1)
    assert gates.codes() == [[]]


@pytest.mark.parametrize("gate", [ARI_BARE, AGI_BARE], ids=["ari", "agi"])
def test_an_unknown_purpose_is_a_rejection_with_its_reason(foreign, gates_factory, gate):
    gates = gates_factory(MONDAY_11H_UTC, default_purpose="service")
    assert foreign.call("4", gate) == (REJECTED, 0)
    assert gates.codes() == [["INPUT_INVALID"]]
    assert "CALLGATE_PURPOSE='spam'" in gates.log.read_text()


def test_stasis_arguments_win_over_the_channel_variables(foreign, gates_factory):
    """Stasis(callgate,purpose=prospecting), the form that needs no ari.conf change."""
    gates = gates_factory(MONDAY_11H_UTC, default_purpose="service")
    assert foreign.call("5", ARI_ARGS) == (REJECTED, 0)
    assert gates.codes() == [["CONSENT_MISSING"]]


def test_the_gate_says_once_which_ari_conf_line_spares_the_reads(
    foreign, gates_factory, request
):  # fmt: skip
    gates = gates_factory(MONDAY_11H_UTC, default_purpose="service")
    for _ in range(2):
        assert foreign.call("1", ARI_BARE) == (REJECTED, 0)
    log = gates.log.read_text()
    if request.node.callspec.params["foreign"]:
        # channelvars lists two inputs: only the other two are read, and the advice keeps
        # the PBX's own variable in the line it gives.
        assert log.count("StasisStart carried no") == 1
        assert (
            "channelvars = FOO_ACCOUNT,CALLGATE_COMPANY,CALLGATE_PURPOSE,CALLGATE_CAMPAIGN,"
            "CALLGATE_DEPT" in log
        )
        assert gates.ari_reads() == 2 * 2
    else:
        assert log.count("StasisStart carried no") == 1
        assert (
            "channelvars = CALLGATE_COMPANY,CALLGATE_PURPOSE,CALLGATE_CAMPAIGN,CALLGATE_DEPT" in log
        )
        assert gates.ari_reads() == 2 * 4
    assert gates.codes() == [["CONSENT_MISSING"], ["CONSENT_MISSING"]]
