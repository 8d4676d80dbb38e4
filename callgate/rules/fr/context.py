"""What every French rule reads: the call, its callee, the facts and the instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from callgate.calendar import HolidayReading
from callgate.config import Company, RuleSettings
from callgate.model import CallRequest, Facts, Purpose
from callgate.numbering import Number, Territory

__all__ = ["Context"]


# Not frozen: built once per call and read by the rules only, it need not pay a frozen
# dataclass's slower constructor on every call.
@dataclass(slots=True)
class Context:
    request: CallRequest
    purpose: Purpose
    caller: Number
    callee: Number
    company: Company | None
    facts: Facts
    now: datetime
    local_now: datetime  # ``now`` in the callee's time zone
    settings: RuleSettings
    ruleset: str

    @property
    def territory(self) -> Territory:
        """The callee's territory; only asked by rules that run for French callees."""
        assert self.callee.territory is not None
        return self.callee.territory

    @property
    def local_today(self) -> date:
        return self.local_now.date()

    @property
    def holiday_reading(self) -> HolidayReading:
        return HolidayReading(strict=self.settings.strict_holidays, dept=self.request.dept)
