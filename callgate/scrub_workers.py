"""Scrubbing a call list on several cores: batches judged in worker processes.

A scrub is CPU work in Python (validating each number, reading its facts, ``decide``),
and one process uses one core. With ``api.scrub_workers`` above 1, `callgate api` starts
that many worker processes; each loads the same configuration file, opens its own
connection to the same store, and judges whole batches with the very function the
in-process scrub uses. The list is still read and answered in order by the API.

A worker that dies fails the scrub with an error (never a partial list passed off as
whole); the pool is then started afresh for the next one.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.util
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from pathlib import Path
from typing import Any

from callgate.collector import tune_collector
from callgate.config import Config, ConfigError, load_config
from callgate.model import CallRequest
from callgate.store import Store, StoreError, open_store

__all__ = ["ScrubWorkers"]

Results = list[dict[str, Any]]


class ScrubWorkers:
    """A pool of worker processes that judge scrub batches."""

    def __init__(self, config_path: Path, store_url: str, count: int) -> None:
        self.count = count
        self._config_path = config_path
        self._store_url = store_url
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: a forked copy of a running event loop and its threads is
            # not safe to use.
            self._pool = ProcessPoolExecutor(
                self.count,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(self._config_path, self._store_url, os.getpid()),
            )
        return self._pool

    async def start(self) -> None:
        """Start every worker now, so that a bad configuration or store stops start-up and
        the first list does not wait for them."""
        loop = asyncio.get_running_loop()
        executor = self._executor()
        try:
            await asyncio.gather(
                *(loop.run_in_executor(executor, _ready) for _ in range(self.count))
            )
        except BrokenProcessPool:
            self.close()
            raise StoreError("the scrub workers could not start (the reason is above)") from None

    async def judge(
        self, template: CallRequest, batch: list[str], now: datetime, since: datetime
    ) -> Results:
        """One batch's results, in its order, from whichever worker is free."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self._executor(), _judge_in_worker, template, batch, now, since
            )
        except BrokenProcessPool:
            self.close()  # the next scrub starts a fresh pool
            raise StoreError("a scrub worker process died; the list was not finished") from None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


# ---------------------------------------------------------------- in the worker

_worker: tuple[asyncio.AbstractEventLoop, Store, Config] | None = None


def _start_worker(config_path: Path, store_url: str, api: int) -> None:
    global _worker
    loop = asyncio.new_event_loop()
    try:
        config = load_config(config_path)
        store = loop.run_until_complete(open_store(store_url, synchronous=config.synchronous))
    except (ConfigError, StoreError) as error:
        # One line, not the pool's traceback; the API sees the pool broken and stops.
        print(f"callgate: error: scrub worker: {error}", file=sys.stderr, flush=True)
        os._exit(2)
    _worker = (loop, store, config)
    # A worker must not outlive an API killed outright (nothing would ever stop it), even
    # one killed while this worker was still starting.
    threading.Thread(target=_exit_with, args=(api,), daemon=True).start()
    # The store's thread would keep the worker alive at exit; close it before threads
    # are joined.
    multiprocessing.util.Finalize(None, _stop_worker, exitpriority=10)
    tune_collector()


def _exit_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _ready() -> bool:
    return _worker is not None


def _stop_worker() -> None:
    if _worker is not None:
        loop, store, _ = _worker
        loop.run_until_complete(store.close())
        loop.close()


def _judge_in_worker(
    template: CallRequest, batch: list[str], now: datetime, since: datetime
) -> Results:
    from callgate.scrub import judge_batch  # the in-process scrub's own function

    assert _worker is not None, "the worker was not started"
    loop, store, config = _worker
    return loop.run_until_complete(judge_batch(store, config, template, batch, now, since))
