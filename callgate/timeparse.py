"""Instants typed by people: ISO 8601, with or without an offset, or a bare date."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

__all__ = ["DEFAULT_ZONE", "parse_instant"]

# A time typed without an offset is read as French legal time, the law's own clock.
DEFAULT_ZONE = ZoneInfo("Europe/Paris")


def parse_instant(text: str) -> datetime:
    """``2026-11-23T14:30:00+01:00``, ``2026-11-23T14:30Z``, ``2026-11-23 14:30`` (Paris time)
    or ``2026-11-23`` (midnight, Paris time). Raises ValueError with a usable message."""
    value = text.strip()
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value), time(0), tzinfo=DEFAULT_ZONE)
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO 8601 date or time (for example 2026-11-23T14:30:00+01:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=DEFAULT_ZONE)
