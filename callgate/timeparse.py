"""Instants typed by people: ISO 8601, with or without an offset, or a bare date."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

__all__ = ["DEFAULT_ZONE", "parse_instant"]

# A time typed without an offset is read as French legal time, the law's own clock.
DEFAULT_ZONE = ZoneInfo("Europe/Paris")
# Every instant callgate keeps is a call, a consent or a list entry of the telephone era;
# the bound keeps date arithmetic (cool-downs, retention, offsets) far from datetime's ends.
EARLIEST_YEAR, LATEST_YEAR = 1970, 2199


def parse_instant(text: str) -> datetime:
    """``2026-11-23T14:30:00+01:00``, ``2026-11-23T14:30Z``, ``2026-11-23 14:30`` (Paris time)
    or ``2026-11-23`` (midnight, Paris time). Raises ValueError with a usable message."""
    value = text.strip()
    try:
        if len(value) == 10:
            parsed = datetime.combine(date.fromisoformat(value), time(0), tzinfo=DEFAULT_ZONE)
        else:
            parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or time (for example 2026-11-23T14:30:00+01:00)"
        ) from None
    if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        raise ValueError(f"{text!r} is out of range: years {EARLIEST_YEAR} to {LATEST_YEAR}")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=DEFAULT_ZONE)
