"""A Docker engine of the tests' own, and Debian base images made here with debootstrap.

The engine is Debian's dockerd, started by hand with its own socket and exec root and a data
root cached under /var/cache/callgate/docker/engine (like the Asterisk root: images and build
layers survive between runs), and stopped by its PID. What dockerd changes on the host --
iptables rules, the docker0 bridge, IP forwarding -- is put back as it was, and
``Engine.leftovers`` says what, if anything, is still there.

No registry is reached for base images: ``debian:bookworm-slim`` and ``debian:sid-slim``
are debootstrap roots (cached too) imported under the names the Dockerfiles' FROM lines use,
so a user's machine pulls the same names from Docker Hub.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "BASE_IMAGES", "Engine", "EngineUnavailable", "HostNetwork", "docs_steps", "ensure_base_images",
]  # fmt: skip

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("CALLGATE_DOCKER_CACHE", "/var/cache/callgate/docker"))
MIRROR = os.environ.get("CALLGATE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The FROM names of docker/*/Dockerfile, and the Debian suite each one is.
BASE_IMAGES = {"debian:bookworm-slim": "bookworm", "debian:sid-slim": "sid"}
BRIDGE = "docker0"


def _log(message: str) -> None:
    print(f"[docker] {message}", file=sys.stderr, flush=True)


class EngineUnavailable(RuntimeError):
    """This machine cannot run a Docker engine; the message says why."""


def _run(
    command: list[str], timeout: float = 600, **kwargs: object
) -> subprocess.CompletedProcess[str]:
    """A command's output; a hung dockerd or mirror fails it instead of hanging the run."""
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)  # type: ignore[call-overload]


def _rules(save: str) -> list[str]:
    """An iptables-save dump without its comments and counters: the rules and chains."""
    if shutil.which(save) is None:
        return []
    lines = []
    for line in _run([save]).stdout.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(":"):
            line = line.rsplit(" [", 1)[0]  # the packet counters
        lines.append(line)
    return lines


def _tables(dump: list[str]) -> dict[str, list[str]]:
    tables: dict[str, list[str]] = {}
    current: list[str] = []
    for line in dump:
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif line != "COMMIT":
            current.append(line)
    return tables


_BUILTIN = {
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "raw": ("PREROUTING", "OUTPUT"),
    "security": ("INPUT", "FORWARD", "OUTPUT"),
}


def _empty(table: str) -> list[str]:
    return [f":{chain} ACCEPT" for chain in _BUILTIN.get(table, ())]


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else set()


def _forwarding() -> dict[str, str]:
    found = {}
    for key in ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"):
        if os.path.exists(key):
            found[key] = Path(key).read_text().strip()
    return found


@dataclass(frozen=True)
class HostNetwork:
    """What a Docker engine changes in the host's network, as it is now."""

    ipv4: list[str] = field(default_factory=list)
    ipv6: list[str] = field(default_factory=list)
    links: set[str] = field(default_factory=set)
    forwarding: dict[str, str] = field(default_factory=dict)

    @classmethod
    def capture(cls) -> HostNetwork:
        return cls(_rules("iptables-save"), _rules("ip6tables-save"), _links(), _forwarding())

    def restore(self) -> None:
        """Undo what a Docker engine did since the capture: its chains and rules, its
        builtin chains' policies, its links, IP forwarding. Rules and links anything else
        added meanwhile stay."""
        for restore, saved, now in (
            ("iptables-restore", self.ipv4, _rules("iptables-save")),
            ("ip6tables-restore", self.ipv6, _rules("ip6tables-save")),
        ):
            before, after = _tables(saved), _tables(now)
            wanted = {name: _without_docker(lines, before.get(name, _empty(name)), name)
                      for name, lines in after.items()}  # fmt: skip
            changed = {name: lines for name, lines in wanted.items() if lines != after[name]}
            if not changed or shutil.which(restore) is None:
                continue
            # Restoring a table replaces it whole: its chains and rules as listed.
            text = "".join(f"*{name}\n" + "".join(f"{line}\n" for line in lines) + "COMMIT\n"
                           for name, lines in changed.items())  # fmt: skip
            _run([restore], input=text, check=True)
        for link in _links() - self.links:
            if _docker_link(link):
                _run(["ip", "link", "delete", link])
        for key, value in self.forwarding.items():
            Path(key).write_text(value + "\n")

    def differences(self, before: HostNetwork) -> list[str]:
        """What a Docker engine added since ``before`` and is still here."""
        found = []
        for family, now, then in (("iptables", self.ipv4, before.ipv4),
                                  ("ip6tables", self.ipv6, before.ipv6)):  # fmt: skip
            tables, old = _tables(now), _tables(then)
            for name, lines in tables.items():
                kept = _without_docker(lines, old.get(name, _empty(name)), name)
                extra = [line for line in lines if line not in kept]
                if extra:
                    found.append(f"{family} table {name}: {' | '.join(extra)}")
        found += [f"network link {link}" for link in sorted(self.links - before.links)
                  if _docker_link(link)]  # fmt: skip
        found += [f"{key} is {value}, was {before.forwarding.get(key)}"
                  for key, value in self.forwarding.items()
                  if value != before.forwarding.get(key)]  # fmt: skip
        return found


