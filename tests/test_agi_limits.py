"""The FastAGI gate under exhaustion: deadlines, the connection cap, and a flood of faulty
clients, in process and as the real `callgate agi` under a file limit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import resource
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from test_agi_protocol import COMPANY_NUMBER, asterisk_headers, play_asterisk, result_of
from test_cli import EXAMPLE

from agi import server
from agi.server import AgiGate
from callgate.config import ConfigError, parse_config
from callgate.store import open_store
from callgate.store.sqlite import SqliteStore
from harness.sipp import free_port

ROOT = Path(__file__).parent.parent
COMPANIES = [{"id": "acme", "name": "ACME", "sector": "telecom", "numbers": [COMPANY_NUMBER]}]
# AGI(agi://127.0.0.1:4573/check,acme,service,,): every input given, nothing to read.
CALL = asterisk_headers("check", "acme", "service", "", "")
# AGI(agi://127.0.0.1:4573/check): the gate asks for the inputs with GET VARIABLE.
BARE_CALL = asterisk_headers("check")


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **agi: object) -> AsyncIterator[int]:
    """An AgiGate on a free port, with these [agi] settings; yields the port."""
    config = parse_config({"agi": agi, "companies": COMPANIES})
    store = await open_store(str(tmp_path / "agi.db"), synchronous="normal")
    gate = AgiGate(store, config)
    port, stop = free_port(), asyncio.Event()
    task = asyncio.create_task(gate.serve("127.0.0.1", port, stop))
    while not gate.listening:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        stop.set()
        await task
        await store.close()


async def held(port: int, headers: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that sends its headers, reads the gate's first command, then goes silent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(headers)
    await writer.drain()
    assert await asyncio.wait_for(reader.readline(), 5)
    return reader, writer


async def trickle(writer: asyncio.StreamWriter) -> None:
    """Asterisk's "100 Trying" line again and again: never the reply itself."""
    with contextlib.suppress(ConnectionError):
        while True:
            writer.write(b"100 result=0 Trying...\n")
            await writer.drain()
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("client", ["silent", "trickling"])
async def test_a_client_that_stops_answering_is_disconnected_at_the_deadline(tmp_path, client):
    async with serving(tmp_path, decision_timeout=0.5, connection_timeout=1.0) as port:
        started = time.monotonic()
        reader, writer = await held(port, BARE_CALL)  # read: GET VARIABLE CALLGATE_COMPANY
        talking = asyncio.create_task(trickle(writer)) if client == "trickling" else None
        rest = await asyncio.wait_for(reader.read(), 5)  # to the gate's end of file
        elapsed = time.monotonic() - started
        if talking:
            talking.cancel()
        writer.close()
    assert 0.9 < elapsed < 2.5
    # The decision's own deadline refused the call before the connection's ended.
    assert b'SET VARIABLE CALLGATE_RESULT "REJECT|GATE_ERROR|' in rest


async def test_a_call_over_the_cap_is_refused_at_once_and_a_key_is_closed(tmp_path):
    async with serving(tmp_path, max_connections=2) as port:
        clients = [await held(port, CALL) for _ in range(2)]  # each read its SET VARIABLE
        started = time.monotonic()
        commands = await asyncio.to_thread(play_asterisk, port, CALL)
        answered = time.monotonic() - started
        keyed = await asyncio.to_thread(play_asterisk, port, asterisk_headers("refused"))
        for _, writer in clients:
            writer.close()
    assert answered < 0.5
    assert result_of(commands)[:2] == ["REJECT", "GATE_ERROR"]
    assert result_of(commands)[3] == ""  # no decision id: nothing was recorded
    assert keyed == []  # closed unanswered; the agent hears no confirmation beep


async def test_a_stalled_connection_gives_way_to_a_call(tmp_path, monkeypatch):
    monkeypatch.setattr(server, "STALLED_AFTER", 0.2)
    async with serving(tmp_path, max_connections=2) as port:
        clients = [await held(port, CALL) for _ in range(2)]
        await asyncio.sleep(0.3)
        commands = await asyncio.to_thread(play_asterisk, port, CALL)
        oldest = await asyncio.wait_for(clients[0][0].read(), 2)
        for _, writer in clients:
            writer.close()
    assert "GATE_ERROR" not in result_of(commands)[1]  # decided by the rules
    assert oldest == b""  # the one silent the longest was closed


