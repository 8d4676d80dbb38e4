"""RULES-FR §3.2: after a refusal, no call for 60 full calendar days."""

from __future__ import annotations

from datetime import timedelta

from callgate.calendar import local_midnight
from callgate.model import Reason
from callgate.rules.fr.context import Context

__all__ = ["refusal_cooldown"]


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
    # Full days: a refusal on day D leaves D+1 .. D+60 untouched, calls resume on D+61.
    lifts = local_midnight(last + timedelta(days=days + 1), ctx.territory)
    if ctx.now >= lifts:
        return None
    return Reason(
        "REFUSAL_COOLDOWN",
        f"the callee refused on {last:%Y-%m-%d}; no call for {days} full days",
        lifts_at=lifts,
    )
