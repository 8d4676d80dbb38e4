"""`/console/decisions`: the decision log, filtered and paged; one decision, explained.

The list pages by keyset: a page ends at a (at, seq) cursor, and the next one starts
strictly before it, so that page 10,000 costs what page 1 costs and decisions recorded
meanwhile never shift a later page. Every filter is a query parameter: a view is a link.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from callgate import inputs
from callgate.api import CONFIG, STORE
from callgate.cli_log import rejudge
from callgate.config import Config
from callgate.console.labels import REASONS, reason_label
from callgate.console.render import language, paris, render
from callgate.gate import GATE_CODES
from callgate.inputs import InvalidInput
from callgate.numbering import Territory
from callgate.store.base import Cursor, LogQuery, to_micros
from callgate.timeparse import DEFAULT_ZONE

__all__ = ["Filters", "cursor_of", "parse_cursor", "parse_filters", "routes"]

log = logging.getLogger("callgate.console")
routes = web.RouteTableDef()

PAGE = 50
FEED_LIMIT = 200
MAX_SEQ = 2**63 - 1
FILTER_FIELDS = ("from", "to", "verdict", "reason", "company", "campaign", "callee")
VERDICTS = ("allow", "reject")
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_CURSOR = re.compile(r"(-?[0-9]{1,19})\.([0-9]{1,19})")
_SEQ = re.compile(r"[0-9]{1,19}")
# A full id (a UUID) or a prefix of 8 characters or more, as `callgate log explain` takes.
_ID = re.compile(r"[0-9a-fA-F-]{8,36}")
# The rule that reads the callee's own clock: where it applied, their local time is shown.
_LOCAL_TIME_RULE = "calling_hours"


@dataclass(frozen=True, slots=True)
class Filters:
    """The list's filters: the query for the store, and the values as given (the form
    shows them again, the pager's links carry them on)."""

    query: LogQuery
    given: dict[str, str]

    def link(self, path: str = "/console/decisions", **extra: str) -> str:
        params = {**self.given, **{k: v for k, v in extra.items() if v}}
        return f"{path}?{urlencode(params)}" if params else path

    def field_value(self, name: str) -> str:
        """A datetime-local field wants "YYYY-MM-DDTHH:MM" in Paris time."""
        instant = self.query.since if name == "from" else self.query.until
        if instant is None:
            return self.given.get(name, "")
        local = instant.astimezone(DEFAULT_ZONE)
        return local.strftime("%Y-%m-%dT%H:%M:%S" if local.second else "%Y-%m-%dT%H:%M")


def parse_filters(params: Mapping[str, str]) -> Filters:
    """The filters of a query string; InvalidInput names the first bad one."""
    given = {name: params[name].strip() for name in FILTER_FIELDS if params.get(name, "").strip()}
    verdict = given.get("verdict")
    if verdict == "all":
        del given["verdict"]
        verdict = None
    if verdict is not None and verdict not in VERDICTS:
        raise InvalidInput("verdict", f"expected allow or reject, not {verdict[:40]!r}")
    reason = given.get("reason")
    if reason is not None:
        reason = given["reason"] = reason.upper()
        if not _REASON.fullmatch(reason):
            raise InvalidInput("reason", f"{reason[:40]!r} is not a reason code")
    query = LogQuery(
        since=inputs.instant(given.get("from"), "from"),
        until=inputs.instant(given.get("to"), "to"),
        verdict=verdict, reason=reason,
        company=inputs.free_text(given.get("company"), "company"),
        campaign=inputs.free_text(given.get("campaign"), "campaign"),
        callee=inputs.e164(given["callee"], "callee") if "callee" in given else None,
    )  # fmt: skip
    if query.since and query.until and query.until <= query.since:
        raise InvalidInput("to", "must be later than from")
    return Filters(query, given)


def parse_cursor(text: str | None) -> Cursor | None:
    """``before=<at in microseconds>.<seq>``, as the pager's link gives it."""
    if not text:
        return None
    match = _CURSOR.fullmatch(text)
    if match is None or int(match[2]) > MAX_SEQ or abs(int(match[1])) > MAX_SEQ:
        raise InvalidInput("before", "not a place in the list: follow the page links")
    return Cursor(int(match[1]), int(match[2]))


def cursor_of(entry: Mapping[str, Any]) -> str:
    """The cursor just past ``entry``, for the next (older) page."""
    return f"{to_micros(datetime.fromisoformat(entry['at']))}.{entry['seq']}"


# ---------------------------------------------------------------- the list


@routes.get("/console/decisions")
async def decision_list(request: web.Request) -> web.Response:
    config, store = request.app[CONFIG], request.app[STORE]
    try:
        filters = parse_filters(request.query)
        before = parse_cursor(request.query.get("before"))
    except InvalidInput as error:
        return _invalid_filter(request, config, error)
    rows = await store.decision_page(filters.query, before=before, limit=PAGE + 1)
    older = cursor_of(rows[PAGE - 1]) if len(rows) > PAGE else None
    rows = rows[:PAGE]
    head = await store.log_entries(LogQuery(), limit=1, last=True)
    context = {
        **_form_context(config, filters), "rows": rows, "error": None,
        "older": filters.link(before=older) if older else None,
        "newest": filters.link(), "paged": before is not None,
        "feed": filters.link("/console/decisions/feed"),
        "head_seq": head[0]["seq"] if head else 0,
    }  # fmt: skip
    return render(request, "console/decisions.html", context)


