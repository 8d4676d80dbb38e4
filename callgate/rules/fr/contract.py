"""RULES-FR §4 (opt-in regime): a contract call needs a contract in progress."""

from __future__ import annotations

from callgate.model import Purpose, Reason
from callgate.rules.fr.context import Context
from callgate.rules.fr.rulesets import OPT_IN_REGIME

__all__ = ["contract_in_progress"]


def contract_in_progress(ctx: Context) -> Reason | None:
    """C. consom. L223-1 (loi 2025-594): contract calls need a contract in progress."""
    if ctx.ruleset != OPT_IN_REGIME or ctx.purpose is not Purpose.CONTRACT:
        return None
    if any(contract.active_at(ctx.now) for contract in ctx.facts.contracts):
        return None
    return Reason("CONTRACT_MISSING", "no contract in progress with this callee")
