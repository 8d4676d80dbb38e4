"""The FastAGI gate (`callgate agi`): the same decision as the ARI gate, for AGI dialplans.

Built on panoramisk's Request and AGI result parser, with our own accept loop and
connection handler: panoramisk 1.4's handler spins forever on a connection closed before
the AGI headers end (a health check, a port probe), freezing every later request, and
asyncio's server, out of file descriptors, retries accept in a loop and logs each failure
with a traceback. Here every read stops at EOF, every connection has a deadline, at most
``agi.max_connections`` are served at once, and a flood of faulty clients is one log
line per kind and interval, never one per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import reprlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from panoramisk.fast_agi import Request
from panoramisk.utils import parse_agi_result

from callgate import inputs, metrics, serving
from callgate.config import Config
from callgate.dialplan import RESULT_VARIABLE, encode_result, unusable_call
from callgate.gate import CallDecider, DecisionLine, gate_error
from callgate.model import Decision
from callgate.store import Store
from callgate.throttle import Throttle

__all__ = [
    "AgiError",
    "AgiGate",
    "AgiHangup",
    "AgiProtocolError",
    "agi_arguments",
    "parse_headers",
]

log = logging.getLogger("callgate.agi")

HEADER_TIMEOUT = 2.0  # Asterisk sends its headers at once; a silent client is a probe
MAX_HEADER_BYTES = 64 * 1024  # Asterisk's are about a kilobyte
READ_LIMIT = 64 * 1024  # the longest line read, a header or a reply
# Connections the kernel holds until accepted: a burst of calls waits there, not in SYN
# retries a second apart, and costs the gate no file descriptor.
BACKLOG = socket.SOMAXCONN
STALLED_AFTER = 1.0  # seconds a connection waits on its client before it may give way
OVERFLOW_ANSWERS = 64  # connections over the cap answered at once; more are just closed
OVERFLOW_TIMEOUT = 1.0  # seconds to answer one of them
ACCEPT_PAUSE = 0.1  # seconds before accepting again after a failed accept
FLOOD_INTERVAL = 10.0  # seconds between two log lines of one kind of fault
FILE_RESERVE = 64  # open files besides the connections: store, logs, health server
_DECISION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class AgiHangup(Exception):
    """The channel hung up or the connection closed: stop talking to it."""


class AgiProtocolError(Exception):
    """The client sent something that is not AGI: stop talking to it."""


def _shown(data: str | bytes) -> str:
    """A client's text as it may appear in the log: quoted, escaped and cut short."""
    return reprlib.repr(data)


_MESSAGE = reprlib.Repr()
_MESSAGE.maxstring = 200


def _failure(error: BaseException) -> str:
    """An error in one short, printable line: its type, and its message or the start of it."""
    message = str(error)
    if len(message) > _MESSAGE.maxstring or not message.isprintable():
        message = _MESSAGE.repr(message)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def _channel_id(value: str | None) -> str | None:
    """A channel name or unique id as Asterisk makes them, short and printable; a header
    that is not one is logged and stored quoted and cut short, never whole."""
    try:
        return inputs.free_text(value, "channel")
    except inputs.InvalidInput:
        return _shown(value)


