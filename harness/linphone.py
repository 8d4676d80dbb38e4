"""Linphone's console softphone (`linphonec`, Debian's linphone-cli), headless.

linphonec reads its commands with readline and runs the SIP stack only while readline
waits on a terminal, so it gets a pseudo-terminal here. Without a sound card it is told to
use files (``soundcard use files``). Two things it needs that a desktop has: a writable
``~/.local/share/linphone`` (without it the core never starts listening, and every call
fails with "no channel available"), and a SIP port of its own.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import time
from pathlib import Path

from harness.sipp import free_port

__all__ = ["PASSWORD_PROMPT", "Linphonec", "PasswordAsked"]

PROMPT = "linphonec> "
# What linphonec prints when the PBX turned its credentials down: it asks for the password.
PASSWORD_PROMPT = re.compile(r"Password for \S+ on \S+:")


class PasswordAsked(AssertionError):
    """linphonec took an answer of the PBX for a wrong password, and asks for it again."""


class Linphonec:
    """One linphonec registered as an agent of the PBX on ``pbx_port``."""

    def __init__(self, workdir: Path, pbx_port: int, agent: str, password: str) -> None:
        self.home = workdir / f"linphonec-{agent}"
        self.pbx_port = pbx_port
        self.agent = agent
        self.password = password
        self.sip_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._terminal: int | None = None
        self.output = ""

    @property
    def log(self) -> Path:
        """liblinphone's own log: the SIP messages, and its authentication failures."""
        return self.home / "linphonec.log"

    def start(self, timeout: float = 15) -> None:
        if shutil.which("linphonec") is None:
            raise RuntimeError("linphonec is missing: apt-get install linphone-cli")
        shutil.rmtree(self.home, ignore_errors=True)
        (self.home / ".local/share/linphone").mkdir(parents=True)
        config = self.home / "linphonerc"
        # UDP only, on a port of its own; no TCP or TLS listener.
        config.write_text(f"[sip]\nsip_port={self.sip_port}\nsip_tcp_port=0\nsip_tls_port=0\n")
        env = {**os.environ, "HOME": str(self.home), "TERM": "dumb"}
        leader, follower = pty.openpty()
        self.process = subprocess.Popen(
            ["linphonec", "-c", str(config), "-d", "6", "-l", str(self.log)],
            stdin=follower, stdout=follower, stderr=follower, env=env, cwd=self.home,
            start_new_session=True,
        )  # fmt: skip
        os.close(follower)
        self._terminal = leader
        self.expect(PROMPT, timeout)
        self.command("soundcard use files", "Using wav files")
        proxy = f"sip:127.0.0.1:{self.pbx_port}"
        self.command(f"register sip:{self.agent}@127.0.0.1:{self.pbx_port} {proxy} {self.password}")
        deadline = time.monotonic() + timeout
        while "registered, identity" not in self.command("status register"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"linphonec did not register:\n{self.output[-2000:]}")
            time.sleep(0.3)

    def _read(self, until: float) -> None:
        assert self._terminal is not None
        ready, _, _ = select.select([self._terminal], [], [], max(0.0, until - time.monotonic()))
        if ready:
            try:
                chunk = os.read(self._terminal, 65536)
            except OSError:  # the terminal closed: linphonec has exited
                chunk = b""
            if not chunk:
                raise ConnectionError(f"linphonec exited:\n{self.output[-2000:]}")
            self.output += chunk.decode(errors="replace")

    def expect(self, pattern: str | re.Pattern[str], timeout: float = 15, since: int = 0) -> str:
        """Wait until ``pattern`` shows in the output after position ``since``; the output
        from ``since`` on. A password prompt stops the wait: linphonec would take the next
        command typed for the password."""
        wanted = re.compile(re.escape(pattern)) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while not wanted.search(self.output, since):
            self._no_password_prompt()
            if time.monotonic() > deadline:
                raise TimeoutError(f"linphonec never said {wanted.pattern!r}:\n"
                                   f"{self.output[since:][-2000:]}")  # fmt: skip
            self._read(deadline)
        return self.output[since:]

    def _no_password_prompt(self) -> None:
        if PASSWORD_PROMPT.search(self.output):
            raise PasswordAsked(self.output[-2000:])

    def command(self, line: str, until: str = PROMPT, timeout: float = 15) -> str:
        """Type a command; its output, up to ``until``."""
        assert self._terminal is not None
        self._read(time.monotonic())  # what came since: a password prompt would eat the line
        self._no_password_prompt()
        since = len(self.output)
        os.write(self._terminal, (line + "\n").encode())
        echoed = self.expect(line, timeout, since)  # the terminal echoes the line first
        return self.expect(until, timeout, since + echoed.index(line) + len(line))

    def call(self, number: str, timeout: float = 30) -> str:
        """Dial and wait for the call's end; what linphonec said about it."""
        since = len(self.output)
        self.command(f"call sip:{number}@127.0.0.1:{self.pbx_port}", "Establishing call")
        return self.expect(re.compile(r"Call \d+ with \S+ (ended|error)[^\n]*\n"), timeout, since)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            try:
                if self._terminal is not None:
                    os.write(self._terminal, b"quit\n")
                self.process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        if self._terminal is not None:
            os.close(self._terminal)
            self._terminal = None

    def __enter__(self) -> Linphonec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
