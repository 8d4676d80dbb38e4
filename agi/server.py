"""The FastAGI gate (`callgate agi`): the same decision as the ARI gate, for AGI dialplans.

Built on panoramisk's Request and AGI result parser, with our own connection handler:
panoramisk 1.4's handler spins forever on a connection closed before the AGI headers
end (a health check, a port probe), freezing every later request. Here every read stops
at EOF, the headers have a deadline, and each route is an ``async def`` in one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from panoramisk.fast_agi import Request
from panoramisk.utils import parse_agi_result

from callgate import metrics
from callgate.config import Config
from callgate.dialplan import RESULT_VARIABLE, encode_result
from callgate.gate import CallDecider, log_line
from callgate.model import Decision
from callgate.store import Store

__all__ = ["AgiError", "AgiGate", "AgiHangup", "agi_arguments", "parse_headers"]

log = logging.getLogger("callgate.agi")

HEADER_TIMEOUT = 2.0  # Asterisk sends its headers at once; a silent client is a probe


class AgiHangup(Exception):
    """The channel hung up or the connection closed: stop talking to it."""


class _Request(Request):
    """panoramisk's Request, with EOF and HANGUP ending the conversation."""

    async def _read_result(self) -> dict[str, Any]:
        line = await self.reader.readline()
        if not line:
            raise AgiHangup("connection closed")
        result: dict[str, Any] = parse_agi_result(line.decode(self.encoding).rstrip("\r\n"))
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
        raise AgiError(f"GET VARIABLE {name}: {reply.get('msg') or reply['error']}")
    is_set, value = reply.get("result", ("0", ""))
    return value if is_set == "1" else ""


class AgiError(Exception):
    """Asterisk refused an AGI command."""


def agi_quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


Route = Callable[[_Request], Awaitable[None]]


class AgiGate:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self.deadline = config.agi.decision_timeout
        self.decider = CallDecider(
            store, config,
            max_concurrent=config.agi.max_concurrent, deadline=config.agi.decision_timeout,
        )  # fmt: skip
        self._tasks: set[asyncio.Task[None]] = set()
        self.listening = False
        self.routes: dict[str, Route] = {
            "check": self.check, "refused": self.refused, "withdrawn": self.withdrawn,
        }  # fmt: skip

    async def serve(self, host: str, port: int, stop: asyncio.Event) -> None:
        server = await asyncio.start_server(self._connection, host, port)
        log.info("FastAGI gate listening on %s:%d", host, port)
        self.listening = True
        metrics.AGI_LISTENING.set(1)
        async with server:
            await stop.wait()
            self.listening = False
            metrics.AGI_LISTENING.set(0)
            server.close()
            # Let the requests in flight finish (they are short), then go.
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=self.deadline + 0.5)
            await self.decider.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            headers = await self._headers(reader)
            if headers is None:
                return
            script = headers.get("agi_network_script", "")
            route = self.routes.get(script)
            if route is None:
                log.error("no FastAGI route %r (known: %s)", script, ", ".join(self.routes))
                return
            await route(_Request(app=None, headers=headers, reader=reader, writer=writer))
        except (AgiHangup, ConnectionError) as error:
            log.info("FastAGI connection ended early: %s", error)
        except Exception:
            # The dialplan fails closed on its own: no verdict set means no dial.
            log.exception("FastAGI request failed")
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _headers(self, reader: asyncio.StreamReader) -> dict[str, str] | None:
        lines: list[bytes] = []
        try:
            async with asyncio.timeout(HEADER_TIMEOUT):
                while True:
                    line = await reader.readline()
                    if not line:
                        return None  # closed before the headers ended: a probe
                    if line in (b"\n", b"\r\n"):
                        return parse_headers(lines)
                    lines.append(line)
        except TimeoutError:
            log.info("FastAGI client sent no complete headers within %g s", HEADER_TIMEOUT)
            return None

    # ------------------------------------------------------------ routes

    async def check(self, request: _Request) -> None:
        """AGI(agi://host:4573/check[,COMPANY,PURPOSE,CAMPAIGN,DEPT | ,name=value...]):
        decide, set the result. Inputs the arguments do not give are read with GET
        VARIABLE."""
        started = time.perf_counter()
        headers = request.headers
        decision = await self._decide(request)
        await request.send_command(
            f"SET VARIABLE {RESULT_VARIABLE} {agi_quote(encode_result(decision))}"
        )
        channel = headers.get("agi_channel")
        log.info("%s", log_line(decision, channel, time.perf_counter() - started))

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
            headers.get("agi_uniqueid"),
            arguments=agi_arguments(headers),
            read_variable=read,
        )

    async def _keyed_call(self, request: _Request, key: str) -> tuple[str, str, str] | None:
        """The (company, callee, decision id) of the call an agent's key was pressed on.
        None when the call has no callgate decision: the agent then hears the error tone,
        so that a key that recorded nothing never sounds like one that did."""
        reply = await request.send_command("GET VARIABLE CALLGATE_DECISION_ID")
        is_set, decision_id = reply.get("result", ("0", ""))
        found = await self.store.decision_key(decision_id) if is_set == "1" else None
        if found is None:
            channel = request.headers.get("agi_channel")
            log.error("%s key on %s: this call has no callgate decision", key, channel)
            await request.send_command('EXEC Playback "beeperr"')
            return None
        company, callee = found
        return company, callee, decision_id

    async def refused(self, request: _Request) -> None:
        """The agent's refusal key: record that the callee refused, then confirm it."""
        call = await self._keyed_call(request, "refusal")
        if call is None:
            return
        company, callee, decision_id = call
        await self.store.add_refusal(company, callee, datetime.now(UTC), "agent-key")
        log.info("REFUSED %s by %s (decision %s)", callee, company, decision_id)
        await request.send_command('EXEC Playback "beep"')

    async def withdrawn(self, request: _Request) -> None:
        """The agent's withdrawal key: the callee said "ne m'appelez plus" (RULES-FR §3.3).
        Record the withdrawal for this company, then confirm it."""
        call = await self._keyed_call(request, "withdrawal")
        if call is None:
            return
        company, callee, decision_id = call
        withdrawal = await self.store.withdraw(company, callee, datetime.now(UTC), "agent-key")
        log.info(
            "WITHDRAWN %s by %s (decision %s): %d consent(s) revoked, %s, refusal %d",
            callee, company, decision_id, withdrawal.revoked,
            "opposition listed" if withdrawal.opposed else "already on the opposition list",
            withdrawal.refusal_id,
        )  # fmt: skip
        # Not the refusal's lone beep: the agent must hear which key was taken, since a
        # withdrawal, unlike a refusal, does not lift after 60 days.
        await request.send_command('EXEC Playback "beep&callgate/withdrawn"')
