"""baresip, a real softphone, headless: an agent that registers, dials, sends DTMF as
RFC 4733 events and hangs up, driven through its TCP control port.

No sound card: it sends a WAV file (``aufile``) and records what it hears (``sndfile``,
one ``dump-*-dec.wav`` per call). Its control port (``ctrl_tcp``) takes netstring-framed
JSON commands, the ones of its ``menu`` module (``dial``, ``sndcode``, ``hangup``...), and
sends back the answers and every event (``REGISTER_OK``, ``CALL_ESTABLISHED``,
``CALL_CLOSED``...) the same way.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import struct
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

from harness.sipp import free_port

__all__ = ["Baresip", "rms", "write_tone"]

RATE = 8000  # PCMU and PCMA: what the PBX offers its agents


def write_tone(path: Path, seconds: float = 60, hertz: float = 440) -> Path:
    """A quiet sine as the agent's voice: aufile needs a file at the codec's rate."""
    frames = b"".join(
        struct.pack("<h", int(3000 * math.sin(2 * math.pi * hertz * i / RATE)))
        for i in range(int(seconds * RATE))
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(frames)
    return path


def rms(samples: list[int]) -> float:
    return math.sqrt(sum(s * s for s in samples) / len(samples)) if samples else 0.0


def _netstring(data: bytes) -> bytes:
    return str(len(data)).encode() + b":" + data + b","


class Baresip:
    """One baresip process registered as an agent of the PBX on ``pbx_port``."""

    def __init__(self, workdir: Path, pbx_port: int, agent: str, password: str) -> None:
        self.dir = workdir / f"baresip-{agent}"
        self.recordings = self.dir / "heard"
        self.pbx_port = pbx_port
        self.agent = agent
        self.password = password
        self.sip_port = free_port()
        self.ctrl_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.events: list[dict[str, Any]] = []
        self._responses: list[dict[str, Any]] = []
        self._socket: socket.socket | None = None
        self._buffer = b""

    @property
    def log(self) -> Path:
        return self.dir / "baresip.log"

    def _configure(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.recordings.mkdir(parents=True)
        voice = write_tone(self.dir / "voice.wav")
        # Only the modules a headless agent needs: no sound card, no terminal menu.
        (self.dir / "config").write_text(
            "\n".join([
                "poll_method epoll",
                f"sip_listen 127.0.0.1:{self.sip_port}",
                f"audio_source aufile,{voice}",
                # aubridge plays into a bridge nothing listens to: the sound card's stand-in.
                "audio_player aubridge,nowhere",
                "audio_alert aubridge,nowhere",
                f"snd_path {self.recordings}",
                "module_path /usr/lib/baresip/modules",
                "module g711.so",
                "module aufile.so",
                "module aubridge.so",
                "module sndfile.so",
                "module_tmp account.so",
                "module_app menu.so",
                "module_app ctrl_tcp.so",
                f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                "",
            ])
        )  # fmt: skip
        # No account yet: it registers at once, before the control port could hear of it.
        (self.dir / "accounts").write_text("")

    @property
    def account(self) -> str:
        """The account line of docs/softphone.md: it registers, and again every hour
        (baresip's default interval)."""
        return f"<sip:{self.agent}@127.0.0.1:{self.pbx_port}>;auth_pass={self.password}"

    def start(self, timeout: float = 10) -> dict[str, Any]:
        """Start and wait for the registration's outcome; returns its event."""
        if shutil.which("baresip") is None:
            raise RuntimeError("baresip is missing: apt-get install baresip-core")
        self._configure()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                ["baresip", "-f", str(self.dir)], cwd=self.dir, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while self._socket is None:
            if self.process.poll() is not None:
                raise RuntimeError(f"baresip exited at start:\n{self.log.read_text()}")
            try:
                self._socket = socket.create_connection(("127.0.0.1", self.ctrl_port), 1)
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        answer = self.command("uanew", self.account)
        assert answer.get("ok"), answer
        return self.wait_for({"REGISTER_OK", "REGISTER_FAIL"}, timeout)

    def command(self, name: str, params: str = "", timeout: float = 5) -> dict[str, Any]:
        """Run a menu command; its answer (``ok``, ``data``)."""
        assert self._socket is not None
        token = f"{name}-{time.monotonic_ns()}"
        message = {"command": name, "params": params, "token": token}
        self._socket.sendall(_netstring(json.dumps(message).encode()))
        deadline = time.monotonic() + timeout
        while True:
            for response in self._responses:
                if response.get("token") == token:
                    self._responses.remove(response)
                    return response
            self._receive(deadline)

    def wait_for(self, types: str | set[str], timeout: float = 15) -> dict[str, Any]:
        """The first event of one of ``types`` not waited for yet."""
        wanted = {types} if isinstance(types, str) else types
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("type") in wanted and not event.get("_seen"):
                    event["_seen"] = True
                    return event
            self._receive(deadline)

    def _receive(self, deadline: float) -> None:
        assert self._socket is not None
        left = deadline - time.monotonic()
        if left <= 0:
            seen = [event.get("type") for event in self.events]
            raise TimeoutError(f"baresip: nothing more came; events so far: {seen}")
        self._socket.settimeout(min(left, 0.5))
        try:
            data = self._socket.recv(65536)
        except TimeoutError:
            return
        if not data:
            raise ConnectionError(f"baresip closed its control port:\n{self.log.read_text()}")
        self._buffer += data
        while b":" in self._buffer:
            length, rest = self._buffer.split(b":", 1)
            size = int(length)
            if len(rest) < size + 1:
                break
            message = json.loads(rest[:size])
            self._buffer = rest[size + 1 :]
            (self.events if message.get("event") else self._responses).append(message)

    def dial(self, number: str) -> None:
        answer = self.command("dial", number)
        assert answer.get("ok"), answer

    def keys(self, digits: str) -> None:
        """Press keys during the call: RFC 4733 telephone events, as the PBX negotiated."""
        answer = self.command("sndcode", digits)
        assert answer.get("ok"), answer

    def hang_up(self) -> None:
        self.command("hangup")

    def recordings_made(self) -> list[Path]:
        return sorted(self.recordings.glob("dump-*-dec.wav"))

    def heard(self, recording: Path, timeout: float = 5) -> list[int]:
        """The samples baresip decoded from the PBX during one call, once the file is
        complete (sndfile writes its length when the call's audio stops)."""
        deadline = time.monotonic() + timeout
        while True:
            with wave.open(str(recording)) as dump:
                assert (dump.getframerate(), dump.getnchannels()) == (RATE, 1)
                frames = dump.readframes(dump.getnframes())
            if frames or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        return [
            int.from_bytes(frames[i : i + 2], "little", signed=True)
            for i in range(0, len(frames), 2)
        ]

    def stop(self) -> None:
        if self._socket is not None:
            # It may exit before it answers.
            with contextlib.suppress(OSError, TimeoutError):
                self.command("quit", timeout=2)
            self._socket.close()
            self._socket = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Baresip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
