"""The overview's chart: decisions per hour by verdict, as an SVG drawn on the server.

Pure: counts in, markup out. Every piece of text is escaped here, so the result can be
placed in a page as it is; nothing in it runs or loads anything (the CSP allows neither).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["ChartText", "HourBar", "draw_chart", "hourly_bars"]

HOUR = timedelta(hours=1)
# Geometry, in the viewBox's units: a bar per hour, a gap between bars.
BAR, GAP = 4, 1
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 40
PLOT_HEIGHT = 160


@dataclass(frozen=True, slots=True)
class HourBar:
    """One hour's decisions; ``hour`` is the UTC hour they fall in."""

    hour: datetime
    allowed: int
    rejected: int

    @property
    def total(self) -> int:
        return self.allowed + self.rejected


@dataclass(frozen=True, slots=True)
class ChartText:
    """The chart's words, in the page's language (``hour_label`` is a format with
    {when}, {allowed}, {rejected})."""

    title: str
    desc: str
    allowed: str
    rejected: str
    hour_label: str


def hourly_bars(rows: Iterable[Sequence[Any]], since: datetime, until: datetime) -> list[HourBar]:
    """A bar for every hour of [since, until), from (hour, verdict, count) rows: hours
    without a decision are bars of zero, so the chart's time axis has no holes."""
    allowed: dict[datetime, int] = {}
    rejected: dict[datetime, int] = {}
    for hour, verdict, count in rows:
        key = hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour.astimezone(UTC)
        target = allowed if verdict == "allow" else rejected
        target[key] = target.get(key, 0) + int(count)
    bars, hour = [], _floor_hour(since)
    while hour < until:
        bars.append(HourBar(hour, allowed.get(hour, 0), rejected.get(hour, 0)))
        hour += HOUR
    return bars


def draw_chart(bars: Sequence[HourBar], text: ChartText, zone: ZoneInfo) -> str:
    """Stacked bars (allowed below, rejected above), one group per hour, the days marked
    at their midnight in ``zone``, a scale on the left, a legend below."""
    width = LEFT + max(len(bars), 1) * (BAR + GAP) + RIGHT
    height = TOP + PLOT_HEIGHT + BOTTOM
    top = _nice_ceiling(max((bar.total for bar in bars), default=0))
    parts = [
        f'<svg id="chart" class="chart" xmlns="http://www.w3.org/2000/svg"'
        f' viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title chart-desc"'
        f' preserveAspectRatio="xMinYMin meet">',
        f'<title id="chart-title">{escape(text.title)}</title>',
        f'<desc id="chart-desc">{escape(text.desc)}</desc>',
        *_scale(top, width),
        *_days(bars, zone),
        *(_bar(index, bar, top, text, zone) for index, bar in enumerate(bars)),
        *_legend(text, height),
        "</svg>",
    ]
    return "\n".join(parts)


def _floor_hour(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _nice_ceiling(value: int) -> int:
    """The scale's top: 1, 2 or 5 times a power of ten, at least ``value`` (and 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return max(step * factor, 1)
        step *= 10


def _y(count: int, top: int) -> float:
    return TOP + PLOT_HEIGHT - count * PLOT_HEIGHT / top


def _scale(top: int, width: int) -> list[str]:
    lines = []
    middle = [top // 2] if top % 2 == 0 else []  # a whole number only: counts are
    for count in (0, *middle, top):
        y = round(_y(count, top), 1)
        lines.append(
            f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{width - RIGHT}" y2="{y}"/>'
            f'<text class="axis" x="{LEFT - 4}" y="{y + 3}" text-anchor="end">{count}</text>'
        )
    return lines


def _days(bars: Sequence[HourBar], zone: ZoneInfo) -> list[str]:
    """A tick and a date at each local midnight (a DST day has 23 or 25 bars)."""
    marks = []
    for index, bar in enumerate(bars):
        local = bar.hour.astimezone(zone)
        if local.hour != 0:
            continue
        x = LEFT + index * (BAR + GAP)
        bottom = TOP + PLOT_HEIGHT
        marks.append(
            f'<line class="tick" x1="{x}" y1="{TOP}" x2="{x}" y2="{bottom + 4}"/>'
            f'<text class="axis" x="{x + 2}" y="{bottom + 14}">{local:%d/%m}</text>'
        )
    return marks


def _bar(index: int, bar: HourBar, top: int, text: ChartText, zone: ZoneInfo) -> str:
    x = LEFT + index * (BAR + GAP)
    when = bar.hour.astimezone(zone).strftime("%Y-%m-%d %H:00")
    label = text.hour_label.format(when=when, allowed=bar.allowed, rejected=bar.rejected)
    rects = []
    base = TOP + PLOT_HEIGHT
    for count, kind in ((bar.allowed, "allowed"), (bar.rejected, "rejected")):
        if count == 0:
            continue
        size = count * PLOT_HEIGHT / top
        base -= size
        rects.append(
            f'<rect class="{kind}" x="{x}" y="{round(base, 2)}" width="{BAR}"'
            f' height="{round(size, 2)}"/>'
        )
    stamp = bar.hour.astimezone(UTC).strftime("%Y-%m-%dT%H:00Z")
    return (
        f'<g class="hour" data-hour="{stamp}"><title>{escape(label)}</title>'
        + "".join(rects)
        + "</g>"
    )


def _legend(text: ChartText, height: int) -> list[str]:
    y = height - 10
    return [
        f'<rect class="allowed" x="{LEFT}" y="{y - 8}" width="10" height="10"/>'
        f'<text class="legend" x="{LEFT + 14}" y="{y + 1}">{escape(text.allowed)}</text>',
        f'<rect class="rejected" x="{LEFT + 130}" y="{y - 8}" width="10" height="10"/>'
        f'<text class="legend" x="{LEFT + 144}" y="{y + 1}">{escape(text.rejected)}</text>',
    ]
