"""`callgate api`: the HTTP API for CRMs and dialers, with /healthz and /metrics.

Each handler parses its input, calls one function of the core or the store, and answers
JSON. Bad input is 400 (not JSON) or 422 (a value that cannot be used), with a body that
names the field. Every endpoint but /healthz needs a bearer token with the scope the call
needs: ``read`` for a GET, ``write`` for a POST (admin has both). The console under
/console/ takes a session instead (callgate.console.access). `serve` runs the app
within the [api] limits: idle connections closed, open connections capped, a stalled body
given up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from ari_app.client import AriClient, AriError
from callgate import inputs, metrics, serving
from callgate.cli_format import (
    appointment_json,
    consent_json,
    contract_json,
    decision_json,
    opposition_json,
    outcome_json,
)
from callgate.config import Config, ConfigError
from callgate.console.access import is_console
from callgate.console.render import error_page
from callgate.gate import check_call
from callgate.health import PROBE_SECONDS, Cached, health_body, metrics_text, store_state
from callgate.model import CallRequest, ConsentScope, Contract, Purpose
from callgate.scrub import list_entries, scrub
from callgate.scrub_workers import ScrubWorkers
from callgate.serving import BACKLOG
from callgate.store import Store, StoreError
from callgate.store.base import LOG_KINDS, AppointmentRecord, LogQuery
from callgate.throttle import INTERVAL, Throttle
from callgate.tokens import Tokens

__all__ = ["connection_limit", "first_line", "make_app", "serve"]

log = logging.getLogger("callgate.api")

Health = tuple[dict[str, str], int]
STORE: web.AppKey[Store] = web.AppKey("store", Store)  # type: ignore[type-abstract]
CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
TOKENS: web.AppKey[Tokens] = web.AppKey("tokens", Tokens)
SCRUB_WORKERS: web.AppKey[ScrubWorkers | None] = web.AppKey("scrub_workers")
HEALTH: web.AppKey[Cached[Health]] = web.AppKey("health")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_PATHS = frozenset({"/healthz"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})  # every other method writes
MAX_BODY = 1024**2  # bytes of a JSON body
# Integers a client may give (a page's ``after``): what the store's 64-bit columns hold.
MAX_INTEGER = 2**63 - 1
# Files the API needs besides its connections: the store, the log, scrub workers' pipes.
SPARE_FILES, FILES_PER_WORKER = 64, 8


class Unprocessable(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


class ClientGone(Exception):
    """The client closed its connection before its request was read."""


class Unreadable(Exception):
    """A request body that cannot be read (an encoding that fails, a body that stalls):
    answered, then the connection is closed, since nothing more can be read on it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def make_app(
    store: Store,
    config: Config,
    tokens: Tokens | str,
    scrub_workers: ScrubWorkers | None = None,
) -> web.Application:
    """The API and the console. ``tokens`` as a string is one admin token."""
    from callgate import console

    app = web.Application(middlewares=[_errors, _bearer], client_max_size=MAX_BODY)
    app[STORE], app[CONFIG] = store, config
    app[TOKENS] = Tokens.admin(tokens) if isinstance(tokens, str) else tokens
    app[SCRUB_WORKERS] = scrub_workers
    app[HEALTH] = Cached(lambda: _health(store, config))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/openapi.yaml", openapi)
    app.router.add_post("/v1/check", check)
    app.router.add_post("/v1/scrub", scrub_list)
    app.router.add_post("/v1/outcomes", outcomes)
    app.router.add_get("/v1/outcomes", outcomes_list)
    app.router.add_get("/v1/consents", consents_list)
    app.router.add_post("/v1/consents", consents_add)
    app.router.add_post("/v1/consents/revoke", consents_revoke)
    app.router.add_get("/v1/consents/receipt", consents_receipt)
    app.router.add_get("/v1/appointments", appointments_list)
    app.router.add_post("/v1/appointments", appointments_add)
    app.router.add_post("/v1/appointments/cancel", appointments_cancel)
    app.router.add_get("/v1/contracts", contracts_list)
    app.router.add_post("/v1/contracts", contracts_add)
    app.router.add_post("/v1/contracts/end", contracts_end)
    app.router.add_get("/v1/optouts", optouts_list)
    app.router.add_post("/v1/optouts", optouts_add)
    app.router.add_post("/v1/optouts/remove", optouts_remove)
    app.router.add_get("/v1/decisions", decisions)
    console.setup(app)
    return app


