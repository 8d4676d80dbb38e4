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
from callgate.auditlog import callee_commit, entry_hash
from callgate.cli_log import rejudge
from callgate.config import Config
from callgate.console.labels import REASONS, reason_label
from callgate.console.render import error_page, language, paris, render
from callgate.gate import GATE_CODES
from callgate.inputs import InvalidInput
from callgate.numbering import Territory
from callgate.store.base import Cursor, LogQuery, to_micros
from callgate.timeparse import DEFAULT_ZONE, EARLIEST_YEAR, LATEST_YEAR

__all__ = [
    "Filters", "InvalidFilter", "cursor_of", "parse_cursor", "parse_filters", "routes",
]  # fmt: skip

log = logging.getLogger("callgate.console")
routes = web.RouteTableDef()

PAGE = 50
FEED_LIMIT = 200
MAX_SEQ = 2**63 - 1
FILTER_FIELDS = ("from", "to", "kind", "verdict", "reason", "company", "campaign", "callee")
VERDICTS = ("allow", "reject")
KINDS = ("call", "dry-run")
_REASON = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_CURSOR = re.compile(r"(-?[0-9]{1,19})\.([0-9]{1,19})")
_SEQ = re.compile(r"[0-9]{1,19}")
# A full id (a UUID) or a prefix of 8 characters or more, as `callgate log explain` takes.
_ID = re.compile(r"[0-9a-fA-F-]{8,36}")
# The rule that reads the callee's own clock: where it applied, their local time is shown.
_LOCAL_TIME_RULE = "calling_hours"


class InvalidFilter(InvalidInput):
    """A filter value that cannot be used, said in both of the console's languages."""

    def __init__(self, field: str, english: str, french: str) -> None:
        super().__init__(field, english)
        self.french = french


def error_text(error: InvalidInput, lang: str) -> str:
    """What is wrong with a filter, in the page's language."""
    if lang != "en" and isinstance(error, InvalidFilter):
        return error.french
    return error.detail


def _shown(value: str) -> str:
    return value[:40] + ("…" if len(value) > 40 else "")


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
    """The filters of a query string; InvalidFilter names the first bad one."""
    given = {name: params[name].strip() for name in FILTER_FIELDS if params.get(name, "").strip()}
    verdict = _choice(given, "verdict", VERDICTS, "allow (autorisés) ou reject (refusés)")
    kind = _choice(given, "kind", KINDS, "call (appels) ou dry-run (essais)")
    reason = given.get("reason")
    if reason is not None:
        reason = given["reason"] = reason.upper()
        if not _REASON.fullmatch(reason):
            raise InvalidFilter(
                "reason", f"{_shown(reason)!r} is not a reason code",
                f"« {_shown(reason)} » n'est pas un code de motif",
            )  # fmt: skip
    query = LogQuery(
        since=_instant(given, "from"), until=_instant(given, "to"),
        verdict=verdict, reason=reason, kind=kind,
        company=_text(given, "company"), campaign=_text(given, "campaign"),
        callee=_number(given, "callee"),
    )  # fmt: skip
    if query.since and query.until and query.until <= query.since:
        raise InvalidFilter("to", "must be later than from", "doit être postérieure à « Depuis »")
    return Filters(query, given)


def _choice(given: dict[str, str], name: str, allowed: tuple[str, ...], french: str) -> str | None:
    """One of ``allowed``, or None for "all" (left out of the links, as an empty field)."""
    value = given.get(name)
    if value == "all":
        del given[name]
        return None
    if value is not None and value not in allowed:
        raise InvalidFilter(
            name, f"expected {' or '.join(allowed)}, not {_shown(value)!r}",
            f"valeur attendue : {french}, pas « {_shown(value)} »",
        )  # fmt: skip
    return value


def _instant(given: dict[str, str], name: str) -> datetime | None:
    try:
        return inputs.instant(given.get(name), name)
    except InvalidInput as error:
        french = (
            f"date invalide : AAAA-MM-JJ ou AAAA-MM-JJTHH:MM attendu (heure de Paris, années"
            f" {EARLIEST_YEAR} à {LATEST_YEAR}), pas « {_shown(given[name])} »"
        )
        raise InvalidFilter(name, error.detail, french) from None


def _text(given: dict[str, str], name: str) -> str | None:
    value = given.get(name)
    try:
        return inputs.free_text(value, name)
    except InvalidInput as error:
        length = len(value or "")
        if length > inputs.MAX_TEXT:
            french = f"au plus {inputs.MAX_TEXT} caractères ({length} donnés)"
        else:
            french = "contient un caractère de contrôle ou un caractère invalide"
        raise InvalidFilter(name, error.detail, french) from None


def _number(given: dict[str, str], name: str) -> str | None:
    if name not in given:
        return None
    try:
        return inputs.e164(given[name], name)
    except InvalidInput as error:
        french = f"numéro invalide : « {_shown(given[name])} »"
        raise InvalidFilter(name, error.detail, french) from None


def parse_cursor(text: str | None) -> Cursor | None:
    """``before=<at in microseconds>.<seq>``, as the pager's link gives it."""
    if not text:
        return None
    match = _CURSOR.fullmatch(text)
    if match is None or int(match[2]) > MAX_SEQ or abs(int(match[1])) > MAX_SEQ:
        raise InvalidFilter(
            "before", "not a place in the list: follow the page links",
            "pas une place dans la liste : suivez les liens des pages",
        )  # fmt: skip
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
        "error": {"field": error.field, "detail": error_text(error, language(request))},
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
            raise InvalidFilter(
                "after_seq", "expected a sequence number", "numéro de séquence attendu"
            )
    except InvalidInput as error:
        text = error_text(error, lang)
        return web.json_response({"error": text, "field": error.field}, status=400)
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
        "dry_run": entry["kind"] == "dry-run", "altered": alteration(entry),
        "recomputed": _recomputed_hash(entry),
    }  # fmt: skip
    return render(request, "console/decision.html", context)


def alteration(entry: Mapping[str, Any]) -> str | None:
    """How the entry departs from what was recorded, if it does: "content" when its fields
    no longer give its hash, "callee" when the number no longer matches its commitment
    (the hash covers the commitment, not the number). The chain's links are the audit
    page's business; this is the entry alone, so that one page can say it."""
    if _recomputed_hash(entry) != entry.get("hash"):
        return "content"
    if "callee_salt" in entry:
        try:
            commit = callee_commit(entry["callee"], entry.get("callee_in"), entry["callee_salt"])
        except (KeyError, TypeError, UnicodeEncodeError):
            return "callee"
        if commit != entry.get("callee_commit"):
            return "callee"
    return None


def _recomputed_hash(entry: Mapping[str, Any]) -> str | None:
    """The entry's hash computed again from its fields (None if they cannot be hashed)."""
    try:
        return entry_hash(entry)
    except (UnicodeEncodeError, RecursionError, TypeError, ValueError):
        return None


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
    return error_page(request, 404, message)
