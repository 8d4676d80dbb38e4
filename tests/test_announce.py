"""Which prompt the agent hears for a refusal: the most decisive reason's family."""

from builders import MONDAY, a_request, facts, judge, paris

from callgate.announce import PROMPTS, prompt_for
from callgate.model import Purpose


def test_an_allowed_call_has_no_prompt():
    assert prompt_for(judge(MONDAY, a_request(), facts())) == ""


def test_outside_hours_is_the_hours_prompt():
    decision = judge(paris(2026, 11, 23, 13, 0), a_request(), facts())
    assert decision.codes == ("HOURS_OUTSIDE",)
    assert prompt_for(decision) == "hours"


def test_what_no_retry_changes_is_said_before_what_passes_with_time():
    # No consent, and outside hours: waiting would not help, so say "no consent".
    decision = judge(paris(2026, 11, 23, 13, 0), a_request(), facts(consents=()))
    assert set(decision.codes) == {"HOURS_OUTSIDE", "CONSENT_MISSING"}
    assert prompt_for(decision) == "consent"


def test_every_prompt_name_is_distinct():
    assert len(set(PROMPTS)) == len(PROMPTS) == 9


def test_a_refusal_that_never_lifts_is_not_announced_as_one_of_hours():
    # A contract call without a contract, at lunch time: waiting would not help.
    decision = judge(paris(2026, 11, 23, 13, 0), a_request(purpose=Purpose.CONTRACT), facts())
    assert set(decision.codes) == {"HOURS_OUTSIDE", "CONTRACT_MISSING"}
    assert decision.retry_after is None
    assert prompt_for(decision) == "refused"
