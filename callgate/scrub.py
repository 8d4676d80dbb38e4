"""Pre-checking a whole call list before a campaign: one verdict per number, streamed.

The same ``decide`` as a call, on the facts known now, read a batch of callees at a time;
nothing is recorded (a scrub is not a call). Memory stays flat whatever the list's size.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from callgate.config import Config
from callgate.gate import resolve_request
from callgate.model import CallRequest, Facts, Purpose
from callgate.numbering import parse_number
from callgate.policy import decide
from callgate.rules import get_pack
from callgate.scrub_workers import ScrubWorkers
from callgate.store import Store

__all__ = ["judge_batch", "scrub"]

BATCH = 500


async def scrub(
    store: Store,
    config: Config,
    numbers: AsyncIterable[str],
    *,
    caller: str,
    company: str | None,
    purpose: Purpose | None,
    now: datetime,
    workers: ScrubWorkers | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """One result per number, in the list's order; with ``workers``, batches are judged
    in their processes, a few ahead of the one being answered."""
    template = resolve_request(CallRequest(caller, "", company, purpose), config)
    since = now - timedelta(days=get_pack(config.rules.pack).history_days(config.rules))

    def judge(batch: list[str]) -> asyncio.Future[list[dict[str, Any]]]:
        work = (
            judge_batch(store, config, template, batch, now, since) if workers is None
            else workers.judge(template, batch, now, since)
        )  # fmt: skip
        return asyncio.ensure_future(work)

    ahead = 1 if workers is None else 2 * workers.count
    pending: deque[asyncio.Future[list[dict[str, Any]]]] = deque()
    try:
        async for batch in _batches(numbers):
            pending.append(judge(batch))
            if len(pending) >= ahead:
                for result in await pending.popleft():
                    yield result
        while pending:
            for result in await pending.popleft():
                yield result
    finally:
        for waiting in pending:  # the reader went away: judge nothing more for it
            waiting.cancel()


async def _batches(numbers: AsyncIterable[str]) -> AsyncIterator[list[str]]:
    batch: list[str] = []
    async for raw in numbers:
        batch.append(raw)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


async def judge_batch(
    store: Store, config: Config, template: CallRequest, batch: list[str], now: datetime,
    since: datetime,
) -> list[dict[str, Any]]:  # fmt: skip
    callees = [parse_number(raw).e164 for raw in batch]
    known = await store.facts_many(template.company or "", [c for c in callees if c], now, since)
    results = []
    for raw, callee in zip(batch, callees, strict=True):
        request = CallRequest(
            template.caller, raw, template.company, template.purpose, template.campaign
        )
        decision = decide(request, known.get(callee or "", Facts()), now, config)
        results.append({
            "to": raw,
            "callee": decision.callee,
            "verdict": decision.verdict.value,
            "reasons": [r.code for r in decision.reasons if r.blocking],
            "retry_after": decision.retry_after.isoformat() if decision.retry_after else None,
        })  # fmt: skip
    return results
