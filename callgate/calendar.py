"""When a callee may be called: allowed windows and public holidays, in callee local time.

Pure functions of a date or an instant; the holiday tables are built once per
(territory, year, reading) and cached, because a gate asks for them on every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import holidays

from callgate.numbering import Territory

__all__ = [
    "WINDOWS",
    "HolidayReading",
    "holiday_name",
    "in_window",
    "is_business_day",
    "local_midnight",
    "next_allowed",
]

# C. consom. D223-9: Monday to Friday, 10:00-13:00 and 14:00-20:00, half-open.
WINDOWS: tuple[tuple[time, time], ...] = ((time(10), time(13)), (time(14), time(20)))

# holidays' France subdivisions for each territory. A +590 number does not tell which
# island the callee lives on, so the strict reading takes all three calendars.
_SUBDIVISIONS: dict[Territory, tuple[str, ...]] = {
    Territory.MET: (),
    Territory.GP: ("971",),
    Territory.GF: ("973",),
    Territory.MQ: ("972",),
    Territory.RE: ("974",),
    Territory.YT: ("976",),
    Territory.PM: ("PM",),
}
_STRICT_EXTRA: dict[Territory, tuple[str, ...]] = {
    Territory.MET: ("57", "6AE"),  # Alsace-Moselle, C. trav. L3134-13
    Territory.GP: ("BL", "MF"),
}
# A département given by the dialer picks among the calendars of the number's own
# territory, never another's: a Martinique number with département 67 is not in Alsace
# (RULES-FR §2.3: the number's territory decides).
_DEPARTMENT_SUBDIVISION: dict[Territory, dict[str, str]] = {
    Territory.MET: {"57": "57", "67": "6AE", "68": "6AE"},
    Territory.GP: {"971": "971", "977": "BL", "978": "MF"},
    Territory.GF: {"973": "973"},
    Territory.MQ: {"972": "972"},
    Territory.RE: {"974": "974"},
    Territory.YT: {"976": "976"},
    Territory.PM: {"975": "PM"},
}


@dataclass(frozen=True, slots=True)
class HolidayReading:
    """Which regional calendars apply when the number alone cannot say."""

    strict: bool = True
    dept: str | None = None


def holiday_name(day: date, territory: Territory, reading: HolidayReading) -> str | None:
    """The public holiday on ``day`` for a callee of ``territory``, if any (C. trav. L3133-1)."""
    return _holidays(territory, day.year, reading.strict, reading.dept).get(day)


@lru_cache(maxsize=512)
def _holidays(territory: Territory, year: int, strict: bool, dept: str | None) -> dict[date, str]:
    subdivisions: list[str | None] = [None, *_SUBDIVISIONS[territory]]
    if strict:
        # A dialer's département may be stale; the strict reading blocks regardless.
        subdivisions.extend(_STRICT_EXTRA.get(territory, ()))
    if dept is not None and (chosen := _DEPARTMENT_SUBDIVISION[territory].get(dept)):
        subdivisions.append(chosen)
    table: dict[date, str] = {}
    for subdivision in subdivisions:
        for day, name in holidays.France(subdiv=subdivision, years=year).items():
            table.setdefault(day, name)
    return table


def is_business_day(day: date, territory: Territory, reading: HolidayReading) -> bool:
    return day.weekday() < 5 and holiday_name(day, territory, reading) is None


def in_window(local: datetime) -> bool:
    """Whether a callee-local wall time falls in one of the daily windows."""
    wall = local.time()
    return any(start <= wall < end for start, end in WINDOWS)


def local_midnight(day: date, territory: Territory) -> datetime:
    return datetime.combine(day, time(0), tzinfo=territory.zone)


def next_allowed(instant: datetime, territory: Territory, reading: HolidayReading) -> datetime:
    """The first instant at or after ``instant`` inside an allowed window, callee time."""
    zone = territory.zone
    local = instant.astimezone(zone)
    day = local.date()
    for _ in range(366):
        if is_business_day(day, territory, reading):
            for start, end in WINDOWS:
                opens = datetime.combine(day, start, tzinfo=zone)
                closes = datetime.combine(day, end, tzinfo=zone)
                if local < closes:
                    return max(local, opens)
        day += timedelta(days=1)
    raise ValueError("no allowed window within a year")  # unreachable with real calendars
