"""One callee: what the store knows about the number, and when each kind of call may go.

Attempts, refusals, consents, contracts and opposition entries come from the store as the
gate reads them; "when may we call next" is the gate's own dry run, per purpose and
company, never recorded in the log.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from urllib.parse import quote, urlencode

from aiohttp import web

from callgate.api import CONFIG, STORE
from callgate.config import Config
from callgate.console.render import error_page, language, render, tr
from callgate.gate import check_call
from callgate.inputs import InvalidInput, company_id, e164
from callgate.model import CallRequest, Decision, Purpose
from callgate.numbering import parse_number
from callgate.receipt import consent_receipt, consent_state
from callgate.rules import get_pack
from callgate.rules.fr.cap import CAP_CALLS, CAP_DAYS, counted_until, first_counted_day
from callgate.rules.fr.consent import consent_expiry
from callgate.rules.fr.cooldown import cooldown_ends
from callgate.store import Store
from callgate.store.base import WITHDRAWAL_SOURCE, ConsentRecord, LogQuery, OppositionRecord
from callgate.timeparse import DEFAULT_ZONE

__all__ = [
    "CalleeView", "ConsentRow", "NextCall", "now", "routes", "source_label",
]  # fmt: skip

routes = web.RouteTableDef()

NONE = "'none'"
RECENT_DECISIONS = 10  # shown on the page; the decision list has the rest
# The reasons a dry run gives that only time lifts: their lift is shown on the page.
CAP, COOLDOWN = "CAP_30_DAYS", "REFUSAL_COOLDOWN"
# The opposition lists callgate itself fills; a list imported under another name keeps it.
SOURCES: dict[str, tuple[str, str]] = {
    "bloctel": ("Bloctel (liste nationale d'opposition)", "Bloctel (the national opt-out list)"),
    "internal": ("Liste d'opposition de l'entreprise", "The company's own opt-out list"),
    WITHDRAWAL_SOURCE: ("Retrait du consentement par l'appelé", "Consent withdrawn by the callee"),
}


def source_label(source: str, lang: str = "fr") -> str:
    """An opposition list's name in ``lang``; a name callgate does not know stays as it is."""
    labels = SOURCES.get(source)
    if labels is None:
        return source
    return labels[1] if lang == "en" else labels[0]


