"""Scrub benchmark: a call list of a million numbers through `POST /v1/scrub`.

    python -m bench.scrub                 # 1,000,000 numbers
    python -m bench.scrub --numbers 100000

Starts the real `callgate api` on a fresh SQLite store holding 100,000 opposition entries
and 900,000 consents, streams the list up (one number per line, generated on the fly),
reads the verdicts as they stream back, and reports numbers per second and the API
process's peak resident memory (VmHWM), which must not grow with the list; without scrub
workers, then with --workers of them. Then the core alone: the same list through the
API's ``scrub`` in this process, on the same store, without and with workers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import aiohttp

from callgate.collector import tune_collector
from callgate.config import load_config
from callgate.scrub import scrub
from callgate.scrub_workers import ScrubWorkers
from callgate.store import open_store
from harness.sipp import free_port

TOKEN = "bench-token-0123456789abcdef"
AT = datetime.fromisoformat("2026-11-23T11:00:00+01:00")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "callgate.toml"


def number(i: int) -> str:
    return f"06{10_000_000 + i:08d}"


async def body(count: int) -> AsyncIterator[bytes]:
    chunk = 10_000
    for start in range(0, count, chunk):
        yield "".join(number(i) + "\n" for i in range(start, min(count, start + chunk))).encode()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(url: str, count: int) -> tuple[int, dict[str, int], float]:
    verdicts: dict[str, int] = {}
    lines = 0
    started = time.perf_counter()
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.post(
        f"{url}/v1/scrub?at={quote(AT.isoformat())}", data=body(count),
        headers={"Authorization": f"Bearer {TOKEN}"},
    ) as reply:  # fmt: skip
        reply.raise_for_status()
        shown = 0
        # Count in chunks: this client shares the machine's cores with the API.
        rest = b""
        async for chunk in reply.content.iter_chunked(1 << 16):
            data = rest + chunk
            cut = data.rfind(b"\n") + 1
            complete, rest = data[:cut], data[cut:]
            lines += complete.count(b"\n")
            for verdict in ('"allow"', '"reject"'):
                found = complete.count(b'"verdict": ' + verdict.encode())
                verdicts[verdict] = verdicts.get(verdict, 0) + found
            if lines - shown >= 200_000:
                shown = lines
                print(f"  {lines:,} verdicts...", flush=True)
    return lines, verdicts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="scrub workers, second rows")
    args = parser.parse_args()
    callgate = shutil.which("callgate")
    if callgate is None:
        raise SystemExit("callgate is not on PATH: pip install -e . first")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        db, env = prepare(Path(tmp), callgate)
        for workers in (1, args.workers):
            rows.append(through_api(callgate, env, args.numbers, workers))
        for workers in (1, args.workers):
            lines, seconds = asyncio.run(scrub_in_process(db, args.numbers, workers))
            rows.append((f"`scrub()` in process, {_workers(workers)}", lines, {}, seconds, ""))
    python = platform.python_version()
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {python}")
    print("| path | numbers | verdicts | allowed | rejected | seconds | numbers/s | peak RSS |")
    print("|---|---|---|---|---|---|---|---|")
    for path, lines, verdicts, seconds, peak in rows:
        allowed = f"{verdicts['allow']:,}" if verdicts else ""
        rejected = f"{verdicts['reject']:,}" if verdicts else ""
        print(
            f"| {path} | {args.numbers:,} | {lines:,} | {allowed} | {rejected} | "
            f"{seconds:.1f} | {lines / seconds:,.0f} | {peak} |"
        )


def _workers(count: int) -> str:
    return "no workers" if count == 1 else f"{count} scrub workers"


def through_api(
    callgate: str, env: dict[str, str], count: int, workers: int
) -> tuple[str, int, dict[str, int], float, str]:
    port = free_port()
    api = subprocess.Popen(
        [callgate, "api", "--bind", f"127.0.0.1:{port}", "--scrub-workers", str(workers)],
        env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(2 + workers)
        lines, verdicts, seconds = asyncio.run(run(f"http://127.0.0.1:{port}", count))
        peak = peak_rss_mb(api.pid)
    finally:
        api.terminate()
        api.wait()
    counts = {name: verdicts.get(f'"{name}"', 0) for name in ("allow", "reject")}
    return f"`POST /v1/scrub`, {_workers(workers)}", lines, counts, seconds, f"{peak:.0f} MB (API)"


def prepare(tmp: Path, callgate: str) -> tuple[Path, dict[str, str]]:
    """A fresh store: one number in ten on the opposition list, consents for nine in ten."""
    db = tmp / "scrub.db"
    env = {**os.environ, "CALLGATE_CONFIG": str(EXAMPLE), "CALLGATE_DB": str(db),
           "CALLGATE_API_TOKEN": TOKEN}  # fmt: skip
    listed = tmp / "optouts.txt"
    listed.write_text("".join(number(i) + "\n" for i in range(0, 1_000_000, 10)))
    subprocess.run([callgate, "optout", "import", str(listed), "--at", "2026-01-01"],
                   env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    seed_consents(db)
    return db, env


async def scrub_in_process(db: Path, count: int, workers: int = 1) -> tuple[int, float]:
    """The core alone: the API's ``scrub`` on the same store, without HTTP or JSON."""
    config = load_config(EXAMPLE)
    store = await open_store(str(db))
    tune_collector()  # as `callgate api` runs
    pool = ScrubWorkers(EXAMPLE, str(db), workers) if workers > 1 else None
    if pool is not None:
        await pool.start()

    async def numbers() -> AsyncIterator[str]:
        for i in range(count):
            yield number(i)

    caller = next(iter(config.companies.values())).numbers[0]
    started, lines = time.perf_counter(), 0
    try:
        async for _ in scrub(store, config, numbers(), caller=caller, company=None,
                             purpose=None, now=AT, workers=pool):  # fmt: skip
            lines += 1
    finally:
        if pool is not None:
            pool.close()
        await store.close()
    return lines, time.perf_counter() - started


def seed_consents(db: Path) -> None:
    """A consent for nine numbers in ten, given on 2026-09-01 (the rest get CONSENT_MISSING)."""
    import sqlite3

    given = 1_788_220_800_000_000  # 2026-09-01T00:00:00Z in microseconds
    with sqlite3.connect(db) as connection:
        connection.executemany(
            "INSERT INTO consents (company, callee, scope, given_at) VALUES (?, ?, ?, ?)",
            (("acme", "+33" + number(i)[1:], "prospecting", given)
             for i in range(1_000_000) if i % 10 != 5),
        )  # fmt: skip


if __name__ == "__main__":
    main()
