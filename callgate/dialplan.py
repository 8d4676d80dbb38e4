"""The dialplan contract: channel variables in, one result variable out.

Shared by the ARI and FastAGI gates, so both read and answer the dialplan alike. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from callgate import inputs
from callgate.announce import prompt_for
from callgate.model import CallRequest, Decision, Purpose
from callgate.numbering import Territory

__all__ = [
    "CHANNELVARS_LINE",
    "INPUT_VARIABLES",
    "RESULT_VARIABLE",
    "GivenInputs",
    "InputError",
    "encode_result",
    "given_inputs",
    "request_from_channel",
    "unusable_call",
]

COMPANY = "CALLGATE_COMPANY"
PURPOSE = "CALLGATE_PURPOSE"
CAMPAIGN = "CALLGATE_CAMPAIGN"
DEPT = "CALLGATE_DEPT"
INPUT_VARIABLES = (COMPANY, PURPOSE, CAMPAIGN, DEPT)
# What ari.conf needs for every StasisStart to carry the inputs (no REST round trip).
CHANNELVARS_LINE = "channelvars = " + ",".join(INPUT_VARIABLES)
# Stasis(callgate,company=acme,purpose=service) / AGI(...,company=acme): the argument names.
_ARGUMENT_NAMES = {name.removeprefix("CALLGATE_").lower(): name for name in INPUT_VARIABLES}

# One variable carries the whole answer, so the gate needs one REST call to set it; the
# dialplan splits it with CUT into CALLGATE_VERDICT, _REASONS, _RETRY_AFTER, _DECISION_ID,
# the CALLERID(num) to present (empty when unchanged), then what the agent hears on a
# rejection: the prompt's name, and the retry instant as Unix time with the callee's zone
# (the fields Asterisk's STRFTIME and SayUnixTime take).
RESULT_VARIABLE = "CALLGATE_RESULT"


class InputError(ValueError):
    """A channel variable the gate cannot use: the call is refused, never guessed at."""


@dataclass(frozen=True, slots=True)
class GivenInputs:
    """The inputs a call arrived with, and those it did not carry (to ask the channel for).

    A value given empty means "unset", so the configuration's default applies; a name in
    ``missing`` must be read from the channel before deciding, never defaulted.
    """

    values: Mapping[str, str]
    missing: tuple[str, ...]


def given_inputs(arguments: Sequence[str], carried: Mapping[str, str] | None) -> GivenInputs:
    """Each input from the first place that has it: the gate's arguments, then the channel
    variables the event carried (ARI's ``channelvars``); the rest are ``missing``.

    Arguments are all ``name=value`` (``company=acme``; ``CALLGATE_COMPANY=acme`` too),
    or all positional in the order of INPUT_VARIABLES: ``AGI(...,${CALLGATE_COMPANY},...)``.
    The first argument decides which: a positional value is taken verbatim, so a campaign
    named ``purpose=service`` stays a campaign. A positional argument given empty is given:
    it means "unset", as the variable it was substituted from.
    """
    values: dict[str, str] = {}
    named = bool(arguments) and "=" in arguments[0]
    if not named and len(arguments) > len(INPUT_VARIABLES):
        raise InputError(
            f"too many gate arguments: {len(arguments)} given, at most {len(INPUT_VARIABLES)}"
            " (COMPANY, PURPOSE, CAMPAIGN, DEPT), or name=value"
        )
    for index, argument in enumerate(arguments):
        if not named:
            values[INPUT_VARIABLES[index]] = argument
            continue
        name, sep, value = argument.partition("=")
        variable = _ARGUMENT_NAMES.get(name.strip().lower().removeprefix("callgate_"))
        if not sep or variable is None:
            known = ", ".join(_ARGUMENT_NAMES)
            raise InputError(f"unknown gate argument {argument!r}: name=value, with a name of"
                             f" {known}")  # fmt: skip
        if variable in values:
            raise InputError(f"gate argument {name.strip()!r} given twice")
        values[variable] = value
    for name in INPUT_VARIABLES:
        if name not in values and carried is not None and name in carried:
            values[name] = carried[name]
    return GivenInputs(values, tuple(name for name in INPUT_VARIABLES if name not in values))


def request_from_channel(caller: str, callee: str, variables: Mapping[str, str]) -> CallRequest:
    """The call as the dialplan hands it over; empty variables mean "the default".

    Every value is bounded as the API bounds it: the audit log keeps them all."""
    purpose_text = (variables.get(PURPOSE) or "").strip().lower()
    if purpose_text and purpose_text not in Purpose._value2member_map_:
        raise InputError(f"{PURPOSE}={_clipped(purpose_text)!r} is not one of"
                         f" {', '.join(Purpose)}")  # fmt: skip
    return CallRequest(
        caller=_bounded("caller", caller) or "",
        callee=_bounded("callee", callee) or "",
        company=_bounded(COMPANY, (variables.get(COMPANY) or "").strip()) or None,
        purpose=Purpose(purpose_text) if purpose_text else None,
        campaign=_bounded(CAMPAIGN, (variables.get(CAMPAIGN) or "").strip()) or None,
        dept=_bounded(DEPT, (variables.get(DEPT) or "").strip()) or None,
    )


def unusable_call(caller: str, callee: str) -> CallRequest:
    """The call as far as it can be logged when its inputs cannot be used: the numbers cut
    to the bound and made encodable, and nothing else."""
    return CallRequest(_clipped(caller), _clipped(callee), None)


def _bounded(name: str, value: str) -> str:
    try:
        return inputs.free_text(value, name) or ""
    except inputs.InvalidInput as error:
        raise InputError(str(error)) from None


def _clipped(text: str) -> str:
    return text[: inputs.MAX_TEXT].encode("utf-8", "replace").decode("utf-8")


def encode_result(decision: Decision) -> str:
    """``VERDICT|CODES|RETRY_AFTER|DECISION_ID|CALLERID|PROMPT|RETRY_UNIX|RETRY_ZONE``.

    The dialplan splits it with CUT; the last three are empty on an allowed call.
    """
    rewritten = "CLI_REWRITTEN" in decision.codes
    retry = decision.retry_after
    zone = _zone_name(decision.territory) if retry else ""
    fields = (
        decision.verdict.value.upper(),
        ",".join(decision.codes),
        retry.isoformat() if retry else "",
        decision.decision_id or "",
        decision.caller_out if rewritten and decision.caller_out else "",
        prompt_for(decision),
        str(int(retry.timestamp())) if retry and zone else "",
        zone,
    )
    return "|".join(fields)


def _zone_name(territory: str | None) -> str:
    try:
        return str(Territory(territory).zone) if territory else ""
    except ValueError:
        return ""