def now() -> datetime:
    """The page's clock (a test sets its own)."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class AttemptRow:
    company: str
    at: datetime
    purpose: str
    counts_until: datetime  # when it leaves the 30-day count


@dataclass(frozen=True, slots=True)
class RefusalRow:
    company: str
    at: datetime
    lifts_at: datetime | None  # None: the cool-down is switched off


@dataclass(frozen=True, slots=True)
class ConsentRow:
    record: ConsentRecord
    expires_at: datetime
    state: str  # active, upcoming, revoked, expired
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class NextCall:
    purpose: Purpose
    company: str
    decision: Decision

    @property
    def blocking(self) -> list[str]:
        return [r.code for r in self.decision.reasons if r.blocking]


@dataclass(frozen=True, slots=True)
class CapState:
    company: str
    counted: int  # calls in the cap's 30 days
    lifts_at: datetime | None  # when a call is possible again, if the cap is reached


@dataclass(frozen=True)
class CalleeView:
    number: str
    zone: str | None  # the callee's time zone, when French
    company: str | None  # None: every company
    attempts: list[AttemptRow]
    caps: list[CapState]
    refusals: list[RefusalRow]
    consents: list[ConsentRow]
    contracts: list[tuple[str, datetime, datetime | None, bool]]  # company, start, end, active
    oppositions: list[OppositionRecord]
    next_calls: list[NextCall]
    decisions: list[dict[str, object]]


@routes.get("/console/callees")
async def find_callee(request: web.Request) -> web.StreamResponse:
    """The header's search: to the number's page, or a 400 naming what was typed."""
    given = request.query.get("number", "").strip()
    try:
        number = e164(given, "number")
    except InvalidInput:
        return error_page(request, 400, _not_a_number(request, given))
    raise web.HTTPSeeOther(callee_url(number))


@routes.get("/console/callees/{number}")
async def callee_page(request: web.Request) -> web.StreamResponse:
    try:
        number, company = _callee_and_company(request)
    except BadInput as error:
        return error_page(request, 400, error.message)
    config = request.app[CONFIG]
    view = await callee_view(request.app[STORE], config, number, company, now())
    receipt = {"company": company} if company else {}
    lang = language(request)
    return render(request, "console/callee.html", {
        "view": view, "companies": list(config.companies), "chosen": company or "all",
        "receipt_html": _receipt_url(number, {**receipt, "format": "html", "lang": lang}),
        "receipt_pdf": _receipt_url(number, {**receipt, "format": "pdf", "lang": lang}),
        "decisions_url": "/console/decisions?" + urlencode({"callee": number, **receipt}),
        "cap_calls": CAP_CALLS, "cap_days": CAP_DAYS,
        "cooldown_days": config.rules.refusal_cooldown_days,
        "source_label": lambda source: source_label(source, lang),
    })  # fmt: skip


@routes.get("/console/callees/{number}/receipt")
async def callee_receipt(request: web.Request) -> web.StreamResponse:
    """The printable consent receipt, as the API gives it, for the console's session."""
    try:
        number, company = _callee_and_company(request)
        fmt = request.query.get("format", "html")
        lang = request.query.get("lang", language(request))
        if fmt not in ("html", "pdf", "text") or lang not in ("fr", "en"):
            raise BadInput(tr(request, "Format ou langue inconnus.",
                               "Unknown format or language."))  # fmt: skip
    except BadInput as error:
        return error_page(request, 400, error.message)
    document, media_type = await consent_receipt(
        request.app[STORE], request.app[CONFIG], number, company, fmt, now(), lang=lang
    )
    response = web.Response(body=document, headers={"Content-Type": media_type})
    if fmt == "pdf":
        response.headers["Content-Disposition"] = f'inline; filename="receipt-{number}.pdf"'
    if fmt == "html":
        response.headers["Content-Security-Policy"] = receipt_policy(document)
    return response


def receipt_policy(document: bytes) -> str:
    """The console's policy, with the receipt's own style block allowed by its hash: the
    receipt is self-contained on purpose (the callee keeps the file), so its CSS is inline."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(block).digest()).decode()}'"
        for block in re.findall(rb"<style>(.*?)</style>", document, re.S)
    )
    return (
        f"default-src 'none'; style-src {hashes or NONE}; img-src data:; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


class BadInput(Exception):
    """A number or a company the page cannot use; ``message`` says which, for a person."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _callee_and_company(request: web.Request) -> tuple[str, str | None]:
    """The page's number (E.164) and company (None: every company)."""
    given = request.match_info["number"]
    try:
        number = e164(given, "number")
    except InvalidInput:
        raise BadInput(_not_a_number(request, given)) from None
    chosen = request.query.get("company", "all").strip()
    if chosen in ("", "all"):
        return number, None
    config = request.app[CONFIG]
    try:
        return number, company_id(config, chosen)
    except InvalidInput:
        known = ", ".join(config.companies) or "-"
        shown = chosen[:60]
        raise BadInput(tr(
            request,
            f"Entreprise inconnue « {shown} » (connues : {known}).",
            f"Unknown company “{shown}” (known: {known}).",
        )) from None  # fmt: skip


def callee_url(number: str) -> str:
    return "/console/callees/" + quote(number, safe="")


def _receipt_url(number: str, query: dict[str, str]) -> str:
    return callee_url(number) + "/receipt?" + urlencode(query)


def _not_a_number(request: web.Request, given: str) -> str:
    shown = given[:60] or tr(request, "(vide)", "(empty)")
    return tr(
        request,
        f"« {shown} » n'est pas un numéro de téléphone valide.",
        f"“{shown}” is not a valid phone number.",
    )


# ---------------------------------------------------------------- what the page shows