def hang_up_after_the_first_command(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(asterisk_headers("refused"))
        assert sock.makefile("rb").readline().startswith(b"GET VARIABLE")


async def test_a_flood_of_faulty_clients_is_a_few_log_lines(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(server, "FLOOD_INTERVAL", 0.5, raising=False)
    caplog.set_level(logging.INFO, logger="callgate")
    floods = 100
    async with serving(tmp_path) as port:
        for _ in range(floods):
            assert await asyncio.to_thread(play_asterisk, port, asterisk_headers("nosuch")) == []
            await asyncio.to_thread(hang_up_after_the_first_command, port)
    lines = [r.getMessage() for r in caplog.records if r.name == "callgate.agi"]
    faults = [line for line in lines if "listening" not in line]
    # Two kinds of fault: for each, the first at once, then a count per interval.
    assert len(faults) <= 6, faults[:10]
    counted = sum(int(n) for line in faults for n in re.findall(r"(\d+) more", line))
    assert counted + 2 == 2 * floods


def gate_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """What the gate logged, but for its start."""
    lines = [r.getMessage() for r in caplog.records if r.name == "callgate.agi"]
    return [line for line in lines if "listening" not in line]


def counted(lines: list[str]) -> int:
    """The faults a flood's lines stand for: one each, plus the "N more" they count."""
    more = [int(n) for line in lines for n in re.findall(r": (\d+) more within", line)]
    return len(lines) - len(more) + sum(more)


def dropped(cause: str) -> float:
    return REGISTRY.get_sample_value("callgate_agi_dropped_total", {"cause": cause}) or 0.0


KEYS = {"refused": ("refusal", 'EXEC Playback "beep"'),
        "withdrawn": ("withdrawal", 'EXEC Playback "beep&callgate/withdrawn"')}  # fmt: skip
NO_SUCH_DECISION = {"CALLGATE_DECISION_ID": "12345678-1234-4234-8234-123456789abc"}


@pytest.mark.parametrize("route", list(KEYS))
@pytest.mark.parametrize("variables", [{}, NO_SUCH_DECISION], ids=["unset", "unknown"])
async def test_a_flood_of_keys_on_calls_without_a_decision_is_a_few_log_lines(
    tmp_path, caplog, route, variables
):
    caplog.set_level(logging.INFO, logger="callgate")
    floods, before = 500, dropped("no_decision")
    key = asterisk_headers(route)
    async with serving(tmp_path) as port:
        for _ in range(floods):
            commands = await asyncio.to_thread(play_asterisk, port, key, variables)
            assert commands[-1] == 'EXEC Playback "beeperr"'  # each agent hears the error
    lines = gate_lines(caplog)
    # The first at once, an ERROR with the channel; the rest counted, every 10 s.
    assert 2 <= len(lines) <= 4, lines[:5]
    assert lines[0].startswith(f"FastAGI: {KEYS[route][0]} key on a call with no callgate")
    assert "PJSIP/agent-00000001" in lines[0]
    assert [r.levelno for r in caplog.records if r.getMessage() == lines[0]] == [logging.ERROR]
    assert counted(lines) == floods
    assert dropped("no_decision") - before == floods


def refusal_rows(tmp_path: Path) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(tmp_path / "agi.db")) as db:
        return db.execute("SELECT company, callee, source FROM refusals").fetchall()


@pytest.mark.parametrize("route", list(KEYS))
async def test_a_key_on_a_decided_call_is_recorded_once_however_often_pressed(
    tmp_path, caplog, route
):
    caplog.set_level(logging.INFO, logger="callgate")
    name, confirmation = KEYS[route]
    presses = 200
    async with serving(tmp_path) as port:
        decision_id = result_of(await asyncio.to_thread(play_asterisk, port, CALL))[3]
        pressed = {"CALLGATE_DECISION_ID": decision_id}
        for _ in range(presses):
            commands = await asyncio.to_thread(
                play_asterisk, port, asterisk_headers(route), pressed
            )
            # Each press confirmed: the key is recorded, if only once.
            assert commands == ["GET VARIABLE CALLGATE_DECISION_ID", confirmation]
    assert refusal_rows(tmp_path) == [("acme", "+33612345678", "agent-key")]
    lines = gate_lines(caplog)
    recorded = [line for line in lines if line.startswith(("REFUSED ", "WITHDRAWN "))]
    assert len(recorded) == 1 and f"(decision {decision_id})" in recorded[0]
    again = [line for line in lines if f"{name} key pressed again" in line]
    assert 1 <= len(again) <= 3 and counted(again) == presses - 1
    assert len(lines) <= 6, lines[:8]  # the decision, the key, and its repeats counted


@pytest.mark.parametrize("route", list(KEYS))
async def test_a_key_the_store_cannot_record_is_the_error_tone_and_few_lines(
    tmp_path, caplog, monkeypatch, route
):
    caplog.set_level(logging.INFO, logger="callgate")
    async with serving(tmp_path) as port:
        decision_id = result_of(await asyncio.to_thread(play_asterisk, port, CALL))[3]

        async def failing(*_: object, **__: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(SqliteStore, "add_refusal", failing)
        monkeypatch.setattr(SqliteStore, "withdraw", failing)
        pressed = {"CALLGATE_DECISION_ID": decision_id}
        for _ in range(100):
            commands = await asyncio.to_thread(
                play_asterisk, port, asterisk_headers(route), pressed
            )
            # Not the confirmation: the agent must not believe the key was recorded.
            assert commands[-1] == 'EXEC Playback "beeperr"'
    lines = [line for line in gate_lines(caplog) if not line.startswith(("ALLOW ", "REJECT "))]
    assert 2 <= len(lines) <= 4, lines[:5]
    assert "disk I/O error" in lines[0]
    assert counted(lines) == 100
    # The first one's traceback, for whoever mends the store; then counts.
    assert sum(r.exc_info is not None for r in caplog.records) == 1


async def test_a_request_that_fails_unforeseen_is_one_traceback_then_counted(
    tmp_path, caplog, monkeypatch
):
    caplog.set_level(logging.INFO, logger="callgate")

    async def failing(self: AgiGate, request: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(AgiGate, "check", failing)
    async with serving(tmp_path) as port:
        for _ in range(100):
            assert await asyncio.to_thread(play_asterisk, port, CALL) == []
    lines = gate_lines(caplog)
    assert 2 <= len(lines) <= 4, lines[:5]
    assert "RuntimeError: a bug" in lines[0]
    assert counted(lines) == 100
    assert sum(r.exc_info is not None for r in caplog.records) == 1


async def test_a_huge_channel_header_is_not_copied_into_the_log(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="callgate")
    channel = "PJSIP/agent\r" + "x" * 30_000
    headers = CALL.replace(b"PJSIP/agent-00000001", channel.encode())
    async with serving(tmp_path) as port:
        commands = await asyncio.to_thread(play_asterisk, port, headers)
    assert "GATE_ERROR" not in result_of(commands)[1]
    [line] = [r.getMessage() for r in caplog.records if " channel=" in r.getMessage()]
    assert len(line) < 500
    assert "\r" not in line


def test_connection_timeout_must_leave_the_decision_its_time():
    with pytest.raises(ConfigError, match=r"^agi\.connection_timeout: 1\.5 s must exceed"):
        parse_config({"agi": {"decision_timeout": 2.0, "connection_timeout": 1.5}})
    with pytest.raises(ConfigError, match=r"^agi\.max_connections: must be 1 to"):
        parse_config({"agi": {"max_connections": 0}})
    agi = parse_config({"agi": {"max_connections": 20, "connection_timeout": 3}}).agi
    assert (agi.max_connections, agi.connection_timeout) == (20, 3.0)


# ------------------------------------------------------------ the real process


@contextlib.contextmanager
def agi_process(tmp_path: Path, files: int) -> Iterator[tuple[int, Path]]:
    """`callgate agi` with the example configuration, at most ``files`` open files;
    yields its port and its log (stderr)."""
    port, log = free_port(), tmp_path / "agi.log"
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(tmp_path / "a.db"),
           "PYTHONPATH": str(ROOT)}  # fmt: skip

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "callgate", "agi", "--listen", f"127.0.0.1:{port}"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=limit,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while b"FastAGI gate listening" not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "callgate agi did not start"
            time.sleep(0.05)
        yield port, log
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def many_files():
    """Room in this process for more than a thousand client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the hard open-file limit is {hard}, below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_held(port: int, count: int, headers: bytes = BARE_CALL) -> list[socket.socket]:
    """``count`` clients that send their headers and never answer."""
    clients = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=5)
        client.sendall(headers)
        clients.append(client)
    return clients


def timed_call(port: int) -> tuple[float, list[str]]:
    started = time.monotonic()
    commands = play_asterisk(port, CALL, timeout=5)
    return time.monotonic() - started, commands


def test_accept_failures_neither_spin_nor_flood_the_log(tmp_path, many_files):
    # 64 open files, fewer than agi.max_connections: accept fails for want of descriptors.
    with agi_process(tmp_path, files=64) as (port, log):
        clients = open_held(port, 120)
        time.sleep(2)
        # However it is worded: asyncio's own server logged one per attempt, thousands.
        lines = log.read_text().splitlines()
        failures = sum(" ERROR " in line and "accept" in line for line in lines)
        for client in clients:
            client.close()
        time.sleep(0.5)  # the gate sees them go and has descriptors again
        seconds, commands = timed_call(port)
    assert failures == 1  # one line at once; the rest are counted for the interval
    assert "GATE_ERROR" not in result_of(commands)[1]
    assert seconds < 1
    assert "Traceback" not in log.read_text()


@pytest.mark.exhaustion
def test_stalled_connections_beyond_the_file_limit_leave_calls_decided(tmp_path, many_files):
    # The probe that exhausted the gate: 1,100 silent clients under 1,024 open files.
    with agi_process(tmp_path, files=1024) as (port, log):
        clients = open_held(port, 1100)
        time.sleep(3)  # past their decision's deadline, and silent since
        seconds, commands = timed_call(port)
        for client in clients:
            client.close()
    assert seconds < 1
    assert "GATE_ERROR" not in result_of(commands)[1]
    text = log.read_text()
    assert len(text) < 20_000, text[-2000:]
    assert "cannot accept" not in text  # the cap holds the gate under the file limit
    assert "Traceback" not in text
