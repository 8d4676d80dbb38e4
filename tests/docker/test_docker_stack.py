"""The Docker stack of docker/, built, booted and called, in a Docker engine of its own.

The steps are docs/softphone.md's "With Docker" block, run as written in a copy of the
repository (so that its docker/.env and docker/secrets are not the user's), on the ports
docker/.env.example documents when they are free here (moved to free ones through the
environment otherwise). Then sipp, from the host and through the
published SIP port, places three calls as agent 1001, and the decision log is read inside
the callgate container. At the end nothing is left: no container, network, volume, daemon,
mount or iptables rule.

Needs root and an engine that can start (Debian's docker.io: cgroups, overlayfs); anywhere
else the tests are skipped and say why. CALLGATE_SKIP_DOCKER=1 skips them on purpose.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pytest

from harness.asterisk import REPO, AsteriskInstance, Ports, ensure_root
from harness.docker import Engine, EngineUnavailable, docs_steps, ensure_base_images
from harness.sipp import CallResult, Invite, free_port, invites_in, messages_in, place_call

COMPOSE = ["docker-compose", "-p", "callgate", "-f", "docker/compose.yml"]
AGENT, PASSWORD, AGENT_CALLER = "1001", "demo-1001", "0612345678"
CONSENTED, UNCONSENTED, EMERGENCY = "0612345678", "0687654321", "112"
COMPANY_NUMBER = "+33948000001"  # docker/callgate/callgate.toml's first number
SERVICES = ("asterisk", "carrier", "callgate", "callgate-agi", "callgate-api")


def _free_udp_range(size: int) -> tuple[int, int]:
    for _ in range(50):
        start = random.randrange(40000, 60000 - size)
        if all(_free("udp", port) for port in range(start, start + size)):
            return start, start + size - 1
    raise RuntimeError("no free UDP range")


def _ports() -> dict[str, int]:
    """docker/.env.example's ports, those the docs use, when this machine has them free;
    free ones otherwise (a PBX or another test may hold 5060)."""
    example = dict(
        line.split("=", 1) for line in (REPO / "docker/.env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )  # fmt: skip
    documented = {key: int(value) for key, value in example.items()}
    wanted = [("tcp", documented["SIP_PORT"]), ("udp", documented["SIP_PORT"]),
              ("tcp", documented["API_PORT"])]  # fmt: skip
    wanted += [("udp", port) for port in range(documented["RTP_START"], documented["RTP_END"] + 1)]
    if all(_free(kind, port) for kind, port in wanted):
        return documented
    rtp_start, rtp_end = _free_udp_range(10)
    return {"SIP_PORT": free_port(), "API_PORT": free_port(),
            "RTP_START": rtp_start, "RTP_END": rtp_end}  # fmt: skip


def _free(kind: str, port: int) -> bool:
    with socket.socket(
        socket.AF_INET, socket.SOCK_STREAM if kind == "tcp" else socket.SOCK_DGRAM
    ) as probe:
        # As a server binds: a connection of an earlier test in TIME-WAIT does not hold it.
        if kind == "tcp":
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def _copy_repository(into: Path) -> None:
    """The working tree's files (committed or not, ignored ones left out)."""
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
        capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    # This machine reaches PyPI through a TLS-inspecting proxy whose CA only the host
    # trusts: docs/softphone.md's way, a CA in docker/callgate/certs/.
    bundle = Path("/etc/ssl/certs/ca-certificates.crt")
    if bundle.exists():
        shutil.copy(bundle, into / "docker/callgate/certs/host.crt")