async def callee_view(
    store: Store, config: Config, number: str, company: str | None, at: datetime
) -> CalleeView:
    """Everything about ``number`` (E.164) for ``company`` (None: every company) at ``at``."""
    companies = [company] if company else list(config.companies)
    territory = parse_number(number).territory
    zone = territory.zone if territory else DEFAULT_ZONE
    since = at - timedelta(days=get_pack(config.rules.pack).history_days(config.rules))
    facts = {c: await store.facts(c, number, at, since) for c in companies}
    oppositions = [o async for o in store.oppositions(number, None)]
    shown_oppositions = [o for o in oppositions if company is None or o.company in (None, company)]
    next_calls = await _next_calls(store, config, number, companies, at)
    today = at.astimezone(zone).date()
    first_day = first_counted_day(today)
    attempts = sorted(
        # RULES-FR §3.1: a call counts on its callee-local date and the 29 days after.
        (AttemptRow(c, a.at, a.purpose.value, counted_until(day, zone))
         for c, known in facts.items() for a in known.attempts
         if first_day <= (day := a.at.astimezone(zone).date()) <= today),
        key=lambda row: row.at, reverse=True,
    )  # fmt: skip
    caps = [
        CapState(c, sum(1 for a in attempts if a.company == c and _counted(a.purpose)),
                 _lift(next_calls, c, CAP))
        for c in companies
    ]  # fmt: skip
    refusals = sorted(
        (RefusalRow(c, r, _cooldown_lift(config, r, zone))
         for c, known in facts.items() for r in known.refusals if r <= at),
        key=lambda row: row.at, reverse=True,
    )  # fmt: skip
    consents = [
        consent_row(config, record, shown_oppositions, at)
        for c in companies for record in await store.consents(c, number)
    ]  # fmt: skip
    contracts = [
        (r.company, r.contract.start, r.contract.end, r.contract.active_at(at))
        for c in companies for r in await store.contracts(c, number)
    ]  # fmt: skip
    query = LogQuery(callee=number, company=company)
    decisions = await store.decision_page(query, limit=RECENT_DECISIONS)
    return CalleeView(
        number=number, zone=territory.zone.key if territory else None, company=company,
        attempts=attempts, caps=caps, refusals=refusals,
        consents=sorted(consents, key=lambda row: row.record.consent.given_at, reverse=True),
        contracts=contracts, oppositions=shown_oppositions, next_calls=next_calls,
        decisions=decisions,
    )  # fmt: skip


async def _next_calls(
    store: Store, config: Config, number: str, companies: list[str], at: datetime
) -> list[NextCall]:
    """The gate's verdict per purpose and company at ``at``: a dry run, not logged."""

    async def judge(purpose: Purpose, company: str) -> NextCall:
        caller = config.companies[company].first_number
        request = CallRequest(caller, number, company, purpose)
        return NextCall(purpose, company, await check_call(store, config, request, at,
                                                           record=False))  # fmt: skip

    return list(await asyncio.gather(*(judge(p, c) for p in Purpose for c in companies)))


def consent_row(
    config: Config, record: ConsentRecord, oppositions: list[OppositionRecord], at: datetime
) -> ConsentRow:
    expiry = consent_expiry(record.consent, config.rules.consent_max_age_days)
    state, ended = consent_state(record, oppositions, expiry, at)
    return ConsentRow(record, expiry, state, ended)


def _counted(purpose: str) -> bool:
    return Purpose(purpose).is_solicitation  # RULES-FR §3.4: a service call never counts


def _lift(next_calls: list[NextCall], company: str, code: str) -> datetime | None:
    """When ``code`` stops blocking ``company``'s calls, as the dry runs found it."""
    lifts = [
        r.lifts_at for n in next_calls if n.company == company
        for r in n.decision.reasons if r.code == code and r.lifts_at is not None
    ]  # fmt: skip
    return max(lifts, default=None)


def _cooldown_lift(config: Config, refused: datetime, zone: tzinfo) -> datetime | None:
    """RULES-FR §3.2: when calls resume after this refusal (None: no cool-down is set)."""
    days = config.rules.refusal_cooldown_days
    return cooldown_ends(refused.astimezone(zone).date(), days, zone) if days else None
