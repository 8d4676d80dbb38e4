"""A real Asterisk for tests and demos, with callgate's asterisk-conf/ on loopback ports.

Uses ``asterisk`` from PATH when there is one. Otherwise builds (once) and caches a Debian
unstable root with Asterisk 22 under /var/cache/callgate/asterisk-root, and runs Asterisk
chrooted into it. Each instance gets its own directories and ports, so several can run.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AsteriskInstance", "Ports", "ensure_root", "make_prompts", "set_option"]

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "asterisk-conf"
DEFAULT_ROOT = Path(os.environ.get("CALLGATE_ASTERISK_ROOT", "/var/cache/callgate/asterisk-root"))
MIRROR = os.environ.get("CALLGATE_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def _log(message: str) -> None:
    print(f"[asterisk] {message}", file=sys.stderr, flush=True)


PACKAGES_FILE = REPO / "docker" / "asterisk" / "packages.txt"
LOGGER_CONF = REPO / "docker" / "asterisk" / "logger.conf"
# Asterisk's own default range: many calls at once in the benchmarks. The Docker image's
# range is docker/.env's, which compose publishes.
RTP_RANGE = (5000, 31000)


def packages() -> list[str]:
    """The Debian packages of Asterisk: the same list for this root and the Docker image."""
    return PACKAGES_FILE.read_text().split()


# Debian's French sounds are Canadian French (asterisk-core-sounds-fr, the fr_CA_f_June
# voice): with them installed, any stock sound a French channel plays is Québécois. The
# French announcement is callgate's own prompts; without these packages nothing else in
# French can play (Asterisk falls back to its English sounds). A root cached while they
# were in packages.txt loses them.
UNWANTED = ("asterisk-core-sounds-fr*", "asterisk-prompt-fr*")


def ensure_root(root: Path = DEFAULT_ROOT) -> Path | None:
    """The chroot to run Asterisk in, built if missing, with the refusal prompts spoken;
    None when Asterisk is on PATH."""
    if shutil.which("asterisk"):
        return None
    root.parent.mkdir(parents=True, exist_ok=True)
    # Test sessions start side by side: one builds or installs, the others wait for it
    # (two apt-get in one root fail on dpkg's lock; two debootstraps clobber each other).
    with (root.parent / f"{root.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "usr/sbin/asterisk").exists():
            _build_root(root)
        _install_missing(root)
        _remove_unwanted(root)
        make_prompts(root)
    return root


def _build_root(root: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise RuntimeError("no asterisk on PATH and no debootstrap: apt-get install debootstrap")
    building = root.with_name(root.name + ".tmp")
    shutil.rmtree(building, ignore_errors=True)
    building.parent.mkdir(parents=True, exist_ok=True)
    _log(f"building a Debian unstable root with Asterisk in {root} (about a minute)...")
    subprocess.run(
        ["debootstrap", "--variant=minbase", f"--include={','.join(packages())}", "sid",
         str(building), MIRROR],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    building.rename(root)
    _log("root ready")


def _install_missing(root: Path) -> None:
    """A root cached before the package list grew gets the new packages."""
    missing = [
        name for name in packages()
        if subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Status}", name],
                          capture_output=True, text=True).stdout != "install ok installed"
    ]  # fmt: skip
    if missing:
        _log(f"installing {', '.join(missing)} into {root}...")
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        # A mirror snapshot may carry an expired Release file: accept it, as debootstrap did.
        update = ["apt-get", "-o", "Acquire::Check-Valid-Until=false", "update", "-q"]
        subprocess.run(["chroot", str(root), *update], check=True, env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        subprocess.run(
            ["chroot", str(root), "apt-get", "install", "-y", "-q", "--no-install-recommends",
             *missing], check=True, env=env, stdout=subprocess.DEVNULL,
        )  # fmt: skip


def _remove_unwanted(root: Path) -> None:
    listed = subprocess.run(
        ["chroot", str(root), "dpkg-query", "-W", "-f=${Package} ${Status}\\n", *UNWANTED],
        capture_output=True, text=True,
    ).stdout  # fmt: skip
    installed = [line.split()[0] for line in listed.splitlines() if line.endswith(" installed")]
    if not installed:
        return
    _log(f"removing {', '.join(installed)} from {root}...")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    subprocess.run(["chroot", str(root), "apt-get", "purge", "-y", "-q", *installed],
                   check=True, env=env, stdout=subprocess.DEVNULL)  # fmt: skip
    # The prompts made through Debian's sounds/fr link went into that voice's folder,
    # which dpkg leaves behind with them: make-prompts writes a real sounds/fr instead.
    for leftover in (root / "usr/share/asterisk/sounds").glob("fr_*"):
        if not leftover.is_symlink():
            shutil.rmtree(leftover)


PROMPT_TEXTS = REPO / "sounds" / "prompts.txt"
PROMPT_SCRIPT = REPO / "scripts" / "make-prompts"
# Where the Docker image keeps them too, so both run the script the same way.
PROMPT_TOOLS = Path("/usr/local/share/callgate")


def make_prompts(root: Path) -> None:
    """Speak the refusal prompts into the root's Asterisk sounds; the script itself skips
    the work while the texts are unchanged."""
    # Inside the root: Debian's sounds/<lang> are absolute symlinks into the root's own
    # /etc/alternatives, which resolve only there, and espeak-ng and sox are the root's.
    tools = root / PROMPT_TOOLS.relative_to("/")
    tools.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROMPT_TEXTS, tools / "prompts.txt")
    shutil.copy(PROMPT_SCRIPT, tools / "make-prompts")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}
    result = subprocess.run(
        ["chroot", str(root), "/bin/sh", str(PROMPT_TOOLS / "make-prompts"),
         "--texts", str(PROMPT_TOOLS / "prompts.txt"), "--sounds", "/usr/share/asterisk/sounds"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"could not make the refusal prompts in {root}: {result.stderr.strip()}")
    if result.stdout.strip():
        _log(result.stdout.strip())


@dataclass(frozen=True)
class Ports:
    sip: int
    http: int
    carrier: int
    agi: int = 4573
    ami: int = 0  # 0: the manager interface (AMI) off


def set_option(text: str, section: str, key: str, value: str) -> str:
    """Set ``key = value`` in the first ``[section]`` of an Asterisk config file."""
    lines = text.splitlines()
    inside = False
    for index, line in enumerate(lines):
        header = re.match(r"\[([^\]]+)\]", line.strip())
        if header:
            if inside:
                lines.insert(index, f"{key} = {value}")
                return "\n".join(lines) + "\n"
            inside = header.group(1) == section
            continue
        if inside and re.match(rf"{re.escape(key)}\s*=", line.strip()):
            lines[index] = f"{key} = {value}"
            return "\n".join(lines) + "\n"
    if not inside:
        raise KeyError(f"no section [{section}]")
    lines.append(f"{key} = {value}")
    return "\n".join(lines) + "\n"


class AsteriskInstance:
    """One Asterisk process with the project's configuration and its own ports."""

    def __init__(
        self,
        name: str,
        ports: Ports,
        ari_password: str,
        *,
        root: Path | None = None,
        globals_: dict[str, str] | None = None,
        flavour: str = "ari",
        conf_dir: Path = CONF_DIR,
    ) -> None:
        self.name = name
        self.ports = ports
        self.ari_password = ari_password
        self.root = root
        self.globals = globals_ or {}
        self.flavour = flavour
        self.conf_dir = conf_dir
        base = Path("/srv/callgate") / name
        self.inside = base  # the instance's folder as Asterisk sees it
        self.outside = (root / base.relative_to("/")) if root else Path("/tmp/callgate-ast") / name
        if not root:
            self.inside = self.outside
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ari_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def log_file(self) -> Path:
        return self.outside / "asterisk.out"

    def write_config(self) -> Path:
        """Write this instance's Asterisk configuration; returns its folder."""
        self._write_config()
        return self.outside / "etc"

    def _write_config(self) -> None:
        shutil.rmtree(self.outside, ignore_errors=True)
        etc = self.outside / "etc"
        etc.mkdir(parents=True)
        for folder in ("run", "spool", "log", "lib", "cache"):
            (self.outside / folder).mkdir()
        for source in self.conf_dir.glob("*.conf"):
            shutil.copy(source, etc / source.name)
        self._edit(etc / "pjsip.conf", "transport-udp", "bind", f"127.0.0.1:{self.ports.sip}")
        self._edit(etc / "pjsip.conf", "transport-tcp", "bind", f"127.0.0.1:{self.ports.sip}")
        self._edit(
            etc / "pjsip.conf", "carrier-aor", "contact", f"sip:127.0.0.1:{self.ports.carrier}"
        )
        self._edit(etc / "http.conf", "general", "bindport", str(self.ports.http))
        if (etc / "manager.conf").exists():
            self._manager(etc / "manager.conf")
        if self.ari_password:  # empty: keep the configuration's own
            self._edit(etc / "ari.conf", "callgate", "password", self.ari_password)
        for key, value in self.globals.items():
            self._edit(etc / "extensions.conf", "globals", key, value)
        self._choose_flavour(etc)
        # Debian's own asterisk.conf, with this instance's directories.
        system_conf = (self.root or Path("/")) / "etc/asterisk/asterisk.conf"
        text = system_conf.read_text()
        for key, folder in (
            ("astetcdir", "etc"), ("astrundir", "run"), ("astspooldir", "spool"),
            ("astlogdir", "log"), ("astdbdir", "lib"), ("astcachedir", "cache"),
        ):  # fmt: skip
            text = re.sub(rf"(?m)^{key}\s*=>.*$", f"{key} => {self.inside / folder}", text)
        # Debian marks the section a template ("(!)"): its paths are then only defaults.
        text = text.replace("[directories](!)", "[directories]")
        (etc / "asterisk.conf").write_text(text)
        # The rest of the files the Docker image has too (tests/docker compares them), unless
        # the configuration brings its own.
        if not (etc / "logger.conf").exists():
            shutil.copy(LOGGER_CONF, etc / "logger.conf")
        if not (etc / "rtp.conf").exists():
            (etc / "rtp.conf").write_text("[general]\nrtpstart={}\nrtpend={}\n".format(*RTP_RANGE))

    def _choose_flavour(self, etc: Path) -> None:
        """Switch the one include that picks the flavour (ari, ari-pool, agi); point AGI at
        our port."""
        extensions = (etc / "extensions.conf").read_text()
        if self.flavour != "ari":
            extensions = extensions.replace(
                "include => callgate-via-ari\n", ";include => callgate-via-ari\n", 1
            ).replace(f";include => callgate-via-{self.flavour}\n",
                      f"include => callgate-via-{self.flavour}\n")  # fmt: skip
        for name in ("extensions.conf", "features.conf"):
            path = etc / name
            text = extensions if name == "extensions.conf" else path.read_text()
            path.write_text(
                text.replace("agi://127.0.0.1:4573/", f"agi://127.0.0.1:{self.ports.agi}/")
            )

    def _manager(self, path: Path) -> None:
        """AMI on this instance's own port, or off: a fixed 5038 would collide."""
        if not self.ports.ami:
            self._edit(path, "general", "enabled", "no")
            return
        self._edit(path, "general", "enabled", "yes")
        self._edit(path, "general", "port", str(self.ports.ami))
        if self.ari_password:  # the same secret as ARI's: one password file for the tests
            self._edit(path, "callgate", "secret", self.ari_password)

    @staticmethod
    def _edit(path: Path, section: str, key: str, value: str) -> None:
        path.write_text(set_option(path.read_text(), section, key, value))

    def _command(self, *args: str) -> list[str]:
        conf = str(self.inside / "etc/asterisk.conf")
        command = ["asterisk", "-C", conf, *args]
        if self.root:
            return ["chroot", str(self.root), "/usr/sbin/asterisk", "-C", conf, *args]
        return command

    def start(self, timeout: float = 60) -> None:
        if self.root:
            _ensure_chroot_mounts(self.root)
            _ensure_hosts(self.root)
        self._write_config()
        with self.log_file.open("wb") as out:
            self.process = subprocess.Popen(
                self._command("-f", "-n", "-g"), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"asterisk exited at start:\n{self.log_file.read_text()[-3000:]}"
                )
            result = subprocess.run(
                self._command("-rx", "core waitfullybooted"),
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if result.returncode == 0 and "fully booted" in result.stdout:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("asterisk did not finish booting")

    def console_command(self) -> str:
        """The command that opens this instance's console (``asterisk -r``), for a shell."""
        return shlex.join(self._command("-r"))

    def rx(self, command: str) -> str:
        result = subprocess.run(
            self._command("-rx", command), capture_output=True, text=True, timeout=30
        )
        return result.stdout

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.rx("core stop now")
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def __enter__(self) -> AsteriskInstance:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ensure_chroot_mounts(root: Path) -> None:
    proc = root / "proc"
    if not (proc / "self").exists():
        subprocess.run(["mount", "-t", "proc", "proc", str(proc)], check=True)


def _ensure_hosts(root: Path) -> None:
    # Asterisk resolves the machine's own name at start; the chroot must know it.
    hostname = os.uname().nodename
    hosts = root / "etc/hosts"
    text = hosts.read_text() if hosts.exists() else ""
    if hostname not in text.split():
        hosts.write_text(f"127.0.0.1 localhost {hostname}\n::1 localhost\n")
