"""/healthz against what may answer at ari.url, a password in ari.url, and the gates' own
health port: probes cached (yet an outage seen at once), connections capped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import time
import urllib.request
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from builders import POOL
from test_cli import CALLGATE, EXAMPLE

from callgate import health, metrics
from callgate.api import make_app
from callgate.config import ConfigError, parse_config
from callgate.store import open_store
from harness.sipp import free_port

TOKEN = "a-test-token-of-32-characters-xx"
COMPANIES = [{"id": "acme", "name": "ACME", "numbers": list(POOL)}]


@pytest.fixture
async def store(tmp_path):
    opened = await open_store(str(tmp_path / "health.db"))
    yield opened
    await opened.close()


def _no_traceback(caplog) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= 40] == []


# ---------------------------------------------------------------- the API's ARI probe


def _answer(**kwargs: Any) -> web.Response:
    return web.Response(**kwargs)


async def _redirect(request: web.Request) -> web.Response:
    raise web.HTTPFound(str(request.url))  # to itself, for ever


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(3)
    return web.json_response({"channel_ids": []})


ANSWERS = {
    "a web page": (lambda: _answer(text="<html>hello</html>", content_type="text/html"),
                   "unexpected answer"),
    "bytes that are not text": (lambda: _answer(body=b"\xff\xfe\x00{", content_type="text/plain",
                                                charset="utf-8"), "unexpected answer"),
    "an unknown charset": (lambda: _answer(body=b"{}", headers={
        "Content-Type": "application/json; charset=nonesuch"}), "connected"),
    "a JSON list": (lambda: web.json_response([1, 2, 3]), "connected"),
    "channel_ids not a list": (lambda: web.json_response({"channel_ids": 5}),
                               "unexpected answer"),
    "a JSON too deep": (lambda: _answer(body=b"[" * 100_000, content_type="application/json"),
                        "unexpected answer"),
    "401": (lambda: web.json_response({"message": "Authentication required"}, status=401),
            "credentials refused"),
    "404": (lambda: web.json_response({"message": "Application not found"}, status=404),
            "app not registered"),
    "500": (lambda: _answer(status=500, text="oops"), "unexpected answer"),
}  # fmt: skip


async def _healthz_with_ari(store, monkeypatch, handler) -> tuple[list[str], TestClient]:
    """The API, its ari.url on a server that answers with ``handler``; the paths asked."""
    asked: list[str] = []

    async def application(request: web.Request) -> web.StreamResponse:
        asked.append(request.path)
        return await handler(request)

    asterisk = web.Application()
    asterisk.router.add_get("/ari/applications/{name}", application)
    monkeypatch.setenv("CALLGATE_ARI_PASSWORD", "ari-secret")
    ari = TestServer(asterisk)
    await ari.start_server()
    config = parse_config({"companies": COMPANIES, "ari": {"url": str(ari.make_url(""))}})
    client = TestClient(TestServer(make_app(store, config, TOKEN)))
    await client.start_server()
    client.ari = ari  # type: ignore[attr-defined]
    return asked, client


@pytest.mark.parametrize("kind", list(ANSWERS))
async def test_whatever_answers_at_ari_url_healthz_is_a_state_and_cached(
    store, monkeypatch, caplog, kind
):
    make, state = ANSWERS[kind]

    async def handler(request: web.Request) -> web.Response:
        return make()

    asked, client = await _healthz_with_ari(store, monkeypatch, handler)
    try:
        replies = await asyncio.gather(*(client.get("/healthz") for _ in range(50)))
        replies += [await client.get("/healthz") for _ in range(50)]
        assert {r.status for r in replies} == {200}
        assert {json.dumps(await r.json()) for r in replies} == {
            json.dumps({"status": "ok", "store": "ok", "ari": state})
        }
        assert len(asked) == 1  # one probe for 100 requests
    finally:
        await client.close()
        await client.ari.close()  # type: ignore[attr-defined]
    _no_traceback(caplog)


@pytest.mark.parametrize(
    ("handler", "state"),
    [(_redirect, "asterisk unreachable"), (_slow, "asterisk unreachable")],
    ids=["a-redirect-loop", "slower-than-a-second"],
)
async def test_an_ari_url_that_never_answers_is_unreachable(
    store, monkeypatch, caplog, handler, state
):
    _, client = await _healthz_with_ari(store, monkeypatch, handler)
    try:
        started = time.monotonic()
        reply = await client.get("/healthz")
        assert reply.status == 200 and (await reply.json())["ari"] == state
        assert time.monotonic() - started < 2.5
    finally:
        await client.close()
        await client.ari.close()  # type: ignore[attr-defined]
    _no_traceback(caplog)


async def test_an_ari_url_that_does_not_speak_http_is_unreachable(store, monkeypatch, caplog):
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff garbage\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("CALLGATE_ARI_PASSWORD", "ari-secret")
    config = parse_config({"companies": COMPANIES, "ari": {"url": f"http://127.0.0.1:{port}"}})
    async with server, TestClient(TestServer(make_app(store, config, TOKEN))) as client:
        reply = await client.get("/healthz")
        assert reply.status == 200
        assert (await reply.json())["ari"] == "asterisk unreachable"
    _no_traceback(caplog)


async def test_the_apis_health_is_its_stores_not_the_ari_gates(store, monkeypatch):
    """An ARI gate not attached is said, not a reason to take the API out of service."""

    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"message": "Application not found"}, status=404)

    _, client = await _healthz_with_ari(store, monkeypatch, handler)
    try:
        reply = await client.get("/healthz")
        assert reply.status == 200
        assert await reply.json() == {"status": "ok", "store": "ok", "ari": "app not registered"}
    finally:
        await client.close()
        await client.ari.close()  # type: ignore[attr-defined]


async def test_the_apis_healthz_is_503_when_its_store_is_down(store, monkeypatch):
    async def down() -> None:
        raise OSError("the store is gone")

    monkeypatch.setattr(store, "log_anchor", down)
    config = parse_config({"companies": COMPANIES})
    async with TestClient(TestServer(make_app(store, config, TOKEN))) as client:
        reply = await client.get("/healthz")
        assert reply.status == 503
        body = {"status": "degraded", "store": "down", "ari": "not configured"}
        assert await reply.json() == body


# ---------------------------------------------------------------- a password in ari.url


@pytest.mark.parametrize(
    "url",
    [
        "http://user:secretpw@127.0.0.1:1", "https://user:secretpw@pbx.example/ari",
        "http://user@127.0.0.1:8088", "user:secretpw@127.0.0.1:8088",
        "ftp://user:secretpw@127.0.0.1",
    ],
)  # fmt: skip
def test_credentials_in_ari_url_are_a_configuration_error_that_shows_none(url):
    with pytest.raises(ConfigError) as caught:
        parse_config({"ari": {"url": url}})
    message = str(caught.value)
    assert message.startswith("ari.url: ") and "password_file" in message
    assert "secretpw" not in message and "user@" not in message


@pytest.mark.parametrize("url", ["http://127.0.0.1:8088", "https://pbx.example/ari@2"])
def test_an_ari_url_without_credentials_is_kept(url):
    assert parse_config({"ari": {"url": url}}).ari.url == url


def test_callgate_run_with_a_password_in_ari_url_says_so_in_one_line(tmp_path):
    config = tmp_path / "callgate.toml"
    config.write_text(
        EXAMPLE.read_text().replace(
            'url = "http://127.0.0.1:8088"', 'url = "http://user:secretpw@127.0.0.1:1"', 1
        )
    )
    env = {**os.environ, "CALLGATE_CONFIG": str(config), "CALLGATE_DB": str(tmp_path / "x.db"),
           "CALLGATE_ARI_PASSWORD": "ari-secret"}  # fmt: skip
    result = subprocess.run(
        [CALLGATE, "run", "--log-level", "debug"], env=env, capture_output=True, text=True,
        timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "secretpw" not in result.stderr + result.stdout
    assert "ari.url: no user or password in the URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---------------------------------------------------------------- the gates' health port


class Probes:
    """A store whose health probe is counted, and that may be down."""

    def __init__(self, store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count, self.down = 0, False
        self._anchor = store.log_anchor
        monkeypatch.setattr(store, "log_anchor", self.log_anchor)

    async def log_anchor(self) -> Any:
        self.count += 1
        if self.down:
            raise OSError("down")
        return await self._anchor()


async def _get(port: int, path: str = "/healthz") -> tuple[int, dict[str, str]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head, _, body = (await asyncio.wait_for(reader.read(), 5)).partition(b"\r\n\r\n")
    finally:
        writer.close()
    return int(head.split()[1]), json.loads(body)


def _gate_part() -> tuple[str, str, bool]:
    return "ari", "connected", True


async def test_the_gates_healthz_probes_the_store_at_most_once_a_second(store, monkeypatch):
    probes = Probes(store, monkeypatch)
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    async with (
        health.health_server(("127.0.0.1", port), store, _gate_part),
        aiohttp.ClientSession() as session,
    ):

        async def status() -> int:
            async with session.get(url) as reply:
                await reply.read()
                return reply.status

        started = time.monotonic()
        statuses = await asyncio.gather(*(status() for _ in range(50)))  # under the cap
        statuses += [await status() for _ in range(200)]
        elapsed = time.monotonic() - started
        assert set(statuses) == {200}
        assert probes.count <= 1 + elapsed / health.CACHE_SECONDS
        await asyncio.sleep(health.CACHE_SECONDS + 0.1)
        before = probes.count
        assert (await _get(port))[0] == 200
        assert probes.count == before + 1


async def test_a_store_outage_a_call_found_shows_at_once_despite_the_cache(store, monkeypatch):
    probes = Probes(store, monkeypatch)
    port = free_port()
    async with health.health_server(("127.0.0.1", port), store, _gate_part):
        assert (await _get(port))[0] == 200
        probes.down = True
        metrics.STORE_UP.set(0)  # what a gate's decision does on a store error
        status, body = await _get(port)
        assert (status, body["store"]) == (503, "down")
        probes.down = False
        metrics.STORE_UP.set(1)  # a decision that the store answered again
        assert (await _get(port))[0] == 200
        assert probes.count == 3


async def test_the_gates_health_port_caps_its_connections(store, monkeypatch, caplog):
    monkeypatch.setattr(health, "MAX_CONNECTIONS", 4)
    caplog.set_level(logging.INFO)
    port = free_port()
    async with health.health_server(("127.0.0.1", port), store, _gate_part):
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(12)]
        await asyncio.sleep(0.2)
        closed = 0
        for reader, _ in idle:
            with contextlib.suppress(TimeoutError):
                closed += await asyncio.wait_for(reader.read(), 0.2) == b""
        assert closed >= 12 - 4  # the oldest idle ones gave way
        assert (await _get(port))[0] == 200
        for _, writer in idle:
            writer.close()
    assert "the --metrics port's connections = 4 reached" in caplog.text
    assert caplog.text.count("reached") == 1  # a flood is one line


def test_a_flood_of_connections_to_a_gates_metrics_port_holds_few_files(tmp_path):
    agi, port = free_port(), free_port()
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(tmp_path / "x.db")}
    process = subprocess.Popen(
        [CALLGATE, "agi", "--listen", f"127.0.0.1:{agi}", "--metrics", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=(tmp_path / "stderr").open("wb"),
    )  # fmt: skip
    flood: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                flood.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "stderr").read_text()
                assert time.monotonic() < deadline, "callgate agi did not start"
                time.sleep(0.1)
        base = len(os.listdir(f"/proc/{process.pid}/fd"))
        for n in range(400):
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            if n % 16 == 15:  # a burst past the short accept queue: SYNs would wait 1 s
                time.sleep(0.03)
        time.sleep(0.3)
        held = len(os.listdir(f"/proc/{process.pid}/fd")) - base
        assert held <= health.MAX_CONNECTIONS + health.HEALTH_BACKLOG, held
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            assert reply.status == 200
    finally:
        for connection in flood:
            connection.close()
        process.terminate()
        process.wait(timeout=15)
    log = (tmp_path / "stderr").read_bytes()
    assert b"Traceback" not in log and log.count(b"reached") == 1, log[-2000:]
