"""The gate's per-call REST requests, on kept-alive HTTP/1.1 connections of its own.

Each call costs the gate two requests to Asterisk (set the verdict, continue in the
dialplan). Through aiohttp's client each one built a URL object, a request, a response, a
timer and several futures: a fifth of the gate's Python time. Here a call's requests are
written as bytes in one write on an idle connection, pipelined (Asterisk's HTTP server
answers a connection's requests in order), and the answers are parsed by httptools (C).
The events WebSocket and the occasional requests stay on aiohttp.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import aiohttp
import httptools

__all__ = ["Answer", "Request", "RestPool", "request"]

# Asterisk closes a kept-alive connection idle for 15 s (http.conf session_keep_alive): one
# idle longer than this is closed here first, never written to as Asterisk drops it.
IDLE_SECONDS = 5.0
# Asterisk serves at most 100 HTTP sessions (http.conf sessionlimit) and closes the others
# unanswered; the events WebSocket and aiohttp's requests need some too. A burst of calls
# beyond this waits its turn for a connection (within the request's timeout).
CONNECTIONS = 24


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str  # after /ari, with its query string already encoded
    label: str  # for errors: the path without the query


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes


def request(method: str, path: str, params: dict[str, str] | None = None) -> Request:
    """A request to ``/ari{path}``; ``params`` go in the query string, encoded."""
    query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in (params or {}).items())
    return Request(method, f"{path}?{query}" if query else path, path)


class _Connection(asyncio.Protocol):
    """One kept-alive connection: requests written in order, answers matched in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        # For each write in flight: how many answers it awaits, those in, and its future.
        self.waiting: collections.deque[tuple[int, list[Answer], asyncio.Future[list[Answer]]]] = (
            collections.deque()
        )
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.keep_alive = True
        self.closed = False
        self.idle_since = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(aiohttp.ClientPayloadError(f"ARI answered with bad HTTP: {error}"))
            self.close()

    # httptools' callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        answer = Answer(self.parser.get_status_code(), b"".join(self.body))
        self.body = []
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        if self.waiting:
            count, answers, future = self.waiting[0]
            answers.append(answer)
            if len(answers) == count:
                self.waiting.popleft()
                if not future.done():
                    future.set_result(answers)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(aiohttp.ServerDisconnectedError("ARI closed the connection"))

    def _fail(self, error: Exception) -> None:
        while self.waiting:
            _, _, future = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)

    def send(self, data: bytes, count: int) -> asyncio.Future[list[Answer]]:
        """Write ``count`` requests at once; one future for all their answers."""
        assert self.transport is not None
        future: asyncio.Future[list[Answer]] = asyncio.get_running_loop().create_future()
        self.waiting.append((count, [], future))
        self.transport.write(data)
        return future

    @property
    def usable(self) -> bool:
        return (not self.closed and self.keep_alive and not self.waiting
                and time.monotonic() - self.idle_since < IDLE_SECONDS)  # fmt: skip

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class RestPool:
    """Kept-alive connections to Asterisk's HTTP server, one call's requests at a time each."""

    def __init__(
        self, url: str, authorization: str, *, timeout: float = 5.0, connections: int = CONNECTIONS
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {url}")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = parts.scheme == "https"
        prefix = parts.path.rstrip("/")
        self.timeout = timeout
        host = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        self._prefix = f"{prefix}/ari"
        self._headers = (f" HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n"
                         "Content-Length: 0\r\n\r\n").encode()  # fmt: skip
        self._idle: collections.deque[_Connection] = collections.deque()  # newest last
        self._slots = asyncio.Semaphore(connections)

    async def send(self, requests: Sequence[Request]) -> list[Answer]:
        """Send the requests pipelined on one connection; their answers, in order.

        Raises aiohttp.ClientError (as aiohttp's client did) when Asterisk cannot be
        reached, closes the connection, or does not answer within the timeout."""
        data = b"".join(
            f"{r.method} {self._prefix}{r.path}".encode() + self._headers for r in requests
        )
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self.timeout), self._slots:
                connection = await self._connection()
                answers = await connection.send(data, len(requests))
                self._release(connection)
        except BaseException as error:
            # Answers still owed on it would be matched to the next call's requests.
            if connection is not None:
                connection.close()
            if isinstance(error, TimeoutError):
                raise aiohttp.ServerTimeoutError(
                    f"ARI did not answer within {self.timeout:g} s"
                ) from None
            if isinstance(error, OSError):
                raise aiohttp.ClientConnectionError(f"cannot reach ARI: {error}") from error
            raise
        return answers

    def _release(self, connection: _Connection) -> None:
        """Keep the connection for the next call, and close those idle too long."""
        if connection.keep_alive and not connection.closed:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        while self._idle and not self._idle[0].usable:
            self._idle.popleft().close()

    async def _connection(self) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(
            _Connection, self.host, self.port, ssl=self.ssl or None
        )
        return connection

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
