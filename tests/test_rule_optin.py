"""RULES-FR as revised for the opt-in law: appointments (§2.4), a spoken withdrawal's effect
(§3.3), an opt-out as a revocation of consent (§4) and the territory's calendars (§2.3)."""

from datetime import timedelta

import pytest
from builders import (
    MARTINIQUE,
    MQ_MOBILE,
    RE_MOBILE,
    REUNION,
    a_config,
    a_request,
    codes,
    consented,
    days,
    facts,
    judge,
    paris,
)

from callgate.model import Appointment, ConsentScope, Facts, Opposition, Purpose

SATURDAY_11H = paris(2026, 12, 5, 11, 0)
SECOND = timedelta(seconds=1)


def booked(*appointments: Appointment, **kw: object) -> Facts:
    """A valid prospecting consent and these appointments."""
    base = facts(**kw)  # type: ignore[arg-type]
    return Facts(
        base.attempts, base.refusals, base.consents, base.contracts, base.oppositions,
        appointments,
    )  # fmt: skip


# ---------------------------------------------------------------- §2.4 appointments


def test_an_appointment_opens_its_window_start_included_end_excluded():
    known = booked(Appointment(SATURDAY_11H))
    before = judge(SATURDAY_11H - SECOND, known=known)
    assert codes(before) == {"DAY_WEEKEND"}
    assert before.retry_after == SATURDAY_11H  # its start is the earliest instant
    at_start = judge(SATURDAY_11H, known=known)
    assert at_start.allowed and codes(at_start, blocking=False) == {"APPOINTMENT"}
    assert judge(SATURDAY_11H + timedelta(minutes=15) - SECOND, known=known).allowed
    assert codes(judge(SATURDAY_11H + timedelta(minutes=15), known=known)) == {"DAY_WEEKEND"}


def test_an_appointment_end_is_its_own_or_the_configured_window():
    until = booked(Appointment(SATURDAY_11H, SATURDAY_11H + timedelta(hours=1)))
    assert judge(SATURDAY_11H + timedelta(minutes=59, seconds=59), known=until).allowed
    assert not judge(SATURDAY_11H + timedelta(hours=1), known=until).allowed
    wider = a_config(appointment_window_minutes=30)
    plain = booked(Appointment(SATURDAY_11H))
    almost = SATURDAY_11H + timedelta(minutes=29, seconds=59)
    assert judge(almost, known=plain, config=wider).allowed
    assert not judge(SATURDAY_11H + timedelta(minutes=30), known=plain, config=wider).allowed


def test_an_appointment_lifts_holidays_and_night_hours_too():
    christmas = paris(2026, 12, 25, 11)
    assert judge(christmas, known=booked(Appointment(christmas))).allowed
    night = paris(2026, 12, 2, 21, 30)  # a Wednesday evening
    assert judge(night, known=booked(Appointment(night))).allowed


def test_an_appointment_lifts_neither_the_cap_the_cool_down_consent_nor_opposition():
    window = Appointment(SATURDAY_11H)
    assert codes(judge(SATURDAY_11H, known=booked(window, consents=()))) == {"CONSENT_MISSING"}
    refused = booked(window, refusals=(paris(2026, 11, 30, 11),))
    assert codes(judge(SATURDAY_11H, known=refused)) == {"REFUSAL_COOLDOWN"}
    calls = tuple(paris(2026, 11, d, 11) for d in (23, 24, 25, 26))
    assert codes(judge(SATURDAY_11H, known=booked(window, attempts=calls))) == {"CAP_30_DAYS"}
    listed = booked(window, oppositions=(Opposition("internal", paris(2026, 11, 1), "acme"),))
    assert "OPPOSITION_LISTED" in codes(judge(SATURDAY_11H, known=listed))


def test_retry_after_counts_an_appointment_ahead():
    friday_night = paris(2026, 12, 4, 21, 0)
    decision = judge(friday_night, known=booked(Appointment(SATURDAY_11H)))
    assert codes(decision) == {"HOURS_OUTSIDE"}
    assert decision.retry_after.isoformat() == "2026-12-05T11:00:00+01:00"
    # Without it, Monday's first window.
    assert judge(friday_night).retry_after.isoformat() == "2026-12-07T10:00:00+01:00"
    # An appointment after the next window changes nothing.
    late = booked(Appointment(paris(2026, 12, 7, 21)))
    assert judge(friday_night, known=late).retry_after.isoformat() == "2026-12-07T10:00:00+01:00"


