"""The HTTP API against hostile clients: crafted input gets a 4xx with a JSON body, free
text and numbers are bounded, a scrub's cost stays linear, /healthz is cheap, and the
server keeps answering through stalled, idle or vanishing connections."""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import os
import resource
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from builders import POOL
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate import api, cli, scrub, serving
from callgate.api import make_app
from callgate.config import Config, parse_config
from callgate.store import open_store
from callgate.throttle import Throttle
from harness.sipp import free_port

ROOT = Path(__file__).parent.parent
TOKEN = "a-test-token-of-32-characters-xx"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CALL = {"from": "0948000001", "to": "0612345678", "at": "2026-11-23T11:00:00+01:00"}
TARGET = {"to": "0612345678", "at": "2026-09-01"}
SCRUB = "/v1/scrub?at=2026-03-02T11:00:00%2B01:00"
NUMBERS_3MB = b"".join(f"06{12000000 + i:08d}\n".encode() for i in range(270_000))


def a_config(**api_settings: Any) -> Config:
    companies = [{"id": "acme", "name": "ACME", "sector": "telecom", "numbers": list(POOL)}]
    return parse_config({"companies": companies, "api": api_settings})


@pytest.fixture
async def store(tmp_path):
    opened = await open_store(str(tmp_path / "api.db"))
    yield opened
    await opened.close()


@pytest.fixture
async def client(store):
    async with TestClient(TestServer(make_app(store, a_config(), TOKEN))) as client:
        yield client


async def _problem(reply, status: int, field: str | None = None) -> dict[str, Any]:
    assert reply.status == status, await reply.text()
    problem = await reply.json()
    assert problem["error"] and problem["message"]
    assert problem.get("field") == field
    return problem


# ---------------------------------------------------------------- raw HTTP


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def _response(reader: asyncio.StreamReader, seconds: float = 5.0) -> tuple[int, bytes]:
    """A response's status and body (Content-Length bodies only), without waiting for the
    connection to close."""
    async with asyncio.timeout(seconds):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), body


async def _raw(port: int, request: bytes) -> tuple[int, bytes]:
    reader, writer = await _connect(port)
    try:
        writer.write(request)
        return await _response(reader)
    finally:
        writer.close()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True when the server closes the connection within ``seconds``."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1 << 16):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        return True
    return True


# ---------------------------------------------------------------- crafted input


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "field"),
    [
        pytest.param(
            "POST", "/v1/check", {}, b"[" * 100_000 + b"]" * 100_000, 400, None,
            id="deeply-nested-json",
        ),
        pytest.param(
            "POST", "/v1/check", {}, b'{"from": ' + b"9" * 5000 + b', "to": "0612345678"}',
            400, None, id="an-integer-of-5000-digits",
        ),
        pytest.param(
            "POST", "/v1/check", {}, b'{"from": "\\ud800", "to": "0612345678"}', 422, "from",
            id="a-lone-surrogate",
        ),
        pytest.param(
            "POST", "/v1/check", {"Content-Type": "application/json; charset=nonesuch"},
            json.dumps(CALL).encode(), 200, None, id="an-unknown-charset",
        ),
        pytest.param(
            "POST", "/v1/check", {}, json.dumps({**CALL, "to": "+33" + "1" * 5000}).encode(),
            422, "to", id="a-number-of-5003-digits",
        ),
        pytest.param(
            "POST", "/v1/optouts", {}, json.dumps({"to": "+33" + "6" * 5000}).encode(),
            422, "to", id="an-opt-out-of-5003-digits",
        ),
        pytest.param(
            "GET", "/v1/decisions?callee=%2B33" + "1" * 5000, {}, b"", 422, "callee",
            id="a-log-filter-of-5003-digits",
        ),
        pytest.param(
            "GET", "/v1/decisions?after=" + "9" * 30, {}, b"", 422, "after", id="after-2**99",
        ),
        pytest.param(
            "GET", "/v1/decisions?after=" + "9" * 5000, {}, b"", 422, "after",
            id="after-of-5000-digits",
        ),
        pytest.param(
            "GET", "/v1/decisions?limit=" + "9" * 30, {}, b"", 422, "limit", id="limit-2**99",
        ),
        pytest.param(
            "GET", "/v1/decisions?after=-1", {}, b"", 422, "after", id="after-negative",
        ),
    ],
)  # fmt: skip
async def test_crafted_input_gets_a_4xx_with_a_json_body(
    client, method, path, headers, body, status, field
):
    reply = await client.request(method, path, data=body, headers={**AUTH, **headers})
    if status == 200:
        assert reply.status == 200, await reply.text()
        assert (await reply.json())["verdict"]
    else:
        await _problem(reply, status, field)