# ---------------------------------------------------------------- serving


async def serve(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serves ``app`` on host:port within its config's [api] limits; OSError when the port
    cannot be bound. The caller cleans the runner up."""
    settings = app[CONFIG].api
    workers = app[SCRUB_WORKERS]
    limit = connection_limit(settings.max_connections, workers.count if workers else 0)
    return await serving.serve(
        app, host, port, limit=limit, idle_timeout=settings.idle_timeout,
        name="api.max_connections",
    )  # fmt: skip


def connection_limit(wanted: int, scrub_workers: int = 0) -> int:
    """``wanted`` connections at most, fitted under the open-file limit with room for the
    store, the backlog and the scrub workers' pipes."""
    reserve = SPARE_FILES + BACKLOG + FILES_PER_WORKER * scrub_workers
    return serving.fitted("api.max_connections", wanted, reserve)


# ---------------------------------------------------------------- middlewares


@web.middleware
async def _bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if path in _OPEN_PATHS or path == "/console" or path.startswith("/console/"):
        return await handler(request)  # the console checks its own sessions
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # Header bytes that are not UTF-8 arrive as surrogates, which no (ASCII) token equals.
    scopes = request.app[TOKENS].scopes_of(given) if scheme == "Bearer" else None
    if scopes is None:
        return _problem(401, "unauthorized", "a valid 'Authorization: Bearer TOKEN' is needed")
    needed = "read" if request.method in _READS else "write"
    if needed not in scopes:
        return _problem(403, "forbidden", f"this token lacks the {needed!r} scope")
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Unprocessable as error:
        return _problem(422, "invalid", error.message, error.field)
    except inputs.InvalidInput as error:
        return _problem(422, "invalid", error.detail, error.field)
    except ClientGone as error:  # nobody reads the answer; aiohttp drops it quietly
        log.info("%s %s: the client went away: %s", request.method, request.path, error)
        return _problem(400, "gone", "the connection was closed")
    except Unreadable as error:
        return await _last(request, _problem(error.status, "unreadable", error.reason))
    except (StoreError, sqlite3.Error) as error:  # a full disk, a lock held past the wait
        metrics.STORE_ERRORS.inc()
        if _STORE_FAILURES.due(type(error).__name__):
            log.error("store error: %s", first_line(error))
        if is_console(request.path):
            return error_page(request, 503)
        return _problem(503, "store_unavailable", "the store cannot answer; try again")
    except web.HTTPException as error:
        if error.status >= 400 and is_console(request.path):
            return error_page(request, error.status)
        if error.status >= 400:
            return _problem(error.status, "http", error.reason)
        raise


# An outage fails every request alike: its first error at once, then a count.
_STORE_FAILURES: Throttle[str] = Throttle(
    lambda kind, count: log.error("store error (%s): %d more within %g s", kind, count, INTERVAL)
)


async def _last(request: web.Request, response: web.Response) -> web.Response:
    """Sends ``response``, then closes the connection (aiohttp would go on reading the
    body, and log a traceback for one that failed)."""
    with contextlib.suppress(ConnectionError):
        await response.prepare(request)
        await response.write_eof()
    request.protocol.force_close()
    return response


def _problem(status: int, kind: str, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": kind, "message": message}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


# ---------------------------------------------------------------- input helpers


async def _body(request: web.Request) -> dict[str, Any]:
    raw = await _read(request)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON or not UTF-8; too deep; a huge integer
        raise web.HTTPBadRequest(reason="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return body


async def _read(request: web.Request) -> bytes:
    """The whole body, within ``stall_timeout`` seconds (a JSON body is a megabyte at most)."""
    try:
        async with asyncio.timeout(request.app[CONFIG].api.stall_timeout):
            return await request.read()
    except TimeoutError:
        raise Unreadable(408, "the body did not arrive in time") from None
    except (RequestPayloadError, HttpProcessingError) as error:
        raise Unreadable(400, f"the body cannot be read: {first_line(error)}") from None
    except ConnectionError as error:
        raise ClientGone(first_line(error)) from None


def first_line(error: BaseException) -> str:
    """An error in one short line, for a log or a message."""
    if isinstance(error, RequestPayloadError) and error.__cause__ is not None:
        error = error.__cause__  # what the body's parser found
    text = error.message if isinstance(error, HttpProcessingError) else str(error)
    return f"{type(error).__name__}: {(text.strip().splitlines() or [''])[0][:200]}"


def _text(body: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    """A string field, of at most MAX_TEXT characters without control characters: it may
    end up in the decision log."""
    value = body.get(field)
    if value is None:
        if required:
            raise Unprocessable(field, f"{field} is required")
        return None
    if not isinstance(value, str):
        raise Unprocessable(field, f"{field} must be a string")
    return inputs.free_text(value, field)


def _query(request: web.Request, field: str) -> str | None:
    """A query parameter, bounded as a body's string field."""
    return inputs.free_text(request.query.get(field), field)


def _integer(request: web.Request, field: str, default: int, low: int, high: int) -> int:
    text = _query(request, field)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise Unprocessable(field, f"{field} must be an integer") from None
    if not low <= value <= high:
        raise Unprocessable(field, f"{field} must be {low} to {high}")
    return value


def _choice(body: dict[str, Any], field: str, choices: type[Purpose] | type[ConsentScope]) -> Any:
    value = _text(body, field)
    if value is None:
        return None
    try:
        return choices(value)
    except ValueError:
        raise Unprocessable(field, f"{field} must be one of {', '.join(choices)}") from None


def _at(body: dict[str, Any], field: str = "at") -> datetime:
    return inputs.instant(_text(body, field), field) or datetime.now(UTC)


def _created(payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=201)


# ---------------------------------------------------------------- health, metrics, docs


async def healthz(request: web.Request) -> web.Response:
    """200 when the store answers, 503 when not; what Asterisk says of the ARI gate's app
    is there for information (probed at most once a second: the endpoint is open to
    anyone)."""
    body, status = await request.app[HEALTH].get()
    return web.json_response(body, status=status)


async def _health(store: Store, config: Config) -> Health:
    # The API's health is its own and its store's: it answers checks and scrubs whatever
    # becomes of the ARI gate, a separate process watched on its own /healthz.
    store_up, ari = await asyncio.gather(store_state(store), _ari_state(config))
    return health_body(store_up, ari=(ari, True))


async def _ari_state(config: Config) -> str:
    """What ARI says of the gate's app, as one of a few fixed states: whatever answers at
    ari.url (a web server, a proxy, garbage), the probe ends in one of them."""
    try:
        password = config.ari.password()
    except ConfigError:
        return "not configured"
    settings = config.ari
    try:
        async with (
            asyncio.timeout(PROBE_SECONDS),
            AriClient(settings.url, settings.username, password, settings.app) as ari,
        ):
            await ari.channels_in_app()
            return "connected"
    except AriError as error:
        return _ARI_REFUSALS.get(error.status, "unexpected answer")
    except (aiohttp.ClientError, TimeoutError, OSError):
        return "asterisk unreachable"
    except (ValueError, TypeError, LookupError, RecursionError):  # not JSON, text, ARI's shape
        return "unexpected answer"
    except Exception as error:  # a probe reports; it never makes /healthz a 500
        _PROBE_FAILED.warning(type(error).__name__)
        return "unexpected answer"


_ARI_REFUSALS = {404: "app not registered", 401: "credentials refused", 403: "credentials refused"}
_PROBE_FAILED = serving.Flood(log, "/healthz: the ARI probe failed")


async def openapi(request: web.Request) -> web.Response:
    text = resources.files("callgate").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return web.Response(text=text, content_type="application/yaml")


# ---------------------------------------------------------------- decisions


async def check(request: web.Request) -> web.Response:
    """The verdict a call would get now (or ``at``): a dry run, logged as one, unless
    ``record`` is true: then an allowed call counts as an attempt, as `check --record`."""
    body = await _body(request)
    record = body.get("record", False)
    if not isinstance(record, bool):
        raise Unprocessable("record", "record must be true or false")
    config, store = request.app[CONFIG], request.app[STORE]
    call = CallRequest(
        caller=_text(body, "from", required=True) or "",
        callee=_text(body, "to", required=True) or "",
        company=_text(body, "company"),
        purpose=_choice(body, "purpose", Purpose),
        campaign=_text(body, "campaign"),
        dept=_text(body, "dept"),
    )
    started = time.perf_counter()
    decision = await check_call(store, config, call, _at(body), record=record)
    seconds = time.perf_counter() - started
    metrics.observe(decision, seconds)
    if not record:  # a recorded check is in the log already, as a call
        await store.record_decision(decision, kind="dry-run", latency_ms=round(seconds * 1000, 3))
    return web.json_response(decision_json(decision))


async def scrub_list(request: web.Request) -> web.StreamResponse:
    """A call list in (one number per line, or JSON lines with "to"), verdicts out as JSON
    lines, streamed both ways."""
    config = request.app[CONFIG]
    company = inputs.company_id(config, _query(request, "company"))
    purpose = _choice(dict(request.query), "purpose", Purpose)
    caller = _query(request, "from") or config.companies[company].first_number
    now = inputs.instant(_query(request, "at"), "at") or datetime.now(UTC)
    stall = config.api.stall_timeout
    # The list's first piece is read before the answer begins: a body that cannot be read
    # (a bad encoding, a client gone or stalled at once) gets its 4xx.
    reading = _chunks(request, stall)
    first = await anext(reading, b"")
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    results = scrub(
        request.app[STORE], config, list_entries(_after(first, reading)), caller=caller,
        company=company, purpose=purpose, now=now, workers=request.app[SCRUB_WORKERS],
    )  # fmt: skip
    try:
        # Every write, the headers' first, may find the client gone (a reset).
        await response.prepare(request)
        async with contextlib.aclosing(results):
            await _send(response, results, stall)
        async with asyncio.timeout(stall):
            await response.write_eof()
    except StoreError as error:
        metrics.STORE_ERRORS.inc()
        _cut(request, f"store error: {error}", logging.ERROR)
    except TimeoutError:
        _cut(request, f"the client read nothing for {stall:g} s")
    except ClientGone as error:
        _cut(request, f"the client went away: {error}")
    except ConnectionError as error:  # writing the answer
        _cut(request, f"the client went away: {first_line(error)}")
    except Unreadable as error:
        _cut(request, error.reason)
    return response


async def _send(
    response: web.StreamResponse, results: AsyncIterator[dict[str, Any]], stall: float
) -> None:
    chunk: list[str] = []

    async def write() -> None:
        async with asyncio.timeout(stall):  # a reader that stops reading holds a scrub
            await response.write(("\n".join(chunk) + "\n").encode())
        chunk.clear()

    async for result in results:
        chunk.append(json.dumps(result, ensure_ascii=False))
        if len(chunk) >= 500:
            await write()
    if chunk:
        await write()


async def _chunks(request: web.Request, stall: float) -> AsyncIterator[bytes]:
    # Large reads: a million-line list would otherwise cost a million trips through the
    # stream reader. A list that stalls ``stall`` seconds is given up.
    while True:
        try:
            async with asyncio.timeout(stall):
                chunk = await request.content.read(1 << 16)
        except TimeoutError:
            raise Unreadable(408, f"the list stalled for {stall:g} s") from None
        except (RequestPayloadError, HttpProcessingError) as error:
            raise Unreadable(400, f"the list cannot be read: {first_line(error)}") from None
        except ConnectionError as error:
            raise ClientGone(first_line(error)) from None
        if not chunk:
            return
        yield chunk
        # A compressed body may come out of the buffer without a wait: let the other
        # requests (a call's check, /healthz) run between two chunks.
        await asyncio.sleep(0)


async def _after(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        yield chunk


def _cut(request: web.Request, why: str, level: int = logging.INFO) -> None:
    """Ends a scrub whose answer has begun: one log line, and the connection closed before
    the answer's end, so that the client sees it cut short."""
    log.log(level, "scrub stopped: %s", why)
    request.protocol.force_close()


async def decisions(request: web.Request) -> web.Response:
    """The decision log, with `callgate log`'s filters; page with ``after``."""

    def number(field: str) -> str | None:
        text = _query(request, field)
        return inputs.e164(text, field) if text else None

    filters = LogQuery(
        since=inputs.instant(_query(request, "since"), "since"),
        until=inputs.instant(_query(request, "until"), "until"),
        verdict=_query(request, "verdict"), reason=_query(request, "reason"),
        company=_query(request, "company"), campaign=_query(request, "campaign"),
        callee=number("callee"), caller=number("caller"), kind=_kind(request),
    )  # fmt: skip
    limit = min(_integer(request, "limit", 100, 1, MAX_INTEGER), 1000)
    after = _integer(request, "after", 0, 0, MAX_INTEGER)
    entries = await request.app[STORE].log_entries(filters, after_seq=after, limit=limit)
    next_after = entries[-1]["seq"] if len(entries) == limit else None
    return web.json_response({"decisions": entries, "next_after": next_after})


def _kind(request: web.Request) -> str | None:
    """``kind``: decisions of one kind by default every decision; "all" or a kind of fact
    (LOG_KINDS) adds the log's entries of facts."""
    kind = _query(request, "kind")
    if kind is not None and kind not in LOG_KINDS:
        raise Unprocessable("kind", f"kind must be one of {', '.join(LOG_KINDS)}")
    return kind


# ---------------------------------------------------------------- records


async def outcomes(request: web.Request) -> web.Response:
    body = await _body(request)
    outcome = body.get("outcome")
    if outcome not in ("refused", "withdrawn"):
        raise Unprocessable("outcome", "outcome must be 'refused' or 'withdrawn'")
    callee, company = _target(request, body)
    at = _at(body)
    store = request.app[STORE]
    done = {"to": callee, "company": company, "at": at.isoformat(), "outcome": outcome}
    if outcome == "refused":
        return _created({"id": await store.add_refusal(company, callee, at, "api"), **done})
    withdrawal = await store.withdraw(company, callee, at, "api")
    return _created({
        "id": withdrawal.refusal_id, **done, "consents_revoked": withdrawal.revoked,
        "opposition_added": withdrawal.opposed,
    })  # fmt: skip


async def consents_add(request: web.Request) -> web.Response:
    body = await _body(request)
    callee, company = _target(request, body)
    fields = inputs.ConsentFields(
        _at(body), _text(body, "scope"), inputs.instant(_text(body, "expires"), "expires"),
        *(_text(body, name) for name in (
            "source", "proof", "given_by", "collected_by", "channel", "covers", "proof_sha256",
            "proof_name",
        )),
    )  # fmt: skip
    consent = inputs.consent(fields, request.app[CONFIG].rules.consent_max_age_days)
    record_id = await request.app[STORE].add_consent(company, callee, consent)
    return _created({"id": record_id})


async def consents_receipt(request: web.Request) -> web.Response:
    from callgate.receipt import consent_receipt

    config = request.app[CONFIG]
    callee = inputs.e164(_query(request, "callee") or _query(request, "to"), "callee")
    given = _query(request, "company")
    company = inputs.company_id(config, given) if given else None
    fmt = _query(request, "format") or "html"
    if fmt not in ("text", "html", "pdf"):
        raise Unprocessable("format", "format must be text, html or pdf")
    lang = _query(request, "lang") or "fr"
    if lang not in ("fr", "en"):
        raise Unprocessable("lang", "lang must be fr or en")
    document, media_type = await consent_receipt(
        request.app[STORE], config, callee, company, fmt, datetime.now(UTC), lang=lang
    )
    response = web.Response(body=document, headers={"Content-Type": media_type})
    if fmt == "pdf":
        response.headers["Content-Disposition"] = f'inline; filename="receipt-{callee}.pdf"'
    return response


async def appointments_add(request: web.Request) -> web.Response:
    body = await _body(request)
    callee, company = _target(request, body)
    start = inputs.instant(_text(body, "at", required=True), "at")
    assert start is not None
    booked = inputs.appointment(start, inputs.instant(_text(body, "until"), "until"))
    record = AppointmentRecord(
        0, company, callee, booked, datetime.now(UTC), source=_text(body, "source"),
        proof=_text(body, "proof"), agreed_by=_text(body, "agreed_by"),
    )  # fmt: skip
    record_id = await request.app[STORE].add_appointment(company, callee, record)
    end = booked.ends_at(request.app[CONFIG].rules.appointment_window_minutes)
    return _created({"id": record_id, "start": start.isoformat(), "end": end.isoformat()})


async def appointments_cancel(request: web.Request) -> web.Response:
    body = await _body(request)
    callee, company = _target(request, body)
    start = inputs.instant(_text(body, "at", required=True), "at")
    assert start is not None
    count = await request.app[STORE].cancel_appointments(company, callee, start, datetime.now(UTC))
    return web.json_response({"cancelled": count})


async def appointments_list(request: web.Request) -> web.Response:
    callee, company = _filters(request)
    window = request.app[CONFIG].rules.appointment_window_minutes
    records = await request.app[STORE].appointments(company, callee)
    return web.json_response({"appointments": [appointment_json(r, window) for r in records]})


async def consents_revoke(request: web.Request) -> web.Response:
    body = await _body(request)
    callee, company = _target(request, body)
    scope = _choice(body, "scope", ConsentScope)
    count = await request.app[STORE].revoke_consents(company, callee, scope, _at(body))
    return web.json_response({"revoked": count})


async def consents_list(request: web.Request) -> web.Response:
    callee, company = _filters(request)
    records = await request.app[STORE].consents(company, callee)
    return web.json_response({"consents": [consent_json(r) for r in records]})


async def contracts_add(request: web.Request) -> web.Response:
    body = await _body(request)
    callee, company = _target(request, body)
    at = _at(body)
    until = inputs.instant(_text(body, "until"), "until")
    if until is not None and until <= at:
        raise Unprocessable("until", "until must be later than the contract's start")
    record_id = await request.app[STORE].add_contract(company, callee, Contract(at, until))
    return _created({"id": record_id})


async def contracts_end(request: web.Request) -> web.Response:
    body = await _body(request)
    callee, company = _target(request, body)
    count = await request.app[STORE].end_contracts(company, callee, _at(body))
    return web.json_response({"ended": count})


async def contracts_list(request: web.Request) -> web.Response:
    callee, company = _filters(request)
    records = await request.app[STORE].contracts(company, callee)
    return web.json_response({"contracts": [contract_json(r) for r in records]})


async def optouts_add(request: web.Request) -> web.Response:
    body = await _body(request)
    callee = inputs.e164(_text(body, "to"), "to")
    given = _text(body, "company")
    company = inputs.company_id(request.app[CONFIG], given) if given else None
    source = _text(body, "source") or "internal"
    if source not in ("internal", "bloctel"):
        raise Unprocessable("source", "source must be internal or bloctel")
    added = await request.app[STORE].add_oppositions([callee], company, source, _at(body))
    return _created({"added": added})


async def optouts_remove(request: web.Request) -> web.Response:
    body = await _body(request)
    callee = inputs.e164(_text(body, "to"), "to")
    given = _text(body, "company")
    company = inputs.company_id(request.app[CONFIG], given) if given else None
    count = await request.app[STORE].remove_oppositions(callee, company, _at(body))
    return web.json_response({"removed": count})


async def outcomes_list(request: web.Request) -> web.Response:
    """The refusals and withdrawals recorded (*7 and *8 too), as `callgate outcome list`."""
    callee, company = _filters(request)
    rows = [outcome_json(o) for o in await request.app[STORE].outcomes(company, callee)]
    return web.json_response({"outcomes": rows})


async def optouts_list(request: web.Request) -> web.Response:
    callee, company = _filters(request)
    rows = [opposition_json(r) async for r in request.app[STORE].oppositions(callee, company)]
    return web.json_response({"optouts": rows})


def _target(request: web.Request, body: dict[str, Any]) -> tuple[str, str]:
    """The callee (``to``) and the configured company a record is about."""
    callee = inputs.e164(_text(body, "to"), "to")
    return callee, inputs.company_id(request.app[CONFIG], _text(body, "company"))


def _filters(request: web.Request) -> tuple[str | None, str | None]:
    to, company = _query(request, "to"), _query(request, "company")
    return (inputs.e164(to, "to") if to else None), company