def test_an_appointment_in_the_callee_zone_and_its_retry_in_its_offset():
    sunday = SATURDAY_11H.replace(tzinfo=MARTINIQUE) + days(1)
    known = booked(Appointment(sunday))
    request = a_request(MQ_MOBILE)
    assert judge(sunday, request, known).allowed
    retry = judge(sunday - timedelta(hours=12), request, known).retry_after
    assert retry.isoformat() == "2026-12-06T11:00:00-04:00"


def test_before_2026_08_11_an_appointment_lifts_nothing_and_out_of_hours_consent_does():
    saturday = paris(2026, 8, 8, 11)  # opposition regime
    assert codes(judge(saturday, known=booked(Appointment(saturday)))) == {"DAY_WEEKEND"}
    blanket = facts(consents=(consented(paris(2026, 8, 1), ConsentScope.OUT_OF_HOURS),))
    assert judge(saturday, known=blanket).allowed


def test_the_out_of_hours_exception_ends_with_the_opposition_regime():
    blanket = facts(consents=(consented(paris(2026, 8, 1)),
                              consented(paris(2026, 8, 1), ConsentScope.OUT_OF_HOURS)))  # fmt: skip
    eve = paris(2026, 8, 10, 23, 59, 59)  # Monday night, the last second of the old pack
    assert judge(eve, known=blanket).allowed
    first = judge(paris(2026, 8, 11, 0, 0), known=blanket)
    assert codes(first) == {"HOURS_OUTSIDE"} and first.ruleset == "fr-2026-08-11"


# ---------------------------------------------------------------- §3.3 a withdrawal's effect
# What `outcome withdrawn` records at T: the consents revoked at T, an opposition entry of
# the company, a refusal. The store's side is tested in test_withdrawal.py.

T = paris(2026, 10, 1, 15, 0)


def withdrawn(*, consents: tuple, company: str = "acme", removed=None) -> Facts:
    return facts(
        consents=consents,
        oppositions=(Opposition("withdrawal", T, company, removed),),
        refusals=(T,),
    )


def test_a_consent_given_before_the_withdrawal_never_counts_again():
    before = consented(paris(2026, 9, 1), revoked_at=T)
    removed = paris(2026, 10, 2)
    after_cool_down = paris(2027, 1, 4, 11)  # past D + 61, the entry removed
    decision = judge(after_cool_down, known=withdrawn(consents=(before,), removed=removed))
    assert codes(decision) == {"CONSENT_REVOKED"}
    assert decision.retry_after is None


def test_a_consent_given_after_the_withdrawal_counts_again():
    new = consented(T + SECOND)
    removed = paris(2026, 10, 2)
    old = consented(paris(2026, 9, 1), revoked_at=T)
    both = withdrawn(consents=(old, new), removed=removed)
    assert judge(paris(2027, 1, 4, 11), known=both).allowed
    # At the withdrawal's very instant a consent is still one given before it.
    same = withdrawn(consents=(consented(T),), removed=removed)
    assert codes(judge(paris(2027, 1, 4, 11), known=same)) == {"CONSENT_REVOKED"}


def test_while_listed_a_withdrawal_blocks_every_purpose_but_service_from_2026_08_11():
    known = withdrawn(consents=(consented(T + SECOND),))
    later = paris(2027, 1, 4, 11)
    for purpose in (Purpose.PROSPECTING, Purpose.CONTRACT, Purpose.NEWSPAPER):
        assert "OPPOSITION_LISTED" in codes(judge(later, a_request(purpose=purpose), known))
    assert judge(later, a_request(purpose=Purpose.SERVICE), known).allowed


def test_before_2026_08_11_a_withdrawal_entry_blocks_prospecting_only():
    t = paris(2026, 3, 2, 15)
    known = Facts(oppositions=(Opposition("withdrawal", t, "acme"),), refusals=(t,))
    later = paris(2026, 6, 1, 11)  # past the cool-down, still the opposition regime
    assert codes(judge(later, known=known)) == {"OPPOSITION_LISTED"}
    for purpose in (Purpose.CONTRACT, Purpose.NEWSPAPER):
        assert judge(later, a_request(purpose=purpose), known).allowed


def test_a_withdrawal_starts_the_cool_down_like_a_refusal():
    known = withdrawn(consents=(consented(T + SECOND),), removed=paris(2026, 10, 2))
    eve = paris(2026, 11, 30, 23, 59, 59)  # D + 60 ends: D is 2026-10-01
    assert codes(judge(eve, known=known)) == {"HOURS_OUTSIDE", "REFUSAL_COOLDOWN"}
    assert judge(paris(2026, 12, 1, 11), known=known).allowed


