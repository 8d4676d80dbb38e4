"""Core benchmark: decide() alone, and decide + SQLite check-and-record on a big store.

    python -m bench.core                      # 10 million attempts, 1 million consents
    python -m bench.core --attempts 1000000   # quicker

Fills a fresh SQLite file (kept under --workdir for reruns), then measures, in one run:
- decide() alone, on in-memory facts;
- check_call(record=False), a dry run that reads the facts;
- check_call(record=True), the gate's atomic read-decide-record.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import platform
import random
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callgate.collector import tune_collector
from callgate.config import parse_config
from callgate.gate import check_call
from callgate.model import Attempt, CallRequest, Consent, ConsentScope, Facts, Purpose
from callgate.policy import decide
from callgate.store import open_store
from callgate.store.base import to_micros

NOW = datetime(2026, 11, 23, 10, 30, tzinfo=UTC)
DEFAULT_WORKDIR = "/var/tmp/callgate-bench"
CONFIG = parse_config(
    {"companies": [{"id": "acme", "numbers": ["+33948000001", "+33947700001", "+33140000000"]}]}
)


def callee(i: int) -> str:
    return f"+336{10_000_000 + i:08d}"


def fill(path: Path, attempts: int, consents: int, callees: int) -> None:
    asyncio.run(_migrate(path))
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    rng = random.Random(1)
    start = to_micros(NOW - timedelta(days=400))
    span = to_micros(NOW) - start
    t0 = time.perf_counter()
    batch = 500_000
    for offset in range(0, attempts, batch):
        rows = (
            ("acme", callee(rng.randrange(callees)), start + rng.randrange(span), "prospecting")
            for _ in range(min(batch, attempts - offset))
        )
        db.executemany(
            "INSERT INTO attempts (company, callee, at, purpose) VALUES (?, ?, ?, ?)", rows
        )
        db.commit()
        print(f"  {offset + batch:,} attempts ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    given = to_micros(NOW - timedelta(days=100))
    db.executemany(
        "INSERT INTO consents (company, callee, scope, given_at) VALUES (?, ?, ?, ?)",
        (("acme", callee(i), "prospecting", given) for i in range(consents)),
    )
    db.commit()
    db.execute("ANALYZE")
    db.close()


def warm_os_cache(path: Path) -> None:
    """Read the file once, so that a run does not depend on what the one before it read."""
    with path.open("rb") as file:
        while file.read(1 << 20):
            pass


@contextlib.contextmanager
def kept_as_filled(path: Path) -> Iterator[None]:
    """Remove what the measures record: the next run measures the same store, not one
    grown by every run before it."""
    with sqlite3.connect(path) as db:
        (attempt,) = db.execute("SELECT coalesce(max(rowid), 0) FROM attempts").fetchone()
        (seq,) = db.execute("SELECT coalesce(max(seq), 0) FROM decisions").fetchone()
    try:
        yield
    finally:
        with sqlite3.connect(path) as db:
            db.execute("DELETE FROM attempts WHERE rowid > ?", (attempt,))
            db.execute("DELETE FROM decisions WHERE seq > ?", (seq,))


async def _migrate(path: Path) -> None:
    store = await open_store(str(path))
    await store.close()


def bench_decide(seconds: float) -> float:
    facts = Facts(
        attempts=tuple(Attempt(NOW - timedelta(days=d), Purpose.PROSPECTING) for d in (3, 9)),
        consents=(Consent(ConsentScope.PROSPECTING, NOW - timedelta(days=100)),),
    )
    requests = [CallRequest("0612345678", callee(i), "acme") for i in range(1000)]
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for request in requests:
            decide(request, facts, NOW, CONFIG)
        done += len(requests)
    return done / (time.perf_counter() - t0)


async def bench_store(
    path: Path, callees: int, seconds: float, record: bool, synchronous: str = "full",
    concurrency: int = 1,
) -> float:  # fmt: skip
    """Decisions/s on random callees, from ``concurrency`` deciders sharing one store
    object, as a gate's calls do (with more than one, recorded decisions share commits)."""
    store = await open_store(str(path), synchronous=synchronous)
    # A fresh draw each run: the file is kept between runs, and a callee drawn again and
    # again would reach its cap, turning the measure into one of rejections.
    rng = random.Random()
    done, t0 = 0, time.perf_counter()

    async def decider() -> None:
        nonlocal done
        while time.perf_counter() - t0 < seconds:
            request = CallRequest("+33948000001", callee(rng.randrange(callees)), "acme")
            await check_call(store, CONFIG, request, NOW, record=record)
            done += 1

    main0, process0 = time.thread_time(), time.process_time()
    try:
        await asyncio.gather(*(decider() for _ in range(concurrency)))
    finally:
        await store.close()
    seconds = time.perf_counter() - t0
    main = time.thread_time() - main0
    CPU_SPLIT[(record, synchronous, concurrency)].append(
        (main / done, (time.process_time() - process0 - main) / done)
    )
    return done / seconds