async def test_an_authorization_header_that_is_not_utf8_gets_401(client):
    for value in (b"Bearer \xff\xfe", b"\xc3", b"Bearer " + TOKEN.encode() + b"\xe9"):
        status, body = await _raw(
            client.port,
            b"GET /v1/consents HTTP/1.1\r\nHost: x\r\nAuthorization: " + value + b"\r\n\r\n",
        )
        assert status == 401
        assert json.loads(body)["error"] == "unauthorized"


FREE_TEXT = [
    ("/v1/check", CALL, ["from", "to", "company", "campaign", "dept"]),
    (
        "/v1/consents",
        TARGET,
        ["to", "company", "source", "proof", "given_by", "collected_by", "covers", "proof_name"],
    ),
    ("/v1/appointments", TARGET, ["source", "proof", "agreed_by"]),
    ("/v1/outcomes", {**TARGET, "outcome": "refused"}, ["to", "company"]),
    ("/v1/optouts", TARGET, ["to", "company"]),
    ("/v1/contracts", TARGET, ["company"]),
]


@pytest.mark.parametrize(
    ("path", "valid", "field"),
    [(path, valid, field) for path, valid, fields in FREE_TEXT for field in fields],
)
async def test_every_free_text_field_is_bounded_and_named(client, path, valid, field):
    for value in ("x" * 201, "x" * 900_000, "tab\tbed", "nul\x00", "\ud800"):
        reply = await client.post(path, json={**valid, field: value}, headers=AUTH)
        problem = await _problem(reply, 422, field)
        assert len(problem["message"]) < 300


async def test_free_text_within_the_bound_is_kept(client):
    reply = await client.post("/v1/check", json={**CALL, "campaign": "é" * 200}, headers=AUTH)
    assert reply.status == 200
    log = await (await client.get("/v1/decisions", headers=AUTH)).json()
    assert log["decisions"][0]["campaign"] == "é" * 200


async def test_query_text_is_bounded_too(client):
    for path in ("/v1/decisions?campaign=", "/v1/consents?company=", SCRUB + "&from="):
        reply = await client.request(
            "POST" if path.startswith("/v1/scrub") else "GET", path + "x" * 201, headers=AUTH
        )
        await _problem(reply, 422, path.rsplit("&", 1)[-1].rsplit("?", 1)[-1].rstrip("="))