def test_another_company_is_untouched_by_a_withdrawal():
    two = a_config(companies=[
        {"id": "acme", "numbers": ["+33948000001"]},
        {"id": "globex", "numbers": ["+33948000002"]},
    ])  # fmt: skip
    # globex's facts: its own consent; acme's entry is not among them (the store reads
    # only this company's and every company's entries), and even if passed it is acme's.
    known = Facts(
        consents=(consented(paris(2026, 9, 1)),),
        oppositions=(Opposition("withdrawal", T, "acme"),),
    )
    globex = a_request(caller="+33948000002", company="globex")
    assert judge(paris(2026, 10, 5, 11), globex, known, two).allowed


# ---------------------------------------------------------------- §4 an opt-out revokes


OPTED_OUT = paris(2026, 9, 10)
BACK_IN = paris(2026, 9, 20)


def test_an_opt_out_revokes_the_consents_before_it_even_once_removed():
    consent = consented(paris(2026, 9, 1))
    removed = facts(consents=(consent,),
                    oppositions=(Opposition("internal", OPTED_OUT, "acme", BACK_IN),))  # fmt: skip
    decision = judge(paris(2026, 10, 5, 11), known=removed)
    assert codes(decision) == {"CONSENT_REVOKED"} and decision.retry_after is None
    active = facts(consents=(consent,), oppositions=(Opposition("internal", OPTED_OUT, "acme"),))
    assert codes(judge(paris(2026, 9, 15, 11), known=active)) == {
        "OPPOSITION_LISTED", "CONSENT_REVOKED",
    }  # fmt: skip
    # Before the opt-out, and with a consent given after it, the call passes.
    assert judge(paris(2026, 9, 9, 11), known=removed).allowed
    again = facts(consents=(consent, consented(BACK_IN + days(1))),
                  oppositions=(Opposition("internal", OPTED_OUT, "acme", BACK_IN),))  # fmt: skip
    assert judge(paris(2026, 10, 5, 11), known=again).allowed


def test_an_opt_out_for_every_company_revokes_every_company_consent():
    two = a_config(companies=[
        {"id": "acme", "numbers": ["+33948000001"]},
        {"id": "globex", "numbers": ["+33948000002"]},
    ])  # fmt: skip
    known = facts(consents=(consented(paris(2026, 9, 1)),),
                  oppositions=(Opposition("bloctel", OPTED_OUT, None, BACK_IN),))  # fmt: skip
    for company, caller in (("acme", "+33948000001"), ("globex", "+33948000002")):
        request = a_request(caller=caller, company=company)
        assert codes(judge(paris(2026, 10, 5, 11), request, known, two)) == {"CONSENT_REVOKED"}


def test_an_opt_out_revokes_an_out_of_hours_consent_in_the_opposition_regime():
    consent = consented(paris(2026, 6, 1), ConsentScope.OUT_OF_HOURS)
    known = facts(consents=(consent,), oppositions=(
        Opposition("internal", paris(2026, 6, 10), "acme", paris(2026, 6, 20)),
    ))  # fmt: skip
    saturday = paris(2026, 7, 4, 11)
    newspaper = a_request(purpose=Purpose.NEWSPAPER)
    assert codes(judge(saturday, newspaper, known)) == {"DAY_WEEKEND"}
    assert judge(paris(2026, 6, 6, 11), newspaper, known).allowed  # a Saturday before it


# ---------------------------------------------------------------- §2.3 the number decides


@pytest.mark.parametrize("dept", ["57", "67", "68"])
def test_alsace_moselle_days_never_apply_to_an_overseas_callee(dept):
    good_friday_mq = paris(2026, 4, 3, 11).replace(tzinfo=MARTINIQUE)
    assert judge(good_friday_mq, a_request(MQ_MOBILE, dept=dept)).allowed
    st_stephen_re = paris(2025, 12, 26, 11).replace(tzinfo=REUNION)
    assert judge(st_stephen_re, a_request(RE_MOBILE, dept=dept)).allowed
    # A metropolitan callee of that département keeps them, strict reading or not.
    lenient = a_config(strict_holidays=False)
    metro = judge(paris(2026, 4, 3, 11), a_request(dept=dept), config=lenient)
    assert codes(metro) == {"DAY_HOLIDAY"}
    assert judge(paris(2026, 4, 3, 11), a_request(dept="75"), config=lenient).allowed
