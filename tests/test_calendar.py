from datetime import date, datetime

import pytest
from builders import MARTINIQUE, REUNION, paris

from callgate.calendar import HolidayReading, holiday_name, next_allowed
from callgate.numbering import Territory

STRICT = HolidayReading(strict=True)
LENIENT = HolidayReading(strict=False)


@pytest.mark.parametrize(
    "day",
    ["2026-01-01", "2026-04-06", "2026-05-01", "2026-05-08", "2026-05-14", "2026-05-25",
     "2026-07-14", "2026-08-15", "2026-11-01", "2026-11-11", "2026-12-25"],
)  # fmt: skip
def test_national_holidays_of_l3133_1(day):
    assert holiday_name(date.fromisoformat(day), Territory.MET, LENIENT)


def test_alsace_moselle_days_block_every_metropolitan_callee_in_the_strict_reading():
    good_friday, st_stephen = date(2026, 4, 3), date(2026, 12, 26)
    assert holiday_name(good_friday, Territory.MET, STRICT)
    assert holiday_name(st_stephen, Territory.MET, STRICT)
    assert holiday_name(good_friday, Territory.MET, LENIENT) is None


@pytest.mark.parametrize("dept", ["57", "67", "68"])
def test_lenient_reading_applies_alsace_moselle_days_by_departement(dept):
    assert holiday_name(date(2026, 4, 3), Territory.MET, HolidayReading(False, dept))
    assert holiday_name(date(2026, 4, 3), Territory.MET, HolidayReading(False, "75")) is None


@pytest.mark.parametrize(
    ("territory", "day"),
    [
        (Territory.GP, date(2026, 5, 27)),  # abolition of slavery, Guadeloupe
        (Territory.MQ, date(2026, 5, 22)),
        (Territory.GF, date(2026, 6, 10)),
        (Territory.RE, date(2026, 12, 20)),
        (Territory.YT, date(2026, 4, 27)),
    ],
)
def test_overseas_abolition_days(territory, day):
    assert holiday_name(day, territory, LENIENT)
    assert holiday_name(day, Territory.MET, STRICT) is None


def test_guadeloupe_plan_strictly_takes_saint_martin_and_saint_barthelemy_days():
    assert holiday_name(date(2026, 5, 28), Territory.GP, STRICT)  # Saint-Martin
    assert holiday_name(date(2026, 10, 9), Territory.GP, STRICT)  # Saint-Barthélemy
    assert holiday_name(date(2026, 10, 9), Territory.GP, LENIENT) is None
    assert holiday_name(date(2026, 10, 9), Territory.GP, HolidayReading(False, "977"))


def test_next_allowed_inside_a_window_is_now():
    now = paris(2026, 11, 23, 12, 59, 59)
    assert next_allowed(now, Territory.MET, STRICT) == now


def test_next_allowed_at_lunch_is_14h():
    assert next_allowed(paris(2026, 11, 23, 13, 0), Territory.MET, STRICT) == paris(
        2026, 11, 23, 14
    )


def test_next_allowed_after_20h_friday_is_monday_10h():
    got = next_allowed(paris(2026, 11, 27, 20, 0), Territory.MET, STRICT)
    assert got == paris(2026, 11, 30, 10)


def test_next_allowed_skips_holidays_and_weekends():
    # Thursday 24 Dec 2026 20:00 -> Fri 25 (Christmas), Sat 26, Sun 27 -> Monday 28.
    assert next_allowed(paris(2026, 12, 24, 20), Territory.MET, STRICT) == paris(2026, 12, 28, 10)
    # Strict: Saturday 26 Dec is Saint Stephen's anyway; Good Friday 2026 is 3 April.
    assert next_allowed(paris(2026, 4, 2, 20), Territory.MET, STRICT) == paris(2026, 4, 7, 10)
    assert next_allowed(paris(2026, 4, 2, 20), Territory.MET, LENIENT) == paris(2026, 4, 3, 10)


def test_next_allowed_across_the_dst_changes_keeps_wall_time():
    # Saturday 28 March 2026 -> clocks go forward on Sunday 29 March.
    got = next_allowed(paris(2026, 3, 28, 12), Territory.MET, STRICT)
    assert got == paris(2026, 3, 30, 10)
    assert got.utcoffset().total_seconds() == 7200
    # Clocks go back on Sunday 25 October 2026.
    got = next_allowed(paris(2026, 10, 24, 12), Territory.MET, STRICT)
    assert got == paris(2026, 10, 26, 10)
    assert got.utcoffset().total_seconds() == 3600


def test_next_allowed_in_the_callees_zone():
    # 20:30 in Paris (winter) is 15:30 in Martinique: allowed there.
    now = paris(2026, 11, 23, 20, 30)
    assert next_allowed(now, Territory.MQ, STRICT) == now
    # 09:00 Paris is 12:00 in La Réunion: allowed there, not in Paris.
    morning = paris(2026, 11, 23, 9)
    assert next_allowed(morning, Territory.RE, STRICT) == morning
    assert next_allowed(morning, Territory.MET, STRICT) == paris(2026, 11, 23, 10)
    # 19:00 Paris = 22:00 Réunion: next is Tuesday 10:00 Réunion time.
    got = next_allowed(paris(2026, 11, 23, 19), Territory.RE, STRICT)
    assert got == datetime(2026, 11, 24, 10, tzinfo=REUNION)
    assert next_allowed(paris(2026, 11, 23, 14), Territory.MQ, STRICT) == datetime(
        2026, 11, 23, 10, tzinfo=MARTINIQUE
    )
