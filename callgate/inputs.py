"""Values typed by people or sent by a CRM, checked the same way by the CLI and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from callgate.config import Config
from callgate.model import Appointment, Consent, ConsentChannel, ConsentScope
from callgate.numbering import Kind, parse_number
from callgate.timeparse import parse_instant

__all__ = [
    "MAX_TEXT", "ConsentFields", "InvalidInput", "appointment", "company_id", "consent", "e164",
    "free_text", "instant",
]  # fmt: skip

# Free text lands in the audit log with every decision; a bound keeps one request from
# writing a megabyte into it. 200 characters name any company, campaign, source or proof.
MAX_TEXT = 200


class InvalidInput(ValueError):
    """A value that cannot be used; ``field`` names it for the user."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


def free_text(text: str | None, field: str, limit: int = MAX_TEXT) -> str | None:
    """A name or note (company, campaign, dept, source, proof, given_by...): at most
    ``limit`` characters, encodable as UTF-8 (no lone surrogate), no control character."""
    if text is None:
        return None
    if len(text) > limit:
        raise InvalidInput(field, f"at most {limit} characters ({len(text)} given)")
    if _UNSAFE.search(text):
        raise InvalidInput(field, "contains a control character or an invalid code point")
    return text


def e164(text: str | None, field: str) -> str:
    """A phone number someone wants to record something about, in E.164."""
    if not text:
        raise InvalidInput(field, "a phone number is required")
    number = parse_number(text)
    if number.kind is not Kind.VALID or number.e164 is None:
        raise InvalidInput(field, f"{text!r} is not a valid phone number")
    return number.e164


def company_id(config: Config, given: str | None, field: str = "company") -> str:
    """A configured company: the one named, or the only one when there is one."""
    company = config.company(given)
    if company is None:
        known = ", ".join(config.companies) or "none configured"
        if given is None:
            raise InvalidInput(field, f"required (known companies: {known})")
        raise InvalidInput(field, f"unknown company {given!r} (known: {known})")
    return company.id


def instant(text: str | None, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_instant(text)
    except ValueError as error:
        raise InvalidInput(field, str(error)) from None


@dataclass(frozen=True, slots=True)
class ConsentFields:
    """A consent as a person or a CRM gives it, before it is checked; the names are the
    API's fields (the CLI's options differ: ``field_names`` maps them for messages)."""

    given_at: datetime
    scope: str | None = None
    expires: datetime | None = None
    source: str | None = None
    proof: str | None = None
    given_by: str | None = None
    collected_by: str | None = None
    channel: str | None = None
    covers: str | None = None
    proof_sha256: str | None = None
    proof_name: str | None = None


def consent(
    fields: ConsentFields, max_age_days: int, names: dict[str, str] | None = None
) -> Consent:
    """A consent record that can prove itself (RULES-FR §4): its end within the maximum
    age (never renewed tacitly), a known channel, a proof file named with its digest."""
    name = (names or {}).get
    given = fields.given_at
    if fields.expires is not None:
        if fields.expires <= given:
            raise InvalidInput(name("expires", "expires"), "must be later than the consent itself")
        if fields.expires > given + timedelta(days=max_age_days):
            raise InvalidInput(
                name("expires", "expires"),
                f"a consent lasts at most rules.consent_max_age_days = {max_age_days} days"
                " (a longer one is a new consent, given again)",
            )
    scope = _enum(ConsentScope, fields.scope, name("scope", "scope")) or ConsentScope.PROSPECTING
    channel = _enum(ConsentChannel, fields.channel, name("channel", "channel"))
    digest = fields.proof_sha256
    if digest is not None and not _SHA256.fullmatch(digest):
        raise InvalidInput(name("proof_sha256", "proof_sha256"), "expected 64 hexadecimal digits")
    if (digest is None) != (fields.proof_name is None):
        raise InvalidInput(
            name("proof_sha256", "proof_sha256"),
            "a proof file is given by its SHA-256 and its name, both",
        )
    return Consent(
        scope, given, fields.expires, None, fields.source, fields.proof, fields.given_by,
        fields.collected_by, channel, fields.covers, digest.lower() if digest else None,
        fields.proof_name,
    )  # fmt: skip


def appointment(start: datetime, until: datetime | None, field: str = "until") -> Appointment:
    """An appointment: an end, when given, after its start."""
    if until is not None and until <= start:
        raise InvalidInput(field, "must be later than the appointment's start")
    return Appointment(start, until)


_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
# C0 and C1 controls and lone surrogates (which UTF-8 cannot encode).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _enum(kind: type[ConsentScope] | type[ConsentChannel], text: str | None, field: str) -> Any:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        raise InvalidInput(field, f"must be one of {', '.join(kind)}") from None
