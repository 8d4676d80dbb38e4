"""RULES-FR §3: the 30-day cap and the refusal cool-down."""

from datetime import datetime

import pytest
from builders import MARTINIQUE, MQ_MOBILE, a_config, a_request, codes, days, facts, judge, paris

from callgate.model import Attempt, Facts, Purpose

# Four calls in November; the first on Monday 2 November 2026.
FOUR_CALLS = (
    paris(2026, 11, 2, 11),
    paris(2026, 11, 3, 11),
    paris(2026, 11, 4, 11),
    paris(2026, 11, 5, 11),
)


def test_three_calls_leave_room_for_a_fourth():
    assert judge(paris(2026, 11, 23, 11), known=facts(attempts=FOUR_CALLS[:3])).allowed


def test_cap_on_day_29_and_lifted_on_day_30():
    known = facts(attempts=FOUR_CALLS)
    # The oldest call was on 2 Nov: 2 Nov + 29 days = 1 Dec is still inside its 30 days.
    day_29 = judge(paris(2026, 12, 1, 11), known=known)
    assert codes(day_29) == {"CAP_30_DAYS"}
    assert day_29.retry_after == paris(2026, 12, 2, 10)
    # 2 Nov + 30 days = 2 Dec: the cap lifts at 00:00; the window opens at 10:00.
    assert judge(paris(2026, 12, 2, 10), known=known).allowed
    at_midnight = judge(paris(2026, 12, 2, 0, 0), known=known)
    assert codes(at_midnight) == {"HOURS_OUTSIDE"}


def test_cap_lift_is_midnight_of_the_n_minus_3th_call_plus_30_days():
    calls = (paris(2026, 11, 2, 11), paris(2026, 11, 2, 12), paris(2026, 11, 10, 11),
             paris(2026, 11, 12, 11), paris(2026, 11, 13, 11))  # fmt: skip
    decision = judge(paris(2026, 11, 23, 11), known=facts(attempts=calls))
    assert codes(decision) == {"CAP_30_DAYS"}
    cap = next(r for r in decision.reasons if r.code == "CAP_30_DAYS")
    # n = 5, sorted dates: d(n-3) = d2 = 2 Nov -> lifts on 2 Dec at 00:00.
    assert cap.lifts_at == paris(2026, 12, 2, 0, 0)


def test_cap_counts_by_callee_local_date():
    # 23:30 in Paris on 1 Nov is 18:30 on 1 Nov in Martinique; 03:00 Paris on 3 Nov is
    # 22:00 on 2 Nov there. The window is counted in the callee's calendar.
    calls = (
        paris(2026, 11, 3, 3, 0),
        paris(2026, 11, 4, 17),
        paris(2026, 11, 5, 17),
        paris(2026, 11, 6, 17),
    )
    day_29 = datetime(2026, 12, 1, 11, tzinfo=MARTINIQUE)  # 2 Nov (local) + 29
    decision = judge(day_29, a_request(MQ_MOBILE), facts(attempts=calls))
    assert codes(decision) == {"CAP_30_DAYS"}
    assert decision.retry_after == datetime(2026, 12, 2, 10, tzinfo=MARTINIQUE)
    assert judge(
        datetime(2026, 12, 2, 10, tzinfo=MARTINIQUE), a_request(MQ_MOBILE), facts(attempts=calls)
    ).allowed


def test_service_calls_are_not_counted_and_not_capped():
    known = Facts(
        attempts=tuple(Attempt(a, Purpose.SERVICE) for a in FOUR_CALLS), consents=facts().consents
    )
    assert judge(paris(2026, 11, 23, 11), known=known).allowed
    capped = facts(attempts=FOUR_CALLS)
    assert judge(paris(2026, 11, 23, 11), a_request(purpose=Purpose.SERVICE), capped).allowed


def test_later_attempts_are_not_counted_in_a_replay():
    assert judge(paris(2026, 10, 30, 11), known=facts(attempts=FOUR_CALLS)).allowed


