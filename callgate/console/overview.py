"""`/console/`: the page a compliance officer opens every morning.

Every figure comes from the hourly rollup (``Store.decision_counts``), never from a scan
of the log, so the page costs the same with ten decisions or ten million. The rollup's
hours are UTC; a Paris day is a run of whole UTC hours, since France's offsets are whole
hours, so a day's figures are exact, on the days clocks change too.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web
from markupsafe import Markup

from callgate.api import STORE
from callgate.calendar import in_window
from callgate.console.chainstate import CHAIN, ChainState
from callgate.console.chart import ChartText, draw_chart, hourly_bars
from callgate.console.render import language, render
from callgate.health import store_state
from callgate.store import Store, StoreError

__all__ = ["Period", "Tally", "node_is_silent", "period_link", "periods", "routes"]

log = logging.getLogger("callgate.console")
routes = web.RouteTableDef()

PARIS = ZoneInfo("Europe/Paris")
HOUR = timedelta(hours=1)
TOP_REASONS = 10
TOP_CAMPAIGNS = 20
# A node that decided nothing for this long while calls are allowed is worth a look.
SILENCE = timedelta(hours=1)
# What a store that is down or overloaded raises, on either backend.
STORE_ERRORS = (
    StoreError, OSError, TimeoutError, sqlite3.Error, asyncpg.PostgresError,
    asyncpg.InterfaceError,
)  # fmt: skip
# The figures' queries are small; past this, the store is in trouble and the page says so.
FIGURES_TIMEOUT = 5.0


def clock() -> datetime:
    """Now; the tests set the page's "today" through it."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Period:
    """Whole Paris days, ``first`` to ``last``, as the UTC hours [since, until)."""

    key: str
    first: date
    last: date
    since: datetime
    until: datetime

    def holds(self, hour: datetime) -> bool:
        return self.since <= hour < self.until

    @property
    def start_field(self) -> str:
        """The period's start as the decision list's ``from`` field takes it."""
        return f"{self.first:%Y-%m-%d}T00:00"

    @property
    def end_field(self) -> str:
        """The period's end, the midnight after its last day, as the list's ``to`` field
        takes it (exclusive, as the period's)."""
        return f"{self.last + timedelta(days=1):%Y-%m-%d}T00:00"


@dataclass(slots=True)
class Tally:
    """Decisions allowed and rejected."""

    allowed: int = 0
    rejected: int = 0

    @property
    def total(self) -> int:
        return self.allowed + self.rejected

    def add(self, verdict: str, count: int) -> None:
        if verdict == "allow":
            self.allowed += count
        else:
            self.rejected += count


@dataclass(slots=True)
class Row:
    """A company's, a campaign's or a reason's figures, per period key."""

    name: Any
    tallies: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))


@dataclass(slots=True)
class ReasonRow:
    """How many decisions logged a reason code, per period key."""

    code: str
    counts: dict[str, int] = field(default_factory=dict)


def periods(now: datetime) -> tuple[Period, ...]:
    """Today, the last 7 days and the last 30 days, each ending with today (Paris)."""
    today = now.astimezone(PARIS).date()
    return tuple(
        Period(key, today - timedelta(days=days - 1), today,
               _midnight(today - timedelta(days=days - 1)), _midnight(today + timedelta(days=1)))
        for key, days in (("today", 1), ("7d", 7), ("30d", 30))
    )  # fmt: skip


def _utc(hour: datetime) -> datetime:
    """A rollup hour as an aware UTC instant (a backend may hand it back naive)."""
    return hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour.astimezone(UTC)


def _midnight(day: date) -> datetime:
    # Paris never changes its clocks at midnight: the day's start always exists.
    return datetime.combine(day, time(0), tzinfo=PARIS).astimezone(UTC)


def node_is_silent(last: datetime, now: datetime) -> bool:
    """Whether a node has decided nothing for the past hour although that whole hour
    was calling time in Paris (a weekday, inside the daily windows)."""
    if now - last <= SILENCE:
        return False
    hour_ago = (now - SILENCE).astimezone(PARIS)
    local = now.astimezone(PARIS)
    return (
        local.weekday() < 5 and hour_ago.date() == local.date()
        and in_window(local) and in_window(hour_ago)
    )  # fmt: skip


@routes.get("/console/")
async def overview(request: web.Request) -> web.Response:
    store: Store = request.app[STORE]
    lang = language(request)
    now = clock()
    spans = periods(now)
    state = await store_state(store)
    figures, nodes = None, None
    if state == "ok":
        figures, nodes = await _figures_and_nodes(store, spans, now, lang)
    context = {
        "periods": spans, "figures": figures, "nodes": nodes, "store_state": state,
        "chain": _chain_state(request.app), "now": now, "link": period_link,
        "newest_seq": max((node["seq"] for node in nodes or ()), default=0),
    }  # fmt: skip
    return render(request, "console/overview.html", context)


