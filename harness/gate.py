"""The real `callgate run` process, optionally on a faked clock (libfaketime)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["GateProcess", "ari_request", "write_config"]

FAKETIME_LIBS = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
)


def callgate_command() -> list[str]:
    found = shutil.which("callgate", path=str(Path(sys.executable).parent)) or shutil.which(
        "callgate"
    )
    return [found] if found else [sys.executable, "-m", "callgate"]


def write_config(
    path: Path,
    *,
    db: Path,
    ari_url: str,
    password_file: Path,
    agi_port: int = 4573,
    ari_app: str = "callgate",
    node: str | None = None,
    ami_port: int | None = None,
    api: tuple[str, Path] | None = None,
    **rules: Any,
) -> Path:
    """A configuration for the harness's PBX; ``api`` is (bind, tokens file) for
    `callgate api` and its console."""
    lines = [
        "[store]", f'url = "{db}"', 'synchronous = "normal"', "",
        "[ari]", f'url = "{ari_url}"', f'password_file = "{password_file}"',
        f'app = "{ari_app}"', "",
        "[agi]", f'listen = "127.0.0.1:{agi_port}"', "",
        *(["[log]", f'node = "{node}"', ""] if node else []),
        # The harness gives AMI the ARI password (harness.asterisk): one file for both.
        *(["[ami]", f"port = {ami_port}", f'password_file = "{password_file}"', ""]
          if ami_port else []),
        *(["[api]", f'bind = "{api[0]}"', f'tokens_file = "{api[1]}"', ""] if api else []),
        "[rules]", *(f"{key} = {json.dumps(value)}" for key, value in rules.items()), "",
        "[[companies]]", 'id = "acme"', 'name = "ACME"',
        'numbers = ["+33948000001", "+33947700001", "+33140000000"]', "",
    ]  # fmt: skip
    path.write_text("\n".join(lines))
    return path


def ari_request(
    url: str, password: str, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    token = base64.b64encode(f"callgate:{password}".encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url + "/ari" + path, data=data, method=method,
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            text = reply.read().decode()
            return reply.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


_READY = {"run": "connected to ARI", "agi": "FastAGI gate listening", "api": "api listening"}


class GateProcess:
    """`callgate run` with a config file; ``fake_now`` starts its clock at that UTC time."""

    def __init__(
        self,
        config: Path,
        log: Path,
        *,
        ari_url: str,
        ari_password: str,
        fake_now: str | None = None,
        command: str = "run",
    ) -> None:
        self.config, self.log = config, log
        self.command = command
        # What the service logs once it is ready to take calls.
        self.ready = _READY[command]
        self.ari_url, self.ari_password = ari_url, ari_password
        self.fake_now = fake_now
        self.process: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []

    def environment(self) -> dict[str, str]:
        env = {**os.environ, "CALLGATE_CONFIG": str(self.config)}
        env.pop("CALLGATE_DB", None)
        if self.fake_now:
            library = next((lib for lib in FAKETIME_LIBS if Path(lib).exists()), None)
            if library is None:
                raise RuntimeError("libfaketime is missing: apt-get install faketime")
            env.update(LD_PRELOAD=library, FAKETIME=f"@{self.fake_now}", TZ="UTC")
        return env

    def _connections(self) -> int:
        return self.log.read_text(errors="replace").count(self.ready) if self.log.exists() else 0

    cwd: Path | None = None  # where the service starts: the caller's folder by default

    def argv(self) -> list[str]:
        """The command that starts the service."""
        return [*callgate_command(), self.command, *self.extra_args]

    def start(self, timeout: float = 15) -> None:
        before = self._connections()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv(), env=self.environment(), cwd=self.cwd,
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"callgate exited:\n{self.log.read_text()[-2000:]}")
            if self._connections() > before:
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"callgate {self.command} did not get ready:\n{self.log.read_text()[-2000:]}"
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


def console_decisions(home: str, token: str) -> int:
    """Logs in to the console at ``home`` as a browser does (its CSRF cookie and field,
    then the session cookie) and counts the rows of the decision list's first page."""
    import http.cookiejar
    import re
    import urllib.parse

    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(home + "login", timeout=10) as reply:
        form = reply.read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf, "the login form carries no CSRF field"
    body = urllib.parse.urlencode({"token": token, "csrf": csrf[1], "next": "/console/decisions"})
    with opener.open(home + "login", data=body.encode(), timeout=10) as reply:
        page = reply.read().decode()
    return len(re.findall(r'<tr class="decision[ "]', page))
