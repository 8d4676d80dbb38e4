"""RULES-FR §3.1: at most 4 calls to one callee in any 30 calendar days."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from callgate.model import Reason
from callgate.rules.fr.context import Context

__all__ = ["CAP_CALLS", "CAP_DAYS", "counted_until", "first_counted_day", "thirty_day_cap"]

CAP_CALLS = 4
CAP_DAYS = 30


def thirty_day_cap(ctx: Context) -> Reason | None:
    """C. consom. D223-9: no more than 4 calls by a company to a callee per 30 days."""
    zone = ctx.territory.zone
    today = ctx.local_today
    first_day = first_counted_day(today)
    days = sorted(
        day
        for attempt in ctx.facts.attempts
        # By callee-local date only: an attempt another node recorded a moment "later"
        # (clock skew) still counts today.
        if attempt.purpose.is_solicitation
        if first_day <= (day := attempt.at.astimezone(zone).date()) <= today
    )
    if len(days) < CAP_CALLS:
        return None
    # Once the (n-3)th call leaves the 30-day window, only 3 remain and a 4th may be made.
    lifts = counted_until(days[len(days) - CAP_CALLS], zone)
    return Reason(
        "CAP_30_DAYS",
        f"{len(days)} calls to this callee since {first_day:%Y-%m-%d} (limit {CAP_CALLS})",
        lifts_at=lifts,
    )


def first_counted_day(today: date) -> date:
    """The first of the CAP_DAYS callee-local days that end with ``today``."""
    return today - timedelta(days=CAP_DAYS - 1)


def counted_until(day: date, zone: tzinfo) -> datetime:
    """When a call made on the callee-local day ``day`` leaves the count."""
    return datetime.combine(day + timedelta(days=CAP_DAYS), time(0), tzinfo=zone)
