"""RULES-FR §4: sectors that may not prospect by phone at all."""

from __future__ import annotations

from datetime import date

from callgate.model import Purpose, Reason
from callgate.rules.fr.context import Context

__all__ = ["SECTOR_BANS", "sector_ban"]

SECTOR_BANS: dict[str, tuple[date, str]] = {
    "energy_renovation": (date(2020, 7, 26), "loi n° 2020-901, C. consom. L223-1"),
    "cpf_training": (date(2022, 12, 21), "loi n° 2022-1587, C. trav. L6323-8-1"),
    "housing_adaptation": (date(2025, 7, 2), "loi n° 2025-594"),
}


def sector_ban(ctx: Context) -> Reason | None:
    """Lois 2020-901, 2022-1587, 2025-594: banned sectors keep only contract calls."""
    if ctx.company is None or ctx.purpose is Purpose.CONTRACT:
        return None
    ban = SECTOR_BANS.get(ctx.company.sector or "")
    if ban is None or ctx.local_today < ban[0]:
        return None
    since, source = ban
    return Reason(
        "SECTOR_BANNED",
        f"sector {ctx.company.sector} may not prospect by phone since {since} ({source})",
    )
