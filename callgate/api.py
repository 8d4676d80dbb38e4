"""`callgate api`: the HTTP API for CRMs and dialers, with /healthz and /metrics.

Each handler parses its input, calls one function of the core or the store, and answers
JSON. Bad input is 400 (not JSON) or 422 (a value that cannot be used), with a body that
names the field. Every endpoint but /healthz needs the bearer token.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import aiohttp
from aiohttp import web

from ari_app.client import AriClient, AriError
from callgate import inputs, metrics
from callgate.cli_format import (
    appointment_json,
    consent_json,
    contract_json,
    decision_json,
    opposition_json,
)
from callgate.config import Config, ConfigError
from callgate.gate import check_call
from callgate.health import health_body, metrics_text, store_state
from callgate.model import CallRequest, ConsentScope, Contract, Purpose
from callgate.scrub import scrub
from callgate.scrub_workers import ScrubWorkers
from callgate.store import Store, StoreError
from callgate.store.base import AppointmentRecord, LogQuery

__all__ = ["make_app"]

log = logging.getLogger("callgate.api")

STORE: web.AppKey[Store] = web.AppKey("store", Store)  # type: ignore[type-abstract]
CONFIG: web.AppKey[Config] = web.AppKey("config", Config)
TOKEN: web.AppKey[str] = web.AppKey("token", str)
SCRUB_WORKERS: web.AppKey[ScrubWorkers | None] = web.AppKey("scrub_workers")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_OPEN_PATHS = frozenset({"/healthz"})


class Unprocessable(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def make_app(
    store: Store, config: Config, token: str, scrub_workers: ScrubWorkers | None = None
) -> web.Application:
    app = web.Application(middlewares=[_errors, _bearer], client_max_size=1024**2)
    app[STORE], app[CONFIG], app[TOKEN] = store, config, token
    app[SCRUB_WORKERS] = scrub_workers
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_text)
    app.router.add_get("/openapi.yaml", openapi)
    app.router.add_post("/v1/check", check)
    app.router.add_post("/v1/scrub", scrub_list)
    app.router.add_post("/v1/outcomes", outcomes)
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
    return app


# ---------------------------------------------------------------- middlewares


@web.middleware
async def _bearer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path not in _OPEN_PATHS:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {request.app[TOKEN]}"
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return _problem(401, "unauthorized", "a valid 'Authorization: Bearer TOKEN' is needed")
    return await handler(request)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Unprocessable as error:
        return _problem(422, "invalid", error.message, error.field)
    except inputs.InvalidInput as error:
        return _problem(422, "invalid", error.detail, error.field)
    except StoreError as error:
        metrics.STORE_ERRORS.inc()
        log.error("store error: %s", error)
        return _problem(503, "store_unavailable", "the store cannot answer; try again")
    except web.HTTPException as error:
        if error.status >= 400:
            return _problem(error.status, "http", error.reason)
        raise


def _problem(status: int, kind: str, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"error": kind, "message": message}
    if field:
        body["field"] = field
    return web.json_response(body, status=status)


# ---------------------------------------------------------------- input helpers


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(reason="the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(reason="the body must be a JSON object")
    return body


def _text(body: dict[str, Any], field: str, *, required: bool = False) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise Unprocessable(field, f"{field} is required")
        return None
    if not isinstance(value, str):
        raise Unprocessable(field, f"{field} must be a string")
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
    """Store reachable, and the ARI gate's app registered on Asterisk."""
    ari = await _ari_state(request.app[CONFIG])
    body, status = health_body(
        await store_state(request.app[STORE]), ari=(ari, ari != "app not registered")
    )
    return web.json_response(body, status=status)


