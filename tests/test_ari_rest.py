"""The gate's per-call REST requests (ari_app/rest.py) against a raw HTTP server on
loopback that plays Asterisk's side: a call's requests pipelined in one write and their
answers matched in order, connections kept alive only while that is safe, and every
failure an aiohttp.ClientError, in time, that names no secret."""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from ari_app import rest
from ari_app.client import AriClient, AriError
from ari_app.rest import Answer, RestPool, request
from callgate.dialplan import RESULT_VARIABLE

USER, PASSWORD = "callgate", "s3cret-ari-password"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
AUTHORIZATION = f"Basic {TOKEN}"
CHANNEL = "1733475000.42"
REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 409: "Conflict", 500: "Internal Server Error"}  # fmt: skip


@dataclass
class Received:
    method: str
    target: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        """Decoded as Asterisk decodes it: %XX escapes, and a bare "+" is a space."""
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)


class Peer:
    """One connection as the server sees it: every read, every request, and whether the
    client has closed it."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.index, self.reader, self.writer = index, reader, writer
        self.reads: list[bytes] = []
        self.requests: list[Received] = []
        self.eof = asyncio.Event()
        self.closed = False
        self._buffer = b""

    async def request(self) -> Received | None:
        """The next whole request (head only: the pool sends no body); None once closed."""
        while b"\r\n\r\n" not in self._buffer:
            try:
                data = await self.reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                self.eof.set()
                return None
            self.reads.append(data)
            self._buffer += data
        head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
        line, *lines = head.decode("utf-8").split("\r\n")
        method, target, _ = line.split(" ")
        received = Received(method, target, dict(h.split(": ", 1) for h in lines))
        self.requests.append(received)
        return received

    def answer(self, status: int = 200, body: bytes = b"", *headers: str) -> None:
        head = [f"HTTP/1.1 {status} {REASONS[status]}", f"Content-Length: {len(body)}", *headers]
        self.writer.write("\r\n".join(head).encode() + b"\r\n\r\n" + body)

    def echo(self, received: Received) -> None:
        """What the echo server answers: the request line, so a mismatch shows."""
        self.answer(200, f"{received.method} {received.target}".encode())

    def close(self) -> None:
        self.closed = True
        self.writer.close()

    def reset(self) -> None:
        """Close with a TCP RST, as a crashed process's kernel does."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.closed = True
        self.writer.transport.abort()


Script = Callable[[Peer], Awaitable[None]]


async def just_echo(peer: Peer) -> None:
    pass


