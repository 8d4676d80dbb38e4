"""Console benchmark: the compliance console's reads on a log of 10 M decisions.

    python -m bench.console                              # 10,000,000 decisions, SQLite
    python -m bench.console --store both                 # and PostgreSQL
    python -m bench.console --decisions 1000000 --store postgres

Builds a store holding N decisions spread over 13 months (5 companies, 20 campaigns, 4
nodes, 5,000 callees, a verdict and reason mix like a prospecting floor's), generated in
SQL by the database itself. The rows' hashes do not chain (the speed of the reads does not
depend on them); the hourly rollups are exact, built by the schema's own SQL. The SQLite
file is kept under --keep (default /var/cache/callgate/bench) for the next run;
PostgreSQL (Debian's, a throw-away cluster) is built each run.

Then times, at the store level, the queries the console's pages run (median and p95 of
--repeats runs each): the overview's counts for today, 7 and 30 days, the gates' heads,
decision pages first, filtered, in a time range and 2,000 pages deep. When the console is
served, it also starts the real `callgate api` on the store, logs in, and times whole
HTTP renders of the pages. Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from callgate.store import open_store
from callgate.store.base import Cursor, LogQuery, to_micros

DEFAULT_KEEP = Path("/var/cache/callgate/bench")
TOKEN = "bench-console-token-0123456789"
PARIS = ZoneInfo("Europe/Paris")
DAY1 = timedelta(days=1)
DAY = 86_400_000_000
SPAN_DAYS = 395  # 13 months
CALLEES = 5_000
CHUNK = 1_000_000

# (weight in 100, company, its presented number)
COMPANIES = (
    (40, "acme", "+33948000001"), (25, "globex", "+33948000002"),
    (20, "initech", "+33948000003"), (10, "umbrella", "+33948000004"),
    (5, "hooli", "+33948000005"),
)  # fmt: skip
SEASONS = ("spring", "summer", "autumn", "winter")
# (share in 1000, verdict, reason codes): a prospecting floor's mix.
MIX = (
    (550, "allow", ()), (50, "allow", ("CLI_REWRITTEN",)),
    (120, "reject", ("CONSENT_MISSING",)), (80, "reject", ("OPPOSITION_LISTED",)),
    (60, "reject", ("HOURS_OUTSIDE",)), (50, "reject", ("CAP_30_DAYS",)),
    (30, "reject", ("REFUSAL_COOLDOWN",)), (20, "reject", ("DAY_WEEKEND",)),
    (10, "reject", ("CONSENT_EXPIRED",)), (10, "reject", ("CLI_NOT_NPV", "HOURS_OUTSIDE")),
    (10, "reject", ("DEST_INVALID",)), (5, "reject", ("CONSENT_REVOKED",)),
    (5, "reject", ("GATE_ERROR",)),
)  # fmt: skip
# Multipliers of the per-row hashes (mod a prime): deterministic, evenly spread.
PRIME = 4_294_967_291
MULTIPLIERS = (2654435761, 2246822519, 3266489917, 668265263, 374761393, 1103515245, 1597334677)


@dataclass(frozen=True)
class Dialect:
    """What differs between SQLite's and PostgreSQL's generated rows."""

    rows: str  # the row numbers i between :lo and :hi
    hex32: str  # a format with {} for an integer expression
    hex64: str


SQLITE = Dialect(
    "WITH RECURSIVE k(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM k WHERE i < :hi)"
    " SELECT i FROM k",
    "printf('%032x', {})", "printf('%064x', {})",
)  # fmt: skip
POSTGRES = Dialect(
    "SELECT i FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS i",
    "lpad(to_hex({}), 32, '0')", "lpad(to_hex({}), 64, '0')",
)  # fmt: skip


def _case(bucket: str, arms: list[tuple[int, str]]) -> str:
    """CASE over cumulative thresholds: the first arm whose bound exceeds ``bucket``."""
    total, parts = 0, []
    for weight, value in arms:
        total += weight
        parts.append(f"WHEN {bucket} < {total} THEN {value}")
    return f"CASE {' '.join(parts)} END"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _reasons(verdict: str, codes: tuple[str, ...]) -> str:
    return json.dumps(
        [{"code": code, "message": f"{code.lower().replace('_', ' ')}",
          "blocking": verdict == "reject"} for code in codes],
        ensure_ascii=False,
    )  # fmt: skip


def rows_sql(dialect: Dialect) -> str:
    """INSERT ... SELECT of the decisions numbered :lo to :hi of :n, one every :step
    microseconds up to :end."""
    hashes = ", ".join(f"(i * {m}) % {PRIME} AS h{k}" for k, m in enumerate(MULTIPLIERS))
    company = _case("h0 % 100", [(w, _quoted(c)) for w, c, _ in COMPANIES])
    caller = _case("h0 % 100", [(w, _quoted(n)) for w, _, n in COMPANIES])
    season = _case("h1 % 4", [(1, _quoted(s)) for s in SEASONS])
    verdict = _case("h2 % 1000", [(w, _quoted(v)) for w, v, _ in MIX])
    reasons = _case("h2 % 1000", [(w, _quoted(_reasons(v, c))) for w, v, c in MIX])
    at = "(:end - (:n - i) * :step)"
    columns = {
        "seq": "i",
        "id": dialect.hex32.format("i"),
        "at": f"CASE WHEN h3 % 1000 = 0 THEN {at} - 3 * {DAY} ELSE {at} END",  # backdated
        "node": "'gate-' || (h4 % 4 + 1)",
        "channel": "'PJSIP/trunk-' || " + dialect.hex32.format("i"),
        "kind": "CASE WHEN h5 % 100 < 3 THEN 'dry-run' ELSE 'call' END",
        "company": company,
        "campaign": f"CASE WHEN h1 % 10 = 9 THEN NULL ELSE {company} || '-' || {season} END",
        "purpose": "'prospecting'",
        "caller_in": caller,
        "caller_out": caller,
        "callee_in": f"'06' || (10000000 + h6 % {CALLEES})",
        "callee": f"'+336' || (10000000 + h6 % {CALLEES})",
        "callee_salt": dialect.hex32.format("h5"),
        "callee_commit": dialect.hex64.format("h6"),
        "territory": "'FR'",
        "verdict": verdict,
        "reasons": reasons,
        "retry_after": "NULL",
        "ruleset": "'fr-2026.1'",
        "latency_ms": "0.2 + (h4 % 500) / 100.0",
        "prev_hash": dialect.hex64.format("i - 1"),
        "hash": dialect.hex64.format("i"),
    }
    return (
        f"INSERT INTO decisions ({', '.join(columns)})"
        f" SELECT {', '.join(columns.values())}"
        f" FROM (SELECT i, {hashes} FROM ({dialect.rows}) AS k) AS g"
    )


def _progress(done: int, total: int, started: float) -> None:
    elapsed = time.perf_counter() - started
    print(f"  {done:,} of {total:,} decisions, {done / elapsed:,.0f} rows/s", file=sys.stderr)


# ---------------------------------------------------------------- SQLite


def sqlite_store(keep: Path, n: int) -> Path:
    """The cached file, built if missing."""
    path = keep / f"console-{n}.db"
    if path.exists():
        print(f"SQLite: reusing {path}", file=sys.stderr)
        return path
    keep.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    for stale in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        stale.unlink(missing_ok=True)
    build_sqlite(building, n)
    building.rename(path)
    return path


def build_sqlite(path: Path, n: int) -> None:
    """Rows generated by SQLite, the log's indexes and trigger set aside meanwhile, then
    rebuilt: the indexes, the rollups by migration 0004's own statements, the trigger."""
    from callgate.store.sqlite import _migrations, _statements

    asyncio.run(_created(str(path)))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA cache_size = -1000000")
    aside = db.execute(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'decisions'"
        " AND type IN ('index', 'trigger') AND sql IS NOT NULL"
    ).fetchall()
    for kind, name, _ in aside:
        db.execute(f"DROP {kind.upper()} {name}")
    started = time.perf_counter()
    sql, end = rows_sql(SQLITE), to_micros(datetime.now(UTC))
    for lo in range(1, n + 1, CHUNK):
        hi = min(n, lo + CHUNK - 1)
        db.execute("BEGIN")
        db.execute(sql, {"lo": lo, "hi": hi, "n": n, "end": end, "step": SPAN_DAYS * DAY // n})
        db.execute("COMMIT")
        _progress(hi, n, started)
    t0 = time.perf_counter()
    for kind, _, create in aside:
        if kind == "index":
            db.execute(create)
    print(f"  indexes rebuilt in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    t0 = time.perf_counter()
    [script] = [script for number, script in _migrations() if number == 4]
    db.execute("BEGIN")
    for statement in _statements(script):
        if statement.startswith("INSERT INTO decision_"):
            db.execute(statement)
    for kind, _, create in aside:
        if kind == "trigger":
            db.execute(create)
    db.execute("COMMIT")
    print(f"  rollups rebuilt in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    check_rollups(lambda sql: db.execute(sql).fetchone()[0])
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def check_rollups(value: Callable[[str], Any]) -> None:
    """The rollup's total is the log's, or the build is wrong."""
    logged = value("SELECT count(*) FROM decisions")
    counted = value("SELECT coalesce(sum(count), 0) FROM decision_hours")
    if int(logged) != int(counted):
        raise SystemExit(f"the rollup counts {counted:,} decisions, the log holds {logged:,}")


async def _created(url: str) -> None:
    store = await open_store(url)
    await store.close()


# ---------------------------------------------------------------- PostgreSQL


async def build_postgres(url: str, n: int) -> None:
    """Rows generated by PostgreSQL, in statements of a million (the rollups' trigger runs
    once per statement), the log's secondary indexes built after."""
    import asyncpg

    from callgate.store.postgres import positional

    await _created(url)
    db = await asyncpg.connect(url)
    try:
        aside = await db.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'decisions'"
            " AND indexname LIKE 'decisions_by_%'"
        )
        for row in aside:
            await db.execute(f"DROP INDEX {row['indexname']}")
        started = time.perf_counter()
        end = to_micros(datetime.now(UTC))
        for lo in range(1, n + 1, CHUNK):
            hi = min(n, lo + CHUNK - 1)
            sql, args = positional(
                rows_sql(POSTGRES),
                {"lo": lo, "hi": hi, "n": n, "end": end, "step": SPAN_DAYS * DAY // n},
            )
            await db.execute(sql, *args)
            _progress(hi, n, started)
        t0 = time.perf_counter()
        for row in aside:
            await db.execute(row["indexdef"])
        await db.execute("VACUUM ANALYZE")  # what autovacuum does to a table this size
        print(f"  indexes built, analysed in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        logged = await db.fetchval("SELECT count(*) FROM decisions")
        counted = await db.fetchval("SELECT coalesce(sum(count), 0) FROM decision_hours")
        if logged != counted:
            raise SystemExit(f"the rollup counts {counted:,} decisions, the log holds {logged:,}")
    finally:
        await db.close()


# ---------------------------------------------------------------- the store's reads


@dataclass
class Timing:
    what: str
    size: int  # rows read, or characters of a page
    times: list[float]  # milliseconds

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


async def timed(what: str, repeats: int, read: Callable[[], Awaitable[Any]]) -> Timing:
    result = await read()  # once untimed: the statement prepared, as a running API has it
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = await read()
        times.append((time.perf_counter() - t0) * 1000)
    size = len(result) if isinstance(result, list | str) else 1
    return Timing(what, size, times)


async def store_reads(url: str, repeats: int) -> tuple[list[Timing], dict[str, Any]]:
    store = await open_store(url)
    try:
        [newest] = await store.decision_page(LogQuery(), limit=1)
        now = datetime.fromisoformat(newest["at"])
        midnight = now.astimezone(PARIS).replace(hour=0, minute=0, second=0, microsecond=0)
        spans = {"today": midnight, "7 days": now - timedelta(days=7),
                 "30 days": now - timedelta(days=30)}  # fmt: skip
        found: list[Timing] = []

        async def add(what: str, read: Callable[[], Awaitable[Any]]) -> None:
            found.append(await timed(what, repeats, read))
            print(f"  {found[-1].what}: {found[-1].median:.1f} ms", file=sys.stderr)

        for name, since in spans.items():
            for by in (("hour", "verdict"), ("reason",), ("company", "verdict"),
                       ("campaign", "verdict")):  # fmt: skip
                await add(f"counts, {name}, by {' + '.join(by)}",
                          _counts(store, since, now, by))  # fmt: skip
        await add("node heads", store.node_heads)
        month_ago = midnight - timedelta(days=30)
        pages = {
            "first page": LogQuery(),
            "verdict=reject": LogQuery(verdict="reject"),
            "reason=CAP_30_DAYS": LogQuery(reason="CAP_30_DAYS"),
            "reason=CONSENT_REVOKED (0.5 %)": LogQuery(reason="CONSENT_REVOKED"),
            "company=hooli (5 %)": LogQuery(company="hooli"),
            "campaign=umbrella-winter": LogQuery(campaign="umbrella-winter"),
            "callee": LogQuery(callee="+33610000042"),
            "company=globex + verdict=reject": LogQuery(company="globex", verdict="reject"),
            "company=hooli + reason=GATE_ERROR": LogQuery(company="hooli", reason="GATE_ERROR"),
            "one day a month ago": LogQuery(since=month_ago, until=month_ago + timedelta(1)),
            "one day a month ago + company=hooli + verdict=reject": LogQuery(
                since=month_ago, until=month_ago + timedelta(1), company="hooli",
                verdict="reject"),
        }  # fmt: skip
        for name, query in pages.items():
            await add(f"page, {name}", _page(store, query, None))
        for name in ("first page", "company=globex + verdict=reject"):
            cursor, depth = await _deep_cursor(store, pages[name], 2_000)
            await add(f"page {depth:,}, {name.replace('first page', 'no filter')}",
                      _page(store, pages[name], cursor))  # fmt: skip
        info = {"now": now, "month_ago": month_ago}
        return found, info
    finally:
        await store.close()


def _counts(store: Any, since: datetime, until: datetime, by: tuple[str, ...]) -> Any:
    return lambda: store.decision_counts(since, until, by)


def _page(store: Any, query: LogQuery, cursor: Cursor | None) -> Any:
    return lambda: store.decision_page(query, before=cursor, limit=51)


async def _deep_cursor(store: Any, query: LogQuery, pages: int) -> tuple[Cursor | None, int]:
    """The cursor of page ``pages`` (of 50), following the pages as a reader does; or of
    the last page, and its number, if there are fewer."""
    cursor, depth = None, 1
    while depth < pages:
        page = await store.decision_page(query, before=cursor, limit=51)
        if len(page) < 51:
            break
        last = page[49]
        cursor = Cursor(to_micros(datetime.fromisoformat(last["at"])), last["seq"])
        depth += 1
    return cursor, depth


# ---------------------------------------------------------------- the real API


def console_renders(url: str, repeats: int, info: dict[str, Any]) -> list[Timing] | str:
    """Whole HTTP renders by `callgate api`; a message instead when it serves no console."""
    callgate = shutil.which("callgate")
    if callgate is None:
        return "callgate is not on PATH: pip install -e . first"
    from harness.sipp import free_port

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "callgate.toml"
        config.write_text("".join(
            f'[[companies]]\nid = "{c}"\nnumbers = ["{number}"]\n' for _, c, number in COMPANIES
        ))  # fmt: skip
        port = free_port()
        env = {**os.environ, "CALLGATE_CONFIG": str(config), "CALLGATE_DB": url,
               "CALLGATE_API_TOKEN": TOKEN}  # fmt: skip
        api = subprocess.Popen([callgate, "api", "--bind", f"127.0.0.1:{port}"], env=env,
                               stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            return asyncio.run(_renders(f"http://127.0.0.1:{port}", repeats, info))
        finally:
            api.terminate()
            api.wait()


async def _renders(base: str, repeats: int, info: dict[str, Any]) -> list[Timing] | str:
    import aiohttp

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        form = await _login_form(http, base)
        if form is None:
            return "the console is not served yet (GET /console/login did not answer 200)"
        async with http.post(f"{base}/console/login", data={
            "token": TOKEN, "csrf": form, "next": "/console/"}) as answer:  # fmt: skip
            if answer.status != 200 or "/console/login" in str(answer.url):
                return f"login failed: HTTP {answer.status}"
        first = await _text(http, f"{base}/console/decisions")
        older = re.search(r'href="([^"]*before=[^"]*)"', first)
        month_ago = info["month_ago"].astimezone(PARIS)
        day, next_day = (d.strftime("%Y-%m-%dT00:00") for d in (month_ago, month_ago + DAY1))
        pages = {
            "/console/ (overview)": "/console/",
            "/console/decisions": "/console/decisions",
            "decisions, company + verdict": "/console/decisions?company=globex&verdict=reject",
            "decisions, reason": "/console/decisions?reason=CAP_30_DAYS",
            "decisions, one day a month ago": f"/console/decisions?from={day}&to={next_day}",
            "decisions, callee": "/console/decisions?callee=0610000042",
            "callee page": "/console/callees/+33610000042",
        }
        decision = re.search(r'data-id="([^"]+)"', first)
        if decision:
            pages["a decision (each rule judged again)"] = f"/console/decisions/{decision[1]}"
        if older:
            pages["decisions, second page (older link)"] = older[1].replace("&amp;", "&")
        deep = await _deep_link(http, base, 2_000)
        if deep:
            pages["decisions, page 2,000"] = deep
        found = []
        for name, path in pages.items():
            found.append(await timed(name, repeats, _getter(http, base + path)))
            print(f"  {name}: {found[-1].median:.1f} ms", file=sys.stderr)
        return found


async def _login_form(http: Any, base: str) -> str | None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            async with http.get(f"{base}/console/login") as answer:
                if answer.status != 200:
                    return None
                found = re.search(r'name="csrf" value="([^"]+)"', await answer.text())
                return found[1] if found else None
        except OSError:
            await asyncio.sleep(0.5)
    return None


async def _text(http: Any, url: str) -> str:
    async with http.get(url) as answer:
        if answer.status != 200:
            raise SystemExit(f"GET {url}: HTTP {answer.status}")
        return str(await answer.text())


def _getter(http: Any, url: str) -> Callable[[], Awaitable[str]]:
    return lambda: _text(http, url)


async def _deep_link(http: Any, base: str, pages: int) -> str | None:
    """The decisions list's "older" link after ``pages`` pages, followed as a reader would."""
    path = "/console/decisions"
    for _ in range(pages - 1):
        found = re.search(r'href="([^"]*before=[^"]*)"', await _text(http, base + path))
        if not found:
            return None
        path = found[1].replace("&amp;", "&")
    return path


# ---------------------------------------------------------------- report


def machine() -> str:
    model = "unknown CPU"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )


def table(title: str, timings: list[Timing], size: str = "rows") -> str:
    lines = [f"**{title}**", "", f"| read | {size} | median | p95 |", "|---|---|---|---|"]
    for t in timings:
        lines.append(f"| {t.what} | {t.size:,} | {t.median:.1f} ms | {t.p95:.1f} ms |")
    return "\n".join(lines) + "\n"


def run_backend(backend: str, url: str, n: int, repeats: int) -> str:
    print(f"{backend}: store reads", file=sys.stderr)
    reads, info = asyncio.run(store_reads(url, repeats))
    out = table(f"{backend}, {n:,} decisions: store reads", reads)
    print(f"{backend}: HTTP renders", file=sys.stderr)
    renders = console_renders(url, repeats, info)
    if isinstance(renders, str):
        out += f"\n{backend}: HTTP renders skipped: {renders}\n"
    else:
        title = f"{backend}, {n:,} decisions: whole HTTP renders"
        out += "\n" + table(title, renders, "characters")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=10_000_000)
    parser.add_argument("--store", choices=("sqlite", "postgres", "both"), default="sqlite")
    parser.add_argument("--keep", type=Path, default=DEFAULT_KEEP,
                        help="where the SQLite store is kept between runs")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    n = args.decisions
    report = [f"machine: {machine()}", ""]
    if args.store in ("sqlite", "both"):
        started = time.perf_counter()
        path = sqlite_store(args.keep, n)
        print(f"SQLite store ready in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        size = sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
        report.append(f"SQLite file: {size / 1e9:.1f} GB\n")
        report.append(run_backend("SQLite", str(path), n, args.repeats))
    if args.store in ("postgres", "both"):
        from harness.postgres import PostgresServer

        server = PostgresServer()
        server.start()
        try:
            url = server.new_database()
            started = time.perf_counter()
            asyncio.run(build_postgres(url, n))
            print(f"PostgreSQL store built in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
            report.append(run_backend("PostgreSQL", url, n, args.repeats))
        finally:
            server.stop()
    print("\n".join(report))


if __name__ == "__main__":
    main()
