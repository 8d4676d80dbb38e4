"""RULES-FR §2: days and hours, callee local time."""

from datetime import datetime

import pytest
from builders import (
    CAYENNE,
    GF_MOBILE,
    GP_MOBILE,
    GUADELOUPE,
    MARTINIQUE,
    MAYOTTE,
    MQ_MOBILE,
    RE_MOBILE,
    REUNION,
    YT_MOBILE,
    a_config,
    a_request,
    codes,
    consented,
    facts,
    judge,
    paris,
)

from callgate.model import ConsentScope, Purpose


@pytest.mark.parametrize(
    ("hms", "allowed"),
    [
        ((9, 59, 59), False), ((10, 0, 0), True),
        ((12, 59, 59), True), ((13, 0, 0), False),
        ((13, 59, 59), False), ((14, 0, 0), True),
        ((19, 59, 59), True), ((20, 0, 0), False),
    ],
)  # fmt: skip
def test_window_boundaries_metropolitan(hms, allowed):
    decision = judge(paris(2026, 11, 23, *hms))
    assert decision.allowed is allowed
    assert codes(decision) == (set() if allowed else {"HOURS_OUTSIDE"})


def test_weekend_and_holiday_codes():
    assert codes(judge(paris(2026, 11, 28, 11))) == {"DAY_WEEKEND"}
    assert codes(judge(paris(2026, 11, 29, 11))) == {"DAY_WEEKEND"}
    assert codes(judge(paris(2026, 11, 11, 11))) == {"DAY_HOLIDAY"}  # Wednesday, Armistice


def test_retry_after_is_the_next_window_with_the_callee_offset():
    decision = judge(paris(2026, 11, 23, 13, 0))
    assert decision.retry_after == paris(2026, 11, 23, 14)
    assert decision.retry_after.isoformat() == "2026-11-23T14:00:00+01:00"
    friday_night = judge(paris(2026, 11, 27, 20, 0))
    assert friday_night.retry_after == paris(2026, 11, 30, 10)


@pytest.mark.parametrize(
    ("callee", "zone"),
    [(MQ_MOBILE, MARTINIQUE), (RE_MOBILE, REUNION), (YT_MOBILE, MAYOTTE),
     (GF_MOBILE, CAYENNE), (GP_MOBILE, GUADELOUPE)],
)  # fmt: skip
@pytest.mark.parametrize(
    ("hms", "allowed"),
    [((9, 59, 59), False), ((10, 0, 0), True), ((12, 59, 59), True), ((13, 0, 0), False),
     ((19, 59, 59), True), ((20, 0, 0), False)],
)  # fmt: skip
def test_window_boundaries_overseas_in_local_time(callee, zone, hms, allowed):
    now = datetime(2026, 11, 24, *hms, tzinfo=zone)
    decision = judge(now, a_request(callee))
    assert decision.allowed is allowed, decision.reasons


def test_same_instant_differs_by_callee_zone():
    now = paris(2026, 11, 23, 20, 30)  # 15:30 in Martinique, 23:30 in La Réunion
    assert judge(now, a_request(MQ_MOBILE)).allowed
    reunion = judge(now, a_request(RE_MOBILE))
    assert codes(reunion) == {"HOURS_OUTSIDE"}
    assert reunion.retry_after == datetime(2026, 11, 24, 10, tzinfo=REUNION)
    assert reunion.retry_after.isoformat() == "2026-11-24T10:00:00+04:00"


def test_overseas_regional_holiday_blocks_there_only():
    martinique_abolition = datetime(2026, 5, 22, 11, tzinfo=MARTINIQUE)  # a Friday
    assert codes(judge(martinique_abolition, a_request(MQ_MOBILE))) == {"DAY_HOLIDAY"}
    assert judge(datetime(2026, 5, 22, 11, tzinfo=REUNION), a_request(RE_MOBILE)).allowed
    assert judge(paris(2026, 5, 22, 11)).allowed


def test_alsace_moselle_days_strict_and_lenient():
    good_friday = paris(2026, 4, 3, 11)
    assert codes(judge(good_friday)) == {"DAY_HOLIDAY"}
    lenient = a_config(strict_holidays=False)
    assert judge(good_friday, config=lenient).allowed
    assert codes(judge(good_friday, a_request(dept="57"), config=lenient)) == {"DAY_HOLIDAY"}


@pytest.mark.parametrize(
    ("when", "allowed"),
    [
        # Week of the spring change: Friday 27 March (UTC+1), Monday 30 March (UTC+2).
        (paris(2026, 3, 27, 19, 59, 59), True),
        (paris(2026, 3, 27, 20, 0), False),
        (paris(2026, 3, 30, 9, 59, 59), False),
        (paris(2026, 3, 30, 10, 0), True),
        # Week of the autumn change: Friday 23 October (UTC+2), Monday 26 October (UTC+1).
        (paris(2026, 10, 23, 19, 59, 59), True),
        (paris(2026, 10, 26, 9, 59, 59), False),
        (paris(2026, 10, 26, 10, 0), True),
    ],
)
def test_dst_weeks_follow_local_wall_time(when, allowed):
    assert judge(when, known=facts(consent_since=paris(2026, 1, 1))).allowed is allowed


def test_dst_retry_after_carries_the_new_offset():
    decision = judge(paris(2026, 3, 27, 20, 0))
    assert decision.retry_after.isoformat() == "2026-03-30T10:00:00+02:00"


def test_out_of_hours_consent_lifts_days_and_hours_before_2026_08_11_only():
    night = paris(2026, 8, 8, 21, 0)  # Saturday evening, opposition regime
    known = facts(consents=(consented(paris(2026, 8, 1), ConsentScope.OUT_OF_HOURS),))
    assert judge(night, known=known).allowed
    # From 2026-08-11 a blanket consent lifts nothing: only an appointment does (§2.4).
    later = paris(2026, 11, 28, 21, 0)
    known = facts(consents=(consented(paris(2026, 1, 1)),
                            consented(paris(2026, 11, 1), ConsentScope.OUT_OF_HOURS)))  # fmt: skip
    assert codes(judge(later, known=known)) == {"DAY_WEEKEND"}


def test_out_of_hours_consent_revoked_or_expired_does_not_lift():
    night = paris(2026, 7, 20, 21, 0)  # a Monday evening, opposition regime
    revoked = consented(paris(2026, 7, 1), ConsentScope.OUT_OF_HOURS, revoked_at=paris(2026, 7, 20))
    expired = consented(
        paris(2026, 7, 1), ConsentScope.OUT_OF_HOURS, expires_at=paris(2026, 7, 20, 21)
    )
    for consent in (revoked, expired):
        known = facts(consents=(consent,))
        assert codes(judge(night, known=known)) == {"HOURS_OUTSIDE"}


def test_service_calls_ignore_hours():
    assert judge(
        paris(2026, 11, 29, 23), a_request(purpose=Purpose.SERVICE), facts(consents=())
    ).allowed
