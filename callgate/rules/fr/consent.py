"""RULES-FR §4 (opt-in regime): a prospecting call needs the callee's consent."""

from __future__ import annotations

from datetime import datetime, timedelta

from callgate.model import Consent, ConsentScope, Purpose, Reason
from callgate.rules.fr.context import Context
from callgate.rules.fr.rulesets import OPT_IN_REGIME

__all__ = ["consent_expiry", "consent_valid", "prospecting_consent"]


def consent_expiry(consent: Consent, max_age_days: int) -> datetime:
    """A consent lasts ``consent_max_age_days`` unless its record ends it earlier."""
    aged = consent.given_at + timedelta(days=max_age_days)
    return min(aged, consent.expires_at) if consent.expires_at else aged


def _state(consent: Consent, now: datetime, max_age_days: int) -> str:
    if consent.revoked_at is not None and consent.revoked_at <= now:
        return "CONSENT_REVOKED"
    if now >= consent_expiry(consent, max_age_days):
        return "CONSENT_EXPIRED"
    return "valid"


def consent_valid(ctx: Context, scope: ConsentScope) -> bool:
    """Whether a consent of this scope was given before the call and still holds."""
    max_age = ctx.settings.consent_max_age_days
    return any(
        c.scope is scope and c.given_at <= ctx.now and _state(c, ctx.now, max_age) == "valid"
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
    code = _state(latest, ctx.now, ctx.settings.consent_max_age_days)
    if code == "CONSENT_REVOKED":
        return Reason(code, f"the callee revoked consent on {latest.revoked_at:%Y-%m-%d}")
    expiry = consent_expiry(latest, ctx.settings.consent_max_age_days)
    return Reason("CONSENT_EXPIRED", f"the callee's consent expired on {expiry:%Y-%m-%d}")