REFUSED = paris(2026, 9, 1, 15)  # Tuesday 1 September 2026


@pytest.mark.parametrize(
    ("when", "blocked"),
    [
        (paris(2026, 9, 1, 16), True),
        (REFUSED + days(60), True),  # D+60: still inside the 60 full days
        (paris(2026, 10, 31, 23, 59, 59), True),
        (paris(2026, 11, 2, 10), False),  # D+61 is Sunday 1 Nov; Monday 2 Nov opens
    ],
)
def test_refusal_cooldown_d60_d61(when, blocked):
    decision = judge(when, known=facts(refusals=(REFUSED,)))
    assert ("REFUSAL_COOLDOWN" in codes(decision)) is blocked


def test_cooldown_lifts_at_midnight_of_d_plus_61():
    decision = judge(paris(2026, 9, 2, 11), known=facts(refusals=(REFUSED,)))
    cooldown = next(r for r in decision.reasons if r.code == "REFUSAL_COOLDOWN")
    assert cooldown.lifts_at == paris(2026, 11, 1, 0, 0)
    # 1 Nov is a Sunday and All Saints' Day; the call passes Monday 2 Nov at 10:00.
    assert decision.retry_after == paris(2026, 11, 2, 10)
    assert decision.retry_after.isoformat() == "2026-11-02T10:00:00+01:00"


def test_cooldown_on_a_weekday_lift():
    refused = paris(2026, 9, 10, 15)  # Thursday; D+61 = Tuesday 10 November
    decision = judge(paris(2026, 10, 1, 11), known=facts(refusals=(refused,)))
    assert decision.retry_after == paris(2026, 11, 10, 10)
    assert not judge(paris(2026, 11, 9, 19, 59, 59), known=facts(refusals=(refused,))).allowed
    assert judge(paris(2026, 11, 10, 10), known=facts(refusals=(refused,))).allowed


def test_cooldown_days_are_configurable_and_zero_disables_it():
    refused = paris(2026, 11, 2, 15)
    ten = a_config(refusal_cooldown_days=10)
    assert not judge(paris(2026, 11, 12, 11), known=facts(refusals=(refused,)), config=ten).allowed
    assert judge(paris(2026, 11, 13, 11), known=facts(refusals=(refused,)), config=ten).allowed
    off = a_config(refusal_cooldown_days=0)
    assert judge(paris(2026, 11, 3, 11), known=facts(refusals=(refused,)), config=off).allowed


def test_cooldown_applies_to_contract_and_newspaper_not_service():
    known = facts(refusals=(paris(2026, 11, 2, 15),))
    for purpose in (Purpose.NEWSPAPER,):
        assert "REFUSAL_COOLDOWN" in codes(
            judge(paris(2026, 11, 23, 11), a_request(purpose=purpose), known)
        )
    assert judge(paris(2026, 11, 23, 11), a_request(purpose=Purpose.SERVICE), known).allowed


def test_cap_and_cooldown_retry_waits_for_both_and_a_window():
    refused = (paris(2026, 11, 20, 12),)
    known = facts(attempts=FOUR_CALLS, refusals=refused, consent_since=paris(2026, 11, 1))
    decision = judge(paris(2026, 11, 23, 11), known=known)
    assert codes(decision) == {"CAP_30_DAYS", "REFUSAL_COOLDOWN"}
    # Cap lifts 2 Dec, cool-down 20 Nov + 61 = Wednesday 20 Jan 2027 at 00:00, window 10:00.
    assert decision.retry_after == paris(2027, 1, 20, 10)


def test_retry_after_is_null_when_the_consent_will_have_expired_by_then():
    refused = (paris(2026, 11, 20, 12),)
    known = facts(refusals=refused, consent_since=paris(2026, 1, 1))  # expires 1 Jan 2027
    decision = judge(paris(2026, 11, 23, 11), known=known)
    assert codes(decision) == {"REFUSAL_COOLDOWN"}
    assert decision.retry_after is None
