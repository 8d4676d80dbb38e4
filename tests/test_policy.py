"""RULES-FR §5: emergency numbers, every reason listed, the verdict object."""

import pytest
from builders import MOBILE, a_config, a_request, codes, facts, judge, paris

from callgate.model import Facts, Opposition, Verdict

SATURDAY_NIGHT = paris(2026, 11, 28, 23, 0)


@pytest.mark.parametrize(
    "number", ["15", "17", "18", "112", "114", "115", "116000", "119", "191", "196", "197"]
)
def test_emergency_numbers_always_pass_with_the_caller_id_untouched(number):
    decision = judge(SATURDAY_NIGHT, a_request(number, caller="anonymous", company=None), Facts())
    assert decision.verdict is Verdict.ALLOW
    assert decision.codes == ("EMERGENCY",)
    assert decision.caller_out == "anonymous"


def test_configured_emergency_numbers():
    config = a_config(emergency_numbers=["3624"])
    assert judge(SATURDAY_NIGHT, a_request("3624"), Facts(), config).codes == ("EMERGENCY",)


def test_every_blocking_reason_is_listed():
    known = Facts(
        oppositions=(Opposition("bloctel", paris(2025, 1, 1)),), refusals=(paris(2026, 11, 20, 11),)
    )
    decision = judge(SATURDAY_NIGHT, a_request(caller="anonymous", company="acme"), known)
    assert codes(decision) == {
        "DAY_WEEKEND",
        "REFUSAL_COOLDOWN",
        "OPPOSITION_LISTED",
        "CONSENT_MISSING",
    }
    assert decision.retry_after is None


def test_invalid_destination():
    decision = judge(paris(2026, 11, 23, 11), a_request("not-a-number"))
    assert codes(decision) == {"DEST_INVALID"}
    assert decision.callee is None
    assert decision.retry_after is None


def test_decision_carries_the_public_fields():
    decision = judge(paris(2026, 11, 23, 11), a_request(MOBILE, caller="0612345678"), facts())
    assert decision.verdict is Verdict.ALLOW
    assert decision.callee == "+33612345678"
    assert decision.territory == "FR-MET"
    assert decision.caller_out == "+33948000001"
    assert decision.caller_in == "0612345678"
    assert decision.ruleset == "fr-2026-08-11"


def test_decide_refuses_a_naive_instant():
    from datetime import datetime

    with pytest.raises(ValueError):
        judge(datetime(2026, 11, 23, 11))