async def _ari_state(config: Config) -> str:
    try:
        password = config.ari.password()
    except ConfigError:
        return "not configured"
    settings = config.ari
    try:
        async with AriClient(settings.url, settings.username, password, settings.app) as ari:
            await ari.channels_in_app()
            return "connected"
    except AriError:
        return "app not registered"
    except (aiohttp.ClientError, TimeoutError, OSError):
        return "asterisk unreachable"


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
    query = request.query
    company = inputs.company_id(config, query.get("company"))
    purpose = _choice(dict(query), "purpose", Purpose)
    caller = query.get("from") or (config.companies[company].numbers or ("",))[0]
    now = inputs.instant(query.get("at"), "at") or datetime.now(UTC)
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await response.prepare(request)
    results = scrub(
        request.app[STORE], config, _numbers(request), caller=caller, company=company,
        purpose=purpose, now=now, workers=request.app[SCRUB_WORKERS],
    )  # fmt: skip
    chunk: list[str] = []
    async for result in results:
        chunk.append(json.dumps(result, ensure_ascii=False))
        if len(chunk) >= 500:
            await response.write(("\n".join(chunk) + "\n").encode())
            chunk = []
    if chunk:
        await response.write(("\n".join(chunk) + "\n").encode())
    await response.write_eof()
    return response


async def _numbers(request: web.Request) -> AsyncIterator[str]:
    # Read in large chunks and split lines here: a million-line list would otherwise cost
    # a million trips through the stream reader.
    rest = b""
    async for chunk in request.content.iter_chunked(1 << 16):
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for raw in lines:
            if number := _list_entry(raw):
                yield number
    if number := _list_entry(rest):
        yield number


def _list_entry(raw: bytes) -> str:
    line = raw.decode("utf-8", "replace").strip()
    if line.startswith("{"):
        # Not JSON after all: judged as given, an invalid number gets DEST_INVALID.
        with contextlib.suppress(json.JSONDecodeError, AttributeError):
            line = str(json.loads(line).get("to", ""))
    return line


async def decisions(request: web.Request) -> web.Response:
    """The decision log, with `callgate log`'s filters; page with ``after``."""
    query = request.query

    def number(field: str) -> str | None:
        return inputs.e164(query[field], field) if query.get(field) else None

    filters = LogQuery(
        since=inputs.instant(query.get("since"), "since"),
        until=inputs.instant(query.get("until"), "until"),
        verdict=query.get("verdict"), reason=query.get("reason"),
        company=query.get("company"), campaign=query.get("campaign"),
        callee=number("callee"), caller=number("caller"),
    )  # fmt: skip
    try:
        limit = min(int(query.get("limit", "100")), 1000)
        after = int(query.get("after", "0"))
    except ValueError:
        raise Unprocessable("limit", "limit and after must be integers") from None
    if limit < 1 or after < 0:
        raise Unprocessable("limit", "limit must be 1 or more, after 0 or more")
    entries = await request.app[STORE].log_entries(filters, after_seq=after, limit=limit)
    next_after = entries[-1]["seq"] if len(entries) == limit else None
    return web.json_response({"decisions": entries, "next_after": next_after})


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
    callee = inputs.e164(request.query.get("callee") or request.query.get("to"), "callee")
    given = request.query.get("company")
    company = inputs.company_id(config, given) if given else None
    fmt = request.query.get("format", "html")
    if fmt not in ("text", "html", "pdf"):
        raise Unprocessable("format", "format must be text, html or pdf")
    lang = request.query.get("lang", "fr")
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


async def optouts_list(request: web.Request) -> web.Response:
    callee, company = _filters(request)
    rows = [opposition_json(r) async for r in request.app[STORE].oppositions(callee, company)]
    return web.json_response({"optouts": rows})


def _target(request: web.Request, body: dict[str, Any]) -> tuple[str, str]:
    """The callee (``to``) and the configured company a record is about."""
    callee = inputs.e164(_text(body, "to"), "to")
    return callee, inputs.company_id(request.app[CONFIG], _text(body, "company"))


def _filters(request: web.Request) -> tuple[str | None, str | None]:
    to, company = request.query.get("to"), request.query.get("company")
    return (inputs.e164(to, "to") if to else None), company
