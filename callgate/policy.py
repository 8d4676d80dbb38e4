"""The one place a verdict is made: ``decide(request, facts, now, config)``.

Pure: no I/O, no clock. The ARI and AGI gates, the CLI and the HTTP API read the clock
and the store, call this, and act on the Decision.
"""

from __future__ import annotations

from datetime import datetime

from callgate.config import Config
from callgate.model import CallRequest, Decision, Facts, Verdict
from callgate.rules import Evaluation, RulePack, get_pack

__all__ = ["decide"]

# Each step jumps to the latest lift of what still blocks; a handful always suffices
# (window -> cap lift -> window...). The bound only guards against a faulty rule.
_MAX_RETRY_STEPS = 64


def decide(
    request: CallRequest, facts: Facts, now: datetime, config: Config,
    *, decision_id: str | None = None,
) -> Decision:  # fmt: skip
    """Judge one call at ``now`` (timezone-aware) on the facts known for its callee; the
    Decision carries ``decision_id`` as given (the shell draws it)."""
    if now.tzinfo is None:
        raise ValueError("decide() needs a timezone-aware instant")
    pack = get_pack(config.rules.pack)
    evaluation = pack.evaluate(request, facts, now, config)
    blocked = _blocks(evaluation)
    retry_after = _retry_after(pack, request, facts, now, config, evaluation) if blocked else None
    return Decision(
        verdict=Verdict.REJECT if blocked else Verdict.ALLOW,
        caller_in=request.caller,
        caller_out=evaluation.caller_out,
        callee=evaluation.callee,
        territory=evaluation.territory,
        purpose=request.purpose or config.rules.default_purpose,
        reasons=evaluation.reasons,
        retry_after=retry_after,
        ruleset=evaluation.ruleset,
        company=request.company,
        campaign=request.campaign,
        decided_at=now,
        callee_in=request.callee,
        dept=request.dept,
        decision_id=decision_id,
    )


def _blocks(evaluation: Evaluation) -> bool:
    return any(reason.blocking for reason in evaluation.reasons)


def _retry_after(
    pack: RulePack,
    request: CallRequest,
    facts: Facts,
    now: datetime,
    config: Config,
    evaluation: Evaluation,
) -> datetime | None:
    """RULES-FR §5.3: the earliest instant from now at which every time rule passes.

    Every time-based rule blocks without a gap until its ``lifts_at``, so jumping to the
    latest lift and judging again never skips an instant that would pass.
    """
    at = now
    for _ in range(_MAX_RETRY_STEPS):
        blocking = [reason for reason in evaluation.reasons if reason.blocking]
        if not blocking:
            return at
        lifts = [reason.lifts_at for reason in blocking]
        if any(lift is None for lift in lifts):
            return None
        step = max(lift for lift in lifts if lift is not None)
        if step <= at:
            raise RuntimeError(f"rule lift {step} does not move past {at}")
        at = step
        evaluation = pack.evaluate(request, facts, at, config)
    return None
