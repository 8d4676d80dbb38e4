"""`callgate log`: the decision log for people and for auditors.

callgate log [FILTERS] [--follow] [--json | --csv]   the latest decisions
callgate log stats [FILTERS]                          counts per verdict, reason, company, hour
callgate log explain ID                               why one call was allowed or refused
callgate log replay --since DATE                      past decisions today's rules would change
callgate log export [FILTERS] [--pseudonymise] [-o FILE]
callgate log verify [FILE]                            the hash chain, of the store or an export
callgate log purge --before DATE                      retention, keeping the rest verifiable
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from rich.console import Console
from rich.table import Table

from callgate.auditlog import (
    ChainBreak,
    ChainVerifier,
    is_fact,
    pseudonymise,
    read_anchor,
    shown_key,
)
from callgate.config import Config
from callgate.factlog import FACT_TABLES, FactProblem, FactReplay, fact_summary
from callgate.gate import GATE_CODES, resolve_request
from callgate.model import CallRequest, Purpose
from callgate.numbering import parse_number
from callgate.rules import get_pack
from callgate.store import Store
from callgate.store.base import DECISION_KINDS, LOG_KINDS, LogQuery
from callgate.timeparse import DEFAULT_ZONE

__all__ = [
    "LogUsageError", "PurgeRefused", "add_log_parser", "purge_verified", "verifies_an_export",
    "verify_chain", "verify_export",
]  # fmt: skip

EXIT_OK, EXIT_BROKEN, EXIT_ERROR = 0, 1, 2
_BATCH = 5000
_MAX_LIST = 1_000_000  # `log --limit`: a screenful is 50; an export is `log export`
# An entry's free text is bounded (inputs.MAX_TEXT), so a line is a few kilobytes; an
# older log may hold longer ones, yet nothing near this. A longer line is no entry, and
# reading it whole could take all the memory.
MAX_EXPORT_LINE = 16 << 20


class LogUsageError(Exception):
    pass


def add_log_parser(commands: Any, instant: Callable[[str], datetime]) -> None:
    log = commands.add_parser(
        "log", help="the decision log: list, follow, stats, explain, replay, export, verify"
    )
    log.add_argument(
        "action", nargs="?", default="list",
        choices=["list", "stats", "explain", "replay", "export", "verify", "purge"],
    )  # fmt: skip
    log.add_argument("target", nargs="?", help="explain: a decision id; verify: an export file")
    for name in ("since", "until", "before"):
        log.add_argument(f"--{name}", type=instant)
    log.add_argument("--verdict", choices=["allow", "reject"])
    log.add_argument("--reason", help="a reason code, e.g. CAP_30_DAYS")
    log.add_argument("--company")
    log.add_argument("--campaign")
    log.add_argument("--callee", metavar="NUMBER")
    log.add_argument("--caller", metavar="NUMBER")
    log.add_argument(
        "--kind", choices=LOG_KINDS, default=None,
        help="all (the default for list and export): decisions and the writes of facts;"
        " call, dry-run: decisions of that kind; fact: every write of facts, or one kind"
        " of them (consent, refusal, withdrawal...)",
    )  # fmt: skip
    log.add_argument("--limit", type=_count, default=50, help="list: how many (default 50)")
    log.add_argument("--follow", "-f", action="store_true", help="list: keep showing new ones")
    log.add_argument("--json", action="store_true")
    log.add_argument("--csv", action="store_true")
    log.add_argument("--pseudonymise", action="store_true", help="export without callee numbers")
    log.add_argument("--output", "-o", help="export: a file instead of stdout")
    log.set_defaults(handler=run_log)


def _count(text: str) -> int:
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= _MAX_LIST:
        raise argparse.ArgumentTypeError(f"expected 1 to {_MAX_LIST:,}, not {text[:40]!r}")
    return int(text)


async def run_log(args: argparse.Namespace, config: Config, store: Store) -> int:
    try:
        action = _ACTIONS[args.action]
        return await action(args, config, store)
    except LogUsageError as error:
        print(f"callgate: error: {error}", file=sys.stderr)
        return EXIT_ERROR


def _query(args: argparse.Namespace) -> LogQuery:
    def number(text: str | None, option: str) -> str | None:
        if text is None:
            return None
        parsed = parse_number(text)
        if parsed.e164 is None:
            raise LogUsageError(f"{option}: {text!r} is not a valid phone number")
        return parsed.e164

    return LogQuery(
        since=args.since, until=args.until, verdict=args.verdict,
        reason=args.reason.upper() if args.reason else None, company=args.company,
        campaign=args.campaign, callee=number(args.callee, "--callee"),
        caller=number(args.caller, "--caller"), kind=args.kind or "all",
    )  # fmt: skip


async def log_batches(
    store: Store, query: LogQuery, *, after: int = 0
) -> AsyncIterator[dict[str, Any]]:
    """Every matching entry after seq ``after``, oldest first, a batch at a time."""
    while True:
        batch = await store.log_entries(query, after_seq=after, limit=_BATCH)
        if not batch:
            return
        for entry in batch:
            yield entry
        after = batch[-1]["seq"]


# ---------------------------------------------------------------- list, follow


_CSV_COLUMNS = (
    "seq", "id", "at", "node", "channel", "kind", "company", "campaign", "purpose",
    "caller_in", "caller_out", "callee", "territory", "verdict", "reasons", "retry_after",
    "ruleset", "latency_ms",
)  # fmt: skip


async def _list(args: argparse.Namespace, config: Config, store: Store) -> int:
    query = _query(args)
    entries = await store.log_entries(query, limit=args.limit, last=True)
    show = _printer(args)
    show(entries)
    after = entries[-1]["seq"] if entries else 0
    while args.follow:
        await asyncio.sleep(0.5)
        new = await store.log_entries(query, after_seq=after, limit=_BATCH)
        if new:
            show(new)
            after = new[-1]["seq"]
    return EXIT_OK


def _printer(args: argparse.Namespace) -> Callable[[list[dict[str, Any]]], None]:
    if args.json:
        return lambda entries: _print_lines(json.dumps(e, ensure_ascii=False) for e in entries)
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(_CSV_COLUMNS)

        def write_csv(entries: list[dict[str, Any]]) -> None:
            for entry in entries:
                if is_fact(entry):  # the decision's columns that a write of facts has
                    shown = {**entry, "verdict": f"{entry['fact']} {entry['op']}",
                             "reasons": fact_summary(entry)}  # fmt: skip
                    writer.writerow([shown.get(c) for c in _CSV_COLUMNS])
                    continue
                codes = ",".join(r["code"] for r in entry["reasons"])
                writer.writerow([codes if c == "reasons" else entry[c] for c in _CSV_COLUMNS])
            sys.stdout.flush()

        return write_csv
    console = _console()
    shown = {"header": False}

    def table(entries: list[dict[str, Any]]) -> None:
        if not entries and not shown["header"]:
            console.print("(no entries)")
            return
        view = Table(show_header=not shown["header"], box=None, pad_edge=False)
        for column in ("time (Paris)", "verdict", "callee", "caller", "reasons", "retry", "id"):
            view.add_column(column, no_wrap=column != "reasons")
        for entry in entries:
            if is_fact(entry):
                view.add_row(
                    _local(entry["at"]), f"[cyan]{entry['fact'].upper()}[/] {entry['op']}",
                    entry.get("callee") or "-", "-", fact_summary(entry), "-",
                    f"#{entry['seq']}",
                )  # fmt: skip
                continue
            caller = entry["caller_in"] or "-"
            if entry["caller_out"] and entry["caller_out"] != entry["caller_in"]:
                caller = f"{caller} -> {entry['caller_out']}"
            verdict = entry["verdict"].upper()
            view.add_row(
                _local(entry["at"]),
                f"[green]{verdict}[/]" if verdict == "ALLOW" else f"[red]{verdict}[/]",
                entry["callee"] or entry.get("callee_in") or "-",
                caller,
                ",".join(r["code"] for r in entry["reasons"]) or "-",
                _local(entry["retry_after"]) if entry["retry_after"] else "-",
                entry["id"][:8],
            )
        console.print(view)
        shown["header"] = True

    return table


def _console() -> Console:
    # Piped into a file or a pager, keep whole lines rather than an 80-column guess.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def _print_lines(lines: Iterator[str]) -> None:
    for line in lines:
        print(line)
    sys.stdout.flush()


def _local(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(DEFAULT_ZONE).strftime("%Y-%m-%d %H:%M:%S")


# ---------------------------------------------------------------- stats


async def _stats(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.kind not in (None, "all", *DECISION_KINDS):
        raise LogUsageError("log stats counts decisions: --kind call or dry-run, or none")
    query = _query(args)
    groups = {
        by: await store.log_counts(query, by) for by in ("verdict", "reason", "company", "hour")
    }
    if args.json:
        print(json.dumps({by: dict(rows) for by, rows in groups.items()}, ensure_ascii=False))
        return EXIT_OK
    console = _console()
    titles = {"verdict": "verdict", "reason": "reason", "company": "company", "hour": "hour (UTC)"}
    for by, rows in groups.items():
        view = Table(title=f"decisions per {titles[by]}", title_justify="left", box=None)
        view.add_column(titles[by])
        view.add_column("decisions", justify="right")
        for key, count in rows:
            view.add_row(key, f"{count:,}")
        console.print(view)
    return EXIT_OK


# ---------------------------------------------------------------- explain, replay


async def rejudge(entry: dict[str, Any], config: Config, store: Store) -> Any:
    """The entry's call judged again: its inputs, the facts known then, today's rules."""
    at = datetime.fromisoformat(entry["at"])
    request = resolve_request(
        CallRequest(
            caller=entry["caller_in"], callee=entry.get("callee_in") or entry["callee"] or "",
            company=entry["company"], purpose=Purpose(entry["purpose"]),
            campaign=entry["campaign"], dept=entry["dept"],
        ),
        config,
    )  # fmt: skip
    pack = get_pack(config.rules.pack)
    # The facts just before the call: its own attempt is not part of its history.
    known_at = at - timedelta(microseconds=1)
    facts = await store.facts(
        request.company or "", entry["callee"] or "", known_at,
        at - timedelta(days=pack.history_days(config.rules)),
    )  # fmt: skip
    return pack.evaluate(request, facts, at, config, explain=True)


async def _explain(args: argparse.Namespace, config: Config, store: Store) -> int:
    if not args.target:
        raise LogUsageError("log explain needs a decision id (see `callgate log`)")
    entry = await store.log_entry(args.target)
    if entry is None:
        raise LogUsageError(f"no decision {args.target!r} in the log (a full id, or 8 characters)")
    evaluation = await rejudge(entry, config, store)
    relied = await _relied_on(entry, store)
    cited = {o.rule: _citing(relied, o.facts) for o in evaluation.outcomes}
    if args.json:
        print(json.dumps({"entry": entry, "rules": [
            {"rule": o.rule, "checks": o.checks, "applies": o.applies,
             "reasons": [r.code for r in o.reasons], "fact_entries": cited[o.rule]}
            for o in evaluation.outcomes
        ]}, ensure_ascii=False))  # fmt: skip
        return EXIT_OK
    console = _console()
    verdict = entry["verdict"].upper()
    console.print(f"[bold]{verdict}[/] decision {entry['id']} at {_local(entry['at'])} (Paris)")
    console.print(
        f"  node {entry['node'] or '-'}, channel {entry['channel'] or '-'}, {entry['kind']}"
    )
    console.print(
        f"  inputs: caller {entry['caller_in'] or '(none)'}, callee {entry.get('callee_in')}"
        f" ({entry['callee'] or 'invalid'}, {entry['territory'] or '-'}), company"
        f" {entry['company'] or '-'}, purpose {entry['purpose']}, campaign"
        f" {entry['campaign'] or '-'}, département {entry['dept'] or '-'}"
    )
    console.print(
        f"  ruleset {entry['ruleset']}; caller ID presented: {entry['caller_out'] or 'none'}"
    )
    console.print("  reasons logged:")
    for reason in entry["reasons"] or [{"code": "-", "message": "none: the call was compliant"}]:
        console.print(f"    {reason['code']}: {reason['message']}")
    if entry["retry_after"]:
        console.print(f"  retry from {_local(entry['retry_after'])} (Paris)")
    console.print("  each rule, judged again on the facts known then:")
    for outcome in evaluation.outcomes:
        if not outcome.applies:
            state = "not applicable"
        elif outcome.reasons:
            state = ", ".join(r.code for r in outcome.reasons)
        else:
            state = "passed"
        console.print(f"    {outcome.rule:<22} {state:<28} {outcome.checks}")
        if cited[outcome.rule]:
            seqs = ", ".join(f"#{seq}" for seq in cited[outcome.rule])
            console.print(f"    {'':<22} on the facts of log entries {seqs}")
    logged = {r["code"] for r in entry["reasons"]}
    again = {r.code for r in evaluation.reasons}
    if logged != again and not logged & GATE_CODES:
        console.print("  [yellow]today's rules would decide differently: see `log replay`[/]")
    return EXIT_OK


async def _relied_on(entry: dict[str, Any], store: Store) -> list[dict[str, Any]]:
    """The writes of facts about the decision's callee chained before it."""
    if not entry["callee"] or not entry["company"]:
        return []
    return await store.fact_entries_about(entry["company"], entry["callee"], entry["seq"])


