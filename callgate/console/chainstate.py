"""The decision log's chain, watched: verified in the background, then kept up to date.

On startup the whole chain is verified from its anchor; afterwards, every ``interval``
seconds, only the entries recorded since, continuing from the verifier's state, so that
watching a log of millions of entries costs a few reads a minute. Increments cannot see an
entry edited after it was verified: every ``full_interval`` seconds, and whenever
``verify_now`` asks, the whole chain is walked again from the anchor. A break is kept until
a full verification no longer finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from callgate.api import first_line
from callgate.auditlog import ChainBreak, ChainVerifier
from callgate.store import Store
from callgate.store.base import LogQuery

__all__ = ["CHAIN", "ChainState", "ChainWatch", "start", "stop"]

log = logging.getLogger("callgate.console")
# The chain holds the decisions and the writes of facts: both are walked.
ALL = LogQuery(kind="all")

# Entries per read: small enough that hashing one batch holds the event loop only a few
# milliseconds, so that checks and pages are answered while a long verification runs.
BATCH = 1000
INTERVAL = 60.0  # seconds between two incremental checks
# Seconds from the end of one full verification to the start of the next: an entry edited
# behind the store's back is found within this, without anyone asking.
FULL_INTERVAL = 3600.0


@dataclass(frozen=True)
class ChainState:
    checked_at: datetime | None  # when the last verification finished
    count: int  # entries verified
    last_seq: int  # up to this seq
    broken: ChainBreak | None  # where it breaks
    running: bool  # a verification is under way (or asked for)
    progress: tuple[int, int] | None  # (entries done, entries to do) while running
    # When the last verification of the whole chain from its anchor finished (None: none
    # yet); ``checked_at`` may be later, from a check of the newer entries only.
    full_checked_at: datetime | None = None


class ChainWatch:
    """Verifies the store's chain in a background task; ``state()`` says how it stands."""

    def __init__(
        self, store: Store, *, interval: float = INTERVAL, batch: int = BATCH,
        full_interval: float = FULL_INTERVAL,
    ) -> None:  # fmt: skip
        self._store = store
        self._interval = interval
        self._full_interval = full_interval
        self._full_due: float | None = None  # time.monotonic() of the next periodic pass
        self._full_checked_at: datetime | None = None
        self._batch = batch
        self._verifier: ChainVerifier | None = None  # None: no full verification yet
        self._anchor: tuple[int, str] | None = None  # the anchor the verifier started from
        self._broken: ChainBreak | None = None
        self._checked_at: datetime | None = None
        self._progress: tuple[int, int] | None = None
        self._full_wanted = True  # the first verification walks the whole chain
        self._full_running = False  # increments are quick and not shown as running
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def state(self) -> ChainState:
        verifier = self._verifier
        return ChainState(
            checked_at=self._checked_at,
            count=verifier.count if verifier else 0,
            last_seq=_last_seq(verifier),
            broken=self._broken,
            running=self._full_wanted or self._full_running,
            progress=self._progress,
            full_checked_at=self._full_checked_at,
        )

    def nudge(self) -> None:
        """Checks the entries recorded since the last check, now rather than within the
        minute: a page about the chain is being looked at."""
        self._wake.set()

    async def verify_now(self) -> None:
        """Starts a full verification from the anchor, in the background."""
        self._full_wanted = True
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="chain-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        while True:
            if self._full_due is not None and time.monotonic() >= self._full_due:
                self._full_wanted = True  # due again; retried each interval until it ends
            try:
                await self._verify(full=self._full_wanted or self._verifier is None)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store is down: say so, and try again later
                log.warning("chain verification stopped: %s", first_line(error))
            finally:
                self._progress = None
                self._full_running = False
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._pause()):
                    await self._wake.wait()
            self._wake.clear()

    def _pause(self) -> float:
        """Seconds until the next check: the next increment, or the full pass due first.
        A full pass overdue (it failed: the store is down) is tried again an interval on,
        not at once in a loop."""
        until_full = None if self._full_due is None else self._full_due - time.monotonic()
        if until_full is None or until_full <= 0:
            return self._interval
        return min(self._interval, until_full)

    async def _verify(self, *, full: bool) -> None:
        if full:
            self._full_running = True  # before any wait: never a moment shown idle
        anchor = await self._store.log_anchor()
        verifier = self._verifier
        if not full and self._broken is not None:
            return  # a broken chain stays broken until it is verified whole again
        whole = full or verifier is None or _purged_past(anchor, verifier)
        if whole:
            self._full_wanted, self._full_running = False, full
            verifier, self._anchor = ChainVerifier(anchor), anchor
        start = _last_seq(verifier)
        total = max(0, await self._newest_seq() - start)
        if full:
            self._progress = (0, total)
        broken = await self._walk(verifier, start, total)
        if broken is not None and await self._store.log_anchor() != self._anchor:
            # A purge cut the log's start while it was read: what looks removed was
            # purged. Walk it again from the new anchor.
            anchor = await self._store.log_anchor()
            verifier, self._anchor = ChainVerifier(anchor), anchor
            start = _last_seq(verifier)
            broken = await self._walk(verifier, start, max(0, await self._newest_seq() - start))
        if self._full_wanted:
            return  # asked again meanwhile: the next pass starts over and reports
        self._verifier, self._broken = verifier, broken
        self._checked_at = datetime.now(UTC)
        if whole:  # every entry the store holds, walked from its anchor
            self._full_checked_at = self._checked_at
            self._full_due = time.monotonic() + self._full_interval

    async def _walk(self, verifier: ChainVerifier, after: int, total: int) -> ChainBreak | None:
        done = 0
        while True:
            batch = await self._store.log_entries(ALL, after_seq=after, limit=self._batch)
            if not batch:
                return None
            for entry in batch:
                broken = verifier.feed(entry)
                if broken is not None:
                    return broken
            done += len(batch)
            after = batch[-1]["seq"]
            if self._full_running:
                self._progress = (done, max(total, done))
            if self._full_wanted and self._verifier is not None:
                return None  # a full verification was asked for: it starts over
            await asyncio.sleep(0)  # let the API answer between two batches

    async def _newest_seq(self) -> int:
        newest = await self._store.log_entries(ALL, limit=1, last=True)
        return int(newest[0]["seq"]) if newest else 0


def _last_seq(verifier: ChainVerifier | None) -> int:
    """The seq of the last entry ``verifier`` vouches for (the anchor's, before any)."""
    if verifier is None or verifier.expected_seq is None:
        return 0
    return verifier.expected_seq - 1


def _purged_past(anchor: tuple[int, str] | None, verifier: ChainVerifier) -> bool:
    """Whether a purge removed entries the verifier has not seen yet."""
    return anchor is not None and anchor[0] > _last_seq(verifier)


CHAIN: web.AppKey[ChainWatch] = web.AppKey("chain_watch", ChainWatch)


async def start(app: web.Application) -> None:
    """Registers the app's ChainWatch and starts it (the audit page's startup hook)."""
    from callgate.api import STORE

    watch = ChainWatch(app[STORE], interval=INTERVAL, full_interval=FULL_INTERVAL)
    app[CHAIN] = watch
    watch.start()


async def stop(app: web.Application) -> None:
    if CHAIN in app:
        await app[CHAIN].stop()