def _invalid_filter(request: web.Request, config: Config, error: InvalidInput) -> web.Response:
    """The list's form again, with what is wrong, and no rows: a 400, never a 500."""
    raw = {name: request.query.get(name, "").strip() for name in FILTER_FIELDS}
    filters = Filters(LogQuery(), {k: v for k, v in raw.items() if v})
    context = {
        **_form_context(config, filters), "rows": [], "older": None,
        "newest": "/console/decisions",
        "paged": False, "feed": None, "head_seq": 0,
        "error": {"field": error.field, "detail": error.detail},
    }  # fmt: skip
    return render(request, "console/decisions.html", context, status=400)


def _form_context(config: Config, filters: Filters) -> dict[str, Any]:
    reason = filters.given.get("reason")
    codes = sorted({*REASONS, *([reason] if reason else [])})
    companies = [(c.id, c.name or c.id) for c in config.companies.values()]
    company = filters.given.get("company")
    if company and company not in config.companies:
        companies.append((company, company))  # a bookmark may name a company since removed
    return {"filters": filters, "codes": codes, "companies": companies}


# ---------------------------------------------------------------- the live feed


@routes.get("/console/decisions/feed")
async def decision_feed(request: web.Request) -> web.Response:
    """Entries newer than ``after_seq`` matching the filters, oldest first, for the list's
    live follow: the fields a row shows, in the page's language."""
    if request.get("session") is None:
        return web.json_response({"error": "no session"}, status=401)
    lang = language(request)
    try:
        filters = parse_filters(request.query)
        text = request.query.get("after_seq", "0")
        if not _SEQ.fullmatch(text) or int(text) > MAX_SEQ:
            raise InvalidInput("after_seq", "expected a sequence number")
    except InvalidInput as error:
        return web.json_response({"error": error.detail, "field": error.field}, status=400)
    entries = await request.app[STORE].log_entries(
        filters.query, after_seq=int(text), limit=FEED_LIMIT
    )
    return web.json_response({
        "entries": [feed_row(entry, lang) for entry in entries],
        "more": len(entries) == FEED_LIMIT,
    })  # fmt: skip


def feed_row(entry: Mapping[str, Any], lang: str) -> dict[str, Any]:
    """What one row of the list shows, as the live follow builds it."""
    allowed = entry["verdict"] == "allow"
    return {
        "id": entry["id"], "seq": entry["seq"], "at": paris(entry["at"]),
        "url": f"/console/decisions/{entry['id']}", "verdict": entry["verdict"],
        "verdict_text": verdict_text(allowed, lang), "dry_run": entry["kind"] == "dry-run",
        "dry_run_text": "dry run" if lang == "en" else "essai",
        "reasons": [
            {"code": r["code"], "text": reason_label(r["code"], lang)} for r in entry["reasons"]
        ],
        "callee": entry["callee"] or entry.get("callee_in") or "-",
        "company": entry["company"] or "-", "campaign": entry["campaign"] or "-",
    }  # fmt: skip


def verdict_text(allowed: bool, lang: str) -> str:
    if lang == "en":
        return "allowed" if allowed else "rejected"
    return "autorisé" if allowed else "refusé"


# ---------------------------------------------------------------- one decision


@routes.get("/console/decisions/{id}")
async def decision(request: web.Request) -> web.Response:
    wanted = request.match_info["id"]
    config, store = request.app[CONFIG], request.app[STORE]
    entry = await store.log_entry(wanted) if _ID.fullmatch(wanted) else None
    if entry is None:
        return not_found(request, wanted)
    outcomes, differs = await _judged_again(entry, config, store)
    zone = _callee_zone(entry, outcomes)
    context = {
        "entry": entry, "outcomes": outcomes, "differs": differs, "callee_zone": zone,
        "dry_run": entry["kind"] == "dry-run",
    }  # fmt: skip
    return render(request, "console/decision.html", context)


async def _judged_again(
    entry: dict[str, Any], config: Config, store: Any
) -> tuple[list[Any] | None, bool]:
    """Each rule's outcome on the facts known then (None if the call cannot be judged
    again: an entry with inputs today's code no longer reads), and whether today's rules
    would decide differently, as `callgate log explain` says."""
    try:
        evaluation = await rejudge(entry, config, store)
    except (ValueError, KeyError, TypeError) as error:
        log.info("console: decision %s cannot be judged again: %s", entry["id"], error)
        return None, False
    logged = {r["code"] for r in entry["reasons"]}
    again = {r.code for r in evaluation.reasons}
    return list(evaluation.outcomes), logged != again and not logged & GATE_CODES


def _callee_zone(entry: Mapping[str, Any], outcomes: list[Any] | None) -> str | None:
    """The callee's time zone, when the rule reading their clock applied to the call."""
    try:
        territory = Territory(entry["territory"])
    except ValueError:
        return None
    used = any(o.rule == _LOCAL_TIME_RULE and o.applies for o in outcomes or ())
    return territory.zone.key if used else None


def not_found(request: web.Request, wanted: str) -> web.Response:
    lang = language(request)
    shown = wanted[:80]
    message = (
        f"No decision {shown!r} in the log (a full id, or its first 8 characters or more)."
        if lang == "en"
        else f"Aucune décision « {shown} » dans le journal (l'identifiant entier, ou ses"
        " 8 premiers caractères ou plus)."
    )
    return render(request, "console/error.html", {"status": 404, "message": message}, status=404)
