"""The shell around ``decide`` that every front end shares: read, judge, record.

ARI, AGI, the CLI and the API build a CallRequest, read the clock, and call
``check_call``; none of them touches a rule.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from callgate import metrics
from callgate.config import Config
from callgate.dialplan import (
    GivenInputs,
    InputError,
    given_inputs,
    request_from_channel,
    unusable_call,
)
from callgate.model import CallRequest, Decision, Facts, Purpose, Reason, Verdict
from callgate.numbering import parse_number
from callgate.policy import decide
from callgate.rules import get_pack
from callgate.store import Store, StoreError

__all__ = [
    "GATE_CODES",
    "INPUT_INVALID",
    "CallDecider",
    "DecisionLine",
    "VariableReader",
    "check_call",
    "gate_error",
    "new_decision_id",
    "resolve_request",
]

log = logging.getLogger("callgate.gate")

# An input the dialplan set but the gate cannot use (a purpose it does not know, a
# misspelt argument): the call is refused for that, not judged on a default.
INPUT_INVALID = "INPUT_INVALID"

# The codes a gate gives when it judged nothing: no rule made them, so a replay skips them.
GATE_CODES = frozenset({"GATE_ERROR", INPUT_INVALID})

# Reads one channel variable ("" when unset); raises when the PBX does not answer.
VariableReader = Callable[[str], Awaitable[str]]


def new_decision_id() -> str:
    return str(uuid.uuid4())


def resolve_request(request: CallRequest, config: Config) -> CallRequest:
    """Fill in what the configuration defaults: the only company, the default purpose."""
    company = config.company(request.company)
    company_id = company.id if company else request.company
    purpose = request.purpose or config.rules.default_purpose
    if company_id == request.company and purpose is request.purpose:
        return request  # already resolved: spare a copy on every call
    return replace(request, company=company_id, purpose=purpose)


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
        return decide(request, facts, now, config, decision_id=decision_id)

    try:
        return await store.decide(
            request.company or "", callee.e164 or callee.display, now, since, judge,
            record=record, channel=channel,
        )  # fmt: skip
    except sqlite3.Error as error:
        raise StoreError(f"the store failed: {error}") from error


class CallDecider:
    """What a gate does for each call: decide within a deadline, with at most so many
    decisions at once, and fail closed on anything else. Shared by the ARI and AGI gates.
    """

    def __init__(self, store: Store, config: Config, *, max_concurrent: int, deadline: float):
        self.store = store
        self.config = config
        self.deadline = deadline
        self._slots = asyncio.Semaphore(max_concurrent)
        self._logging: set[asyncio.Task[None]] = set()
        self._outage_since: float | None = None  # the store stopped answering then

    async def decide(
        self, caller: str, callee: str, now: datetime, channel: str | None,
        *, arguments: Sequence[str] | None = (), carried: Mapping[str, str] | None = None,
        read_variable: VariableReader | None = None,
    ) -> Decision:  # fmt: skip
        """Decide one call from what the dialplan handed over: the gate's ``arguments``
        (None: they were given but are lost), the channel variables the event ``carried``,
        and ``read_variable`` for the inputs neither gave. An input that cannot be read
        refuses the call (GATE_ERROR); so does running out of ``deadline``, reads and
        decision together."""
        started = time.perf_counter()
        decision = await self._decide(caller, callee, now, channel, arguments, carried,
                                      read_variable)  # fmt: skip
        metrics.observe(decision, time.perf_counter() - started)
        return decision

    async def _decide(
        self, caller: str, callee: str, now: datetime, channel: str | None,
        arguments: Sequence[str] | None, carried: Mapping[str, str] | None,
        read_variable: VariableReader | None,
    ) -> Decision:  # fmt: skip
        unread = unusable_call(caller, callee)
        if arguments is None:
            return self._failed(unread, now, "the gate's arguments could not be recovered",
                                channel)  # fmt: skip
        try:
            given = given_inputs(arguments, carried)
        except InputError as error:
            return self._failed(unread, now, str(error), channel, code=INPUT_INVALID)
        deadline = asyncio.get_running_loop().time() + self.deadline
        try:
            async with asyncio.timeout_at(deadline):
                variables = await _read_missing(given, read_variable)
        except TimeoutError:
            return self._failed(unread, now, f"inputs not read within {self.deadline:g} s",
                                channel)  # fmt: skip
        except _Unreadable as error:
            return self._failed(unread, now, str(error), channel)
        try:
            request = request_from_channel(caller, callee, variables)
        except InputError as error:
            return self._failed(_loggable(caller, callee, variables), now, str(error), channel,
                                code=INPUT_INVALID)  # fmt: skip
        try:
            async with asyncio.timeout_at(deadline), self._slots:
                decision = await check_call(
                    self.store, self.config, request, now, record=True, channel=channel
                )
        except TimeoutError:
            return self._failed(request, now, f"no decision within {self.deadline:g} s", channel)
        except StoreError as error:
            metrics.STORE_ERRORS.inc()
            metrics.STORE_UP.set(0)
            if self._outage_since is None:  # once per outage, not once per call
                self._outage_since = time.monotonic()
                log.error("the store does not answer; refusing calls until it does: %s", error)
            return self._failed(request, now, str(error), channel, store_down=True)
        except Exception as error:  # fail closed on anything unforeseen, and say what
            log.exception("decision failed on channel %s", channel)
            return self._failed(request, now, f"{type(error).__name__}: {error}", channel)
        metrics.STORE_UP.set(1)
        if self._outage_since is not None:
            down = time.monotonic() - self._outage_since
            log.warning("the store answers again after %.1f s", down)
            self._outage_since = None
        return decision

    def _failed(
        self, request: CallRequest, now: datetime, message: str, channel: str | None,
        *, store_down: bool = False, code: str = "GATE_ERROR",
    ) -> Decision:  # fmt: skip
        decision = gate_error(resolve_request(request, self.config), now, message, code=code)
        if store_down:
            return decision  # nowhere to log it; the gate's own log has it
        # Log it in the store too when the store can take it, without holding the call.
        task = asyncio.create_task(self._record(decision, channel))
        self._logging.add(task)
        task.add_done_callback(self._logging.discard)
        return decision

    async def _record(self, decision: Decision, channel: str | None) -> None:
        try:
            async with asyncio.timeout(30):
                await self.store.record_decision(decision, channel)
        except Exception as error:
            log.warning("gate error of channel %s not stored: %s", channel, error)

    async def close(self) -> None:
        if self._logging:
            await asyncio.wait(set(self._logging), timeout=5)


class DecisionLine:
    """One line per decision, the same for every gate; a gate error says what failed.

    Written only if the log shows INFO: a gate logging at WARNING builds no text per call."""

    __slots__ = ("channel", "decision", "seconds")

    def __init__(self, decision: Decision, channel: str | None, seconds: float) -> None:
        self.decision, self.channel, self.seconds = decision, channel, seconds

    def __str__(self) -> str:
        decision = self.decision
        errors = "".join(f" error={r.message!r}" for r in decision.reasons
                         if r.code in GATE_CODES)  # fmt: skip
        return (
            f"{decision.verdict.value.upper()} {decision.caller_in or '-'} -> "
            f"{decision.callee or '-'} as {decision.caller_out or '-'} [{','.join(decision.codes)}]"
            f" retry={decision.retry_after.isoformat() if decision.retry_after else '-'}"
            f" id={decision.decision_id} channel={self.channel or '-'}"
            f" {self.seconds * 1000:.1f} ms{errors}"
        )


class _Unreadable(Exception):
    """A channel variable the gate asked for and did not get."""


async def _read_missing(given: GivenInputs, read: VariableReader | None) -> dict[str, str]:
    """The given inputs, plus the missing ones read from the channel, all at once; the
    first that fails stops the others."""
    if not given.missing:
        return dict(given.values)
    if read is None:  # a front end that cannot ask the channel must not guess either
        raise _Unreadable(f"no way to read {', '.join(given.missing)} from the channel")

    async def one(name: str) -> str:
        try:
            return await read(name)
        except Exception as error:
            raise _Unreadable(f"cannot read {name} from the channel: {error}") from error

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(one(name)) for name in given.missing]
    except ExceptionGroup as failed:  # one() made every failure an _Unreadable
        raise failed.exceptions[0] from None
    return {
        **given.values,
        **{name: task.result() for name, task in zip(given.missing, tasks, strict=True)},
    }


def _loggable(caller: str, callee: str, variables: Mapping[str, str]) -> CallRequest:
    """What a call with an unusable input is logged as: every usable input kept, the
    purpose dropped when it is the culprit, only the cut numbers when another one is."""
    try:
        return request_from_channel(caller, callee, {**variables, "CALLGATE_PURPOSE": ""})
    except InputError:
        return unusable_call(caller, callee)


def gate_error(
    request: CallRequest, now: datetime, message: str, ruleset: str = "",
    *, code: str = "GATE_ERROR",
) -> Decision:  # fmt: skip
    """The fail-closed verdict when the gate itself cannot decide, or cannot use what the
    dialplan gave (``code`` INPUT_INVALID)."""
    return Decision(
        verdict=Verdict.REJECT,
        caller_in=request.caller,
        caller_out=None,
        callee=parse_number(request.callee).e164,
        territory=None,
        purpose=request.purpose or Purpose.PROSPECTING,
        reasons=(Reason(code, message),),
        retry_after=None,
        ruleset=ruleset,
        company=request.company,
        campaign=request.campaign,
        decided_at=now,
        decision_id=new_decision_id(),
        callee_in=request.callee,
        dept=request.dept,
    )
