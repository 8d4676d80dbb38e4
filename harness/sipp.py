"""sipp as the agent's softphone (UAC) and as the carrier (UAS), with what each saw."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CallResult",
    "Carrier",
    "Invite",
    "RtpListener",
    "RtpPacket",
    "free_port",
    "invites_in",
    "messages_in",
    "place_call",
    "ulaw_decode",
]

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
    return messages_in(path.read_text(errors="replace")) if path.exists() else []


def messages_in(text: str) -> list[str]:
    """The SIP messages of a sipp -trace_msg text, in order."""
    blocks = re.split(r"(?m)^-{10,}.*$", text)
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
    reason: str | None  # the Reason header, e.g. Q.850;cause=17 (busy)
    messages: list[str]


def invites_in(messages: list[str]) -> list[Invite]:
    """The INVITEs among a carrier's SIP messages, as it received them."""
    found = []
    for message in messages:
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
        return invites_in(_messages(self.trace))

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
    keys: Mapping[str, str] | None = None,
) -> CallResult:
    """One call from an agent's softphone; returns the final answer the agent got.

    ``keys`` are more ``-key`` values for the scenario, e.g. ``rtp_port``.
    """
    trace = workdir / f"agent-{agent}-{number}-{time.monotonic_ns()}.log"
    extra = [arg for key, value in (keys or {}).items() for arg in ("-key", key, value)]
    subprocess.run(
        [
            _sipp(), "127.0.0.1:" + str(pbx_port), "-sf", str(SCENARIOS / scenario),
            "-i", "127.0.0.1", "-p", str(free_port()), "-m", "1", "-s", number,
            "-au", agent, "-ap", password,
            "-key", "agent", agent, "-key", "caller", caller, *extra,
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


@dataclass(frozen=True)
class RtpPacket:
    arrived: float  # time.monotonic()
    sequence: int
    payload_type: int
    payload: bytes


class RtpListener:
    """A UDP port on loopback that keeps every RTP packet sent to it: an agent's ear, for
    a scenario whose SDP names this port (agent_early_media.xml, ``rtp_port``)."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.settimeout(0.1)
        self.port = int(self._socket.getsockname()[1])
        self.packets: list[RtpPacket] = []
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def _receive(self) -> None:
        while not self._stopping.is_set():
            try:
                data = self._socket.recv(4096)
            except TimeoutError:
                continue
            packet = _parse_rtp(data)
            if packet is not None:
                self.packets.append(packet)

    def audio(self, payload_type: int = 0) -> bytes:
        """The payloads of one type end to end, in arrival order (loopback keeps it)."""
        return b"".join(p.payload for p in self.packets if p.payload_type == payload_type)

    def __enter__(self) -> RtpListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._socket.close()


def _parse_rtp(data: bytes) -> RtpPacket | None:
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    offset = 12 + 4 * (data[0] & 0x0F)  # past the CSRC list
    if data[0] & 0x10 and len(data) >= offset + 4:  # a header extension
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
    end = len(data) - (data[-1] if data[0] & 0x20 else 0)  # padding
    return RtpPacket(
        time.monotonic(), int.from_bytes(data[2:4], "big"), data[1] & 0x7F, data[offset:end]
    )


def _ulaw_sample(byte: int) -> int:
    # G.711 mu-law: the complement holds sign, a 3-bit exponent and a 4-bit mantissa.
    byte = ~byte & 0xFF
    magnitude = ((((byte & 0x0F) << 3) + 0x84) << ((byte >> 4) & 0x07)) - 0x84
    return -magnitude if byte & 0x80 else magnitude


_ULAW = tuple(_ulaw_sample(byte) for byte in range(256))


def ulaw_decode(data: bytes) -> list[int]:
    """G.711 mu-law (RTP payload type 0) to 16-bit linear samples."""
    return [_ULAW[byte] for byte in data]
