"""The FastAGI gate fuzzed: any header block, any reply to its commands. Whatever comes,
no traceback in the log, no connection held past its deadline, and the next real call
is still decided."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_agi_limits import CALL, COMPANIES
from test_agi_protocol import play_asterisk, result_of

from agi.server import AgiGate
from callgate.config import parse_config
from callgate.store import open_store
from harness.sipp import free_port

# The gate ends a connection by then once its client has ended its side (at once, in fact;
# agi.connection_timeout, 10 s by default, whatever the client does).
WAIT = 5.0
# How long the client waits for the gate's next command: after "100 Trying" or a usage
# error, the gate rightly waits for one more line that this client does not send.
NEXT_COMMAND = 0.2


@dataclass
class Gate:
    port: int
    records: list[logging.LogRecord] = field(default_factory=list)


class _Keep(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def kept_logs(records: list[logging.LogRecord]) -> Iterator[None]:
    """Every record of the gate and of asyncio (where a task's stray exception goes)."""
    handler = _Keep(records)
    loggers = [logging.getLogger(name) for name in ("callgate", "asyncio")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)


@pytest.fixture(scope="module")
def gate(tmp_path_factory) -> Iterator[Gate]:
    """An AgiGate serving from a thread of its own, for hypothesis's synchronous tests."""
    running = Gate(free_port())
    stop = asyncio.Event()
    ready = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        config = parse_config({"agi": {"decision_timeout": 0.5}, "companies": COMPANIES})
        path = tmp_path_factory.mktemp("fuzz") / "agi.db"
        store = await open_store(str(path), synchronous="normal")
        gate = AgiGate(store, config)
        task = asyncio.create_task(gate.serve("127.0.0.1", running.port, stop))
        while not gate.listening and not task.done():
            await asyncio.sleep(0.01)
        ready.set()
        await task
        await store.close()

    with kept_logs(running.records):
        thread = threading.Thread(target=asyncio.run, args=(serve(),))
        thread.start()
        assert ready.wait(10)
        yield running
        loops[0].call_soon_threadsafe(stop.set)
        thread.join(15)


def talk(port: int, headers: bytes, replies: list[bytes] = ()) -> None:
    """Send ``headers``, one reply to each command, then end; wait for the gate to close.
    A gate that holds on past WAIT fails with TimeoutError."""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
        try:
            sock.sendall(headers)
            answer(sock, replies)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(WAIT)
            while sock.recv(65536):
                pass
        except TimeoutError:
            raise
        except OSError:
            pass  # the gate closed first, maybe with a reset: its right


def answer(sock: socket.socket, replies: list[bytes]) -> None:
    """One reply to each command, while the gate sends commands."""
    sock.settimeout(NEXT_COMMAND)
    commands = sock.makefile("rb")
    for reply in replies:
        try:
            if not commands.readline():
                return
        except TimeoutError:
            return
        sock.sendall(reply)


def assert_clean_and_still_deciding(gate: Gate, since: int) -> None:
    faults = [
        logging.Formatter().format(r) for r in gate.records[since:]
        if r.exc_info or (r.name == "asyncio" and r.levelno >= logging.ERROR)
        or "\n" in r.getMessage()  # a client's text never splits a log line
    ]  # fmt: skip
    assert not faults, faults
    codes = result_of(play_asterisk(gate.port, CALL))[1]
    assert "GATE_ERROR" not in codes


def encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # lone surrogates: bytes that are no UTF-8


values = st.text(max_size=60).map(encoded) | st.binary(max_size=60)
# Half of the requests to check (its inputs reach the decision), the rest anywhere.
scripts = st.one_of(st.just(b"check"), st.sampled_from([b"refused", b"withdrawn"]), values)
scripts = st.one_of(st.just(b"check"), scripts)


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    """Asterisk's header names with any values, any arguments, any extra line."""
    headers = {
        b"agi_network_script": draw(scripts),
        b"agi_callerid": draw(st.sampled_from([b"+33948000001", b"unknown"]) | values),
        b"agi_extension": draw(st.sampled_from([b"0612345678", b"112"]) | values),
        b"agi_channel": draw(values),
        b"agi_uniqueid": draw(values),
    }
    for n, argument in enumerate(draw(st.lists(values, max_size=6)), 1):
        headers[b"agi_arg_%d" % n] = argument
    lines = [name + b": " + value.replace(b"\n", b"") for name, value in headers.items()]
    lines += draw(st.lists(st.binary(max_size=80), max_size=3))
    return b"\n".join(draw(st.permutations(lines))) + b"\n\n"


replies = st.sampled_from([
    b"200 result=1\n", b"200 result=0\n", b"200 result=1 (acme)\n", b"200 result=1 (service)\n",
    b"200 result=-1\n", b"200 result=1 (hangup)\n", b"HANGUP\n", b"100 result=0 Trying...\n",
    b"510 Invalid or unknown command\n", b"520-Invalid command syntax.  Proper usage follows:\n",
    b"200 result=1 (0b7e4c0e-9c53-4c2b-8a51-3a1e0c6f9d21)\n",
]) | values.map(lambda v: b"200 result=1 (" + v + b")\n") | st.binary(max_size=300)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=4096) | header_blocks() | header_blocks().map(lambda b: b[:-2]))
def test_any_header_block_ends_cleanly(gate, data):
    since = len(gate.records)
    talk(gate.port, data)
    assert_clean_and_still_deciding(gate, since)


@settings(max_examples=150, deadline=None)
@given(headers=header_blocks(), answers=st.lists(replies, max_size=8))
def test_any_reply_to_the_gates_commands_ends_cleanly(gate, headers, answers):
    since = len(gate.records)
    talk(gate.port, headers, answers)
    assert_clean_and_still_deciding(gate, since)
