"""RULES-FR §2: the days and hours a solicitation may reach its callee."""

from __future__ import annotations

from callgate.calendar import holiday_name, in_window, next_allowed
from callgate.model import ConsentScope, Reason
from callgate.rules.fr.consent import consent_valid
from callgate.rules.fr.context import Context
from callgate.rules.fr.rulesets import OPPOSITION_REGIME

__all__ = ["calling_hours"]


def calling_hours(ctx: Context) -> Reason | None:
    """C. consom. D223-9: Monday-Friday, 10:00-13:00 and 14:00-20:00, no public holiday."""
    if ctx.ruleset == OPPOSITION_REGIME and consent_valid(ctx, ConsentScope.OUT_OF_HOURS):
        return None  # D223-9: "sauf consentement exprès et préalable"
    if ctx.ruleset != OPPOSITION_REGIME and (booked := _appointment_now(ctx)) is not None:
        return booked
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
    # An appointment ahead may open the line before the next window does.
    opens = next_allowed(ctx.now, ctx.territory, reading)
    zone = ctx.territory.zone  # a retry time is given in the callee's own offset
    ahead = [a.start.astimezone(zone) for a in ctx.facts.appointments if ctx.now < a.start < opens]
    return Reason(code, message, lifts_at=min(ahead, default=opens))


def _appointment_now(ctx: Context) -> Reason | None:
    """New C. consom. L223-1: a call at the date and time the callee agreed to."""
    window = ctx.settings.appointment_window_minutes
    for appointment in ctx.facts.appointments:
        end = appointment.ends_at(window)
        if appointment.start <= ctx.now < end:
            zone = ctx.local_now.tzinfo
            start, end = appointment.start.astimezone(zone), end.astimezone(zone)
            until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%Y-%m-%d %H:%M}"
            return Reason(
                "APPOINTMENT",
                f"the callee agreed to this call: {start:%Y-%m-%d %H:%M} to {until} callee time",
                blocking=False,
            )
    return None