def _citing(entries: list[dict[str, Any]], tables: tuple[str, ...]) -> list[int]:
    """The seqs of the entries that wrote one of ``tables``."""
    return [
        entry["seq"] for entry in entries
        if any(c["table"] in tables for c in entry["rows"])
        or any(b["table"] in tables for b in entry["bulk"])
    ]  # fmt: skip


async def _replay(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.since is None:
        raise LogUsageError("log replay needs --since DATE")
    changed = checked = 0
    async for entry in log_batches(store, _query(args)):
        if entry["kind"] != "call" or any(r["code"] in GATE_CODES for r in entry["reasons"]):
            continue
        checked += 1
        evaluation = await rejudge(entry, config, store)
        before = {r["code"] for r in entry["reasons"] if r["blocking"]}
        after = {r.code for r in evaluation.reasons if r.blocking}
        if before != after:
            changed += 1
            verdict = "reject" if after else "allow"
            print(
                f"{entry['id']} {_local(entry['at'])} {entry['callee'] or entry.get('callee_in')}: "
                f"{entry['verdict']} [{','.join(sorted(before)) or '-'}] -> "
                f"{verdict} [{','.join(sorted(after)) or '-'}]"
            )
    print(f"{checked:,} decisions replayed, {changed:,} would now differ", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- export, verify, purge


def _open_output(name: str | None) -> AbstractContextManager[TextIO]:
    if not name or name == "-":
        return nullcontext(sys.stdout)
    try:
        return Path(name).open("w", encoding="utf-8")
    except OSError as error:
        raise LogUsageError(f"{name}: {error.strerror}") from None


async def _export(args: argparse.Namespace, config: Config, store: Store) -> int:
    count = 0
    with _open_output(args.output) as out:
        async for line in export_lines(store, _query(args), pseudonymised=args.pseudonymise):
            out.write(line)
            if not line.startswith('{"anchor"'):
                count += 1
                if count % 100_000 == 0:
                    print(f"  {count:,} entries exported...", file=sys.stderr)
    print(f"exported {count:,} entries", file=sys.stderr)
    return EXIT_OK


async def export_lines(store: Store, query: LogQuery, *, pseudonymised: bool) -> AsyncIterator[str]:
    """An extract of the log as JSON lines that verifies on its own: where it joins the
    chain first, when it does not start at the log's first entry."""
    first = True
    async for entry in log_batches(store, query):
        if first and entry["seq"] > 1:
            anchor = {"seq": entry["seq"] - 1, "hash": entry["prev_hash"]}
            yield json.dumps({"anchor": anchor}) + "\n"
        first = False
        line = pseudonymise(entry) if pseudonymised else entry
        yield json.dumps(line, ensure_ascii=False) + "\n"


def verifies_an_export(args: argparse.Namespace) -> bool:
    """`log verify FILE` reads only the file: an auditor's machine has no store to open."""
    return args.action == "verify" and bool(args.target)


def verify_export(args: argparse.Namespace) -> int:
    verifier, broken, source = _verify_file(Path(args.target))
    return _verdict(verifier, broken, source)


async def _verify(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.target:
        return verify_export(args)
    check = await verify_chain(store)
    if check.problems:
        return _facts_verdict(check)
    return _verdict(check.verifier, check.broken, "the store", rows=check.rows)


def _verdict(
    verifier: ChainVerifier, broken: ChainBreak | None, source: str, *, rows: int | None = None
) -> int:
    if broken:
        print(f"BROKEN: {source}: {broken}")
        print(f"  {verifier.count:,} entries verified before it")
        return EXIT_BROKEN
    if verifier.count == 0:
        # Still OK: an export of a day without calls (a Sunday) is a true extract, and a
        # script that verifies each day's must not fail on it. But "OK" vouches for
        # nothing here, and the auditor is told so.
        print(f"OK: {source}: 0 entries: it holds no log entry, so nothing was checked")
        return EXIT_OK
    print(f"OK: {source}: {verifier.count:,} entries, the hash chain is intact")
    if rows:
        print(f"  and the fact tables are what it says: {rows:,} rows checked")
    return EXIT_OK


_SHOWN_PROBLEMS = 20


def _facts_verdict(check: LogCheck) -> int:
    problems = check.problems
    print(f"BROKEN: the store: {len(problems):,} fact row(s) differ from the log's entries")
    for problem in problems[:_SHOWN_PROBLEMS]:
        print(f"  {problem}")
    if len(problems) > _SHOWN_PROBLEMS:
        print(f"  ... and {len(problems) - _SHOWN_PROBLEMS:,} more")
    print(f"  the hash chain itself is intact: {check.verifier.count:,} entries")
    return EXIT_BROKEN


@dataclass
class LogCheck:
    """The store's log checked: its chain, then its fact tables against the chain."""

    verifier: ChainVerifier
    broken: ChainBreak | None
    problems: list[FactProblem]
    rows: int | None = None  # fact rows checked; None: the chain broke first

    def __str__(self) -> str:
        if self.broken:
            return str(self.broken)
        return "; ".join(str(problem) for problem in self.problems[:3]) + (
            f" (and {len(self.problems) - 3:,} more)" if len(self.problems) > 3 else ""
        )

    @property
    def ok(self) -> bool:
        return self.broken is None and not self.problems


async def verify_chain(store: Store) -> LogCheck:
    """Walk the store's log from its anchor, decisions and facts; then check every fact
    row against the entry that last wrote it. Stops at the chain's first break.

    A store in service goes on writing: a fact written after the walk, before its table is
    read, would look like a row without an entry. So a check that finds a problem is
    taken again, with the entries written meanwhile, until no fact was written during
    it: only then does a problem stand."""
    verifier = ChainVerifier(await store.log_anchor())
    replay = FactReplay()
    after = 0
    for _ in range(_SETTLE_ATTEMPTS):
        async for entry in log_batches(store, LogQuery(kind="all"), after=after):
            broken = verifier.feed(entry)
            if broken:
                return LogCheck(verifier, broken, [])
            if is_fact(entry):
                replay.feed(entry)
            after = entry["seq"]
        replay.problems = []
        rows = await _check_tables(store, replay)
        if not replay.problems:
            break
        if not await store.log_entries(LogQuery(kind="fact"), after_seq=after, limit=1):
            break  # nothing was written meanwhile: the problems are the store's
    return LogCheck(verifier, None, replay.chain_problems() + replay.problems, rows)


# A check that keeps meeting new writes of facts gives its verdict after this many rounds.
_SETTLE_ATTEMPTS = 5


async def _check_tables(store: Store, replay: FactReplay) -> int:
    rows = 0
    for table in FACT_TABLES:
        check = replay.check_table(table)
        async for row in store.fact_rows(table):
            check.row(row)
            rows += 1
        check.done()
    return rows


def _verify_file(path: Path) -> tuple[ChainVerifier, ChainBreak | None, str]:
    """An export's chain, line by line: whatever the file holds, a verdict, never a crash."""
    try:
        handle = path.open("rb")
    except OSError as error:
        raise LogUsageError(f"{path}: {error.strerror}") from None
    verifier = ChainVerifier()
    with handle:
        for number, line in enumerate(_raw_lines(handle), start=1):
            entry, problem = _json_line(line)
            if problem:
                broken = ChainBreak(verifier.count + 1, None, None, problem)
                return verifier, broken, f"{path} line {number}"
            if entry is _BLANK:
                continue
            if number == 1 and isinstance(entry, dict) and "anchor" in entry:
                anchor = read_anchor(entry["anchor"]) if len(entry) == 1 else None
                if anchor is None:
                    broken = ChainBreak(1, None, None, _BAD_ANCHOR)
                    return verifier, broken, f"{path} line {number}"
                verifier = ChainVerifier(anchor)
                continue
            broken = verifier.feed(entry)
            if broken:
                return verifier, broken, f"{path} line {number}"
    return verifier, None, str(path)


_BLANK = object()
_BAD_ANCHOR = (
    'a malformed anchor (expected {"anchor": {"seq": N, "hash": 64 hex digits}}, no other key)'
)


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if it gives a key twice: a person or grep reading the line
    sees the first value, while json (and so the hash check) keeps the last."""
    value = dict(pairs)
    if len(value) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return value


def _raw_lines(handle: BinaryIO) -> Iterator[bytes]:
    """The file's lines as bytes, each cut at MAX_EXPORT_LINE + 1 bytes."""
    while line := handle.readline(MAX_EXPORT_LINE + 1):
        yield line
        if len(line) > MAX_EXPORT_LINE:
            return


def _json_line(line: bytes) -> tuple[Any, str | None]:
    """One line's value (``_BLANK`` for an empty line), or what makes it unreadable."""
    if len(line) > MAX_EXPORT_LINE:
        return None, f"not a log entry: longer than {MAX_EXPORT_LINE:,} bytes"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text"
    if not text.strip():
        return _BLANK, None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys), None
    except _DuplicateKey as error:
        return None, (
            f"edited: the key {shown_key(error.key)} is given twice (a reader sees the first"
            " value, the hash check the last)"
        )
    except (ValueError, RecursionError):  # ValueError: also an integer of 4,300+ digits
        return None, "not a JSON line"


async def _purge(args: argparse.Namespace, config: Config, store: Store) -> int:
    before = args.before
    if before is None:
        days = config.log.retention_days
        if days is None:
            raise LogUsageError("log purge needs --before DATE (or [log] retention_days)")
        before = datetime.now(UTC) - timedelta(days=days)
    try:
        count = await purge_verified(store, before, datetime.now(UTC))
    except PurgeRefused as refused:
        print(f"callgate: error: {refused}", file=sys.stderr)
        return EXIT_BROKEN
    print(f"purged {count:,} decisions before {before.isoformat()}; the rest still verifies")
    await _report_kept_older(store, before)
    kept = len(await store.consents(None, None))
    # RULES-FR §4 (décret of July 2026): a consent's proof outlives the log's retention.
    print(f"consent records and their proofs are not purged: they are kept at least 3 years"
          f" after each consent ends ({kept:,} consent records kept)")  # fmt: skip
    return EXIT_OK


class PurgeRefused(Exception):
    """The log does not verify: a purge would chain the fact tables as they are, tampered
    rows included, and take away the entries that show the tampering."""


async def purge_verified(store: Store, before: datetime, at: datetime) -> int:
    """``store.purge_log``, once the log verifies; PurgeRefused if it does not."""
    check = await verify_chain(store)
    if not check.ok:
        raise PurgeRefused(
            f"the log does not verify, so nothing was purged: {check}"
            " (a purge would vouch for what the tables hold now; see `callgate log verify`)"
        )
    return await store.purge_log(before, at)


async def dated_before(store: Store, before: datetime) -> int:
    """How many entries of the log are dated before ``before``: after a purge, those it had
    to keep (they come after a newer one)."""
    return sum(count for _, count in await store.log_counts(LogQuery(until=before), "verdict"))


async def _report_kept_older(store: Store, before: datetime) -> None:
    """Say so when decisions dated before the cutoff were kept: a purge cuts the chain at
    its start only, so one recorded with a past date stays behind a newer one."""
    older = await dated_before(store, before)
    if not older:
        return
    first = (await store.log_entries(LogQuery(), limit=1))[0]  # the one the purge stopped at
    print(
        f"kept {older:,} decisions dated before {before.isoformat()}: they come after seq"
        f" {first['seq']}, dated {first['at']}, and a purge removes only the start of the"
        " log (they were recorded with a past date, or by a node whose clock was behind)"
    )


_ACTIONS = {
    "list": _list, "stats": _stats, "explain": _explain, "replay": _replay,
    "export": _export, "verify": _verify, "purge": _purge,
}  # fmt: skip