OUT_OF_RANGE = ["0001-01-01", "9999-12-31", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59-14:00"]
NEAR_THE_BOUNDS = [
    "1970-01-01T00:00:00+14:00", "1970-01-01T00:00:00-14:00", "1970-01-01",
    "2199-12-31T23:59:59-14:00", "2199-12-31T23:59:59+14:00", "2199-12-31",
]  # fmt: skip
INSTANTS = [
    ("/v1/check", CALL, "at"),
    ("/v1/outcomes", {**TARGET, "outcome": "refused"}, "at"),
    ("/v1/outcomes", {**TARGET, "outcome": "withdrawn"}, "at"),
    ("/v1/consents", TARGET, "at"),
    ("/v1/consents", {**TARGET, "at": "2199-01-01"}, "expires"),
    ("/v1/consents/revoke", TARGET, "at"),
    ("/v1/appointments", TARGET, "at"),
    ("/v1/appointments", {**TARGET, "at": "1970-01-01T00:00:00+14:00"}, "until"),
    ("/v1/appointments/cancel", TARGET, "at"),
    ("/v1/contracts", TARGET, "at"),
    ("/v1/contracts", {**TARGET, "at": "1970-01-01T00:00:00+14:00"}, "until"),
    ("/v1/contracts/end", TARGET, "at"),
    ("/v1/optouts", TARGET, "at"),
    ("/v1/optouts/remove", TARGET, "at"),
]


async def test_every_instant_of_every_endpoint_is_bounded(client):
    for path, valid, field in INSTANTS:
        for value in OUT_OF_RANGE:
            reply = await client.post(path, json={**valid, field: value}, headers=AUTH)
            await _problem(reply, 422, field)
        for value in NEAR_THE_BOUNDS:
            reply = await client.post(path, json={**valid, field: value}, headers=AUTH)
            assert reply.status < 500, (path, field, value, await reply.text())
    for query in ("since", "until"):
        for value in OUT_OF_RANGE:
            url = f"/v1/decisions?{query}={value.replace('+', '%2B')}"
            await _problem(await client.get(url, headers=AUTH), 422, query)
    # What was recorded at the bounds reads back, in every form.
    for path in ("/v1/consents", "/v1/contracts", "/v1/appointments", "/v1/optouts"):
        reply = await client.get(path + "?to=0612345678", headers=AUTH)
        assert reply.status == 200, await reply.text()
    for fmt in ("text", "html", "pdf"):
        reply = await client.get(f"/v1/consents/receipt?to=0612345678&format={fmt}", headers=AUTH)
        assert reply.status == 200, await reply.text()
    for value in NEAR_THE_BOUNDS:
        url = f"{SCRUB.split('?')[0]}?at={value.replace('+', '%2B')}"
        reply = await client.post(url, data="0612345678\n", headers=AUTH)
        assert reply.status == 200 and json.loads(await reply.text())["verdict"]


# ---------------------------------------------------------------- scrub


async def test_a_line_longer_than_the_bound_is_dest_invalid_and_costs_little(client):
    """40 MB without a newline once took 17 s and stalled the loop for 2 s."""
    line = b"9" * (24 << 20)
    stalls: list[float] = []

    async def heartbeat() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.01)
            stalls.append(time.monotonic() - before)

    beating = asyncio.create_task(heartbeat())
    started = time.monotonic()
    reply = await client.post(SCRUB, data=b"0612000000\n" + line + b"\n0612000001", headers=AUTH)
    results = [json.loads(r) for r in (await reply.text()).splitlines()]
    elapsed = time.monotonic() - started
    beating.cancel()
    assert [r["verdict"] for r in results] == ["allow", "reject", "allow"]
    assert results[1]["reasons"] == ["DEST_INVALID"]
    assert len(results[1]["to"]) < 100  # named, not echoed
    assert elapsed < 10
    assert max(stalls) < 0.5


async def test_json_lines_too_deep_or_too_long_are_judged_as_given(client):
    lines = [
        '{"to": "0612000000"}',
        '{"to": ' + "[" * 2000 + "]" * 2000 + "}",
        '{"to": ' + "7" * 4000 + "}",
        '{"to": 1e999}',
        '{"to": "0612000001"',
        '{"to": "\\ud800"}',
        "+33" + "1" * 4000,
        "0612000002",
    ]
    reply = await client.post(SCRUB, data="\n".join(lines), headers=AUTH)
    assert reply.status == 200
    results = [json.loads(r) for r in (await reply.text()).splitlines()]
    assert [r["verdict"] for r in results] == ["allow"] + ["reject"] * 6 + ["allow"]
    assert {r["reasons"][0] for r in results[1:7]} == {"DEST_INVALID"}


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"").replace(b"{", b"")), max_size=20
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_list_entries_cut_anywhere_keep_every_line_and_bound_each(lines, cuts):
    """Whatever the pieces a list arrives in, one entry per non-blank line, in order; a
    line over the bound is named, never kept."""
    body = b"\n".join(lines)
    edges = sorted({0, len(body), *(min(cut, len(body)) for cut in cuts)})

    async def pieces():
        for start, end in itertools.pairwise(edges):
            yield body[start:end]

    async def entries():
        return [entry async for entry in scrub.list_entries(pieces(), limit=8)]

    expected = [
        "(a line longer than 8 bytes)" if len(line) > 8 else line.decode("utf-8", "replace").strip()
        for line in body.split(b"\n")
    ]
    assert asyncio.run(entries()) == [entry for entry in expected if entry]