# CPU per decision of the event loop's thread and of the others (SQLite's), per measure.
CPU_SPLIT: collections.defaultdict[tuple[bool, str, int], list[tuple[float, float]]] = (
    collections.defaultdict(list)
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10_000_000)
    parser.add_argument("--consents", type=int, default=1_000_000)
    parser.add_argument("--callees", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0, help="per measure and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default=DEFAULT_WORKDIR)
    parser.add_argument("--concurrency", type=int, default=64, help="deciders, gate-like row")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"core-{args.attempts}-{args.consents}.db"
    if not path.exists():
        print(f"filling {path}...", file=sys.stderr)
        t0 = time.perf_counter()
        fill(path, args.attempts, args.consents, args.callees)
        print(f"filled in {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    tune_collector()  # as the services run (`callgate run`, `agi`, `api`)
    warm_os_cache(path)
    with kept_as_filled(path):
        # Warm the page cache, then alternate the store measures in rounds so that the
        # machine's noise falls on all of them alike; report each one's median.
        asyncio.run(bench_store(path, args.callees, args.seconds / 2, record=False))
        measures = (
            ("check_call, dry run (facts read + decide)", False, "full", 1),
            ("check_call --record, synchronous=full, one at a time", True, "full", 1),
            ("check_call --record, synchronous=normal, one at a time", True, "normal", 1),
            (f"check_call --record, synchronous=full, {args.concurrency} concurrent",
             True, "full", args.concurrency),
        )  # fmt: skip
        rounds: dict[str, list[float]] = {name: [] for name, *_ in measures}
        decide_rates = []
        for _ in range(args.rounds):
            decide_rates.append(bench_decide(args.seconds))
            for name, record, synchronous, concurrency in measures:
                rate = asyncio.run(bench_store(
                    path, args.callees, args.seconds, record, synchronous, concurrency
                ))  # fmt: skip
                rounds[name].append(rate)
    decide_rate = statistics.median(decide_rates)
    size_mb = path.stat().st_size / 1e6
    python = platform.python_version()
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    print(f"store: {args.attempts:,} attempts, {args.consents:,} consents, {size_mb:,.0f} MB")
    print(f"median of {args.rounds} rounds of {args.seconds:g} s each\n")
    print("| measure | decisions/s |")
    print("|---|---|")
    print(f"| decide() alone | {decide_rate:,.0f} |")
    for name, rates in rounds.items():
        print(f"| {name} | {statistics.median(rates):,.0f} |")
    print("\nCPU per decision, median over the rounds: the event loop's thread (Python: the")
    print("deciders, decide, the log entry) and the others (SQLite's thread: statements, commit)")
    print("\n| measure | event loop µs | SQLite thread µs |\n|---|---|---|")
    for name, record, synchronous, concurrency in measures:
        split = CPU_SPLIT[(record, synchronous, concurrency)]
        main = statistics.median(m for m, _ in split) * 1e6
        other = statistics.median(o for _, o in split) * 1e6
        print(f"| {name} | {main:.0f} | {other:.0f} |")


if __name__ == "__main__":
    main()
