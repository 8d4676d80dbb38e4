"""RULES-FR §3.2: after a refusal, no call for 60 full calendar days."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo

from callgate.model import Reason
from callgate.rules.fr.context import Context

__all__ = ["cooldown_ends", "refusal_cooldown"]


def refusal_cooldown(ctx: Context) -> Reason | None:
    """C. consom. D223-9: "soixante jours calendaires révolus" after the callee refused."""
    days = ctx.settings.refusal_cooldown_days
    if days == 0:
        return None
    zone = ctx.territory.zone
    today = ctx.local_today
    refused = [day for at in ctx.facts.refusals if (day := at.astimezone(zone).date()) <= today]
    if not refused:
        return None
    last = max(refused)
    lifts = cooldown_ends(last, days, zone)
    if ctx.now >= lifts:
        return None
    return Reason(
        "REFUSAL_COOLDOWN",
        f"the callee refused on {last:%Y-%m-%d}; no call for {days} full days",
        lifts_at=lifts,
    )


def cooldown_ends(refused_on: date, days: int, zone: tzinfo) -> datetime:
    """When calls resume after a refusal on local day ``refused_on``: full days, so a
    refusal on day D leaves D+1 .. D+days untouched, and calls resume on D+days+1."""
    return datetime.combine(refused_on + timedelta(days=days + 1), time(0), tzinfo=zone)