class FakeAri:
    """Asterisk's HTTP server as far as the pool sees it. Each connection first runs the
    test's script, then (unless the script closed it) echoes each request until the
    client closes it, as a kept-alive connection does."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.peers: list[Peer] = []
        self.errors: list[Exception] = []  # what a script raised: a failed assertion
        self.pools: list[RestPool] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = Peer(len(self.peers), reader, writer)
        self.peers.append(peer)
        try:
            await self.script(peer)
            while not peer.closed and (received := await peer.request()) is not None:
                peer.echo(received)
        except (ConnectionError, asyncio.CancelledError):
            pass  # cancelled: stopped at the test's end (asyncio would log it as an error)
        except Exception as error:
            self.errors.append(error)
        finally:
            writer.close()

    def pool(self, timeout: float = 5.0) -> RestPool:
        pool = RestPool(self.url, AUTHORIZATION, timeout=timeout)
        self.pools.append(pool)
        return pool

    def client(self) -> AriClient:
        return AriClient(self.url, USER, PASSWORD, "callgate")

    @property
    def accepts(self) -> int:
        return len(self.peers)

    async def stop(self) -> None:
        for pool in self.pools:
            pool.close()
        self.server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.server.wait_closed()


@pytest.fixture
async def ari():
    """Starts a FakeAri running a script; stops it and its pools after the test."""
    started: list[FakeAri] = []

    async def start(script: Script = just_echo) -> FakeAri:
        fake = FakeAri(script)
        await fake.start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        await fake.stop()
    assert [error for fake in started for error in fake.errors] == []


async def eventually(probe: Callable[[], object], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, "nothing came"
        await asyncio.sleep(0.01)


def echoed(method: str, path: str) -> Answer:
    return Answer(200, f"{method} /ari{path}".encode())


async def holds_the_first_answer(peer: Peer) -> None:
    """The first connection's first request gets its answer only when another request
    comes on that same connection, and then the answer is "stale": a pool that reused a
    connection with an answer still owed would hand it to the next call."""
    if peer.index != 0 or await peer.request() is None:
        return
    later = await peer.request()
    if later is not None:
        peer.answer(200, b"stale")
        peer.echo(later)


# ---------------------------------------------------------------- pipelining


async def test_a_calls_requests_reach_the_server_in_one_write_and_are_answered_in_order(ari):
    """The verdict's variable must be set before the channel continues: both requests go
    in one write, the server sees both before answering either, and each answer comes
    back to its own request."""

    async def script(peer: Peer) -> None:
        assert await peer.request() is not None
        assert await peer.request() is not None  # both in, before any answer
        peer.answer(204)
        peer.answer(409, b'{"message": "Channel not in Stasis application"}')

    fake = await ari(script)
    answers = await fake.pool().send([
        request("POST", f"/channels/{CHANNEL}/variable", {"variable": "V", "value": "1"}),
        request("POST", f"/channels/{CHANNEL}/continue"),
    ])  # fmt: skip
    assert answers == [
        Answer(204, b""), Answer(409, b'{"message": "Channel not in Stasis application"}'),
    ]  # fmt: skip
    [peer] = fake.peers
    assert [(r.method, r.path) for r in peer.requests] == [
        ("POST", f"/ari/channels/{CHANNEL}/variable"),
        ("POST", f"/ari/channels/{CHANNEL}/continue"),
    ]
    # One write: on loopback, both request lines are in the server's first read.
    first = peer.reads[0]
    variable = first.find(f"POST /ari/channels/{CHANNEL}/variable?".encode())
    continue_ = first.find(f"POST /ari/channels/{CHANNEL}/continue HTTP/1.1\r\n".encode())
    assert 0 <= variable < continue_


async def test_answers_are_parsed_whatever_their_framing(ari):
    """A 204 with no Content-Length, a chunked body, and answers dribbled a few bytes at
    a time are each one answer, in order."""
    wire = (b"HTTP/1.1 204 No Content\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n"
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\ngone")  # fmt: skip

    async def script(peer: Peer) -> None:
        for _ in range(3):
            assert await peer.request() is not None
        for start in range(0, len(wire), 7):
            peer.writer.write(wire[start : start + 7])
            await peer.writer.drain()
            await asyncio.sleep(0.001)

    fake = await ari(script)
    answers = await fake.pool().send([request("GET", f"/x{n}") for n in range(3)])
    assert answers == [Answer(204, b""), Answer(200, b'{"a":1}'), Answer(404, b"gone")]


async def test_concurrent_calls_each_get_a_connection_of_their_own(ari):
    """A connection carries one call's requests at a time: two calls at once never have
    their answers crossed."""
    both_in = asyncio.Event()

    async def script(peer: Peer) -> None:
        received = await peer.request()
        assert received is not None
        if peer.index == 1:
            both_in.set()
        await both_in.wait()
        peer.echo(received)

    fake = await ari(script)
    pool = fake.pool()
    first, second = await asyncio.gather(
        pool.send([request("GET", "/one")]), pool.send([request("GET", "/two")])
    )
    assert (first, second) == ([echoed("GET", "/one")], [echoed("GET", "/two")])
    assert fake.accepts == 2


async def test_a_burst_of_calls_never_opens_more_connections_than_the_pool_holds(ari):
    """Asterisk serves 100 HTTP sessions and closes the others unanswered: a burst of
    calls waits for a connection rather than opening one each."""

    async def script(peer: Peer) -> None:
        while (received := await peer.request()) is not None:
            await asyncio.sleep(0.02)
            peer.echo(received)

    fake = await ari(script)
    pool = fake.pool()
    paths = [f"/call{index}" for index in range(3 * rest.CONNECTIONS)]
    answers = await asyncio.gather(*(pool.send([request("GET", path)]) for path in paths))
    assert answers == [[echoed("GET", path)] for path in paths]
    assert fake.accepts == rest.CONNECTIONS


# ---------------------------------------------------------------- what is sent


async def test_the_authorization_header_is_sent_with_each_request(ari):
    fake = await ari()
    async with fake.client() as client:
        await client.hand_back(CHANNEL, RESULT_VARIABLE, "ALLOW||||||")
    [peer] = fake.peers
    assert [r.headers["Authorization"] for r in peer.requests] == [AUTHORIZATION] * 2
    assert all(r.headers["Content-Length"] == "0" for r in peer.requests)


async def refused(peer: Peer) -> None:
    raise AssertionError("never reached")


async def closes(peer: Peer) -> None:
    await peer.request()
    peer.close()


async def echoes_the_request_bytes(peer: Peer) -> None:
    """A confused server that sends back what it got: the Authorization header included."""
    if await peer.request() is not None:
        peer.writer.write(b"".join(peer.reads))
        await peer.request()


async def never_answers(peer: Peer) -> None:
    await peer.request()
    await peer.request()


@pytest.mark.parametrize("script", [refused, closes, echoes_the_request_bytes, never_answers])
async def test_no_error_names_the_credentials(ari, script):
    """Errors end up in the gate's log: the password, and the header that carries it,
    stay out of them whatever the server does."""
    fake = await ari(script)
    url = fake.url
    if script is refused:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            url = f"http://127.0.0.1:{unused.getsockname()[1]}"
    pool = RestPool(url, AUTHORIZATION, timeout=0.3)
    fake.pools.append(pool)
    with pytest.raises(aiohttp.ClientError) as raised:
        await pool.send([request("POST", f"/channels/{CHANNEL}/continue")])
    chain = [raised.value, raised.value.__cause__, raised.value.__context__]
    text = " ".join(f"{error} {error!r}" for error in chain if error is not None)
    for secret in (PASSWORD, TOKEN, "Authorization"):
        assert secret not in text


async def test_an_ari_error_names_no_credentials(ari):
    async def script(peer: Peer) -> None:
        await peer.request()
        peer.answer(401, b'{"error": "Authentication required"}')

    fake = await ari(script)
    async with fake.client() as client:
        with pytest.raises(AriError) as raised:
            await client.continue_in_dialplan(CHANNEL)
    assert raised.value.status == 401
    for secret in (PASSWORD, TOKEN, "Authorization"):
        assert secret not in f"{raised.value} {raised.value!r}"


async def test_a_verdict_with_every_awkward_character_arrives_intact(ari):
    """CALLGATE_RESULT goes in the query string. Asterisk decodes %XX and reads a bare "+"
    as a space: every character but the unreserved ones must be encoded."""
    value = ("ALLOW|CLI_REWRITTEN,CLI_MOBILE|2026-11-24T10:00:00+01:00|d-42|+33948000001|"
             "a b: c + d & e=f ? g # h % i / j|Zoé Müller 日本|Europe/Paris")  # fmt: skip
    fake = await ari()
    async with fake.client() as client:
        await client.set_variable(CHANNEL, RESULT_VARIABLE, value)
    [received] = fake.peers[0].requests
    assert received.path == f"/ari/channels/{CHANNEL}/variable"
    assert received.query == {"variable": [RESULT_VARIABLE], "value": [value]}
    # On the wire: nothing but unreserved characters and %XX escapes in a name or value.
    for pair in urlsplit(received.target).query.split("&"):
        for part in pair.split("="):
            assert re.fullmatch(r"(?:[A-Za-z0-9._~-]|%[0-9A-F]{2})+", part), pair


# ---------------------------------------------------------------- keeping connections


async def test_two_calls_in_a_row_use_one_connection(ari):
    fake = await ari()
    pool = fake.pool()
    assert await pool.send([request("GET", "/one")]) == [echoed("GET", "/one")]
    assert await pool.send([request("GET", "/two")]) == [echoed("GET", "/two")]
    assert fake.accepts == 1


async def test_a_connection_idle_too_long_is_closed_not_reused(ari, monkeypatch):
    """Asterisk drops a connection idle for 15 s (session_keep_alive); the pool gives one
    up sooner, so that it never writes a call's requests to one Asterisk is closing."""
    monkeypatch.setattr(rest, "IDLE_SECONDS", 0.1)
    fake = await ari()
    pool = fake.pool()
    await pool.send([request("GET", "/one")])
    await asyncio.sleep(0.2)
    assert await pool.send([request("GET", "/two")]) == [echoed("GET", "/two")]
    assert fake.accepts == 2
    await asyncio.wait_for(fake.peers[0].eof.wait(), 1)  # the pool closed the old one