async def _scrub_request(port: int, length: int, numbers: int) -> asyncio.StreamWriter:
    """A scrub whose body announces ``length`` bytes and sends ``numbers`` lines of it."""
    reader, writer = await _connect(port)
    writer.write(
        f"POST {SCRUB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Length: {length}\r\n\r\n".encode()
    )
    writer.write(b"".join(f"06{12000000 + i:08d}\n".encode() for i in range(numbers)))
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 200")
    writer.reader = reader  # type: ignore[attr-defined]
    return writer


async def _log_line(caplog, text: str, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not any(text in r.getMessage() for r in caplog.records):
        assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
        await asyncio.sleep(0.05)


def _no_traceback(caplog) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= 40] == []


async def test_a_scrub_whose_list_stalls_is_cut_after_stall_timeout(store, caplog):
    caplog.set_level(logging.INFO)
    app = make_app(store, a_config(stall_timeout=1), TOKEN)
    async with TestClient(TestServer(app)) as client:
        writer = await _scrub_request(client.port, 10_000_000, 10)
        started = time.monotonic()
        assert await _closed_within(writer.reader, 4)  # type: ignore[attr-defined]
        assert 0.5 < time.monotonic() - started < 4
        writer.close()
        await _log_line(caplog, "the list stalled for 1 s")
        _no_traceback(caplog)
        assert (await client.get("/healthz")).status == 200


async def test_a_json_body_that_stalls_gets_408(store):
    app = make_app(store, a_config(stall_timeout=1), TOKEN)
    async with TestClient(TestServer(app)) as client:
        reader, writer = await _connect(client.port)
        writer.write(
            f"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            'Content-Length: 100\r\n\r\n{"from":'.encode()
        )
        started = time.monotonic()
        status, body = await _response(reader, 4)
        writer.close()
        assert status == 408 and json.loads(body)["error"]
        assert time.monotonic() - started < 4


# ---------------------------------------------------------------- /healthz


async def test_healthz_asks_asterisk_at_most_once_a_second(store, monkeypatch):
    asked = []

    async def application(request: web.Request) -> web.Response:
        asked.append(request.match_info["name"])
        return web.json_response({"name": "callgate", "channel_ids": []})

    asterisk = web.Application()
    asterisk.router.add_get("/ari/applications/{name}", application)
    monkeypatch.setenv("CALLGATE_ARI_PASSWORD", "ari-secret")
    async with TestServer(asterisk) as ari:
        companies = [{"id": "acme", "name": "ACME", "numbers": list(POOL)}]
        config = parse_config({"companies": companies, "ari": {"url": str(ari.make_url(""))}})
        async with TestClient(TestServer(make_app(store, config, TOKEN))) as client:
            burst = await asyncio.gather(*(client.get("/healthz") for _ in range(20)))
            burst += [await client.get("/healthz") for _ in range(20)]
            assert {r.status for r in burst} == {200}
            assert (await burst[-1].json())["ari"] == "connected"
            assert len(asked) == 1
            await asyncio.sleep(1.1)
            assert (await client.get("/healthz")).status == 200
            assert len(asked) == 2


# ---------------------------------------------------------------- serving


@pytest.fixture
async def served(store):
    """``serve(config)``: the API on a free port, as `callgate api` runs it; its port."""
    runners: list[web.AppRunner] = []

    async def start(config: Config) -> tuple[int, web.Application]:
        port = free_port()
        app = make_app(store, config, TOKEN)
        runners.append(await api.serve(app, "127.0.0.1", port))
        return port, app

    yield start
    for runner in runners:
        await runner.cleanup()


async def _healthz(port: int) -> int:
    status, body = await _raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert json.loads(body)["store"] == "ok"
    return status


async def test_a_connection_that_sends_no_request_is_closed_after_idle_timeout(served):
    port, _ = await served(a_config(idle_timeout=1))
    quiet = await _connect(port)
    slow = await _connect(port)
    slow[1].write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    started = time.monotonic()
    assert await _closed_within(quiet[0], 4)
    assert await _closed_within(slow[0], 4)
    assert 0.5 < time.monotonic() - started < 4
    for _, writer in (quiet, slow):
        writer.close()


