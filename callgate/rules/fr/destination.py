"""RULES-FR §2.1: a callee the pack can place, or a reason it cannot."""

from __future__ import annotations

from callgate.config import RuleSettings
from callgate.model import Reason
from callgate.numbering import Kind, Number

__all__ = ["destination_in_scope", "is_emergency"]


def is_emergency(callee: Number, settings: RuleSettings) -> bool:
    """C. P.T. L33-1, décret 2022-1313 aside: emergency calls are never held up."""
    return callee.kind is Kind.SHORT and callee.national in settings.emergency_numbers


def destination_in_scope(callee: Number, settings: RuleSettings) -> Reason | None:
    """RULES-FR §2.1: the French pack judges calls to French numbers only."""
    if callee.kind is not Kind.VALID:
        return Reason("DEST_INVALID", f"the dialled number {callee.raw!r} is not a valid number")
    if callee.is_french or settings.allow_foreign:
        return None
    return Reason(
        "DEST_OUT_OF_SCOPE",
        f"{callee.e164} belongs to {callee.region or 'another country'}, outside French rules",
    )
