"""Numbers as a French PBX hands them over: normalised, placed and classified.

A dialplan gives us whatever the agent's phone or the dialer sent: national format,
``+33``, ``0033``, overseas national prefixes, ``anonymous``, or junk. ``parse_number``
turns it into a :class:`Number` that says what it is, and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import PhoneNumber

__all__ = [
    "DEFAULT_NPV_PREFIXES",
    "Category",
    "Kind",
    "Number",
    "PrefixTable",
    "Territory",
    "classify",
    "npv_territories",
    "parse_number",
    "parse_number_once",
]


class Territory(StrEnum):
    """Callee territories of RULES-FR §2.1; each has one time zone and one calendar."""

    MET = "FR-MET"
    GP = "FR-GP"  # Guadeloupe, Saint-Martin, Saint-Barthélemy share the +590 plan
    GF = "FR-GF"
    MQ = "FR-MQ"
    RE = "FR-RE"
    YT = "FR-YT"
    PM = "FR-PM"

    @property
    def zone(self) -> ZoneInfo:
        return _ZONES[self]


_ZONES = {
    Territory.MET: ZoneInfo("Europe/Paris"),
    Territory.GP: ZoneInfo("America/Guadeloupe"),
    Territory.GF: ZoneInfo("America/Cayenne"),
    Territory.MQ: ZoneInfo("America/Martinique"),
    Territory.RE: ZoneInfo("Indian/Reunion"),
    Territory.YT: ZoneInfo("Indian/Mayotte"),
    Territory.PM: ZoneInfo("America/Miquelon"),
}


class Kind(StrEnum):
    MISSING = "missing"  # masked, empty, anonymous...
    INVALID = "invalid"  # unparseable, or not a number of any plan
    SHORT = "short"  # a short code such as 112, 3949 or 118712
    VALID = "valid"  # a valid E.164 number


class Category(StrEnum):
    MOBILE = "mobile"
    GEOGRAPHIC = "geographic"
    NPV_METRO = "npv_metro"
    NPV_OVERSEAS = "npv_overseas"
    PREMIUM_089 = "premium_089"
    DIRECTORY_118 = "directory_118"
    SHORT = "short"
    OTHER = "other"  # other 08 and 09 numbers, foreign numbers
    NONE = "none"  # missing or invalid


# National prefixes of the overseas departments: dialled from a French PBX they look
# like metropolitan numbers, but they belong to their own country codes (RULES-FR §2.1).
_OVERSEAS_NATIONAL = {
    "0590": ("590", Territory.GP),
    "0690": ("590", Territory.GP),
    "0691": ("590", Territory.GP),
    "0594": ("594", Territory.GF),
    "0694": ("594", Territory.GF),
    "0596": ("596", Territory.MQ),
    "0696": ("596", Territory.MQ),
    "0697": ("596", Territory.MQ),
    "0262": ("262", Territory.RE),
    "0263": ("262", Territory.RE),
    "0692": ("262", Territory.RE),
    "0693": ("262", Territory.RE),
    "0269": ("262", Territory.YT),
    "0639": ("262", Territory.YT),
}

_COUNTRY_TERRITORY = {
    "33": Territory.MET,
    "590": Territory.GP,
    "594": Territory.GF,
    "596": Territory.MQ,
    "508": Territory.PM,
}

# ARCEP decision 2022-1583: numéros polyvalents vérifiés reserved for solicitation.
_NPV_PREFIXES: dict[str, frozenset[Territory]] = {
    **{
        p: frozenset({Territory.MET})
        for p in (
            "0162", "0163", "0270", "0271", "0377", "0378",
            "0424", "0425", "0568", "0569", "0948", "0949",
        )
    },
    "09475": frozenset({Territory.GP}),
    "09476": frozenset({Territory.GF}),
    "09477": frozenset({Territory.MQ}),
    "09478": frozenset({Territory.RE, Territory.YT}),
    "09479": frozenset({Territory.RE, Territory.YT}),
}  # fmt: skip


class PrefixTable(Mapping[str, frozenset[Territory]]):
    """A read-only, hashable prefix -> territories table, so that what is derived from
    it (a number's faults, a pool's compliant numbers) can be computed once and cached."""

    __slots__ = ("_hash", "_table")

    def __init__(self, table: Mapping[str, frozenset[Territory]]) -> None:
        self._table = dict(table)
        self._hash = hash(frozenset(self._table.items()))

    def __getitem__(self, key: str) -> frozenset[Territory]:
        return self._table[key]

    def get(self, key: str, default: Any = None) -> Any:  # the hot path: no try/except
        return self._table.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._table == dict(other)

    def __repr__(self) -> str:
        return f"PrefixTable({self._table!r})"


DEFAULT_NPV_PREFIXES = PrefixTable(_NPV_PREFIXES)

_MISSING_WORDS = frozenset(
    {"", "anonymous", "unknown", "restricted", "private", "unavailable", "withheld", "masked"}
)
_SEPARATORS = re.compile(r"[\s.\-()/]")
# ASCII digits: a dialplan dials no other, and a short code in other digits ("１１２")
# would match neither the emergency list nor a company's pool.
_DIGITS = re.compile(r"\+?[0-9]+")
# E.164 numbers have at most 15 digits; the longest form handed over ("00", spaces,
# dots) stays far below this. Longer text is junk: parsed without the cache (which it
# would only fill) and never handed to int(), which refuses 4,300 digits and more.
MAX_NUMBER_TEXT = 64
_FRENCH_E164 = re.compile(r"(33|590|594|596|262|508)(\d+)")


@dataclass(frozen=True, slots=True)
class Number:
    """A number as understood: what it is, where it belongs, how France dials it."""

    raw: str
    kind: Kind
    e164: str | None = None  # "+33612345678"; None unless VALID
    region: str | None = None  # ISO region of the plan: FR, GP, RE, BE...
    territory: Territory | None = None  # None unless a French territory of §2.1
    national: str | None = None  # French national form "0612345678", or the short code
    mobile: bool = False

    @property
    def is_french(self) -> bool:
        return self.territory is not None

    @property
    def display(self) -> str:
        return self.e164 or self.national or self.raw


def parse_number(raw: str | None) -> Number:
    """Normalise whatever a dialplan or a file hands over. Never raises."""
    if raw is not None and len(raw) > MAX_NUMBER_TEXT:
        return _parse(raw)
    return _parse_cached(raw)


def _parse(raw: str | None) -> Number:
    if raw is not None and len(raw) > MAX_NUMBER_TEXT:
        return Number(raw, Kind.INVALID)
    text = _SEPARATORS.sub("", (raw or "").strip())
    if text.lower() in _MISSING_WORDS:
        return Number(raw or "", Kind.MISSING)
    if not _DIGITS.fullmatch(text):
        return Number(raw, Kind.INVALID)
    if text.startswith("00"):
        text = "+" + text[2:]
    if text.startswith("+"):
        return _from_international(raw, text[1:])
    if text.startswith("0") and len(text) == 10:
        return _from_national(raw, text)
    if not text.startswith("0") and 2 <= len(text) <= 6:
        return Number(raw, Kind.SHORT, national=text)
    return Number(raw, Kind.INVALID)


_parse_cached = lru_cache(maxsize=65536)(_parse)
# The parser without its cache, for a bulk read of numbers seen once (optout_file).
parse_number_once = _parse


def _from_national(raw: str, text: str) -> Number:
    country, _ = _OVERSEAS_NATIONAL.get(text[:4], ("33", None))
    nsn = text[1:]
    return _validated(raw, PhoneNumber(country_code=int(country), national_number=int(nsn)))


def _from_international(raw: str, digits: str) -> Number:
    match = _FRENCH_E164.fullmatch(digits)
    if match:
        country, nsn = match.groups()
        if nsn.startswith("0"):
            return Number(raw, Kind.INVALID)
        return _validated(raw, PhoneNumber(country_code=int(country), national_number=int(nsn)))
    try:
        parsed = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return Number(raw, Kind.INVALID)
    return _validated(raw, parsed)


def _validated(raw: str, parsed: PhoneNumber) -> Number:
    if not phonenumbers.is_valid_number(parsed):
        return Number(raw, Kind.INVALID)
    country = str(parsed.country_code)
    nsn = str(parsed.national_number)
    territory = _territory(country, nsn)
    national = "0" + nsn if territory is not None and country != "508" else None
    if country == "33":
        # One region, and ARCEP's plan gives mobiles all of 06/07: skip two metadata scans.
        region, mobile = "FR", nsn[0] in "67"
    else:
        region = phonenumbers.region_code_for_number(parsed)
        mobile = phonenumbers.number_type(parsed) == phonenumbers.PhoneNumberType.MOBILE
    return Number(raw, Kind.VALID, f"+{country}{nsn}", region, territory, national, mobile)


def _territory(country: str, nsn: str) -> Territory | None:
    if country == "262":
        return Territory.YT if nsn[:3] in ("269", "639") else Territory.RE
    territory = _COUNTRY_TERRITORY.get(country)
    if territory is Territory.MET:
        # A +33 number in an overseas national range is not a metropolitan number.
        mapped = _OVERSEAS_NATIONAL.get("0" + nsn[:3])
        return None if mapped else Territory.MET
    return territory


def npv_territories(
    number: Number, prefixes: Mapping[str, frozenset[Territory]] = DEFAULT_NPV_PREFIXES
) -> frozenset[Territory]:
    """Territories an NPV serves (ARCEP 2022-1583); empty when the number is no NPV."""
    if number.national is None or number.region != "FR":
        return frozenset()
    for length in (5, 4):
        found = prefixes.get(number.national[:length])
        if found:
            return found
    return frozenset()


def classify(
    number: Number, prefixes: Mapping[str, frozenset[Territory]] = DEFAULT_NPV_PREFIXES
) -> Category:
    """The category of RULES-FR §1 a number falls in."""
    if number.kind is Kind.SHORT:
        return Category.DIRECTORY_118 if _is_118(number.national) else Category.SHORT
    if number.kind is not Kind.VALID:
        return Category.NONE
    if number.territory is None:
        return Category.OTHER
    npv = npv_territories(number, prefixes)
    if npv:
        return Category.NPV_METRO if Territory.MET in npv else Category.NPV_OVERSEAS
    if number.mobile or (number.national or "").startswith(("06", "07")):
        return Category.MOBILE
    national = number.national or ""
    if national.startswith("089"):
        return Category.PREMIUM_089
    if national[:2] in ("01", "02", "03", "04", "05") or number.territory is Territory.PM:
        return Category.GEOGRAPHIC
    return Category.OTHER


def _is_118(code: str | None) -> bool:
    return code is not None and len(code) == 6 and code.startswith("118")
