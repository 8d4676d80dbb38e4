"""`callgate doctor` against a real Asterisk and a real gate: the configuration of
asterisk-conf/ passes, then each fault, made one at a time on the live PBX, is named."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.asterisk import CONF_DIR, AsteriskInstance, Ports, ensure_root, set_option
from harness.gate import GateProcess, callgate_command, write_config
from harness.sipp import Carrier, free_port

# A context that routes emergency numbers first but never asks the gate.
NO_GATE = """
[doctor-no-gate]
include => emergency
include => doctor-no-gate-rest

[doctor-no-gate-rest]
exten => _[+0-9].,1,NoOp(never asks callgate)
 same => n,Hangup(21)
"""
CHANNELVARS = "channelvars = CALLGATE_COMPANY,CALLGATE_PURPOSE,CALLGATE_CAMPAIGN,CALLGATE_DEPT"


@dataclass
class Doctored:
    """A PBX the doctor examines: Asterisk with AMI, the carrier, a running gate."""

    asterisk: AsteriskInstance
    carrier: Carrier
    password_file: Path
    config: Path
    db: Path
    workdir: Path

    @property
    def etc(self) -> Path:
        return self.asterisk.outside / "etc"

    def doctor(self, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run the doctor; the carrier must see nothing of its call, whatever it finds."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLGATE_")}
        before = len(self.carrier.invites())
        result = subprocess.run(
            [*callgate_command(), "--config", str(config or self.config), "doctor", *args],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        assert self.asterisk.ari_password not in result.stdout + result.stderr
        assert self.carrier.invites()[before:] == []
        return result

    @contextlib.contextmanager
    def edited(self, name: str, change: Callable[[str], str], reload: str) -> Iterator[None]:
        """The live configuration file changed and reloaded, then put back."""
        path = self.etc / name
        original = path.read_text()
        path.write_text(change(original))
        self.asterisk.rx(reload)
        try:
            yield
        finally:
            path.write_text(original)
            self.asterisk.rx(reload)


def _start(tmp_path_factory, flavour: str) -> Iterator[Doctored]:
    if shutil.which("sipp") is None:
        pytest.fail("sipp is missing: apt-get install sip-tester (or CALLGATE_SKIP_E2E=1)")
    workdir = tmp_path_factory.mktemp(f"doctor-{flavour}")
    conf = workdir / "asterisk-conf"
    shutil.copytree(CONF_DIR, conf)
    with (conf / "extensions.conf").open("a") as extensions:
        extensions.write(NO_GATE)
    password = secrets.token_urlsafe(16)
    password_file = workdir / "ari-password"
    password_file.write_text(password)
    password_file.chmod(0o600)
    ports = Ports(
        sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port(), ami=free_port()
    )
    asterisk = AsteriskInstance(
        f"e2e-doctor-{flavour}-{os.getpid()}", ports, password, root=ensure_root(),
        globals_={"CALLGATE_ANNOUNCE": "no"}, flavour=flavour, conf_dir=conf,
    )  # fmt: skip
    db = workdir / "callgate.db"
    config = write_config(
        workdir / "callgate.toml", db=db, ari_url=asterisk.ari_url, password_file=password_file,
        agi_port=ports.agi, ami_port=ports.ami,
    )  # fmt: skip
    asterisk.start()
    carrier = Carrier(ports.carrier, workdir)
    carrier.start()
    gate = GateProcess(
        config, workdir / "gate.log", ari_url=asterisk.ari_url, ari_password=password,
        command="run" if flavour == "ari" else "agi",
    )  # fmt: skip
    try:
        gate.start()
        yield Doctored(asterisk, carrier, password_file, config, db, workdir)
    finally:
        gate.stop()
        carrier.stop()
        asterisk.stop()


@pytest.fixture(scope="module")
def pbx(tmp_path_factory):
    yield from _start(tmp_path_factory, "ari")


@pytest.fixture(scope="module")
def pbx_agi(tmp_path_factory):
    yield from _start(tmp_path_factory, "agi")


def lines(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    """Each check's line (with its fix), by the check's name."""
    found: dict[str, str] = {}
    name = ""
    for text in result.stdout.splitlines():
        if text[:1].strip():  # a check's own line; fixes are indented under it
            parts = text.split(maxsplit=2)
            if parts[0] != "doctor:":
                name = parts[1]
                found[name] = text
        elif name:
            found[name] += "\n" + text
    return found


def statuses(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return {name: text.split()[0] for name, text in lines(result).items()}


def faults(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [name for name, status in statuses(result).items() if status != "ok"]


CHECKS = [
    "ari", "asterisk", "modules", "store", "trunk", "trunk-pai", "emergency",
    "stasis-broadcast", "app", "call", "channelvars",
]  # fmt: skip


def test_the_shipped_configuration_passes_and_its_call_reaches_no_carrier(pbx):
    result = pbx.doctor()
    assert result.returncode == 0, result.stdout
    assert statuses(result) == dict.fromkeys(CHECKS, "ok"), result.stdout
    assert "rejected DEST_INVALID by the gate" in lines(result)["call"]
    assert result.stdout.rstrip().endswith("this PBX is wired right for callgate")
    with sqlite3.connect(pbx.db) as db:
        rows = db.execute("SELECT verdict, reasons, campaign, channel FROM decisions").fetchall()
    verdict, reasons, campaign, channel = rows[-1]
    assert (verdict, campaign) == ("reject", "callgate-doctor")
    assert "DEST_INVALID" in reasons and channel


def test_json_gives_every_check_and_the_result(pbx):
    result = pbx.doctor("--json")
    assert result.returncode == 0
    report = json.loads(result.stdout)
    assert report["result"] == "ok"
    assert [check["name"] for check in report["checks"]] == CHECKS
    assert set(report["checks"][0]) == {"name", "status", "detail", "fix"}


def test_a_wrong_ari_password_fails_and_names_ari_conf(pbx, tmp_path):
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-password")
    config = write_config(
        tmp_path / "callgate.toml", db=pbx.db, ari_url=pbx.asterisk.ari_url, password_file=wrong,
    )  # fmt: skip
    with config.open("a") as extra:  # AMI keeps the right one: one fault at a time
        ami = pbx.asterisk.ports.ami
        extra.write(f'\n[ami]\nport = {ami}\npassword_file = "{pbx.password_file}"\n')
    result = pbx.doctor(config=config)
    assert result.returncode == 1
    found = statuses(result)
    assert found["ari"] == "FAIL"
    assert "ari.conf [callgate]" in lines(result)["ari"]
    assert "password_file" in lines(result)["ari"]
    assert [name for name, status in found.items() if status == "FAIL"] == ["ari"]
    assert "not-the-password" not in result.stdout


def test_from_user_on_the_trunk_fails(pbx):
    with pbx.edited(
        "pjsip.conf", lambda text: set_option(text, "carrier", "from_user", "0948000001"),
        "module reload res_pjsip.so",
    ):  # fmt: skip
        result = pbx.doctor()
    assert result.returncode == 1
    assert faults(result) == ["trunk"]
    assert "from_user = 0948000001" in lines(result)["trunk"]
    assert "pjsip.conf [carrier]: remove" in lines(result)["trunk"]


def test_another_trunk_is_checked_with_trunk(pbx):
    result = pbx.doctor("--trunk", "1001")  # an agent's endpoint: no P-Asserted-Identity
    assert result.returncode == 0
    assert statuses(result)["trunk-pai"] == "warn"
    assert "pjsip.conf [1001]: send_pai = yes" in lines(result)["trunk-pai"]


def test_a_context_that_never_asks_the_gate_fails(pbx):
    result = pbx.doctor("--context", "doctor-no-gate")
    assert result.returncode == 1
    assert faults(result) == ["call"]
    call = lines(result)["call"]
    assert "never asked the gate" in call and "Hangup(21)" in call
    assert "include => callgate-via-ari" in call


def test_a_gated_context_without_the_emergency_include_fails(pbx):
    with pbx.edited(
        "extensions.conf",
        lambda text: text.replace("[callgate-outbound]\ninclude => emergency\n",
                                  "[callgate-outbound]\n", 1),
        "dialplan reload",
    ):  # fmt: skip
        result = pbx.doctor()
    assert result.returncode == 1
    assert faults(result) == ["emergency"]
    assert "112" in lines(result)["emergency"]
    assert "include => emergency as its first line" in lines(result)["emergency"]


def test_ari_conf_without_channelvars_warns(pbx):
    with pbx.edited(
        "ari.conf", lambda text: text.replace(CHANNELVARS, ";" + CHANNELVARS),
        "module reload res_ari.so",
    ):  # fmt: skip
        result = pbx.doctor()
    assert result.returncode == 0, result.stdout
    assert faults(result) == ["channelvars"]
    assert statuses(result)["channelvars"] == "warn"
    assert f"ari.conf [general]: {CHANNELVARS}" in lines(result)["channelvars"]


def test_without_ami_the_emergency_routes_are_skipped(pbx, tmp_path):
    config = write_config(
        tmp_path / "callgate.toml", db=pbx.db, ari_url=pbx.asterisk.ari_url,
        password_file=pbx.password_file,
    )  # fmt: skip
    result = pbx.doctor(config=config)
    assert result.returncode == 0
    assert statuses(result)["emergency"] == "skip"
    assert "[ami]" in lines(result)["emergency"]


def test_the_agi_flavour_passes(pbx_agi):
    result = pbx_agi.doctor()
    assert result.returncode == 0, result.stdout
    found = statuses(result)
    assert found == dict.fromkeys(CHECKS, "ok"), result.stdout
    assert "AGI" in lines(result)["app"]
