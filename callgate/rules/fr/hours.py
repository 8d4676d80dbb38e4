"""RULES-FR §2: the days and hours a solicitation may reach its callee."""

from __future__ import annotations

from callgate.calendar import holiday_name, in_window, next_allowed
from callgate.model import ConsentScope, Reason
from callgate.rules.fr.consent import consent_valid
from callgate.rules.fr.context import Context

__all__ = ["calling_hours"]


def calling_hours(ctx: Context) -> Reason | None:
    """C. consom. D223-9: Monday-Friday, 10:00-13:00 and 14:00-20:00, no public holiday."""
    if consent_valid(ctx, ConsentScope.OUT_OF_HOURS):
        return None  # D223-9: "sauf consentement exprès et préalable"
    local = ctx.local_now
    reading = ctx.holiday_reading
    if local.weekday() >= 5:
        code, message = "DAY_WEEKEND", f"{local:%A} is not a calling day"
    elif holiday := holiday_name(local.date(), ctx.territory, reading):
        code, message = "DAY_HOLIDAY", f"{local:%Y-%m-%d} is a public holiday ({holiday})"
    elif not in_window(local):
        code = "HOURS_OUTSIDE"
        message = f"{local:%H:%M} callee time is outside 10:00-13:00 and 14:00-20:00"
    else:
        return None
    return Reason(code, message, lifts_at=next_allowed(ctx.now, ctx.territory, reading))
