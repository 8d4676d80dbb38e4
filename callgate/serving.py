"""Serving an aiohttp app within limits, for the API and the gates' health port alike:
connections capped (at the cap the oldest idle one gives way; when all are busy a new one
gets 503), idle ones closed, and floods (a full server, failed accepts) logged as a few
lines.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from callgate.throttle import Throttle

__all__ = ["BACKLOG", "BUSY", "Flood", "fitted", "serve"]

log = logging.getLogger("callgate.serving")

BUSY: web.AppKey[set[object]] = web.AppKey("busy")  # connections with a request in progress
# Connections the kernel queues for a port; asyncio also accepts up to this many at once,
# before any is counted against the cap: the file limit must leave room for them.
BACKLOG = 128

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(
    app: web.Application, host: str, port: int, *, limit: int, idle_timeout: float,
    name: str, backlog: int = BACKLOG,
) -> web.AppRunner:  # fmt: skip
    """Serves ``app`` on host:port with at most ``limit`` connections (``name`` says which
    cap a log line is about); OSError when the port cannot be bound. The caller cleans the
    runner up."""
    app[BUSY] = set()
    app.middlewares.insert(0, _in_flight)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=idle_timeout)
    await runner.setup()
    assert runner.server is not None
    accept = _admission(runner.server, app[BUSY], limit, name)
    site = _Site(runner, host, port, accept, backlog)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    _quiet_accept_errors(asyncio.get_running_loop())
    return runner


def fitted(key: str, wanted: int, reserve: int) -> int:
    """``wanted`` connections at most, lowered (and said so) to fit under the process's
    open-file limit less ``reserve`` files for the rest: past it, accept() fails and
    nothing is answered, before the cap is ever reached."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    room = max(soft - reserve, 1)
    if wanted > room:
        log.warning(
            "%s = %d lowered to %d to fit the open-file limit (%d): raise LimitNOFILE"
            " or ulimit -n to serve more", key, wanted, room, soft,
        )  # fmt: skip
    return min(wanted, room)


@web.middleware
async def _in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Marks the connection busy while its request runs: a full server closes idle ones."""
    busy, connection = request.app[BUSY], request.protocol
    busy.add(connection)
    try:
        return await handler(request)
    finally:
        busy.discard(connection)


class _Site(web.BaseSite):
    """A TCP site whose connections go through ``accept`` (aiohttp's own site takes them
    all)."""

    def __init__(
        self, runner: web.AppRunner, host: str, port: int,
        accept: Callable[[], asyncio.BaseProtocol], backlog: int,
    ) -> None:  # fmt: skip
        super().__init__(runner)
        self._host, self._port, self._accept, self._backlog = host, port, accept, backlog

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._accept, self._host, self._port, backlog=self._backlog
        )


def _admission(
    server: web.Server, busy: set[object], limit: int, name: str
) -> Callable[[], asyncio.BaseProtocol]:
    """The protocol for a new connection. At ``limit`` open ones, the oldest idle one (no
    request in progress: only waiting, or sending headers slowly) is closed to make room;
    when every one is busy, the new one gets 503 and is closed."""
    full = Flood(log, f"{name} = {limit} reached")
    loop = asyncio.get_running_loop()
    # Connections accepted but not yet in server.connections: asyncio accepts a batch,
    # then makes each connection on the next turn of the loop.
    pending = 0

    def made() -> None:
        nonlocal pending
        pending -= 1

    def accept() -> asyncio.BaseProtocol:
        nonlocal pending
        # A connection closed here lingers in server.connections until its task ends.
        open_ = [c for c in server.connections if c.transport is not None]
        if len(open_) + pending >= limit:
            idle = next((c for c in open_ if c not in busy), None)
            if idle is None:
                full.warning("new connections get 503")
                return _Full()
            full.warning("idle connections are closed to make room")
            idle.force_close()
        pending += 1
        loop.call_soon(made)  # runs just before the connection is made
        return server()

    return accept


class _Full(asyncio.Protocol):
    """Answers 503 at once and closes: every connection has a request in progress."""

    BODY = b'{"error": "busy", "message": "too many connections; try again"}'
    ANSWER = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s"
    ) % (len(BODY), BODY)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(self.ANSWER)
        transport.close()


class Flood:
    """A warning a flood would repeat thousands of times a second: the first at once, then
    one line per interval with how many more there were."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._log, self._what = logger, what
        self._throttle: Throttle[str] = Throttle(self._more)

    def warning(self, detail: object) -> None:
        if self._throttle.due(self._what):
            self._log.warning("%s: %s", self._what, detail)

    def _more(self, what: str, count: int) -> None:
        self._log.warning("%s: %d more within %g s", what, count, self._throttle.interval)


def _quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Out of files, asyncio logs a traceback for each failed accept(), many a second: a
    few lines instead."""
    failed = Flood(log, "cannot accept connections")
    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == "socket.accept() out of system resource":
            error = context.get("exception")
            failed.warning(getattr(error, "strerror", None) or error)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