class _Request(Request):
    """panoramisk's Request, with EOF and HANGUP ending the conversation, anything that is
    not an AGI reply ending it too, and the waits on the client marked by ``waiting``."""

    def __init__(
        self, *args: Any, waiting: Callable[[], AbstractContextManager[None]] | None = None,
        **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(*args, **kwargs)
        self.waiting = waiting or contextlib.nullcontext

    async def send_command(self, command: str) -> dict[str, Any]:
        self.writer.write(f"{command}\n".encode(self.encoding))
        await self.writer.drain()
        with self.waiting():
            result = await self._read_result()
            while result.get("status_code") == 100:  # "100 Trying...": the reply follows
                result = await self._read_result()
            if result.get("error") == "AGIUsageError":  # the usage is on the next line
                result["msg"] += await self._read_line()
        return result

    async def _read_line(self) -> str:
        try:
            line = await self.reader.readline()
        except ValueError:  # asyncio's word for a line over the reader's limit
            raise AgiProtocolError(f"a reply line over {READ_LIMIT} bytes") from None
        try:
            return line.decode(self.encoding)
        except UnicodeDecodeError:
            raise AgiProtocolError(f"a reply that is not UTF-8: {_shown(line)}") from None

    async def _read_result(self) -> dict[str, Any]:
        line = await self._read_line()
        if not line:
            raise AgiHangup("connection closed")
        try:
            result: dict[str, Any] = parse_agi_result(line.rstrip("\r\n"))
        except ValueError:  # no status code, or one too long for int()
            raise AgiProtocolError(f"not an AGI reply: {_shown(line)}") from None
        if result.get("error") == "AGIResultHangup":
            raise AgiHangup("channel hung up")
        return result


def parse_headers(lines: list[bytes]) -> dict[str, str]:
    """``agi_name: value`` lines, as Asterisk sends them before the first command."""
    headers = {}
    for raw in lines:
        name, sep, value = raw.decode("utf-8", "replace").rstrip("\r\n").partition(": ")
        if sep:
            headers[name] = value
    return headers


async def _read_header_lines(reader: asyncio.StreamReader) -> tuple[list[bytes], bool]:
    """The header lines up to the blank one, and whether it came (not when the client
    closed before it)."""
    lines: list[bytes] = []
    size = 0
    while True:
        try:
            line = await reader.readline()
        except ValueError:  # a line over the reader's limit
            raise AgiProtocolError(f"a header line over {READ_LIMIT} bytes") from None
        if not line:
            return lines, False
        if line in (b"\n", b"\r\n"):
            return lines, True
        size += len(line)
        if size > MAX_HEADER_BYTES:
            raise AgiProtocolError(f"headers over {MAX_HEADER_BYTES} bytes")
        lines.append(line)


def agi_arguments(headers: dict[str, str]) -> list[str]:
    """The AGI() arguments after the script, as Asterisk numbers them (agi_arg_1...)."""
    arguments = []
    while (value := headers.get(f"agi_arg_{len(arguments) + 1}")) is not None:
        arguments.append(value)
    return arguments


async def get_variable(request: _Request, name: str) -> str:
    """A channel variable through GET VARIABLE, "" when unset; AgiError when refused."""
    metrics.INPUT_READS.labels("agi").inc()
    reply = await request.send_command(f"GET VARIABLE {name}")
    if "error" in reply:
        why = _shown(reply.get("msg") or reply["error"])
        raise AgiError(f"GET VARIABLE {name}: {why}")
    is_set, value = reply.get("result", ("0", ""))
    return value if is_set == "1" else ""


class AgiError(Exception):
    """Asterisk refused an AGI command."""


def agi_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


Route = Callable[[_Request], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Fault:
    """A way a connection ends without its answer: its metric label, log level and words."""

    label: str
    level: int
    text: str


OVER_CAP = Fault("over_cap", logging.WARNING, "refused at once, agi.max_connections reached")
STALLED = Fault("stalled", logging.WARNING, "silent connection closed for a new one")
TIMED_OUT = Fault("timed_out", logging.WARNING, "connection closed at agi.connection_timeout")
NO_HEADERS = Fault("no_headers", logging.INFO, "connection without complete AGI headers")
PROBE = Fault("probe", logging.DEBUG, "connection closed before any header (a port probe)")
ENDED_EARLY = Fault("ended_early", logging.INFO, "connection ended early by the client")
NOT_AGI = Fault("not_agi", logging.WARNING, "connection closed, the client does not speak AGI")
NO_ROUTE = Fault("no_route", logging.ERROR, "request for no FastAGI route")
ACCEPT_FAILED = Fault("accept_failed", logging.ERROR, "cannot accept a connection")
# Not a client's fault, but one a client can repeat at will: a flood of them is a
# traceback and a count, not a traceback each.
FAILED = Fault("failed", logging.ERROR, "request failed")
KEY_NOT_RECORDED = Fault("store_failed", logging.ERROR, "agent key not recorded, the store failed")


@dataclass(frozen=True, slots=True)
class Key:
    """An agent's key (*7, *8): its name, what confirms it, and the ways it goes wrong."""

    name: str
    confirmation: str  # the command that tells the agent the key is recorded
    no_decision: Fault
    again: Fault


def _agent_key(name: str, sounds: str) -> Key:
    return Key(
        name, f"EXEC Playback {agi_quote(sounds)}",
        Fault("no_decision", logging.ERROR, f"{name} key on a call with no callgate decision"),
        Fault("key_again", logging.INFO, f"{name} key pressed again on a call, recorded once"),
    )  # fmt: skip


REFUSAL = _agent_key("refusal", "beep")
# Not the refusal's lone beep: the agent must hear which key was taken, since a
# withdrawal, unlike a refusal, does not lift after 60 days.
WITHDRAWAL = _agent_key("withdrawal", "beep&callgate/withdrawn")
ERROR_TONE = 'EXEC Playback "beeperr"'
# Keys known recorded, by decision: a key pressed again on one of them is confirmed without
# a second row. Bounded; one forgotten is recorded twice, which changes no verdict.
KEYS_REMEMBERED = 10_000
Record = Callable[[str, str, str], Awaitable[None]]  # company, callee, decision id


class FaultLog:
    """Faults logged once per ``interval`` and kind: the first at once, the rest as a
    count at the end of the interval, so that a flood is a few lines, not one each."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._throttle: Throttle[Fault] = Throttle(self._more, interval)

    def note(self, fault: Fault, detail: str, error: BaseException | None = None) -> None:
        """One more ``fault``; ``error``'s traceback goes with the first of its interval."""
        metrics.AGI_DROPPED.labels(fault.label).inc()
        if self._throttle.due(fault):
            log.log(fault.level, "FastAGI: %s: %s", fault.text, detail, exc_info=error)

    def flush(self) -> None:
        """Log the counts now (the interval's end, or the gate stopping)."""
        self._throttle.flush()

    def _more(self, fault: Fault, count: int) -> None:
        log.log(fault.level, "FastAGI: %s: %d more within %g s", fault.text, count, self.interval)


class Connections:
    """The connections being served: at most ``limit``. When full, the one that has waited
    longest on its client, past ``grace``, may give way to a newcomer: Asterisk answers
    in milliseconds, so a silent client holds no place that a call needs."""

    def __init__(self, limit: int, grace: float) -> None:
        self.limit = limit
        self.grace = grace
        self._waiting_since: dict[asyncio.Task[None], float | None] = {}

    def full(self) -> bool:
        return len(self._waiting_since) >= self.limit

    def admit(self, task: asyncio.Task[None]) -> None:
        self._waiting_since[task] = None
        task.add_done_callback(self.release)

    def release(self, task: asyncio.Task[None]) -> None:
        self._waiting_since.pop(task, None)

    def drop_stalled(self) -> bool:
        """End the connection that has waited longest on its client, if past ``grace``."""
        stalled = self._most_stalled()
        if stalled is None:
            return False
        self.release(stalled)
        stalled.cancel()
        return True

    @contextlib.contextmanager
    def waiting(self, task: asyncio.Task[None]) -> Iterator[None]:
        """While ``task`` waits on its client."""
        if task in self._waiting_since:
            self._waiting_since[task] = time.monotonic()
        try:
            yield
        finally:
            if task in self._waiting_since:
                self._waiting_since[task] = None

    def _most_stalled(self) -> asyncio.Task[None] | None:
        since = {t: s for t, s in self._waiting_since.items() if s is not None}
        if not since:
            return None
        oldest = min(since, key=since.__getitem__)
        return oldest if time.monotonic() - since[oldest] > self.grace else None


Talk = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class AgiGate:
    """The FastAGI server: its routes, and the limits that keep it answering."""

    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.deadline = config.agi.decision_timeout
        self.connection_timeout = config.agi.connection_timeout
        self.decider = CallDecider(
            store, config,
            max_concurrent=config.agi.max_concurrent, deadline=config.agi.decision_timeout,
        )  # fmt: skip
        self.connections = Connections(config.agi.max_connections, STALLED_AFTER)
        self.faults = FaultLog(FLOOD_INTERVAL)
        self._overflow_tasks: set[asyncio.Task[None]] = set()  # over the cap, being answered
        self._tasks: set[asyncio.Task[None]] = set()
        self._keyed: dict[tuple[str, str], None] = {}  # (key, decision id), oldest first
        self.listening = False
        self.routes: dict[str, Route] = {
            "check": self.check, "refused": self.refused, "withdrawn": self.withdrawn,
        }  # fmt: skip

    async def serve(self, host: str, port: int, stop: asyncio.Event) -> None:
        """Listen on HOST:PORT until ``stop``; OSError when the address cannot be had."""
        listeners = await _listen(host, port)
        self.connections.limit = _fitting(self.connections.limit)
        accepting = [asyncio.create_task(self._accept(sock)) for sock in listeners]
        log.info("FastAGI gate listening on %s:%d", host, port)
        self.listening = True
        metrics.AGI_LISTENING.set(1)
        try:
            await stop.wait()
        finally:
            self.listening = False
            metrics.AGI_LISTENING.set(0)
            for task in accepting:
                task.cancel()
            await asyncio.gather(*accepting, return_exceptions=True)
            for sock in listeners:
                sock.close()
            # Let the requests in flight finish (they are short); close the silent ones.
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.deadline + 0.5)
            left = set(self._tasks)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)
            self.faults.flush()
            await self.decider.close()

    async def _accept(self, listener: socket.socket) -> None:
        """Accept connections one at a time; when accept fails (out of file descriptors,
        most often), pause: it would fail again at once until a connection ends."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(listener)
            except OSError as error:
                self.faults.note(ACCEPT_FAILED, error.strerror or type(error).__name__)
                await asyncio.sleep(ACCEPT_PAUSE)
                continue
            try:
                self._dispatch(conn)
            except Exception:  # never let one connection stop the accepting
                conn.close()
                log.exception("FastAGI connection not served")
            await asyncio.sleep(0)  # a burst of accepts must not starve the calls

    def _dispatch(self, conn: socket.socket) -> None:
        """Serve a new connection, or refuse it: decided before the next accept, so that
        the connections held never pass the cap, whatever waits in the backlog."""
        if self.connections.full() and self.connections.drop_stalled():
            self.faults.note(STALLED, f"silent for more than {self.connections.grace:g} s")
        if not self.connections.full():
            self.connections.admit(self._spawn(conn, self._serve))
            return
        self.faults.note(OVER_CAP, f"the cap is {self.connections.limit}")
        if len(self._overflow_tasks) >= OVERFLOW_ANSWERS:
            conn.close()  # unanswered: the dialplan refuses the call all the same
            return
        task = self._spawn(conn, self._overflow)
        self._overflow_tasks.add(task)
        task.add_done_callback(self._overflow_tasks.discard)

    def _spawn(self, conn: socket.socket, talk: Talk) -> asyncio.Task[None]:
        task = asyncio.create_task(self._connection(conn, talk))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _connection(self, conn: socket.socket, talk: Talk) -> None:
        try:
            reader, writer = await asyncio.open_connection(sock=conn, limit=READ_LIMIT)
        except OSError as error:
            conn.close()
            self.faults.note(ENDED_EARLY, error.strerror or type(error).__name__)
            return
        try:
            await talk(reader, writer)
        except Exception as error:
            # The dialplan fails closed on its own: no verdict set means no dial.
            self.faults.note(FAILED, _failure(error), error)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One conversation within agi.connection_timeout; a client's fault ends it, noted."""
        deadline = asyncio.timeout(self.connection_timeout)
        try:
            async with deadline:
                await self._converse(reader, writer)
        except TimeoutError:
            if not deadline.expired():
                raise
            self.faults.note(TIMED_OUT, f"after {self.connection_timeout:g} s")
        except (AgiHangup, ConnectionError) as error:
            self.faults.note(ENDED_EARLY, str(error) or type(error).__name__)
        except AgiProtocolError as error:
            self.faults.note(NOT_AGI, str(error))

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        with self.connections.waiting(task):
            headers = await self._headers(reader)
        if headers is None:
            return
        script = headers.get("agi_network_script", "")
        route = self.routes.get(script)
        if route is None:
            known = ", ".join(self.routes)
            self.faults.note(NO_ROUTE, f"{_shown(script)} (known: {known})")
            return
        waiting = functools.partial(self.connections.waiting, task)
        await route(_Request(app=None, headers=headers, reader=reader, writer=writer,
                             waiting=waiting))  # fmt: skip

    async def _headers(self, reader: asyncio.StreamReader) -> dict[str, str] | None:
        """The AGI headers; None (and the fault noted) when the client sends none."""
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                lines, complete = await _read_header_lines(reader)
        except TimeoutError:
            self.faults.note(NO_HEADERS, f"none complete within {HEADER_TIMEOUT:g} s")
            return None
        if not complete:
            self.faults.note(NO_HEADERS if lines else PROBE, "closed before the headers ended")
            return None
        return parse_headers(lines)

    async def _overflow(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Over the cap: a call to check is refused at once with GATE_ERROR, so the agent
        hears why; anything else is closed unanswered. Never a call let through."""
        try:
            async with asyncio.timeout(OVERFLOW_TIMEOUT):
                lines, _ = await _read_header_lines(reader)
                headers = parse_headers(lines)
                if headers.get("agi_network_script") == "check":
                    request = _Request(app=None, headers=headers, reader=reader, writer=writer)
                    await request.send_command(self._set_result(_busy()))
        except (TimeoutError, AgiHangup, AgiProtocolError, ConnectionError):
            pass  # the dialplan refuses a call without a verdict all the same

    @staticmethod
    def _set_result(result: str) -> str:
        return f"SET VARIABLE {RESULT_VARIABLE} {agi_quote(result)}"

    # ------------------------------------------------------------ routes

    async def check(self, request: _Request) -> None:
        """AGI(agi://host:4573/check[,COMPANY,PURPOSE,CAMPAIGN,DEPT | ,name=value...]):
        decide, set the result. Inputs the arguments do not give are read with GET
        VARIABLE."""
        started = time.perf_counter()
        headers = request.headers
        decision = await self._decide(request)
        await request.send_command(self._set_result(encode_result(decision)))
        channel = _channel_id(headers.get("agi_channel"))
        log.info("%s", DecisionLine(decision, channel, time.perf_counter() - started))

    async def _decide(self, request: _Request) -> Decision:
        headers = request.headers
        caller = headers.get("agi_callerid", "")
        turn = asyncio.Lock()  # AGI is one command at a time on the connection

        async def read(name: str) -> str:
            async with turn:
                return await get_variable(request, name)

        return await self.decider.decide(
            "" if caller == "unknown" else caller,  # Asterisk's word for "no caller ID"
            headers.get("agi_extension", ""),
            datetime.now(UTC),
            _channel_id(headers.get("agi_uniqueid")),
            arguments=agi_arguments(headers),
            read_variable=read,
        )

    async def refused(self, request: _Request) -> None:
        """The agent's refusal key: record that the callee refused, then confirm it."""

        async def record(company: str, callee: str, decision_id: str) -> None:
            await self.store.add_refusal(company, callee, datetime.now(UTC), "agent-key")
            log.info("REFUSED %s by %s (decision %s)", callee, company, decision_id)

        await self._key(request, REFUSAL, record)

    async def withdrawn(self, request: _Request) -> None:
        """The agent's withdrawal key: the callee said "ne m'appelez plus" (RULES-FR §3.3).
        Record the withdrawal for this company, then confirm it."""

        async def record(company: str, callee: str, decision_id: str) -> None:
            now = datetime.now(UTC)
            withdrawal = await self.store.withdraw(company, callee, now, "agent-key")
            log.info(
                "WITHDRAWN %s by %s (decision %s): %d consent(s) revoked, %s, refusal %d",
                callee, company, decision_id, withdrawal.revoked,
                "opposition listed" if withdrawal.opposed else "already on the opposition list",
                withdrawal.refusal_id,
            )  # fmt: skip

        await self._key(request, WITHDRAWAL, record)

    async def _key(self, request: _Request, key: Key, record: Record) -> None:
        """An agent's key: recorded once on the call's decision, then confirmed. The error
        tone when it recorded nothing, so that it never sounds like a key that did; what
        went wrong is a fault, logged once per kind and interval, since a client can press
        keys as often as it likes."""
        channel = _channel_id(request.headers.get("agi_channel")) or "-"
        decision_id, missing = await self._pressed_on(request)
        if decision_id is None:
            await self._key_lost(request, key.no_decision, f"{channel}, {missing}")
        elif (key.name, decision_id) in self._keyed:
            # Recorded already: confirmed, not written again, so that a client replaying one
            # decision id adds no row and no line per connection (but for presses at the
            # same instant as the first, each within agi.max_connections).
            self.faults.note(key.again, f"decision {decision_id} on {channel}")
            await request.send_command(key.confirmation)
        else:
            await self._record_key(request, key, decision_id, record, channel)

    @staticmethod
    async def _pressed_on(request: _Request) -> tuple[str | None, str]:
        """The decision id of the call the key was pressed on; else None, and why."""
        reply = await request.send_command("GET VARIABLE CALLGATE_DECISION_ID")
        is_set, decision_id = reply.get("result", ("0", ""))
        if is_set != "1":
            return None, "CALLGATE_DECISION_ID unset"
        # Only an id as the gate makes them goes to the store: not a client's odd bytes.
        if not _DECISION_ID.fullmatch(decision_id):
            return None, f"CALLGATE_DECISION_ID {_shown(decision_id)} is no decision id"
        return decision_id, ""

    async def _record_key(
        self, request: _Request, key: Key, decision_id: str, record: Record, channel: str
    ) -> None:
        """Record the key on its decision's company and callee, and confirm it."""
        try:
            found = await self.store.decision_key(decision_id)
            if found is not None:
                await record(*found, decision_id)
        except Exception as error:  # the store's, whichever its backend: nothing recorded
            detail = f"{key.name} key on {channel}: {_failure(error)}"
            await self._key_lost(request, KEY_NOT_RECORDED, detail, error)
            return
        if found is None:
            detail = f"{channel}, decision {decision_id} not in the store with a callee"
            await self._key_lost(request, key.no_decision, detail)
            return
        self._keyed[key.name, decision_id] = None
        if len(self._keyed) > KEYS_REMEMBERED:
            del self._keyed[next(iter(self._keyed))]  # the oldest
        await request.send_command(key.confirmation)

    async def _key_lost(
        self, request: _Request, fault: Fault, detail: str, error: Exception | None = None
    ) -> None:
        """A key that recorded nothing: noted, and the agent hears the error tone."""
        self.faults.note(fault, detail, error)
        await request.send_command(ERROR_TONE)


def _busy() -> str:
    """The result of a call refused over the cap: GATE_ERROR, no decision recorded."""
    decision = gate_error(unusable_call("", ""), datetime.now(UTC), "agi.max_connections reached")
    return encode_result(replace(decision, decision_id=None))


async def _listen(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address of ``host``, as asyncio's server makes them, for
    an accept loop of our own."""
    loop = asyncio.get_running_loop()
    host = host.strip("[]")  # [::1]
    found = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def _fitting(connections: int) -> int:
    """agi.max_connections, fitted under the open-file limit: else a flood would run out of
    descriptors before it reaches the cap."""
    return serving.fitted("agi.max_connections", connections, OVERFLOW_ANSWERS + FILE_RESERVE)
