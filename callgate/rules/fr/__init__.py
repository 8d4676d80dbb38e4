"""The French rule pack (RULES-FR.md): decree 2022-1313, ARCEP's plan, the 2026 opt-in law."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import zip_longest
from zoneinfo import ZoneInfo

from callgate.config import Config, RuleSettings
from callgate.model import CallRequest, Facts, Reason
from callgate.numbering import Number, parse_number
from callgate.rules.fr.caller_id import caller_id_outcome
from callgate.rules.fr.cap import CAP_DAYS, thirty_day_cap
from callgate.rules.fr.consent import prospecting_consent
from callgate.rules.fr.context import Context
from callgate.rules.fr.contract import contract_in_progress
from callgate.rules.fr.cooldown import refusal_cooldown
from callgate.rules.fr.destination import destination_in_scope, is_emergency
from callgate.rules.fr.hours import calling_hours
from callgate.rules.fr.opposition import opposition_listed
from callgate.rules.fr.rulesets import ruleset_for
from callgate.rules.fr.sector import sector_ban

__all__ = ["PACK", "FrenchEvaluation", "FrenchPack", "RuleOutcome"]

_PARIS = ZoneInfo("Europe/Paris")

# Rules of §2-§4, for solicitation calls to a French callee, in the order they are listed.
SOLICITATION_RULES: tuple[Callable[[Context], Reason | None], ...] = (
    calling_hours,
    thirty_day_cap,
    refusal_cooldown,
    sector_ban,
    opposition_listed,
    prospecting_consent,
    contract_in_progress,
)


@dataclass(frozen=True, slots=True)
class RuleOutcome:
    """One rule's verdict on a call, for `callgate log explain`."""

    rule: str
    checks: str  # the rule's docstring: what it checks, and its source
    applies: bool
    reasons: tuple[Reason, ...] = ()
    facts: tuple[str, ...] = ()  # the fact tables it read (factlog.FACT_TABLES)


# The fact tables each rule reads: `log explain` cites the log entries that wrote them.
# (The cap counts attempts, which the decisions' own entries record.)
RULE_FACTS = {
    "prospecting_consent": ("consents", "opposition"),
    "contract_in_progress": ("contracts",),
    "refusal_cooldown": ("refusals",),
    "calling_hours": ("appointments",),
    "opposition_listed": ("opposition",),
}


@dataclass(slots=True)  # built once per call and read by decide only: see Context
class FrenchEvaluation:
    caller_out: str | None
    callee: str | None
    territory: str | None
    ruleset: str
    reasons: tuple[Reason, ...]
    outcomes: tuple[RuleOutcome, ...] = ()


class FrenchPack:
    name = "fr"

    def history_days(self, settings: RuleSettings) -> int:
        """How far back the facts must reach: the cap window or the cool-down, plus the
        widest UTC offset between a callee's local dates and UTC."""
        return max(CAP_DAYS, settings.refusal_cooldown_days + 1) + 2

    def evaluate(
        self, request: CallRequest, facts: Facts, now: datetime, config: Config,
        *, explain: bool = False,
    ) -> FrenchEvaluation:  # fmt: skip
        """Every rule's verdict on the call; with ``explain``, each rule's outcome too
        (for `callgate log explain`; a gate does not pay for it)."""
        settings = config.rules
        callee = parse_number(request.callee)
        local_now = now.astimezone(callee.territory.zone if callee.territory else _PARIS)
        ruleset = ruleset_for(local_now.date())
        territory = callee.territory.value if callee.territory else callee.region
        if is_emergency(callee, settings):
            emergency = Reason("EMERGENCY", "emergency number: never held", blocking=False)
            return FrenchEvaluation(request.caller, callee.display, None, ruleset, (emergency,))

        purpose = request.purpose or settings.default_purpose
        company = config.company(request.company)
        caller = parse_number(request.caller)
        reasons: list[Reason] = []
        if company is None:
            reasons.append(_unknown_company(request, config))
        outcome = caller_id_outcome(
            caller, purpose, company, _callee_key(callee),
            callee.territory, settings.npv_prefixes,
        )  # fmt: skip
        reasons.extend(outcome.reasons)
        destination = destination_in_scope(callee, settings)
        if destination is not None:
            reasons.append(destination)
        applies = callee.is_french and purpose.is_solicitation and destination is None
        found: list[Reason | None] = []
        if applies:
            ctx = Context(
                request, purpose, caller, callee, company, facts, now, local_now, settings,
                ruleset,
            )  # fmt: skip
            found = [rule(ctx) for rule in SOLICITATION_RULES]
            reasons.extend(reason for reason in found if reason is not None)
        outcomes: tuple[RuleOutcome, ...] = ()
        if explain:
            outcomes = (
                RuleOutcome("caller_id", _doc(caller_id_outcome), True, outcome.reasons),
                RuleOutcome("destination_in_scope", _doc(destination_in_scope), True,
                            (destination,) if destination else ()),
                *(RuleOutcome(rule.__name__, _doc(rule), applies,
                              (reason,) if reason else (), RULE_FACTS.get(rule.__name__, ()))
                  for rule, reason in zip_longest(SOLICITATION_RULES, found)),
            )  # fmt: skip
        return FrenchEvaluation(
            outcome.caller_out, callee.e164, territory, ruleset, tuple(reasons), outcomes
        )


@cache  # asked for every rule of every call: read each docstring once
def _doc(function: Callable[..., object]) -> str:
    return (function.__doc__ or "").strip().splitlines()[0]


def _callee_key(callee: Number) -> str:
    return callee.e164 or callee.raw


def _unknown_company(request: CallRequest, config: Config) -> Reason:
    if request.company is None:
        known = ", ".join(config.companies) or "none configured"
        return Reason("UNKNOWN_COMPANY", f"no company given and no single default ({known})")
    return Reason("UNKNOWN_COMPANY", f"company {request.company!r} is not in the configuration")


PACK = FrenchPack()
