"""The dialplan contract: channel variables in, one result variable out.

Shared by the ARI and FastAGI gates, so both read and answer the dialplan alike. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping

from callgate.model import CallRequest, Decision, Purpose

__all__ = [
    "INPUT_VARIABLES",
    "RESULT_VARIABLE",
    "InputError",
    "encode_result",
    "request_from_channel",
]

COMPANY = "CALLGATE_COMPANY"
PURPOSE = "CALLGATE_PURPOSE"
CAMPAIGN = "CALLGATE_CAMPAIGN"
DEPT = "CALLGATE_DEPT"
INPUT_VARIABLES = (COMPANY, PURPOSE, CAMPAIGN, DEPT)

# One variable carries the whole answer, so the gate needs one REST call to set it; the
# dialplan splits it with CUT into CALLGATE_VERDICT, _REASONS, _RETRY_AFTER, _DECISION_ID
# and the CALLERID(num) to present (empty when unchanged).
RESULT_VARIABLE = "CALLGATE_RESULT"


class InputError(ValueError):
    """A channel variable the gate cannot use: the call is refused, never guessed at."""


def request_from_channel(caller: str, callee: str, variables: Mapping[str, str]) -> CallRequest:
    """The call as the dialplan hands it over; empty variables mean "the default"."""
    purpose_text = (variables.get(PURPOSE) or "").strip().lower()
    if purpose_text and purpose_text not in Purpose._value2member_map_:
        raise InputError(f"{PURPOSE}={purpose_text!r} is not one of {', '.join(Purpose)}")
    return CallRequest(
        caller=caller,
        callee=callee,
        company=(variables.get(COMPANY) or "").strip() or None,
        purpose=Purpose(purpose_text) if purpose_text else None,
        campaign=(variables.get(CAMPAIGN) or "").strip() or None,
        dept=(variables.get(DEPT) or "").strip() or None,
    )


def encode_result(decision: Decision) -> str:
    """``VERDICT|CODE,CODE|RETRY_AFTER|DECISION_ID|CALLERID``, as the dialplan splits it."""
    rewritten = "CLI_REWRITTEN" in decision.codes
    fields = (
        decision.verdict.value.upper(),
        ",".join(decision.codes),
        decision.retry_after.isoformat() if decision.retry_after else "",
        decision.decision_id or "",
        decision.caller_out if rewritten and decision.caller_out else "",
    )
    return "|".join(fields)
