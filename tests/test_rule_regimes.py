"""RULES-FR §4: opposition regime, opt-in regime, sector bans, switching on 2026-08-11."""

import pytest
from builders import a_config, a_request, codes, consented, days, facts, judge, paris

from callgate.model import Contract, Facts, Opposition, Purpose

EVE = paris(2026, 8, 10, 11)  # Monday, last day of the opposition regime
DAY_ONE = paris(2026, 8, 11, 11)  # Tuesday, first day of opt-in
NO_CONSENT = Facts()
BLOCTEL = Opposition("bloctel", paris(2025, 1, 1))


def test_ruleset_switches_on_2026_08_11():
    assert judge(EVE, known=NO_CONSENT).ruleset == "fr-2023-03-01"
    assert judge(DAY_ONE, known=NO_CONSENT).ruleset == "fr-2026-08-11"
    assert judge(paris(2026, 8, 11, 0, 0), known=NO_CONSENT).ruleset == "fr-2026-08-11"
    assert judge(paris(2026, 8, 10, 23, 59, 59), known=NO_CONSENT).ruleset == "fr-2023-03-01"


def test_consent_needed_from_2026_08_11_only():
    assert judge(EVE, known=NO_CONSENT).allowed
    decision = judge(DAY_ONE, known=NO_CONSENT)
    assert codes(decision) == {"CONSENT_MISSING"}
    assert decision.retry_after is None


def test_consent_given_after_the_call_does_not_count():
    known = facts(consents=(consented(DAY_ONE + days(1)),))
    assert codes(judge(DAY_ONE, known=known)) == {"CONSENT_MISSING"}


def test_consent_revoked():
    known = facts(consents=(consented(paris(2026, 9, 1), revoked_at=paris(2026, 10, 1)),))
    assert codes(judge(paris(2026, 9, 30, 11), known=known)) == set()
    assert codes(judge(paris(2026, 10, 1, 11), known=known)) == {"CONSENT_REVOKED"}


def test_consent_expires_after_max_age_days():
    given = paris(2026, 9, 1, 12)
    known = facts(consents=(consented(given),))
    last_day = paris(2027, 8, 31, 11)  # 364 days later, a Tuesday
    assert judge(last_day, known=known).allowed
    first_expired = paris(2027, 9, 1, 12)  # exactly 365 days later
    assert codes(judge(first_expired, known=known)) == {"CONSENT_EXPIRED"}
    shorter = a_config(consent_max_age_days=30)
    assert codes(judge(paris(2026, 10, 1, 12), known=known, config=shorter)) == {"CONSENT_EXPIRED"}


def test_consent_record_expiry_earlier_than_max_age():
    known = facts(consents=(consented(paris(2026, 9, 1), expires_at=paris(2026, 10, 1)),))
    assert judge(paris(2026, 9, 30, 11), known=known).allowed
    assert codes(judge(paris(2026, 10, 1, 11), known=known)) == {"CONSENT_EXPIRED"}


def test_newest_valid_consent_wins_over_an_old_revoked_one():
    known = facts(
        consents=(
            consented(paris(2026, 8, 12), revoked_at=paris(2026, 9, 1)),
            consented(paris(2026, 10, 1)),
        )
    )
    assert judge(paris(2026, 11, 23, 11), known=known).allowed


def test_contract_call_needs_an_active_contract_in_opt_in():
    contract = a_request(purpose=Purpose.CONTRACT)
    assert judge(EVE, contract, NO_CONSENT).allowed
    assert codes(judge(DAY_ONE, contract, NO_CONSENT)) == {"CONTRACT_MISSING"}
    active = Facts(contracts=(Contract(paris(2026, 1, 1), paris(2026, 12, 1)),))
    assert judge(DAY_ONE, contract, active).allowed
    assert codes(judge(paris(2026, 12, 1, 11), contract, active)) == {"CONTRACT_MISSING"}


def test_newspaper_needs_no_consent():
    assert judge(DAY_ONE, a_request(purpose=Purpose.NEWSPAPER), NO_CONSENT).allowed


def test_opposition_regime_blocks_prospecting_only():
    listed = Facts(oppositions=(BLOCTEL,))
    assert codes(judge(EVE, known=listed)) == {"OPPOSITION_LISTED"}
    assert judge(EVE, a_request(purpose=Purpose.CONTRACT), listed).allowed
    assert judge(EVE, a_request(purpose=Purpose.NEWSPAPER), listed).allowed
    assert judge(EVE, a_request(purpose=Purpose.SERVICE), listed).allowed


def test_opt_in_regime_opposition_blocks_every_purpose_but_service():
    listed = facts(oppositions=(BLOCTEL,), contracts=(Contract(paris(2026, 1, 1)),))
    assert codes(judge(DAY_ONE, known=listed)) == {"OPPOSITION_LISTED"}
    assert codes(judge(DAY_ONE, a_request(purpose=Purpose.CONTRACT), listed)) == {
        "OPPOSITION_LISTED"
    }
    assert codes(judge(DAY_ONE, a_request(purpose=Purpose.NEWSPAPER), listed)) == {
        "OPPOSITION_LISTED"
    }
    assert judge(DAY_ONE, a_request(purpose=Purpose.SERVICE), listed).allowed


def test_company_opposition_applies_to_that_company_only():
    other = a_config(
        companies=[
            {"id": "acme", "numbers": ["+33948000001"]},
            {"id": "globex", "numbers": ["+33948000002"]},
        ]
    )
    listed = facts(oppositions=(Opposition("internal", paris(2026, 1, 1), "acme"),))
    # acme's own opt-out also revokes acme's consent given by then; globex's holds.
    assert codes(judge(DAY_ONE, known=listed, config=other)) == {
        "OPPOSITION_LISTED", "CONSENT_REVOKED",
    }  # fmt: skip
    globex = a_request(caller="+33948000002", company="globex")
    assert judge(DAY_ONE, globex, listed, other).allowed


def test_opposition_added_after_the_call_does_not_count():
    later = facts(oppositions=(Opposition("internal", DAY_ONE + days(1)),))
    assert judge(DAY_ONE, known=later).allowed


@pytest.mark.parametrize(
    ("sector", "day_before", "first_day"),
    [
        # 26 July 2020 was a Sunday: the Friday before, and the Monday after.
        ("energy_renovation", paris(2020, 7, 24, 11), paris(2020, 7, 27, 11)),
        ("cpf_training", paris(2022, 12, 20, 11), paris(2022, 12, 21, 11)),
        ("housing_adaptation", paris(2025, 7, 1, 11), paris(2025, 7, 2, 11)),
    ],
)
def test_sector_bans_from_their_own_date(sector, day_before, first_day):
    config = a_config(companies=[{"id": "acme", "sector": sector, "numbers": ["+33948000001"]}])
    assert judge(day_before, known=NO_CONSENT, config=config).allowed
    assert codes(judge(first_day, known=NO_CONSENT, config=config)) == {"SECTOR_BANNED"}
    assert judge(first_day, a_request(purpose=Purpose.CONTRACT), NO_CONSENT, config).allowed
    banned = judge(DAY_ONE, a_request(purpose=Purpose.NEWSPAPER), NO_CONSENT, config)
    assert codes(banned) == {"SECTOR_BANNED"}
    assert banned.retry_after is None
    with_consent = judge(DAY_ONE, known=facts(), config=config)
    assert codes(with_consent) == {"SECTOR_BANNED"}


def test_unknown_company_rejects_without_retry():
    decision = judge(DAY_ONE, a_request(company="nobody"))
    assert "UNKNOWN_COMPANY" in codes(decision)
    assert decision.retry_after is None
