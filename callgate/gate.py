"""The shell around ``decide`` that every front end shares: read, judge, record.

ARI, AGI, the CLI and the API build a CallRequest, read the clock, and call
``check_call``; none of them touches a rule.
"""

from __future__ import annotations

import sqlite3
import uuid
from dataclasses import replace
from datetime import datetime, timedelta

from callgate.config import Config
from callgate.model import CallRequest, Decision, Facts, Purpose, Reason, Verdict
from callgate.numbering import parse_number
from callgate.policy import decide
from callgate.rules import get_pack
from callgate.store import Store, StoreError

__all__ = ["check_call", "gate_error", "log_line", "new_decision_id", "resolve_request"]


def new_decision_id() -> str:
    return str(uuid.uuid4())


def resolve_request(request: CallRequest, config: Config) -> CallRequest:
    """Fill in what the configuration defaults: the only company, the default purpose."""
    company = config.company(request.company)
    return replace(
        request,
        company=company.id if company else request.company,
        purpose=request.purpose or config.rules.default_purpose,
    )


async def check_call(
    store: Store,
    config: Config,
    request: CallRequest,
    now: datetime,
    *,
    record: bool,
    decision_id: str | None = None,
    channel: str | None = None,
) -> Decision:
    """Decide one call; with ``record``, store it and count it atomically if allowed.

    Raises StoreError when the store cannot answer; the caller fails closed.
    """
    request = resolve_request(request, config)
    decision_id = decision_id or new_decision_id()
    callee = parse_number(request.callee)
    since = now - timedelta(days=get_pack(config.rules.pack).history_days(config.rules))

    def judge(facts: Facts) -> Decision:
        return replace(decide(request, facts, now, config), decision_id=decision_id)

    try:
        return await store.decide(
            request.company or "", callee.e164 or callee.display, now, since, judge,
            record=record, channel=channel,
        )  # fmt: skip
    except sqlite3.Error as error:
        raise StoreError(f"the store failed: {error}") from error


def log_line(decision: Decision, channel: str | None, seconds: float) -> str:
    """One line per decision, the same for every gate."""
    return (
        f"{decision.verdict.value.upper()} {decision.caller_in or '-'} -> {decision.callee or '-'}"
        f" as {decision.caller_out or '-'} [{','.join(decision.codes)}]"
        f" retry={decision.retry_after.isoformat() if decision.retry_after else '-'}"
        f" id={decision.decision_id} channel={channel or '-'} {seconds * 1000:.1f} ms"
    )


def gate_error(request: CallRequest, now: datetime, message: str, ruleset: str = "") -> Decision:
    """The fail-closed verdict when the gate itself cannot decide."""
    return Decision(
        verdict=Verdict.REJECT,
        caller_in=request.caller,
        caller_out=None,
        callee=parse_number(request.callee).e164,
        territory=None,
        purpose=request.purpose or Purpose.PROSPECTING,
        reasons=(Reason("GATE_ERROR", message),),
        retry_after=None,
        ruleset=ruleset,
        company=request.company,
        campaign=request.campaign,
        decided_at=now,
        decision_id=new_decision_id(),
    )
