"""Rule packs: one module per jurisdiction, each with dated rule sets.

A pack evaluates one call at one instant and returns its findings; ``policy.decide``
turns findings into a verdict and a retry time, whatever the pack. Another country is
another pack registered here, not a fork of the French one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from callgate.config import Config, RuleSettings
from callgate.model import CallRequest, Facts, Reason

__all__ = ["Evaluation", "RulePack", "get_pack"]


class Evaluation(Protocol):
    caller_out: str | None
    callee: str | None
    territory: str | None
    ruleset: str
    reasons: tuple[Reason, ...]
    outcomes: tuple[Any, ...]  # each rule's outcome, when asked to explain


class RulePack(Protocol):
    name: str

    def history_days(self, settings: RuleSettings) -> int: ...

    def evaluate(
        self, request: CallRequest, facts: Facts, now: datetime, config: Config,
        *, explain: bool = False,
    ) -> Evaluation: ...  # fmt: skip


def get_pack(name: str) -> RulePack:
    if name == "fr":
        from callgate.rules import fr

        return fr.PACK
    raise KeyError(f"unknown rule pack {name!r}")
