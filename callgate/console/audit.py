"""The audit page: the chain's state and a verification on demand, an export of a period
as `callgate log export` writes it, the retention setting and, for an admin, the purge.

The purge asks for a confirmation naming its cutoff: the form carries the cutoff it showed,
and the server never purges past it, nor past the retention at the moment of the purge."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

from callgate.api import CONFIG, STORE
from callgate.cli_log import PurgeRefused, dated_before, export_lines, purge_verified
from callgate.console import chainstate
from callgate.console.chainstate import CHAIN
from callgate.console.render import error_page, render, tr
from callgate.store.base import LogQuery, StoreError
from callgate.timeparse import parse_instant

__all__ = ["routes", "start", "stop"]

log = logging.getLogger("callgate.console")

routes = web.RouteTableDef()

AUDIT = "/console/audit"
CHUNK = 1 << 16  # bytes of export written at once
CONFIRMED = "yes"  # the purge form's checkbox value


class FieldError(Exception):
    """A form field the page cannot use, and why, in both languages."""

    def __init__(self, field: str, fr: str, en: str) -> None:
        super().__init__(f"{field}: {en}")
        self.field, self.fr, self.en = field, fr, en


async def start(app: web.Application) -> None:
    """The chain watch starts with the app: the chain is verified in the background."""
    await chainstate.start(app)


async def stop(app: web.Application) -> None:
    await chainstate.stop(app)


@routes.get(AUDIT)
async def audit_page(request: web.Request) -> web.Response:
    return await _page(request)


@routes.post(AUDIT + "/verify")
async def verify(request: web.Request) -> web.StreamResponse:
    """Starts a verification of the whole chain; the page follows its progress."""
    await request.app[CHAIN].verify_now()
    raise web.HTTPSeeOther(AUDIT)


@routes.get(AUDIT + "/export")
async def export(request: web.Request) -> web.StreamResponse:
    """A period of the log as JSON lines that verify on their own, as a download."""
    try:
        since = _instant(request, "from")
        until = _instant(request, "to")
        if since is not None and until is not None and until <= since:
            raise FieldError("to", "doit être postérieur à « from »", "must be later than from")
    except FieldError as error:
        return await _page(request, export_error=error, status=400)
    pseudonymised = request.query.get("pseudonymise") in ("1", "on", "true")
    response = web.StreamResponse(headers={
        "Content-Type": "application/x-ndjson; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{_file_name(since, until, pseudonymised)}"',
    })  # fmt: skip
    await response.prepare(request)
    query = LogQuery(since=since, until=until, kind="all")  # the facts' entries too
    try:
        await _send(response, export_lines(request.app[STORE], query, pseudonymised=pseudonymised))
    except ConnectionError:
        return response  # the download was cancelled
    except StoreError as error:
        # The answer has begun: cut it short, so that the file is seen to be incomplete.
        log.warning("console export stopped: %s", (str(error).splitlines() or ["?"])[0])
        request.protocol.force_close()
        return response
    await response.write_eof()
    return response


async def _send(response: web.StreamResponse, lines: AsyncIterator[str]) -> None:
    """The lines, a chunk at a time: the log is never held whole."""
    chunk: list[str] = []
    size = 0
    async for line in lines:
        chunk.append(line)
        size += len(line)
        if size >= CHUNK:
            await response.write("".join(chunk).encode())
            chunk, size = [], 0
    if chunk:
        await response.write("".join(chunk).encode())


@routes.post(AUDIT + "/purge")
async def purge(request: web.Request) -> web.StreamResponse:
    """Purges the log per ``[log] retention_days``, as `callgate log purge` does."""
    if "admin" not in request["session"].scopes:
        message = tr(request, "Seul un jeton admin peut purger le journal.",
                      "Only an admin token may purge the log.")  # fmt: skip
        return error_page(request, 403, message)
    days = request.app[CONFIG].log.retention_days
    if days is None:
        return await _page(request, purge_error="retention", status=409)
    form = await request.post()
    if form.get("confirm") != CONFIRMED:
        return await _page(request, purge_error="confirm", status=400)
    now = datetime.now(UTC)
    before = now - timedelta(days=days)
    shown = _posted_instant(form.get("before"))
    if shown is not None and shown < before:
        before = shown  # never past the cutoff the officer confirmed
    store = request.app[STORE]
    try:
        count = await purge_verified(store, before, now)
    except PurgeRefused as refused:
        log.warning("console purge refused: %s", refused)
        message = tr(request, "Le journal ne se vérifie pas : rien n'a été purgé"
                     " (voir « callgate log verify »).", str(refused))  # fmt: skip
        return error_page(request, 409, message)
    # A purge cuts the chain at its start only: a decision recorded with a past date, after
    # a newer one, stays. Say how many, or "nothing to purge" would be untrue.
    kept = await dated_before(store, before)
    raise web.HTTPSeeOther(f"{AUDIT}?" + urlencode({"purged": count, "kept": kept}))


def _count(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None


def _posted_instant(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_instant(value)
    except ValueError:
        return None


async def _page(
    request: web.Request, *, export_error: FieldError | None = None,
    purge_error: str | None = None, status: int = 200,
) -> web.Response:  # fmt: skip
    request.app[CHAIN].nudge()
    state = request.app[CHAIN].state()
    purged = request.query.get("purged", "")
    days = request.app[CONFIG].log.retention_days
    return render(request, "console/audit.html", {
        "chain": state,
        "percent": _percent(state.progress),
        "retention_days": days,
        "cutoff": datetime.now(UTC) - timedelta(days=days) if days is not None else None,
        "last_purge": await request.app[STORE].last_purge(),
        "is_admin": "admin" in request["session"].scopes,
        "purged": _count(purged),
        "kept": _count(request.query.get("kept", "")) or 0,
        "export_error": export_error,
        "purge_error": purge_error,
        "form": {name: request.query.get(name, "") for name in ("from", "to")},
        "pseudonymise": request.query.get("pseudonymise") in ("1", "on", "true"),
    }, status)  # fmt: skip


def _instant(request: web.Request, field: str) -> datetime | None:
    text = request.query.get(field, "").strip()
    if not text:
        return None
    try:
        return parse_instant(text)
    except ValueError:
        shown = text[:40]
        raise FieldError(
            field,
            f"« {shown} » n'est pas une date (par exemple 2026-11-23T14:30, heure de Paris)",
            f"“{shown}” is not a date (for example 2026-11-23T14:30, Paris time)",
        ) from None


def _percent(progress: tuple[int, int] | None) -> int:
    if not progress or not progress[1]:
        return 0
    return min(100, progress[0] * 100 // progress[1])


def _file_name(since: datetime | None, until: datetime | None, pseudonymised: bool) -> str:
    def day(value: datetime | None, default: str) -> str:
        return value.strftime("%Y%m%dT%H%M") if value else default

    name = f"callgate-log-{day(since, 'start')}-{day(until, 'now')}"
    return name + ("-pseudonymised" if pseudonymised else "") + ".jsonl"
