"""The dialplan contract shared by the gates: inputs from channel variables, one result."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from builders import a_request, facts, judge, paris

from callgate.dialplan import (
    CHANNELVARS_LINE,
    INPUT_VARIABLES,
    InputError,
    encode_result,
    given_inputs,
    request_from_channel,
)
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


def test_named_arguments_come_first_then_the_carried_variables():
    given = given_inputs(
        ["company=acme", "PURPOSE=service"],
        {"CALLGATE_COMPANY": "other", "CALLGATE_PURPOSE": "prospecting", "CALLGATE_DEPT": ""},
    )
    assert given.values == {
        "CALLGATE_COMPANY": "acme", "CALLGATE_PURPOSE": "service", "CALLGATE_DEPT": "",
    }  # fmt: skip
    assert given.missing == ("CALLGATE_CAMPAIGN",)


def test_positional_arguments_follow_the_contract_order_and_empty_means_unset():
    given = given_inputs(["acme", "", "spring", ""], None)
    assert given.values == dict(zip(INPUT_VARIABLES, ["acme", "", "spring", ""], strict=True))
    assert given.missing == ()


def test_without_arguments_or_channelvars_every_input_must_be_read():
    assert given_inputs([], None).missing == INPUT_VARIABLES
    assert given_inputs([], {}).missing == INPUT_VARIABLES


def test_the_full_variable_name_is_accepted_as_an_argument():
    given = given_inputs(["CALLGATE_PURPOSE=contract"], None)
    assert given.values == {"CALLGATE_PURPOSE": "contract"}


def test_a_misspelt_argument_is_refused_not_ignored():
    with pytest.raises(InputError, match="unknown gate argument 'compnay=acme'"):
        given_inputs(["compnay=acme"], None)
    with pytest.raises(InputError, match="too many gate arguments"):
        given_inputs(["a", "b", "c", "d", "e"], None)
    with pytest.raises(InputError, match="'purpose' given twice"):
        given_inputs(["purpose=service", "purpose=prospecting"], None)
    with pytest.raises(InputError, match="unknown gate argument 'acme'"):
        given_inputs(["purpose=service", "acme"], None)  # the forms do not mix


def test_a_positional_value_is_taken_verbatim_even_with_an_equals_sign():
    """A campaign or département that looks like name=value must not become one."""
    given = given_inputs(["acme", "prospecting", "promo=q4", "purpose=service"], None)
    assert given.values["CALLGATE_PURPOSE"] == "prospecting"
    assert given.values["CALLGATE_CAMPAIGN"] == "promo=q4"
    assert given.values["CALLGATE_DEPT"] == "purpose=service"


def test_the_channelvars_line_names_every_input():
    assert CHANNELVARS_LINE == (
        "channelvars = CALLGATE_COMPANY,CALLGATE_PURPOSE,CALLGATE_CAMPAIGN,CALLGATE_DEPT"
    )


def test_encode_an_allowed_rewrite():
    decision = judge(paris(2026, 11, 23, 11), a_request(caller="0612345678"), facts())
    encoded = encode_result(decision).split("|")
    assert encoded[0] == "ALLOW"
    assert encoded[1] == "CLI_REWRITTEN,CLI_MOBILE,CLI_NOT_NPV,CLI_NOT_ASSIGNED"
    assert encoded[2] == ""
    assert encoded[4] == "+33948000001"
    assert encoded[5:] == ["", "", ""]  # nothing to announce


def test_encode_a_kept_caller_id_leaves_the_callerid_field_empty():
    decision = judge(paris(2026, 11, 23, 11), a_request(caller="0948000001"), facts())
    assert encode_result(decision).split("|")[4] == ""


def test_encode_a_rejection_with_its_retry_time():
    decision = judge(paris(2026, 11, 23, 13, 0), a_request(), facts())
    verdict, codes, retry, _, callerid, prompt, unix, zone = encode_result(decision).split("|")
    assert (verdict, codes, callerid) == ("REJECT", "HOURS_OUTSIDE", "")
    expected = datetime(2026, 11, 23, 14, tzinfo=ZoneInfo("Europe/Paris"))
    assert datetime.fromisoformat(retry) == expected
    assert (prompt, int(unix), zone) == ("hours", int(expected.timestamp()), "Europe/Paris")