async def test_at_the_cap_the_oldest_idle_connection_makes_room(served):
    port, _ = await served(a_config(max_connections=4))
    idle = [await _connect(port) for _ in range(4)]
    await asyncio.sleep(0.1)
    assert await _healthz(port) == 200
    assert await _closed_within(idle[0][0], 2)
    assert not await _closed_within(idle[-1][0], 0.2)
    for _, writer in idle:
        writer.close()


async def test_at_the_cap_with_every_connection_busy_a_new_one_gets_503(served):
    port, app = await served(a_config(max_connections=2))
    busy = [await _connect(port) for _ in range(2)]
    for _, writer in busy:  # bodies that never finish: requests in progress
        writer.write(
            f"POST /v1/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Length: 100\r\n\r\n{".encode()
        )
    deadline = time.monotonic() + 5
    while len(app[serving.BUSY]) < 2:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    reader, writer = await _connect(port)
    status, body = await _response(reader)
    assert status == 503 and json.loads(body)["error"] == "busy"
    writer.close()
    for _, writer in busy:
        writer.close()


async def test_accept_failures_are_logged_once_per_interval(served, caplog):
    await served(a_config())
    loop = asyncio.get_running_loop()
    caplog.set_level(logging.INFO)
    for _ in range(500):
        loop.call_exception_handler({
            "message": "socket.accept() out of system resource",
            "exception": OSError(errno.EMFILE, "Too many open files"),
        })  # fmt: skip
    lines = [r for r in caplog.records if "accept" in r.getMessage()]
    assert len(lines) == 1
    assert "Too many open files" in lines[0].getMessage()
    _no_traceback(caplog)


def test_the_connection_cap_fits_under_the_file_limit(monkeypatch, caplog):
    monkeypatch.setattr(serving.resource, "getrlimit", lambda _: (1024, 1024))
    assert api.connection_limit(512) == 512
    lowered = api.connection_limit(100_000, scrub_workers=4)
    assert 512 < lowered < 1024
    assert "LimitNOFILE" in caplog.text


# ---------------------------------------------------------------- floods in the log


def test_a_throttle_lets_the_first_of_each_kind_through_then_counts_the_rest():
    reported: list[tuple[str, int]] = []
    throttle: Throttle[str] = Throttle(lambda kind, count: reported.append((kind, count)), 0.05)
    assert [throttle.due("a") for _ in range(5)] == [True, False, False, False, False]
    assert throttle.due("b") and not throttle.due("b")
    time.sleep(0.06)  # no event loop: the next line reports the interval that ended
    assert not throttle.due("a")  # a steady flood stays counted: one line per interval
    assert reported == [("a", 4), ("b", 1)]
    time.sleep(0.06)
    throttle.flush()
    assert reported[2:] == [("a", 1)]
    time.sleep(0.06)
    assert throttle.due("a")  # a quiet interval went by: the next one is told at once


async def test_a_throttle_reports_the_count_when_the_interval_ends(caplog):
    reported: list[tuple[str, int]] = []
    throttle: Throttle[str] = Throttle(lambda kind, count: reported.append((kind, count)), 0.1)
    for _ in range(50):
        throttle.due("flood")
    await asyncio.sleep(0.15)  # no new line is needed for the count to be told
    assert reported == [("flood", 49)]


def _server_error(error: Exception) -> logging.LogRecord:
    """The record aiohttp's server logs for a request it cannot parse."""
    try:
        raise error
    except Exception:
        return logging.LogRecord(
            "aiohttp.server", logging.ERROR, __file__, 1, "Error handling request from %s",
            ("127.0.0.1",), sys.exc_info(),
        )  # fmt: skip


