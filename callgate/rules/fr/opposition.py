"""RULES-FR §4: the opposition list (Bloctel, the company's own do-not-call list)."""

from __future__ import annotations

from callgate.model import Purpose, Reason
from callgate.rules.fr.context import Context
from callgate.rules.fr.rulesets import OPPOSITION_REGIME

__all__ = ["opposition_listed"]


def opposition_listed(ctx: Context) -> Reason | None:
    """C. consom. L223-1: no solicitation of a callee who opposed it (L223-5 press exempt)."""
    if ctx.ruleset == OPPOSITION_REGIME and ctx.purpose is not Purpose.PROSPECTING:
        return None
    company = ctx.company.id if ctx.company else None
    entries = [
        entry for entry in ctx.facts.oppositions
        if entry.active_at(ctx.now) and entry.company in (None, company)
    ]  # fmt: skip
    if not entries:
        return None
    sources = ", ".join(sorted({entry.source for entry in entries}))
    return Reason("OPPOSITION_LISTED", f"the callee is on the opposition list ({sources})")
