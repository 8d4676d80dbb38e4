"""A real Asterisk, a sipp carrier and real `callgate run` processes for the e2e tests.

They need root (chroot) unless `asterisk` is on PATH, plus sipp and libfaketime; .ci/run
installs them. Set CALLGATE_SKIP_E2E=1 to skip them on a machine that cannot.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.asterisk import AsteriskInstance, Ports, ensure_root
from harness.gate import GateProcess, callgate_command, write_config
from harness.sipp import CallResult, Carrier, free_port, place_call

if os.environ.get("CALLGATE_SKIP_E2E"):
    pytest.skip("CALLGATE_SKIP_E2E is set", allow_module_level=True)

# Monday 23 November 2026, 11:00 in Paris: inside the calling window.
MONDAY_11H_UTC = "2026-11-23 10:00:00"
# The same Monday, 21:00 in Paris: outside it.
MONDAY_21H_UTC = "2026-11-23 20:00:00"

AGENT, AGENT_PASSWORD = "1001", "demo-1001"

# A refused call as the agent's softphone gets it: 603 Decline (PJSIPHangup), never 403,
# which softphones take for a wrong password. Asterisk adds a Reason header from the
# channel's hangup cause, which nothing has set yet when PJSIPHangup answers.
REJECTED, REJECTED_REASON = 603, "Q.850;cause=0"


@dataclass
class Pbx:
    asterisk: AsteriskInstance
    carrier: Carrier
    password: str
    workdir: Path

    def call(self, caller: str, number: str, scenario: str = "agent.xml") -> CallResult:
        return place_call(
            pbx_port=self.asterisk.ports.sip, agent=AGENT, password=AGENT_PASSWORD,
            caller=caller, number=number, workdir=self.workdir, scenario=scenario,
        )  # fmt: skip


def _start_pbx(tmp_path_factory, flavour: str):
    for tool in ("sipp",):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install sip-tester (or CALLGATE_SKIP_E2E=1)")
    workdir = tmp_path_factory.mktemp(f"pbx-{flavour}")
    password = secrets.token_urlsafe(16)
    ports = Ports(sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port())
    # No announcement on rejections: the tests want the SIP answer at once.
    asterisk = AsteriskInstance(
        f"e2e-{flavour}-{os.getpid()}", ports, password, root=ensure_root(),
        globals_={"CALLGATE_ANNOUNCE": "no"}, flavour=flavour,
    )  # fmt: skip
    asterisk.start()
    carrier = Carrier(ports.carrier, workdir)
    carrier.start()
    return Pbx(asterisk, carrier, password, workdir)


def _stop_pbx(pbx: Pbx) -> None:
    pbx.carrier.stop()
    pbx.asterisk.stop()


@pytest.fixture(scope="session")
def pbx(tmp_path_factory):
    """Asterisk gating through ARI (Stasis)."""
    started = _start_pbx(tmp_path_factory, "ari")
    yield started
    _stop_pbx(started)


@pytest.fixture(scope="session")
def pbx_agi(tmp_path_factory):
    """Asterisk gating through FastAGI."""
    started = _start_pbx(tmp_path_factory, "agi")
    yield started
    _stop_pbx(started)


@dataclass
class Site:
    """One company's callgate: its config, its SQLite store, and its gate processes."""

    pbx: Pbx
    config: Path
    db: Path
    workdir: Path
    gates: list[GateProcess]

    def gate(self, fake_now: str | None = MONDAY_11H_UTC, command: str = "run") -> GateProcess:
        gate = GateProcess(
            self.config, self.workdir / "gate.log", ari_url=self.pbx.asterisk.ari_url,
            ari_password=self.pbx.password, fake_now=fake_now, command=command,
        )  # fmt: skip
        self.gates.append(gate)
        return gate

    def cli(self, *args: str, status: int = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CALLGATE_CONFIG": str(self.config)}
        env.pop("CALLGATE_DB", None)
        result = subprocess.run(
            [*callgate_command(), *args], env=env, capture_output=True, text=True
        )
        assert result.returncode == status, result.stderr
        return result

    def consent(
        self, number: str, scope: str = "prospecting", at: str | None = "2026-01-01"
    ) -> None:
        """A consent given at ``at`` (None: now, for the tests on the real clock)."""
        when = ("--at", at) if at else ()
        self.cli("consent", "add", "--to", number, *when, "--scope", scope)

    def decisions(self) -> list[tuple]:
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db) as db:
            return db.execute(
                "SELECT verdict, reasons, caller_in, caller_out, callee, channel"
                " FROM decisions ORDER BY at"
            ).fetchall()

    def gate_log(self) -> str:
        log = self.workdir / "gate.log"
        return log.read_text() if log.exists() else ""


def _site(pbx: Pbx, tmp_path: Path):
    password_file = tmp_path / "ari-password"
    password_file.write_text(pbx.password)
    password_file.chmod(0o600)
    db = tmp_path / "callgate.db"
    config = write_config(
        tmp_path / "callgate.toml", db=db, ari_url=pbx.asterisk.ari_url,
        password_file=password_file, agi_port=pbx.asterisk.ports.agi,
    )  # fmt: skip
    site = Site(pbx, config, db, tmp_path, [])
    yield site
    for gate in site.gates:
        gate.kill()


@pytest.fixture
def site(pbx, tmp_path):
    yield from _site(pbx, tmp_path)


@pytest.fixture
def site_agi(pbx_agi, tmp_path):
    yield from _site(pbx_agi, tmp_path)


@pytest.fixture(scope="session")
def pbx_announce(tmp_path_factory):
    """Asterisk gating through ARI that tells the agent why a call is refused
    (CALLGATE_ANNOUNCE=yes, the configuration's own default), in French."""
    if shutil.which("sipp") is None:
        pytest.fail("sipp is missing: apt-get install sip-tester (or CALLGATE_SKIP_E2E=1)")
    workdir = tmp_path_factory.mktemp("pbx-announce")
    password = secrets.token_urlsafe(16)
    ports = Ports(sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port())
    asterisk = AsteriskInstance(
        f"e2e-announce-{os.getpid()}", ports, password, root=ensure_root(),
        globals_={"CALLGATE_ANNOUNCE": "yes", "CALLGATE_LANGUAGE": "fr"},
    )  # fmt: skip
    asterisk.start()
    carrier = Carrier(ports.carrier, workdir)
    carrier.start()
    started = Pbx(asterisk, carrier, password, workdir)
    yield started
    _stop_pbx(started)


@pytest.fixture
def site_announce(pbx_announce, tmp_path):
    yield from _site(pbx_announce, tmp_path)
