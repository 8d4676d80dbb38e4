"""What the agent hears on a refused call: one prompt per family of blocking reasons. Pure.

The dialplan plays ``callgate/<prompt>`` in the channel's language, then, when the refusal
passes with time, when the call may be retried (in the callee's time zone).
"""

from __future__ import annotations

from callgate.model import Decision

__all__ = ["PROMPTS", "prompt_for"]

# What no retry would change, most decisive first.
_LASTING: tuple[tuple[str, frozenset[str]], ...] = (
    ("unavailable", frozenset({"GATE_ERROR"})),
    ("number", frozenset({"DEST_INVALID", "DEST_OUT_OF_SCOPE"})),
    ("opposition", frozenset({"OPPOSITION_LISTED"})),
    ("consent", frozenset({"CONSENT_MISSING", "CONSENT_REVOKED", "CONSENT_EXPIRED"})),
    ("callerid", frozenset({"CLI_NO_COMPLIANT_NUMBER"})),
)
# What passes with time: said only when nothing lasting blocks too, or the agent would
# wait for a call that will never be allowed.
_PASSING: tuple[tuple[str, frozenset[str]], ...] = (
    ("cooldown", frozenset({"REFUSAL_COOLDOWN"})),
    ("cap", frozenset({"CAP_30_DAYS"})),
    ("hours", frozenset({"HOURS_OUTSIDE", "DAY_WEEKEND", "DAY_HOLIDAY"})),
)
_PASSING_CODES = frozenset().union(*(codes for _, codes in _PASSING))
# Refusals of no family above (no contract, banned sector, unknown company or purpose).
GENERIC = "refused"
PROMPTS = (*(name for name, _ in _LASTING + _PASSING), GENERIC)


def prompt_for(decision: Decision) -> str:
    """The prompt for a rejection, or "" for a call that goes on."""
    if decision.allowed:
        return ""
    blocking = {reason.code for reason in decision.reasons if reason.blocking}
    for name, codes in _LASTING:
        if blocking & codes:
            return name
    if blocking - _PASSING_CODES:
        return GENERIC
    for name, codes in _PASSING:
        if blocking & codes:
            return name
    return GENERIC