@dataclass
class Stack:
    engine: Engine
    workdir: Path
    env: dict[str, str]
    sip_port: int
    api_port: int

    def compose(self, *args: str, check: bool = True, timeout: float = 120) -> str:
        result = subprocess.run(
            [*COMPOSE, *args], cwd=self.workdir, env=self.env, capture_output=True,
            text=True, timeout=timeout,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    def carrier_invites(self) -> list[Invite]:
        logs = self.compose("logs", "--no-color", "carrier")
        # Each line is prefixed "carrier_1  | "; the trace follows.
        text = "\n".join(line.split("| ", 1)[1] if "| " in line else line
                         for line in logs.splitlines())  # fmt: skip
        return invites_in(messages_in(text))

    def healthz(self) -> dict[str, str]:
        url = f"http://127.0.0.1:{self.api_port}/healthz"
        with urllib.request.urlopen(url, timeout=5) as reply:
            return json.load(reply)


def _wait_until_healthy(stack: Stack, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = stack.healthz()
            if last.get("ari") == "connected":
                return
        except OSError as error:
            last = error
        time.sleep(1)
    logs = stack.compose("logs", "--no-color", "--tail", "20", check=False)
    raise AssertionError(f"the stack is not healthy after {timeout:g} s: {last}\n{logs}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if os.environ.get("CALLGATE_SKIP_DOCKER") == "1":
        pytest.skip("CALLGATE_SKIP_DOCKER=1")
    engine = Engine()
    try:
        engine.start()
    except EngineUnavailable as error:
        if os.environ.get("CALLGATE_REQUIRE_DOCKER") == "1":
            pytest.fail(f"no Docker engine on this machine: {error}")
        pytest.skip(f"no Docker engine on this machine: {error}")
    stack: Stack | None = None
    try:
        workdir = tmp_path_factory.mktemp("docker-stack")
        ports = _ports()
        env = {**engine.env, **{key: str(value) for key, value in ports.items()},
               # The sid mirror here is a snapshot whose Release file has expired.
               "APT_CHECK_VALID_UNTIL": "false"}  # fmt: skip
        stack = Stack(engine, workdir, env, ports["SIP_PORT"], ports["API_PORT"])
        ensure_base_images(engine)
        _copy_repository(workdir)
        steps = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", docs_steps()], cwd=workdir, env=env,
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        assert steps.returncode == 0, (steps.stdout + steps.stderr)[-3000:]
        _wait_until_healthy(stack)
        yield stack
    finally:
        try:
            if stack is not None:
                stack.compose("down", "-v", "--remove-orphans", check=False)
        except subprocess.TimeoutExpired:
            pass  # the engine's stop removes what is left
        finally:
            engine.stop()
        left = engine.leftovers()
        if left:  # also when the setup failed: said here, its own error follows
            print(f"the Docker engine left: {left}", file=sys.stderr)
    assert not left, f"the Docker engine left: {left}"


@dataclass(frozen=True)
class Call:
    result: CallResult
    invites: list[Invite]  # what the carrier received for this call


@pytest.fixture(scope="module")
def calls(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Call]:
    """The three calls, placed once as agent 1001's softphone would, from the host."""
    workdir = tmp_path_factory.mktemp("docker-calls")
    placed = {}
    for number in (CONSENTED, UNCONSENTED, EMERGENCY):
        before = len(stack.carrier_invites())
        result = place_call(
            pbx_port=stack.sip_port, agent=AGENT, password=PASSWORD, caller=AGENT_CALLER,
            number=number, workdir=workdir,
        )  # fmt: skip
        time.sleep(0.5)  # the carrier's log reaches docker a moment after its answer
        placed[number] = Call(result, stack.carrier_invites()[before:])
    return placed


def test_the_stack_is_up_with_one_callgate_image(stack: Stack):
    assert stack.healthz() == {"status": "ok", "store": "ok", "ari": "connected"}
    images = {}
    for service in SERVICES:
        (container,) = stack.compose("ps", "-q", service).split()
        state = stack.engine.docker(
            "inspect", "-f", "{{.State.Status}} {{.Image}}", container
        ).stdout.split()
        assert state[0] == "running", f"{service} is {state[0]}"
        images[service] = state[1]
    assert images["callgate"] == images["callgate-agi"] == images["callgate-api"]
    assert len(set(images.values())) == 3  # asterisk, carrier, callgate
    built = stack.engine.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert sorted(name for name in built if name.startswith("callgate")) == [
        "callgate-asterisk:local", "callgate-carrier:local", "callgate:local",
    ]  # fmt: skip


def test_a_compliant_call_reaches_the_carrier_with_the_companys_number(calls):
    call = calls[CONSENTED]
    assert call.result.final == 486, call.result.messages  # the carrier simulator's busy
    (invite,) = call.invites
    assert invite.uri_user == CONSENTED
    # 1001 presents the agent's own mobile: the gate rewrites it to the company's number.
    assert (invite.from_user, invite.pai_user) == (COMPANY_NUMBER, COMPANY_NUMBER)


def test_an_unconsented_prospecting_call_is_refused_and_never_reaches_the_carrier(calls):
    call = calls[UNCONSENTED]
    # A refusal, not a failed login (a 403 makes softphones ask for the password again).
    assert call.result.final == 603, call.result.messages
    assert call.result.reason == "Q.850;cause=0"  # PJSIPHangup answers before any cause
    assert call.invites == []


def test_112_reaches_the_carrier_untouched(calls):
    call = calls[EMERGENCY]
    assert call.result.final == 486, call.result.messages
    (invite,) = call.invites
    assert (invite.uri_user, invite.from_user) == (EMERGENCY, AGENT_CALLER)


def test_the_log_in_the_callgate_container_has_both_decisions_and_its_chain_holds(
    stack: Stack, calls
):
    lines = stack.compose(
        "exec", "-T", "callgate", "callgate", "log", "--kind", "call", "--json"
    ).splitlines()
    decisions = {entry["callee"]: entry for entry in map(json.loads, lines)}
    assert set(decisions) == {"+33612345678", "+33687654321"}  # 112 never asks the gate
    allowed, refused = decisions["+33612345678"], decisions["+33687654321"]
    assert allowed["verdict"] == "allow"
    assert allowed["caller_out"] == COMPANY_NUMBER
    assert refused["verdict"] == "reject"
    assert "CONSENT_MISSING" in {reason["code"] for reason in refused["reasons"]}
    verify = subprocess.run(
        [*COMPOSE, "exec", "-T", "callgate", "callgate", "log", "verify"], cwd=stack.workdir,
        env=stack.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The decisions and the entries of the facts the stack was given (its consents).
    assert "entries, the hash chain is intact" in verify.stdout
    assert "and the fact tables are what it says" in verify.stdout


# ---------------------------------------------------------------- the image is the harness

# Lines the harness changes for each instance: its ports, password and folders.
_PER_INSTANCE = {
    ("pjsip.conf", "transport-udp", "bind"), ("pjsip.conf", "transport-tcp", "bind"),
    ("pjsip.conf", "carrier-aor", "contact"), ("http.conf", "general", "bindport"),
    ("ari.conf", "callgate", "password"), ("manager.conf", "general", "enabled"),
    ("manager.conf", "general", "port"), ("manager.conf", "callgate", "secret"),
    ("rtp.conf", "general", "rtpstart"), ("rtp.conf", "general", "rtpend"),
}  # fmt: skip


def _entries(name: str, text: str) -> list[tuple[str, str, str]]:
    """A config file as (section, key, value), comments out, per-instance values masked."""
    entries, section = [], ""
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        header = re.fullmatch(r"\[([^\]]+)\](\(.*\))?", line)
        if header:
            section = header.group(1)
            if name == "asterisk.conf" and section == "directories":
                entries.append((section, "(template)", "?"))  # the harness un-templates it
            else:
                entries.append((section, "", header.group(2) or ""))
            continue
        key, _, value = (part.strip() for part in line.replace("=>", "=", 1).partition("="))
        masked = (name, section, key) in _PER_INSTANCE or (
            name == "asterisk.conf" and section == "directories"
        )
        entries.append((section, key, "?" if masked else value))
    return entries


def test_the_images_asterisk_configuration_is_the_harness_one_file_by_file(stack: Stack):
    archive = subprocess.run(
        [*COMPOSE, "exec", "-T", "asterisk", "tar", "-C", "/etc/asterisk", "-c", "."],
        cwd=stack.workdir, env=stack.env, capture_output=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    image: dict[str, str] = {}
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                image[Path(member.name).name] = extracted.read().decode()
    ports = Ports(sip=5060, http=8088, carrier=5070, agi=4573)
    instance = AsteriskInstance(f"drift-{os.getpid()}", ports, "", root=ensure_root())
    etc = instance.write_config()
    try:
        harness = {path.name: path.read_text() for path in etc.iterdir()}
    finally:
        shutil.rmtree(etc.parent, ignore_errors=True)
    assert sorted(image) == sorted(harness)
    for name in sorted(harness):
        assert _entries(name, image[name]) == _entries(name, harness[name]), name


def test_the_image_has_no_french_sound_but_callgates(stack: Stack):
    """Debian's French sounds are Canadian French: the image, as the harness's root, has
    none of them; the French announcement is callgate's own prompts."""
    listed = stack.compose("exec", "-T", "asterisk", "ls", "-A", "/usr/share/asterisk/sounds/fr")
    assert listed.split() == ["callgate"]
    words = stack.compose("exec", "-T", "asterisk", "ls", "/usr/share/asterisk/sounds/fr/callgate")
    assert {"cap.wav", "retry.wav", "weekday-3.wav", "day-16.wav", "month-12.wav"} <= set(
        words.split()
    )