async def _figures_and_nodes(
    store: Store, spans: Sequence[Period], now: datetime, lang: str
) -> tuple[dict[str, Any] | None, list[dict[str, Any]] | None]:
    """The page's figures and the nodes' last decisions; None for what the store could
    not give in time (the page then says so instead of failing)."""
    try:
        async with asyncio.timeout(FIGURES_TIMEOUT):
            figures = await _figures(store, spans, now, lang)
            heads = await store.node_heads()
    except STORE_ERRORS as error:
        log.warning("console overview: the store could not answer: %s", type(error).__name__)
        return None, None
    nodes = [
        {"node": node, "at": at, "seq": seq, "silent": node_is_silent(at, now)}
        for node, at, seq in sorted(heads, key=lambda head: head[1], reverse=True)
    ]
    return figures, nodes


async def _figures(
    store: Store, spans: Sequence[Period], now: datetime, lang: str
) -> dict[str, Any]:
    _, week, month = spans
    hourly = await store.decision_counts(month.since, month.until, ("hour", "verdict"))
    reasons, companies, campaigns = [], [], []
    for span in spans:
        reasons.append(await store.decision_counts(span.since, span.until, ("reason",)))
        companies.append(
            await store.decision_counts(span.since, span.until, ("company", "verdict"))
        )
        campaigns.append(
            await store.decision_counts(span.since, span.until, ("campaign", "verdict"))
        )
    campaign_rows = _grouped(campaigns, spans)
    chart_until = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + HOUR
    bars = hourly_bars(
        [row for row in hourly if week.holds(_utc(row[0]))],
        week.since, min(chart_until, week.until),
    )  # fmt: skip
    return {
        "totals": _totals(hourly, spans),
        "reasons": _reasons(reasons, spans)[:TOP_REASONS],
        "companies": _grouped(companies, spans),
        "campaigns": campaign_rows[:TOP_CAMPAIGNS],
        "campaigns_cut": len(campaign_rows) > TOP_CAMPAIGNS,
        # draw_chart escapes every text it places: its markup goes in as it is.
        "chart": Markup(draw_chart(bars, _chart_text(bars, week, lang), PARIS)),
        "bars": [bar for bar in bars if bar.total],
        "chart_hours": len(bars),
    }


def _totals(hourly: Iterable[Sequence[Any]], spans: Sequence[Period]) -> dict[str, Tally]:
    totals = {span.key: Tally() for span in spans}
    for hour, verdict, count in hourly:
        for span in spans:
            if span.holds(_utc(hour)):
                totals[span.key].add(verdict, int(count))
    return totals


def _reasons(
    per_span: Sequence[Sequence[Sequence[Any]]], spans: Sequence[Period]
) -> list[ReasonRow]:
    """Reason codes by how often they were logged over the longest period."""
    rows: dict[str, ReasonRow] = {}
    for span, counts in zip(spans, per_span, strict=True):
        for code, count in counts:
            rows.setdefault(code, ReasonRow(code)).counts[span.key] = int(count)
    longest = spans[-1].key
    return sorted(rows.values(), key=lambda row: (-row.counts.get(longest, 0), row.code))


def _grouped(per_span: Sequence[Sequence[Sequence[Any]]], spans: Sequence[Period]) -> list[Row]:
    """(name, verdict, count) rows per period, as one row per name, busiest first."""
    rows: dict[Any, Row] = {}
    for span, counts in zip(spans, per_span, strict=True):
        for name, verdict, count in counts:
            rows.setdefault(name, Row(name)).tallies[span.key].add(verdict, int(count))
    return sorted(
        rows.values(), key=lambda row: (-row.tallies[spans[-1].key].total, str(row.name or ""))
    )


def _chart_text(bars: Sequence[Any], week: Period, lang: str) -> ChartText:
    allowed = sum(bar.allowed for bar in bars)
    rejected = sum(bar.rejected for bar in bars)
    first, last = f"{week.first:%Y-%m-%d}", f"{week.last:%Y-%m-%d}"
    if lang == "en":
        return ChartText(
            title="Decisions per hour, by verdict",
            desc=f"Calls checked per hour, Paris time, from {first} to {last} (up to this"
            f" hour): {allowed} allowed, {rejected} rejected. Dry runs are not counted.",
            allowed="Allowed", rejected="Rejected",
            hour_label="{when}: {allowed} allowed, {rejected} rejected",
        )  # fmt: skip
    return ChartText(
        title="Décisions par heure, par verdict",
        desc=f"Appels contrôlés par heure, heure de Paris, du {first} au {last} (jusqu'à"
        f" l'heure en cours) : {allowed} autorisés, {rejected} refusés. Les essais (dry run)"
        " ne sont pas comptés.",
        allowed="Autorisés", rejected="Refusés",
        hour_label="{when} : {allowed} autorisés, {rejected} refusés",
    )  # fmt: skip


def decisions_link(**filters: str) -> str:
    """The decision list, filtered."""
    return "/console/decisions?" + urlencode({k: v for k, v in filters.items() if v})


def period_link(period: Period, **filters: str) -> str:
    """The decisions a figure of ``period`` counts: calls only (the figures leave dry runs
    out), from its first midnight to the one after its last day, so that the list holds
    as many rows as the figure says."""
    return decisions_link(
        **filters, kind="call", **{"from": period.start_field, "to": period.end_field}
    )


def _chain_state(app: web.Application) -> ChainState | None:
    """The chain watch's last word, or None while there is none to ask."""
    watch = app.get(CHAIN)
    if watch is None:
        return None
    watch.nudge()
    return watch.state()
