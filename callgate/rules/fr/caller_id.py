"""RULES-FR §1: the presented number, and its rewrite from the company's pool."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from callgate.callerid import choose_presented_number
from callgate.config import Company
from callgate.model import Purpose, Reason
from callgate.numbering import (
    Category,
    Kind,
    Number,
    Territory,
    classify,
    npv_territories,
    parse_number,
)

__all__ = ["CallerIdOutcome", "caller_id_outcome", "cli_faults"]

NpvTable = Mapping[str, frozenset[Territory]]


def cli_missing(cli: Number, purpose: Purpose, npv: NpvTable) -> Reason | None:
    """C. consom. L221-17: a masked or empty number is never presented."""
    if cli.kind is Kind.MISSING:
        return Reason("CLI_MISSING", "the caller ID is masked or empty")
    return None


def cli_invalid(cli: Number, purpose: Purpose, npv: NpvTable) -> Reason | None:
    """ARCEP 2022-1583 (plan 2018-0881): the presented number must be a valid number."""
    invalid = cli.kind is Kind.INVALID or (
        cli.kind is Kind.SHORT and classify(cli, npv) is Category.SHORT and not _is_3bpq(cli)
    )
    if invalid:
        return Reason("CLI_INVALID", f"the caller ID {cli.raw!r} is not a valid number")
    return None


def cli_forbidden(cli: Number, purpose: Purpose, npv: NpvTable) -> Reason | None:
    """Arrêté of 2016-07-05, ARCEP 2022-1583: 089, 118XYZ, 3BPQ and foreign numbers."""
    category = classify(cli, npv)
    if category is Category.PREMIUM_089:
        return Reason("CLI_FORBIDDEN", f"{cli.display} is an 089 number, never presentable")
    if category is Category.DIRECTORY_118:
        return Reason("CLI_FORBIDDEN", f"{cli.display} is a 118 directory number")
    if cli.kind is Kind.SHORT and _is_3bpq(cli) and not cli.display.startswith(("30", "31")):
        return Reason("CLI_FORBIDDEN", f"{cli.display} is a 3BPQ short number")
    if cli.kind is Kind.VALID and not cli.is_french:
        return Reason("CLI_FORBIDDEN", f"{cli.display} is not a French number")
    return None


def cli_mobile(cli: Number, purpose: Purpose, npv: NpvTable) -> Reason | None:
    """ARCEP 2018-0881 (FAQ): 06/07 numbers belong to one person, never a call centre."""
    if classify(cli, npv) is Category.MOBILE:
        return Reason("CLI_MOBILE", f"{cli.display} is a mobile number")
    return None


def cli_not_npv(cli: Number, purpose: Purpose, npv: NpvTable) -> Reason | None:
    """ARCEP 2022-1583: solicitation calls present a numéro polyvalent vérifié."""
    needs_npv = purpose.is_solicitation and cli.kind in (Kind.VALID, Kind.SHORT)
    if needs_npv and not npv_territories(cli, npv):
        return Reason("CLI_NOT_NPV", f"{cli.display} is not an NPV reserved for solicitation")
    return None


_NUMBER_RULES: tuple[Callable[[Number, Purpose, NpvTable], Reason | None], ...] = (
    cli_missing,
    cli_invalid,
    cli_forbidden,
    cli_mobile,
    cli_not_npv,
)


@lru_cache(maxsize=4096)  # a pool's numbers and the agents' own come back on every call
def cli_faults(cli: Number, purpose: Purpose, npv: NpvTable) -> tuple[Reason, ...]:
    """Every §1.1-1.5 fault of a number for this purpose."""
    return tuple(reason for rule in _NUMBER_RULES if (reason := rule(cli, purpose, npv)))


def cli_not_assigned(cli: Number, company: Company) -> Reason | None:
    """C. consom. L221-17, loi 2020-901 art. 10: the number must be assigned to the company."""
    if cli.kind in (Kind.VALID, Kind.SHORT) and cli.display not in company.numbers:
        return Reason("CLI_NOT_ASSIGNED", f"{cli.display} is not in {company.id}'s number pool")
    return None


@dataclass(frozen=True, slots=True)
class CallerIdOutcome:
    caller_out: str | None
    reasons: tuple[Reason, ...]


def caller_id_outcome(
    cli: Number,
    purpose: Purpose,
    company: Company | None,
    callee_key: str,
    territory: Territory | None,
    npv: NpvTable,
) -> CallerIdOutcome:
    """RULES-FR §1.7-1.8: keep a compliant number, else rewrite it from the pool."""
    faults = list(cli_faults(cli, purpose, npv))
    if company is None:
        return CallerIdOutcome(None if faults else cli.display, tuple(faults))
    if cli.kind is not Kind.MISSING and cli.kind is not Kind.INVALID:
        unassigned = cli_not_assigned(cli, company)
        if unassigned:
            faults.append(unassigned)
    if not faults:
        return CallerIdOutcome(cli.display, ())
    chosen = choose_presented_number(
        _presentable(company.numbers, purpose, npv), company.id, callee_key, territory
    )
    if chosen is None:
        missing = Reason(
            "CLI_NO_COMPLIANT_NUMBER",
            f"{company.id}'s pool has no number allowed for a {purpose} call",
        )
        return CallerIdOutcome(None, (missing, *faults))
    rewritten = Reason(
        "CLI_REWRITTEN",
        f"caller ID {cli.raw or '(none)'} replaced by {chosen.display}",
        blocking=False,
    )
    informative = (Reason(f.code, f.message, blocking=False) for f in faults)
    return CallerIdOutcome(chosen.display, (rewritten, *informative))


@lru_cache(maxsize=1024)
def _presentable(
    pool: tuple[str, ...], purpose: Purpose, npv: NpvTable
) -> tuple[tuple[Number, frozenset[Territory]], ...]:
    """The pool's numbers that may be presented for this purpose, each with the
    territories it is of (RULES-FR §1.7)."""
    numbers = (parse_number(raw) for raw in pool)
    return tuple(
        (number, _territories_served(number, npv))
        for number in numbers
        if not cli_faults(number, purpose, npv)
    )


def _territories_served(number: Number, npv: NpvTable) -> frozenset[Territory]:
    served = npv_territories(number, npv)
    if served:
        return served
    return frozenset({number.territory}) if number.territory else frozenset()


def _is_3bpq(cli: Number) -> bool:
    code = cli.national or ""
    return len(code) == 4 and code.startswith("3")
