"""RULES-FR §4 (opt-in regime): a prospecting call needs the callee's consent."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from callgate.model import Consent, ConsentScope, Opposition, Purpose, Reason
from callgate.rules.fr.context import Context
from callgate.rules.fr.rulesets import OPT_IN_REGIME

__all__ = ["consent_expiry", "consent_revoked_at", "consent_valid", "prospecting_consent"]


def consent_expiry(consent: Consent, max_age_days: int) -> datetime:
    """A consent lasts ``consent_max_age_days`` unless its record ends it earlier."""
    aged = consent.given_at + timedelta(days=max_age_days)
    return min(aged, consent.expires_at) if consent.expires_at else aged


def consent_revoked_at(consent: Consent, oppositions: Iterable[Opposition]) -> datetime | None:
    """When a consent ended by revocation: its own, or the first opt-out entered at or
    after it was given, removed since or not (RULES-FR §4: an opt-out is a revocation)."""
    ends = [entry.added_at for entry in oppositions if entry.added_at >= consent.given_at]
    if consent.revoked_at is not None:
        ends.append(consent.revoked_at)
    return min(ends, default=None)


def _opt_outs(ctx: Context) -> list[Opposition]:
    """The entries that revoke this company's consents: its own and every company's."""
    company = ctx.company.id if ctx.company else None
    return [entry for entry in ctx.facts.oppositions if entry.company in (None, company)]


def _state(consent: Consent, ctx: Context) -> str:
    revoked = consent_revoked_at(consent, _opt_outs(ctx))
    if revoked is not None and revoked <= ctx.now:
        return "CONSENT_REVOKED"
    if ctx.now >= consent_expiry(consent, ctx.settings.consent_max_age_days):
        return "CONSENT_EXPIRED"
    return "valid"


def consent_valid(ctx: Context, scope: ConsentScope) -> bool:
    """Whether a consent of this scope was given before the call and still holds."""
    return any(
        c.scope is scope and c.given_at <= ctx.now and _state(c, ctx) == "valid"
        for c in ctx.facts.consents
    )


def prospecting_consent(ctx: Context) -> Reason | None:
    """Loi 2025-594 art. 13, C. consom. L223-1: prospecting needs prior consent."""
    if ctx.ruleset != OPT_IN_REGIME or ctx.purpose is not Purpose.PROSPECTING:
        return None
    if consent_valid(ctx, ConsentScope.PROSPECTING):
        return None
    given = [
        c for c in ctx.facts.consents
        if c.scope is ConsentScope.PROSPECTING and c.given_at <= ctx.now
    ]  # fmt: skip
    if not given:
        return Reason("CONSENT_MISSING", "no consent of the callee to this company")
    latest = max(given, key=lambda c: c.given_at)
    if _state(latest, ctx) == "CONSENT_REVOKED":
        revoked = consent_revoked_at(latest, _opt_outs(ctx))
        assert revoked is not None
        how = "revoked consent" if revoked == latest.revoked_at else "opted out"
        local = revoked.astimezone(ctx.local_now.tzinfo)
        return Reason("CONSENT_REVOKED", f"the callee {how} on {local:%Y-%m-%d}")
    expiry = consent_expiry(latest, ctx.settings.consent_max_age_days)
    local = expiry.astimezone(ctx.local_now.tzinfo)
    return Reason("CONSENT_EXPIRED", f"the callee's consent expired on {local:%Y-%m-%d}")