async def test_a_flood_of_bad_requests_is_one_line_per_kind_then_a_count(monkeypatch, caplog):
    from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

    monkeypatch.setattr(cli, "_BAD_REQUESTS", Throttle(cli._more_bad_requests, 0.2))
    caplog.set_level(logging.INFO)
    records = [_server_error(LineTooLong("a" * 9000, 8190)) for _ in range(100)]
    records += [_server_error(BadHttpMessage("Invalid header value char")) for _ in range(10)]
    records.append(_server_error(ValueError("a bug, not a bad request")))
    shown = [r for r in records if cli._client_errors_in_one_line(r)]
    assert [r.getMessage()[:36] for r in shown[:2]] == [
        "bad HTTP request (LineTooLong): Got ", "bad HTTP request (BadHttpMessage): I",
    ]  # fmt: skip
    assert all(r.levelno == logging.WARNING and r.exc_info is None for r in shown[:2])
    assert len(shown[0].getMessage()) < 1100  # the 9,000 bytes are not repeated
    assert len(shown) == 3 and shown[2].exc_info  # anything else is logged as it was
    await asyncio.sleep(0.3)
    assert "bad HTTP request (LineTooLong): 99 more within 0.2 s" in caplog.text
    assert "bad HTTP request (BadHttpMessage): 9 more within 0.2 s" in caplog.text


# ---------------------------------------------------------------- the real process


