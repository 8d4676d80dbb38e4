"""sipp as the agent's softphone (UAC) and as the carrier (UAS), with what each saw."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CallResult", "Carrier", "Invite", "free_port", "place_call"]

SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def free_port() -> int:
    """A port free on loopback right now for both TCP and UDP (SIP, HTTP, AGI alike)."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port on loopback")


def _sipp() -> str:
    found = shutil.which("sipp")
    if found is None:
        raise RuntimeError("sipp is missing: apt-get install sip-tester")
    return found


def _messages(path: Path) -> list[str]:
    """The SIP messages of a sipp -trace_msg file, in order."""
    if not path.exists():
        return []
    blocks = re.split(r"(?m)^-{10,}.*$", path.read_text(errors="replace"))
    messages = []
    for block in blocks:
        body = block.split("\n\n", 1)[1] if "bytes :" in block else block
        text = body.strip()
        if text:
            messages.append(text)
    return messages


def _header(message: str, name: str) -> str | None:
    match = re.search(rf"(?mi)^{re.escape(name)}\s*:\s*(.*)$", message)
    return match.group(1).strip() if match else None


def _user(header: str | None) -> str | None:
    if header is None:
        return None
    match = re.search(r"sips?:([^@;>]+)@", header)
    return match.group(1) if match else None


@dataclass(frozen=True)
class Invite:
    """An INVITE as the carrier received it."""

    uri_user: str | None
    from_user: str | None
    pai_user: str | None
    raw: str


@dataclass(frozen=True)
class CallResult:
    final: int | None  # the final SIP status the agent got for its authenticated INVITE
    reason: str | None  # the Reason header, e.g. Q.850;cause=21
    messages: list[str]


class Carrier:
    """A sipp UAS on a loopback port, answering every call 486 Busy Here."""

    def __init__(self, port: int, workdir: Path) -> None:
        self.port = port
        self.trace = workdir / f"carrier-{port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.trace.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                _sipp(), "-sf", str(SCENARIOS / "carrier.xml"), "-i", "127.0.0.1",
                "-p", str(self.port), "-trace_msg", "-message_file", str(self.trace),
                "-nostdin", "-max_recv_loops", "1000", "-timeout_error",
            ],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.trace.exists():
            if self.process.poll() is not None:
                raise RuntimeError(f"sipp carrier exited with {self.process.returncode}")
            time.sleep(0.05)

    def invites(self) -> list[Invite]:
        found = []
        for message in _messages(self.trace):
            if message.startswith("INVITE "):
                uri = message.split()[1]
                found.append(
                    Invite(
                        uri_user=_user(uri + ">") or _user("<" + uri + ">"),
                        from_user=_user(_header(message, "From")),
                        pai_user=_user(_header(message, "P-Asserted-Identity")),
                        raw=message,
                    )
                )
        return found

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def place_call(
    *,
    pbx_port: int,
    agent: str,
    password: str,
    caller: str,
    number: str,
    workdir: Path,
    timeout: float = 20,
    scenario: str = "agent.xml",
) -> CallResult:
    """One call from an agent's softphone; returns the final answer the agent got."""
    trace = workdir / f"agent-{agent}-{number}-{time.monotonic_ns()}.log"
    subprocess.run(
        [
            _sipp(), "127.0.0.1:" + str(pbx_port), "-sf", str(SCENARIOS / scenario),
            "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1", "-s", number,
            "-au", agent, "-ap", password,
            "-key", "agent", agent, "-key", "caller", caller,
            "-trace_msg", "-message_file", str(trace), "-nostdin",
            "-timeout", f"{timeout:g}s", "-timeout_error",
            "-recv_timeout", str(int(timeout * 1000)),
        ],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        timeout=timeout + 10, check=False,
    )  # fmt: skip
    messages = _messages(trace)
    final, reason = None, None
    for message in messages:
        status = re.match(r"SIP/2\.0 (\d{3})", message)
        cseq = _header(message, "CSeq") or ""
        if status and cseq.startswith("2 INVITE") and int(status.group(1)) >= 200:
            final, reason = int(status.group(1)), _header(message, "Reason")
    return CallResult(final, reason, messages)