async def test_after_a_connection_close_answer_the_next_call_uses_a_new_connection(ari):
    """The server here keeps the socket open after "Connection: close": only the header
    tells the pool not to use it again."""

    async def script(peer: Peer) -> None:
        if peer.index == 0 and await peer.request() is not None:
            peer.answer(200, b"last", "Connection: close")

    fake = await ari(script)
    pool = fake.pool()
    assert await pool.send([request("GET", "/one")]) == [Answer(200, b"last")]
    assert await pool.send([request("GET", "/two")]) == [echoed("GET", "/two")]
    assert fake.accepts == 2
    await asyncio.wait_for(fake.peers[0].eof.wait(), 1)


# ---------------------------------------------------------------- failures


async def closes_before_answering(peer: Peer) -> None:
    if peer.index == 0:
        await peer.request()
        peer.close()


async def closes_after_one_of_two_answers(peer: Peer) -> None:
    if peer.index == 0 and (received := await peer.request()) is not None:
        await peer.request()
        peer.echo(received)
        await peer.writer.drain()
        peer.close()


async def resets_before_answering(peer: Peer) -> None:
    if peer.index == 0:
        await peer.request()
        await peer.request()
        peer.reset()


@pytest.mark.parametrize(
    "script", [closes_before_answering, closes_after_one_of_two_answers, resets_before_answering]
)
async def test_a_connection_lost_before_the_answers_fails_at_once_and_the_next_call_works(
    ari, script
):
    """Not a hang until the timeout: the call fails as soon as the connection goes, with
    the error aiohttp's client gave (the gate catches aiohttp.ClientError)."""
    fake = await ari(script)
    pool = fake.pool(timeout=30)
    started = time.monotonic()
    with pytest.raises(aiohttp.ClientError) as raised:
        await asyncio.wait_for(
            pool.send([request("POST", "/one"), request("POST", "/two")]), timeout=5
        )
    assert not isinstance(raised.value, aiohttp.ServerTimeoutError)
    assert time.monotonic() - started < 2
    assert await pool.send([request("GET", "/next")]) == [echoed("GET", "/next")]
    assert fake.accepts == 2