def _start_api(tmp_path: Path, port: int, files: int | None = None) -> subprocess.Popen[bytes]:
    """`callgate api` from this checkout, allowed ``files`` open files."""
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "CALLGATE_API_TOKEN": TOKEN,
        "CALLGATE_CONFIG": str(ROOT / "examples" / "callgate.toml"),
        "CALLGATE_DB": str(tmp_path / "api.db"),
    }  # fmt: skip

    def limit_files() -> None:
        if files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))

    return subprocess.Popen(
        [sys.executable, "-m", "callgate", "api", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr").open("wb"), preexec_fn=limit_files,
    )  # fmt: skip


def _get(url: str, seconds: float) -> int:
    with urllib.request.urlopen(url, timeout=seconds) as reply:
        return reply.status


@pytest.fixture
def api_process(tmp_path):
    """`callgate api` running; its port and its stderr (read once it has stopped)."""
    port = free_port()
    process = _start_api(tmp_path, port)
    try:
        _wait_until_up(process, f"http://127.0.0.1:{port}/healthz", tmp_path / "stderr")
        yield port, tmp_path / "stderr"
    finally:
        _stop(process)


def _wait_until_up(process: subprocess.Popen[bytes], url: str, stderr: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            assert _get(url, 1) == 200
            return
        except OSError:
            assert process.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "callgate api did not start"
            time.sleep(0.1)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _wait_for(path: Path, texts: tuple[bytes, ...], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not any(text in path.read_bytes() for text in texts):
        assert time.monotonic() < deadline, path.read_bytes()[-2000:]
        time.sleep(0.05)


def test_a_client_that_goes_away_mid_scrub_leaves_one_log_line(api_process):
    port, stderr = api_process
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(
            f"POST {SCRUB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Length: 10000000\r\n\r\n".encode()
            + b"".join(f"06{12000000 + i:08d}\n".encode() for i in range(1200))
        )
        assert connection.recv(100).startswith(b"HTTP/1.1 200")  # the answer has begun
        # Closed with a reset, as a client that crashes or is killed.
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    _wait_for(stderr, (b"scrub stopped", b"Traceback", b"ERROR"))
    time.sleep(0.3)
    log = stderr.read_bytes()
    assert b"Traceback" not in log and b"ERROR" not in log, log[-3000:]
    assert log.count(b"scrub stopped") == 1
    assert b"went away" in log


@pytest.mark.parametrize(
    ("sent", "length"),
    [(b"0612345678\n", 100), (NUMBERS_3MB, 10_000_000)],
    ids=["11-bytes", "3-MB"],
)
def test_a_client_that_resets_at_any_moment_of_a_scrub_leaves_one_info_line(
    api_process, sent, length
):
    """Reset before the answer's headers are written, or while they are: the headers' write
    finds the transport closing, which is the client gone too."""
    port, stderr = api_process
    tries = 5
    for _ in range(tries):
        connection = socket.create_connection(("127.0.0.1", port), timeout=5)
        head = (
            f"POST {SCRUB} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Length: {length}\r\n\r\n"
        )
        connection.sendall(head.encode() + sent)
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()  # a reset (RST), as a client that crashes or is killed
        time.sleep(0.1)
    deadline = time.monotonic() + 5
    while stderr.read_bytes().count(b"went away") < tries and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    log = stderr.read_bytes()
    assert b"Traceback" not in log and b"ERROR" not in log, log[-3000:]
    gone = [line for line in log.splitlines() if b"went away" in line]
    assert 0 < len(gone) <= tries and all(b" INFO " in line for line in gone), log[-3000:]


def test_a_flood_of_requests_aiohttp_cannot_parse_is_one_line_per_kind(api_process):
    port, stderr = api_process
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    for request in (
        b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nX-Nul: a\x00b\r\n\r\n",
        b"POST /v1/check HTTP/1.1\r\n" + auth  # no Host
        + b"Content-Encoding: deflate\r\nContent-Length: 4\r\n\r\njunk",
    ):  # fmt: skip
        for _ in range(100):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
                connection.sendall(request)
                assert connection.recv(100).startswith((b"HTTP/1.0 400", b"HTTP/1.1 400"))
    time.sleep(0.3)
    log = stderr.read_bytes()
    assert b"Traceback" not in log and b"ERROR" not in log, log[-3000:]
    lines = [line for line in log.splitlines() if b"bad HTTP request" in line]
    assert 0 < len(lines) <= 3, f"{len(lines)} lines for 300 bad requests"
    kinds = [line.split(b"bad HTTP request (")[1].split(b")")[0] for line in lines]
    assert b"LineTooLong" in kinds and len(kinds) == len(set(kinds)), lines


def test_a_pdf_receipt_leaves_no_font_subsetting_in_the_log(api_process):
    port, stderr = api_process
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/consents/receipt?callee=0612345678&format=pdf", headers=AUTH
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.read().startswith(b"%PDF")
    time.sleep(0.2)
    log = stderr.read_bytes()
    assert b"fontTools" not in log and b"fpdf" not in log, log[-3000:]


@pytest.fixture
def many_files():
    """This process may open a few thousand files (the flood's sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 2048:
        pytest.skip(f"the hard limit on open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.exhaustion
def test_1100_stalled_connections_under_1024_files_leave_healthz_answering(tmp_path, many_files):
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    process = _start_api(tmp_path, port, files=1024)
    flood: list[socket.socket] = []
    try:
        _wait_until_up(process, url, tmp_path / "stderr")
        for n in range(1100):
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError as error:
                pytest.fail(f"the API stopped accepting after {n} connections: {error}")
            if n % 2:  # half of them start a request and never finish its headers
                connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            flood.append(connection)
            if n % 64 == 63:  # a loopback burst overflows the accept queue: SYNs wait 1 s
                time.sleep(0.02)
        for _ in range(3):
            started = time.monotonic()
            try:
                status = _get(url, 5)
            except OSError as error:
                pytest.fail(f"/healthz did not answer under the flood: {error}")
            assert status == 200
            assert time.monotonic() - started < 1.0
    finally:
        for connection in flood:
            connection.close()
        _stop(process)
    log = (tmp_path / "stderr").read_bytes()
    assert len(log) < 20_000, log[-2000:]
    assert b"Traceback" not in log


async def test_a_scrub_whose_reader_stops_reading_is_cut_after_stall_timeout(store, caplog):
    caplog.set_level(logging.INFO)
    app = make_app(store, a_config(stall_timeout=1), TOKEN)
    async with TestClient(TestServer(app)) as client:
        count = 60_000  # answers enough to fill both ends' socket buffers
        writer = await _scrub_request(client.port, 11 * count, count)
        started = time.monotonic()
        await _log_line(caplog, "read nothing for 1 s", seconds=20)
        assert time.monotonic() - started < 20
        writer.close()
        _no_traceback(caplog)


async def test_a_store_that_fails_mid_request_is_503_and_a_few_lines(store, client, caplog):
    """A full disk or a lock held past the busy wait raises sqlite3's own errors on the
    write path: each request gets a JSON 503, and the outage is a line, not a traceback
    per request."""
    import sqlite3

    async def full(*args: Any, **kwargs: Any) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    store.record_decision = full
    caplog.set_level(logging.INFO)
    body = {"from": "0948000001", "to": "0612345678", "at": "2026-11-23T11:00:00+01:00"}
    for _ in range(50):
        reply = await client.post("/v1/check", json=body, headers=AUTH)
        problem = await _problem(reply, 503)
        assert problem["error"] == "store_unavailable"
    assert "Traceback" not in caplog.text
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) <= 2