_DOCKER_MARKS = ("DOCKER", "docker0", " br-", "docker-proxy")


def _without_docker(lines: list[str], before: list[str], table: str) -> list[str]:
    """A table's lines without what Docker added since ``before``: its chains, the rules
    that name them or its bridges; the builtin chains' policies as they were."""
    policies = {line.split()[0]: line for line in before if line.startswith(":")}
    kept = []
    for line in lines:
        if line.startswith(":") and line[1:].split()[0] in _BUILTIN.get(table, ()):
            kept.append(policies.get(line.split()[0], line))
        elif line in before or not any(mark in line for mark in _DOCKER_MARKS):
            kept.append(line)
    return kept


def _docker_link(name: str) -> bool:
    return name == BRIDGE or name.startswith(("br-", "veth"))


class Engine:
    """dockerd with its own socket, exec root and cached data root."""

    def __init__(self, cache: Path = CACHE, exec_root: Path = Path("/run/callgate-docker")):
        self.data_root = cache / "engine"
        self.exec_root = exec_root
        self.socket = exec_root / "docker.sock"
        self.log_file = cache / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.network_before: HostNetwork | None = None

    @property
    def env(self) -> dict[str, str]:
        """The environment for docker and docker-compose to talk to this engine."""
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}"}

    def docker(self, *args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
        return _run(["docker", *args], env=self.env, **kwargs)

    def start(self, timeout: float = 60) -> None:
        """Start dockerd, or raise EngineUnavailable saying why it cannot run here."""
        if os.geteuid() != 0:
            raise EngineUnavailable("a Docker engine of its own needs root")
        for program, package in (("dockerd", "docker.io"), ("docker", "docker.io"),
                                 ("docker-compose", "docker-compose")):  # fmt: skip
            if shutil.which(program) is None:
                raise EngineUnavailable(f"{program} is missing: apt-get install {package}")
        stale = _alive(self.exec_root / "dockerd.pid")
        if stale:
            raise EngineUnavailable(
                f"the dockerd of an interrupted run is still up (pid {stale}): kill it, then "
                f"`ip link delete {BRIDGE}`"
            )
        if BRIDGE in _links():
            raise EngineUnavailable(
                f"a {BRIDGE} bridge is up: another Docker engine runs here (a second one would "
                f"share its bridge and iptables chains), or an interrupted run left it "
                f"(`ip link delete {BRIDGE}`)"
            )
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.exec_root.mkdir(parents=True, exist_ok=True)
        self.network_before = HostNetwork.capture()
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                ["dockerd", "--data-root", str(self.data_root), "--exec-root",
                 str(self.exec_root), "--pidfile", str(self.exec_root / "dockerd.pid"),
                 "--host", f"unix://{self.socket}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_file.read_text(errors="replace").strip().splitlines()[-3:]
                self.stop()
                raise EngineUnavailable("dockerd exited at start: " + " / ".join(tail))
            if self.socket.exists() and self.docker("version").returncode == 0:
                return
            time.sleep(0.3)
        self.stop()
        raise EngineUnavailable(f"dockerd did not answer within {timeout:g} s ({self.log_file})")

    def stop(self) -> None:
        """Remove every container, network and volume, stop dockerd, undo its network."""
        if self.process is not None and self.process.poll() is None:
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", "-v", *ids)
            self.docker("network", "prune", "-f")
            self.docker("volume", "prune", "-f")
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        else:
            # dockerd is gone (it died mid-run): its container shims and the containers
            # under them are not, and would outlive the network about to be removed.
            for pid, _ in self._processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for mount in reversed(self._mounts()):
            _run(["umount", "-l", mount])
        if self.network_before is not None:
            self.network_before.restore()
        shutil.rmtree(self.exec_root, ignore_errors=True)

    def _mounts(self) -> list[str]:
        roots = (str(self.data_root), str(self.exec_root))
        with open("/proc/mounts") as mounts:
            points = [line.split()[1] for line in mounts]
        return [point for point in points if point.startswith(roots)]

    def _processes(self) -> list[tuple[int, str]]:
        """This engine's processes, as (pid, command line): those that name its exec root
        (dockerd, containerd, the shims), its port proxies, and every process in a Docker
        container's cgroup (no other engine runs here: start() refuses to share docker0)."""
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                groups = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            if (str(self.exec_root).encode() in command or b"docker-proxy" in command
                    or "/docker/" in groups):  # fmt: skip
                found.append((int(pid), command.decode(errors="replace").strip()))
        return found

    def leftovers(self) -> list[str]:
        """What this engine left on the host: processes, mounts, network changes."""
        found = [f"mount {point}" for point in self._mounts()]
        found += [f"process {pid}: {command}" for pid, command in self._processes()]
        if self.network_before is not None:
            found += HostNetwork.capture().differences(self.network_before)
        return found


def _alive(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` when that process still runs."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def _debootstrap(suite: str, cache: Path = CACHE) -> Path:
    """A minimal Debian root of ``suite``, built once and cached."""
    root = cache / suite
    if (root / "usr/bin/apt-get").exists():
        return root
    if shutil.which("debootstrap") is None:
        raise EngineUnavailable("debootstrap is missing: apt-get install debootstrap")
    building = root.with_name(root.name + ".tmp")
    for attempt in range(1, 4):  # a mirror sometimes drops a download
        shutil.rmtree(building, ignore_errors=True)
        _log(f"debootstrap {suite} into {root} (about two minutes; attempt {attempt})...")
        result = _run(["debootstrap", "--variant=minbase", suite, str(building), MIRROR],
                      timeout=1200)  # fmt: skip
        if result.returncode == 0:
            break
    else:
        tail = (result.stdout + result.stderr).strip().splitlines()[-1:]
        raise RuntimeError(f"debootstrap {suite} failed: {' '.join(tail)}")
    for deb in (building / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    building.rename(root)
    return root


def ensure_base_images(engine: Engine, images: Mapping[str, str] = BASE_IMAGES) -> None:
    """Import each base image the engine lacks from its cached debootstrap root."""
    missing = {name: suite for name, suite in images.items()
               if engine.docker("image", "inspect", name).returncode != 0}  # fmt: skip
    # The roots download in parallel: each is mostly waiting on the mirror.
    with ThreadPoolExecutor() as pool:
        roots = dict(zip(missing, pool.map(_debootstrap, missing.values()), strict=True))
    for name, root in roots.items():
        _log(f"importing {root} as {name}...")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-", name], stdin=tar.stdout, env=engine.env,
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait()
        if imported.returncode != 0 or tar.returncode != 0:
            raise RuntimeError(f"could not import {name}: {imported.stderr.strip()}")


def docs_steps() -> str:
    """The shell block of docs/softphone.md's "With Docker" part: what a user runs."""
    text = (REPO / "docs" / "softphone.md").read_text()
    part = text[text.index("**With Docker**") :]
    match = re.search(r"```sh\n(.*?)```", part, re.S)
    if match is None:
        raise ValueError("docs/softphone.md: no sh block after **With Docker**")
    return match.group(1)
