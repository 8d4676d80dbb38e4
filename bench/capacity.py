"""Store capacity: recorded decisions per second on SQLite and on PostgreSQL, one run.

    python -m bench.capacity                      # 10 million attempts in each store
    python -m bench.capacity --attempts 1000000 --concurrency 8

Fills a SQLite file with attempts (400 days over 1 M callees) and consents, copies it into
a fresh PostgreSQL with `callgate db copy` (timed: the migration's cost), then
runs the gate's atomic read-decide-record (`check_call(record=True)`) from N concurrent
tasks for S seconds on each, alternating rounds. PostgreSQL is a fresh local cluster
(Debian's package, started by the harness, fsync on); SQLite uses synchronous = "full".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import time
from pathlib import Path

from bench.core import CONFIG, NOW, callee, fill, kept_as_filled
from callgate.gate import check_call
from callgate.model import CallRequest
from callgate.store import open_store
from harness.gate import callgate_command
from harness.postgres import PostgresServer

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "callgate.toml"


def copy_to_postgres(sqlite: Path, url: str) -> float:
    """Fill PostgreSQL with the very records of the SQLite file, by `callgate db copy`."""
    env = {**os.environ, "CALLGATE_DB": str(sqlite), "CALLGATE_CONFIG": str(EXAMPLE)}
    started = time.perf_counter()
    subprocess.run([*callgate_command(), "db", "copy", "--to", url], env=env, check=True)
    return time.perf_counter() - started


async def rate(url: str, callees: int, seconds: float, concurrency: int) -> float:
    store = await open_store(url)
    rng = random.Random()  # fresh callees each round: the same ones would reach their cap
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            request = CallRequest("+33948000001", callee(rng.randrange(callees)), "acme")
            await check_call(store, CONFIG, request, NOW, record=True)
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    await store.close()
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=10_000_000)
    parser.add_argument("--consents", type=int, default=1_000_000)
    parser.add_argument("--callees", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workdir", default="/var/tmp/callgate-bench")
    args = parser.parse_args()

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sqlite = workdir / f"core-{args.attempts}-{args.consents}.db"
    if not sqlite.exists():
        fill(sqlite, args.attempts, args.consents, args.callees)
    postgres = PostgresServer(fsync=True)
    postgres.start()
    try:
        pg_url = postgres.new_database()
        copied = copy_to_postgres(sqlite, pg_url)
        print(f"PostgreSQL filled by `callgate db copy` in {copied:.0f} s", flush=True)
        results: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
        with kept_as_filled(sqlite):
            for _ in range(args.rounds):
                for name, url in (("sqlite", str(sqlite)), ("postgresql", pg_url)):
                    results[name].append(
                        asyncio.run(rate(url, args.callees, args.seconds, args.concurrency))
                    )
                    print(f"  {name}: {results[name][-1]:,.0f}/s", flush=True)
    finally:
        postgres.stop()
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; {args.attempts:,} attempts, "
          f"{args.consents:,} consents; {args.concurrency} concurrent deciders; median of "
          f"{args.rounds} rounds of {args.seconds:g} s\n")  # fmt: skip
    print("| store | recorded decisions/s |\n|---|---|")
    for name, rates in results.items():
        print(f"| {name} | {statistics.median(rates):,.0f} |")


if __name__ == "__main__":
    main()
