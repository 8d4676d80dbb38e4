"""Pages from templates: the language, the session, and the filters every page uses."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from aiohttp import web

from callgate.console.labels import chain_problem, purpose_label, reason_label, rule_text
from callgate.timeparse import DEFAULT_ZONE

__all__ = ["LANGS", "error_page", "language", "localtime", "number", "paris", "render", "tr"]

LANGS = ("fr", "en")
LANG_COOKIE = "callgate_lang"
YEAR = 365 * 86_400


def render(
    request: web.Request, template: str, context: Mapping[str, Any], status: int = 200
) -> web.Response:
    """``template`` rendered in the request's language, as an HTML answer."""
    lang = language(request)
    session = request.get("session")
    page = _environment().get_template(template).render(
        **context, lang=lang, tr=_translator(lang), session=session,
        csrf=session.csrf if session is not None else "", request=request, path=request.path,
        switch_url=_switched(request, "en" if lang == "fr" else "fr"),
    )  # fmt: skip
    response = web.Response(text=page, status=status, content_type="text/html")
    if request.query.get("lang") in LANGS:  # the switch is remembered
        response.set_cookie(
            LANG_COOKIE, lang, max_age=YEAR, path="/console", httponly=True, samesite="Strict"
        )
    return response


def error_page(request: web.Request, status: int, message: str | None = None) -> web.Response:
    """A console page for an HTTP error: ``message``, or for an error no handler rendered
    itself (a path that matches no page, a method a page does not take) a standard one."""
    if message is None:
        french, english = _STANDARD_ERRORS.get(status, _STANDARD_ERRORS[0])
        message = tr(request, french, english)
    return render(request, "console/error.html", {"status": status, "message": message}, status)


_STANDARD_ERRORS = {
    0: ("La demande n'a pas abouti.", "The request failed."),
    404: ("Cette page n'existe pas.", "There is no such page."),
    405: ("Cette page ne prend pas cette méthode.", "This page does not take this method."),
    503: ("Le stockage ne répond pas ; réessayez.", "The store does not answer; try again."),
}


def tr(request: web.Request, french: str, english: str) -> str:
    """A text of a handler in the request's language."""
    return english if language(request) == "en" else french


def language(request: web.Request) -> str:
    """French unless the switch (``?lang=en``) or its cookie says English."""
    for given in (request.query.get("lang"), request.cookies.get(LANG_COOKIE)):
        if given in LANGS:
            return given
    return "fr"


def paris(value: datetime | str | None) -> str:
    """An instant in French legal time, to the second."""
    return localtime(value, "Europe/Paris", zone_name=False)


def localtime(value: datetime | str | None, zone: str | None, *, zone_name: bool = True) -> str:
    """An instant in ``zone`` (the callee's), with the zone's abbreviation."""
    if value is None or value == "":
        return "-"
    instant = datetime.fromisoformat(value) if isinstance(value, str) else value
    try:
        tz = ZoneInfo(zone) if zone else DEFAULT_ZONE
    except (ZoneInfoNotFoundError, ValueError):
        tz = DEFAULT_ZONE
    shown = instant.astimezone(tz)
    return shown.strftime("%Y-%m-%d %H:%M:%S %Z" if zone_name else "%Y-%m-%d %H:%M:%S")


def number(value: int, lang: str = "fr") -> str:
    """An integer with the language's thousands separator."""
    text = f"{value:,}"
    return text.replace(",", "\u202f") if lang == "fr" else text


def _switched(request: web.Request, lang: str) -> str:
    """This page's address in the other language, its filters kept."""
    return str(request.rel_url.update_query(lang=lang))


def _translator(lang: str) -> Any:
    def tr(french: str, english: str) -> str:
        return english if lang == "en" else french

    return tr


@cache
def _environment() -> jinja2.Environment:
    # Autoescape everywhere: numbers, campaign names and proofs come from dialers and
    # partners, and must never become markup.
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("callgate", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["paris"] = paris
    env.filters["localtime"] = localtime
    env.filters["num"] = jinja2.pass_context(lambda ctx, n: number(n, ctx["lang"]))
    env.filters["reason_text"] = jinja2.pass_context(lambda ctx, c: reason_label(c, ctx["lang"]))
    env.filters["problem_text"] = jinja2.pass_context(lambda ctx, p: chain_problem(p, ctx["lang"]))
    env.globals["rule_text"] = rule_text
    env.filters["purpose_text"] = jinja2.pass_context(lambda ctx, p: purpose_label(p, ctx["lang"]))
    return env
