"""Values typed by people or sent by a CRM, checked the same way by the CLI and the API."""

from __future__ import annotations

from datetime import datetime

from callgate.config import Config
from callgate.numbering import Kind, parse_number
from callgate.timeparse import parse_instant

__all__ = ["InvalidInput", "company_id", "e164", "instant"]


class InvalidInput(ValueError):
    """A value that cannot be used; ``field`` names it for the user."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


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
