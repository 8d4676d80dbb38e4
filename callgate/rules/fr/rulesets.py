"""The dated versions of the French pack: a call is judged by the rules of its own day."""

from __future__ import annotations

from datetime import date

__all__ = ["OPPOSITION_REGIME", "OPT_IN_FROM", "OPT_IN_REGIME", "ruleset_for"]

OPPOSITION_REGIME = "fr-2023-03-01"  # décret 2022-1313, C. consom. D223-9
OPT_IN_REGIME = "fr-2026-08-11"  # loi n° 2025-594 art. 13, new C. consom. L223-1
OPT_IN_FROM = date(2026, 8, 11)


def ruleset_for(local_day: date) -> str:
    """The rule set in force on the callee's local date."""
    return OPT_IN_REGIME if local_day >= OPT_IN_FROM else OPPOSITION_REGIME
