"""The gates' shared decider reads what a call did not carry, and never defaults instead.

A real SQLite store; the channel is a reader function, so that a PBX that fails to answer
can be injected (the end-to-end suite has the real Asterisk: tests/e2e/test_foreign_pbx.py).
"""

from __future__ import annotations

import json

import pytest
from builders import METRO_NPV, MOBILE, MONDAY, a_config

from callgate.gate import CallDecider
from callgate.store import open_store
from callgate.store.base import LogQuery


@pytest.fixture
async def decider(tmp_path):
    store = await open_store(str(tmp_path / "callgate.db"))
    decider = CallDecider(store, a_config(default_purpose="service"), max_concurrent=4,
                          deadline=1.0)  # fmt: skip
    yield decider
    await decider.close()
    await store.close()


def channel(variables: dict[str, str], asked: list[str] | None = None):
    async def read(name: str) -> str:
        if asked is not None:
            asked.append(name)
        return variables.get(name, "")

    return read


async def test_inputs_not_carried_are_read_from_the_channel(decider):
    asked: list[str] = []
    decision = await decider.decide(
        METRO_NPV, MOBILE, MONDAY, "chan-1",
        read_variable=channel({"CALLGATE_PURPOSE": "prospecting"}, asked),
    )  # fmt: skip
    assert decision.codes == ("CONSENT_MISSING",)  # not the default purpose, service
    assert sorted(asked) == sorted(
        ["CALLGATE_COMPANY", "CALLGATE_PURPOSE", "CALLGATE_CAMPAIGN", "CALLGATE_DEPT"]
    )


async def test_only_what_the_arguments_and_channelvars_lack_is_read(decider):
    asked: list[str] = []
    decision = await decider.decide(
        METRO_NPV, MOBILE, MONDAY, "chan-1",
        arguments=["purpose=prospecting"], carried={"CALLGATE_COMPANY": "acme"},
        read_variable=channel({"CALLGATE_PURPOSE": "service"}, asked),
    )  # fmt: skip
    assert decision.codes == ("CONSENT_MISSING",)
    assert sorted(asked) == ["CALLGATE_CAMPAIGN", "CALLGATE_DEPT"]


async def test_a_variable_that_cannot_be_read_refuses_the_call(decider):
    async def failing(name: str) -> str:
        if name == "CALLGATE_PURPOSE":
            raise ConnectionError("ARI went away")
        return ""

    decision = await decider.decide(METRO_NPV, MOBILE, MONDAY, "c", read_variable=failing)
    assert not decision.allowed
    [reason] = decision.reasons
    assert reason.code == "GATE_ERROR"
    assert "CALLGATE_PURPOSE" in reason.message and "ARI went away" in reason.message


async def test_a_reader_that_hangs_is_refused_at_the_deadline(decider):
    import asyncio

    async def hanging(name: str) -> str:
        await asyncio.sleep(30)
        return ""

    decision = await decider.decide(METRO_NPV, MOBILE, MONDAY, "c", read_variable=hanging)
    assert decision.codes == ("GATE_ERROR",)


@pytest.mark.parametrize(
    ("arguments", "variables", "message"),
    [
        ([], {"CALLGATE_PURPOSE": "spam"}, "CALLGATE_PURPOSE='spam'"),
        (["purpose=Spam"], {}, "CALLGATE_PURPOSE='spam'"),
        (["compnay=acme"], {}, "unknown gate argument 'compnay=acme'"),
    ],
)
async def test_an_unusable_input_is_a_rejection_with_its_reason(
    decider, arguments, variables, message
):  # fmt: skip
    decision = await decider.decide(
        METRO_NPV, MOBILE, MONDAY, "c", arguments=arguments, read_variable=channel(variables)
    )
    [reason] = decision.reasons
    assert (decision.allowed, reason.code) == (False, "INPUT_INVALID")
    assert message in reason.message


async def test_an_unknown_company_is_not_charged_to_the_only_one(decider):
    decision = await decider.decide(
        METRO_NPV, MOBILE, MONDAY, "c", read_variable=channel({"CALLGATE_COMPANY": "nope"})
    )
    assert "UNKNOWN_COMPANY" in decision.codes and not decision.allowed


async def test_without_a_way_to_read_the_missing_inputs_the_call_is_refused(decider):
    decision = await decider.decide(METRO_NPV, MOBILE, MONDAY, "c", arguments=["purpose=service"])
    assert decision.codes == ("GATE_ERROR",)
    assert "CALLGATE_COMPANY" in decision.reasons[0].message


async def test_arguments_that_were_lost_refuse_the_call(decider):
    """A channel found after a reconnect, whose Stasis arguments cannot be rebuilt."""
    decision = await decider.decide(
        METRO_NPV, MOBILE, MONDAY, "c", arguments=None, read_variable=channel({})
    )
    assert decision.codes == ("GATE_ERROR",)


@pytest.mark.parametrize(
    ("caller", "variables", "named"),
    [
        (METRO_NPV, {"CALLGATE_CAMPAIGN": "c" * 900_000}, "CALLGATE_CAMPAIGN"),
        (METRO_NPV, {"CALLGATE_DEPT": "7" * 201}, "CALLGATE_DEPT"),
        (METRO_NPV, {"CALLGATE_COMPANY": "acme\x00"}, "CALLGATE_COMPANY"),
        ("+3319\ud800", {}, "caller"),
        ("1" * 5_000, {}, "caller"),
    ],
)
async def test_an_oversized_or_unencodable_input_is_refused_and_logged_bounded(
    decider, caller, variables, named
):  # fmt: skip
    """The audit log keeps every input: a PBX must not write a megabyte, or a value the log
    cannot encode, into it through a channel variable or a caller ID."""
    decision = await decider.decide(
        caller, MOBILE, MONDAY, "c", arguments=["purpose=service"],
        read_variable=channel(variables),
    )  # fmt: skip
    [reason] = decision.reasons
    assert (decision.allowed, reason.code) == (False, "INPUT_INVALID")
    assert named in reason.message and len(reason.message) < 400
    await decider.close()  # the rejection is logged in the store in the background
    [entry] = await decider.store.log_entries(LogQuery())
    assert len(json.dumps(entry)) < 4_000
    assert entry["campaign"] is None and entry["dept"] is None
