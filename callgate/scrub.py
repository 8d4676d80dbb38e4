"""Pre-checking a whole call list before a campaign: one verdict per number, streamed.

The same ``decide`` as a call, on the facts known now, read a batch of callees at a time;
nothing is recorded (a scrub is not a call). Memory stays flat whatever the list's size.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterator
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

__all__ = ["MAX_LINE", "judge_batch", "list_entries", "scrub"]

BATCH = 500
# A line of a call list is a number, or a JSON line with "to" and a CRM's few fields. A
# longer line is no entry of a call list: it is read past, not kept.
MAX_LINE = 4096  # bytes


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


async def list_entries(chunks: AsyncIterable[bytes], limit: int = MAX_LINE) -> AsyncIterator[str]:
    """A call list's entries, in order: each line's number, or the "to" of a JSON line; blank
    lines skipped. A line over ``limit`` bytes comes out as a text that names it and is no
    number (DEST_INVALID); the cost stays linear whatever the input."""
    lines = _Lines(limit)
    too_long = f"(a line longer than {limit} bytes)"

    def entries(read: list[bytes | None]) -> Iterator[str]:
        for line in read:
            if entry := too_long if line is None else _entry(line):
                yield entry

    async for chunk in chunks:
        for entry in entries(lines.feed(chunk)):
            yield entry
    for entry in entries(lines.end()):
        yield entry


class _Lines:
    """Bytes in, lines out; a line over ``limit`` bytes comes out as None, its bytes
    dropped as they arrive (joining every chunk to a line that never ends is quadratic)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._head = bytearray()  # the line being read, when it is short enough to keep
        self._over = False  # the line being read is over the limit

    def feed(self, chunk: bytes) -> list[bytes | None]:
        parts = chunk.split(b"\n")
        tail = parts.pop()
        lines: list[bytes | None] = []
        if parts:
            lines.append(self._finish(parts[0]))
            lines.extend(part if len(part) <= self._limit else None for part in parts[1:])
        self._keep(tail)
        return lines

    def end(self) -> list[bytes | None]:
        return [self._finish(b"")] if self._head or self._over else []

    def _finish(self, piece: bytes) -> bytes | None:
        over = self._over or len(self._head) + len(piece) > self._limit
        line = None if over else bytes(self._head) + piece
        self._head.clear()
        self._over = False
        return line

    def _keep(self, piece: bytes) -> None:
        if self._over:
            return
        if len(self._head) + len(piece) > self._limit:
            self._over = True
            self._head.clear()
        else:
            self._head += piece


def _entry(raw: bytes) -> str:
    line = raw.decode("utf-8", "replace").strip()
    if line.startswith("{"):
        # Not JSON after all (or JSON too deep or with a huge integer): judged as given,
        # an invalid number gets DEST_INVALID.
        try:
            given = json.loads(line)
            to = str(given.get("to", "")) if isinstance(given, dict) else line
        except (ValueError, RecursionError):
            return line
        # A JSON escape may hold a lone surrogate, which no answer can encode.
        return to.encode("utf-8", "replace").decode()
    return line


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
