"""The dialplan contract shared by the gates: inputs from channel variables, one result."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from builders import a_request, facts, judge, paris

from callgate.dialplan import InputError, encode_result, request_from_channel
from callgate.model import Purpose


def test_request_from_channel_variables():
    request = request_from_channel(
        "0612345678", "0696123456",
        {"CALLGATE_COMPANY": "acme", "CALLGATE_PURPOSE": "Contract", "CALLGATE_CAMPAIGN": "x",
         "CALLGATE_DEPT": "972"},
    )  # fmt: skip
    assert request.company == "acme"
    assert request.purpose is Purpose.CONTRACT
    assert (request.campaign, request.dept) == ("x", "972")


def test_empty_channel_variables_mean_the_defaults():
    request = request_from_channel("1", "2", {"CALLGATE_COMPANY": "", "CALLGATE_PURPOSE": " "})
    assert request.company is None and request.purpose is None


def test_an_unknown_purpose_is_refused_not_guessed():
    with pytest.raises(InputError, match="CALLGATE_PURPOSE='spam'"):
        request_from_channel("1", "2", {"CALLGATE_PURPOSE": "spam"})


def test_encode_an_allowed_rewrite():
    decision = judge(paris(2026, 11, 23, 11), a_request(caller="0612345678"), facts())
    encoded = encode_result(decision).split("|")
    assert encoded[0] == "ALLOW"
    assert encoded[1] == "CLI_REWRITTEN,CLI_MOBILE,CLI_NOT_NPV,CLI_NOT_ASSIGNED"
    assert encoded[2] == ""
    assert encoded[4] == "+33948000001"
    assert len(encoded) == 5


def test_encode_a_kept_caller_id_leaves_the_callerid_field_empty():
    decision = judge(paris(2026, 11, 23, 11), a_request(caller="0948000001"), facts())
    assert encode_result(decision).split("|")[4] == ""


def test_encode_a_rejection_with_its_retry_time():
    decision = judge(paris(2026, 11, 23, 13, 0), a_request(), facts())
    verdict, codes, retry, _, callerid = encode_result(decision).split("|")
    assert (verdict, codes, callerid) == ("REJECT", "HOURS_OUTSIDE", "")
    assert datetime.fromisoformat(retry) == datetime(
        2026, 11, 23, 14, tzinfo=ZoneInfo("Europe/Paris")
    )