async def test_no_answer_times_out_and_the_connection_owing_it_is_not_reused(ari):
    fake = await ari(holds_the_first_answer)
    pool = fake.pool(timeout=0.2)
    started = time.monotonic()
    with pytest.raises(aiohttp.ServerTimeoutError):
        await pool.send([request("POST", "/one")])
    assert time.monotonic() - started < 1.5
    assert await pool.send([request("GET", "/next")]) == [echoed("GET", "/next")]
    assert fake.accepts == 2
    await asyncio.wait_for(fake.peers[0].eof.wait(), 1)


async def test_a_cancelled_call_closes_its_connection_and_the_next_gets_its_own_answer(ari):
    """A call's task cancelled while it waits (the gate stopping): the answer still owed
    on that connection must never be read as the next call's."""
    fake = await ari(holds_the_first_answer)
    pool = fake.pool()
    waiting = asyncio.create_task(pool.send([request("POST", "/one")]))
    await eventually(lambda: fake.peers and fake.peers[0].requests)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await pool.send([request("GET", "/next")]) == [echoed("GET", "/next")]
    assert fake.accepts == 2
    await asyncio.wait_for(fake.peers[0].eof.wait(), 1)


async def ssh_banner(peer: Peer) -> None:
    peer.writer.write(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")


async def bad_status(peer: Peer) -> None:
    await peer.request()
    peer.writer.write(b"HTTP/1.1 OK\r\n\r\n")


async def bad_chunk(peer: Peer) -> None:
    await peer.request()
    peer.writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")


@pytest.mark.parametrize("garbage", [ssh_banner, echoes_the_request_bytes, bad_status, bad_chunk])
async def test_garbage_from_the_server_is_a_client_error_and_the_next_call_works(ari, garbage):
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await garbage(peer)

    fake = await ari(script)
    pool = fake.pool(timeout=30)
    with pytest.raises(aiohttp.ClientError) as raised:
        await asyncio.wait_for(pool.send([request("POST", "/one")]), timeout=5)
    assert not isinstance(raised.value, aiohttp.ServerTimeoutError)
    assert await pool.send([request("GET", "/next")]) == [echoed("GET", "/next")]
    assert fake.accepts == 2


# ---------------------------------------------------------------- AriClient


@pytest.mark.parametrize(
    ("statuses", "failure"),
    [
        ((400, 404), (400, f"POST /channels/{CHANNEL}/variable")),
        ((204, 409), (409, f"POST /channels/{CHANNEL}/continue")),
        ((404, 404), (404, f"POST /channels/{CHANNEL}/variable")),  # the channel is gone
    ],
)  # fmt: skip
async def test_hand_back_raises_for_the_first_failing_answer(ari, statuses, failure):
    """The gate tells a hung-up channel (404) from a real failure by the status; the
    message names the request by its path alone, never the verdict in its query."""
    verdict = "ALLOW|||d-42|+33948000001|||"

    async def script(peer: Peer) -> None:
        for _ in statuses:
            await peer.request()
        for status in statuses:
            peer.answer(status, b'{"message": "Channel not found"}' if status == 404 else b"")

    fake = await ari(script)
    async with fake.client() as client:
        with pytest.raises(AriError) as raised:
            await client.hand_back(CHANNEL, RESULT_VARIABLE, verdict)
    status, named = failure
    assert raised.value.status == status
    assert str(raised.value).startswith(f"{named}: HTTP {status}")
    assert "?" not in str(raised.value)
    assert verdict not in str(raised.value) and RESULT_VARIABLE not in str(raised.value)


async def test_hand_back_sets_the_verdict_then_continues(ari):
    fake = await ari()
    async with fake.client() as client:
        await client.hand_back(CHANNEL, RESULT_VARIABLE, "ALLOW||||||")
    requests = fake.peers[0].requests
    assert [(r.method, r.path, r.query) for r in requests] == [
        ("POST", f"/ari/channels/{CHANNEL}/variable",
         {"variable": [RESULT_VARIABLE], "value": ["ALLOW||||||"]}),
        ("POST", f"/ari/channels/{CHANNEL}/continue", {}),
    ]  # fmt: skip


@pytest.mark.parametrize(("reason", "expected"), [(None, "21"), (17, "17")])
async def test_hangup_sends_delete_with_its_reason_code(ari, reason, expected):
    fake = await ari()
    async with fake.client() as client:
        if reason is None:
            await client.hangup(CHANNEL)
        else:
            await client.hangup(CHANNEL, reason_code=reason)
    [received] = fake.peers[0].requests
    assert (received.method, received.path) == ("DELETE", f"/ari/channels/{CHANNEL}")
    assert received.query == {"reason_code": [expected]}


async def test_a_channel_id_is_percent_encoded_in_the_path(ari):
    """ARI's originate lets the caller choose a channel's id: the gate must still send a
    well-formed request line for it, as aiohttp's client did."""
    fake = await ari()
    async with fake.client() as client:
        await client.continue_in_dialplan("call 7?x/y")
    [received] = fake.peers[0].requests
    assert received.target == "/ari/channels/call%207%3Fx%2Fy/continue"
