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


@dataclass
class Pbx:
    asterisk: AsteriskInstance
    carrier: Carrier
    password: str
    workdir: Path

    def call(self, caller: str, number: str) -> CallResult:
        return place_call(
            pbx_port=self.asterisk.ports.sip, agent=AGENT, password=AGENT_PASSWORD,
            caller=caller, number=number, workdir=self.workdir,
        )  # fmt: skip


@pytest.fixture(scope="session")
def pbx(tmp_path_factory):
    for tool in ("sipp",):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install sip-tester (or CALLGATE_SKIP_E2E=1)")
    workdir = tmp_path_factory.mktemp("pbx")
    password = secrets.token_urlsafe(16)
    ports = Ports(sip=free_port(), http=free_port(), carrier=free_port())
    # No announcement on rejections: the tests want the SIP answer at once.
    asterisk = AsteriskInstance(
        f"e2e-{os.getpid()}", ports, password, root=ensure_root(),
        globals_={"CALLGATE_ANNOUNCE": "no"},
    )  # fmt: skip
    asterisk.start()
    carrier = Carrier(ports.carrier, workdir)
    carrier.start()
    yield Pbx(asterisk, carrier, password, workdir)
    carrier.stop()
    asterisk.stop()


@dataclass
class Site:
    """One company's callgate: its config, its SQLite store, and its gate processes."""

    pbx: Pbx
    config: Path
    db: Path
    workdir: Path
    gates: list[GateProcess]

    def gate(self, fake_now: str | None = MONDAY_11H_UTC) -> GateProcess:
        gate = GateProcess(
            self.config, self.workdir / "gate.log", ari_url=self.pbx.asterisk.ari_url,
            ari_password=self.pbx.password, fake_now=fake_now,
        )  # fmt: skip
        self.gates.append(gate)
        return gate

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "CALLGATE_CONFIG": str(self.config)}
        env.pop("CALLGATE_DB", None)
        return subprocess.run(
            [*callgate_command(), *args], env=env, capture_output=True, text=True, check=True
        )

    def consent(self, number: str, scope: str = "prospecting") -> None:
        self.cli("consent", "add", "--to", number, "--at", "2026-01-01", "--scope", scope)

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


@pytest.fixture
def site(pbx, tmp_path):
    password_file = tmp_path / "ari-password"
    password_file.write_text(pbx.password)
    password_file.chmod(0o600)
    db = tmp_path / "callgate.db"
    config = write_config(
        tmp_path / "callgate.toml", db=db, ari_url=pbx.asterisk.ari_url,
        password_file=password_file,
    )  # fmt: skip
    site = Site(pbx, config, db, tmp_path, [])
    yield site
    for gate in site.gates:
        gate.kill()
