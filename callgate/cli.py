"""``callgate``: check a call, keep the consent, contract and opposition records.

Exit status: 0 allowed (or done), 1 rejected, 2 a usage, configuration or store error.
Errors are one line on stderr, never a traceback (set CALLGATE_DEBUG=1 to see one).
The commands that only read (the lists, the receipt, the log but its purge) open the store
read-only: they work on a copy that cannot be written, and migrate nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, TextIO

from callgate import __version__, inputs
from callgate.cli_format import (
    OUTCOME_COLUMNS,
    appointment_json,
    consent_json,
    contract_json,
    decision_json,
    local_text,
    opposition_json,
    outcome_json,
    render_decision,
)
from callgate.cli_log import LogUsageError, add_log_parser, verifies_an_export, verify_export
from callgate.collector import tune_collector
from callgate.config import (
    Config,
    ConfigError,
    find_config_file,
    load_config,
    scrub_workers_problem,
)
from callgate.gate import check_call, gate_error
from callgate.model import CallRequest, ConsentChannel, ConsentScope, Contract, Purpose
from callgate.optout_file import ImportStats, read_numbers, text_lines
from callgate.scrub_workers import ScrubWorkers
from callgate.store import Store, StoreError, open_store, safe_url, sqlite_path
from callgate.store.base import AppointmentRecord, Batch
from callgate.throttle import Throttle
from callgate.timeparse import parse_instant

__all__ = ["main"]

EXIT_OK, EXIT_REJECT, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    """Bad input on the command line: reported as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        _check_texts(args)
        return asyncio.run(_dispatch(args))
    except (UsageError, LogUsageError, ConfigError, StoreError, inputs.InvalidInput) as error:
        return _fail(str(error))
    except sqlite3.Error as error:  # a file damaged past its schema fails on a later read
        return _fail(f"the store failed: {error}")
    except OSError as error:  # an output file that cannot be written (a full disk, /dev/full)
        where = f"{error.filename}: " if error.filename else ""
        return _fail(f"{where}{error.strerror or error}")
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # the last net: a message, not a traceback
        if os.environ.get("CALLGATE_DEBUG"):
            raise
        return _fail(
            f"internal error: {type(error).__name__}: {error} (CALLGATE_DEBUG=1 shows more)"
        )


def _fail(message: str) -> int:
    print(f"callgate: error: {_one_line(message)}", file=sys.stderr)
    return EXIT_ERROR


_MAX_MESSAGE = 1000


def _one_line(message: str) -> str:
    """A message that stays one line of text: what a user typed may hold line breaks,
    terminal escapes or undecodable bytes, and may be huge."""
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "..."
    return "".join(c if _shown(c) else repr(c)[1:-1] for c in message)


def _shown(c: str) -> bool:
    """Printable, or a space (a no-break space too) that is not a line or tab break."""
    return c.isprintable() or (c.isspace() and c not in "\t\n\v\f\r\x1c\x1d\x1e\x85\u2028\u2029")


class _Parser(argparse.ArgumentParser):
    """Argument errors in one line like every other error, not a usage block."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("callgate").strip()
        self.exit(_fail(f"{command}: {message}" if command else message))


# ---------------------------------------------------------------- arguments


def _workers(text: str) -> int:
    count = int(text) if text.isdigit() else 0
    if problem := scrub_workers_problem(count):
        raise argparse.ArgumentTypeError(f"{problem}, not {text!r}")
    return count


def _instant(text: str) -> datetime:
    try:
        return parse_instant(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="callgate",
        description="A compliance gate for outbound calls (French telemarketing rules).",
    )
    parser.add_argument("--version", action="version", version=f"callgate {__version__}")
    parser.add_argument(
        "--config", help="TOML configuration (default: $CALLGATE_CONFIG, ./callgate.toml, "
        "/etc/callgate/callgate.toml)",
    )  # fmt: skip
    parser.add_argument(
        "--db",
        help="store URL or SQLite file (default: $CALLGATE_DB, then the config's [store] url)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("check", help="judge one call (a dry run unless --record)")
    check.add_argument("--from", dest="caller", required=True, metavar="CLI",
                       help="the caller ID the call would present")  # fmt: skip
    check.add_argument("--to", dest="callee", required=True, metavar="NUMBER")
    _company(check)
    check.add_argument("--purpose", choices=[p.value for p in Purpose])
    check.add_argument("--campaign")
    check.add_argument("--dept", help="the callee's département, e.g. 57, 974")
    _at(check)
    check.add_argument(
        "--record", action="store_true", help="count the call as an attempt when allowed"
    )
    _json(check)
    check.set_defaults(handler=_check)

    consent = commands.add_parser(
        "consent", help="record, revoke or list consents; print a callee's receipt"
    )
    consent.add_argument("action", choices=["add", "revoke", "list", "receipt"])
    consent.add_argument("--to", dest="callee", metavar="NUMBER")
    _company(consent)
    consent.add_argument("--scope", choices=[s.value for s in ConsentScope])
    _at(consent, "when the consent was given or revoked (default: now)")
    consent.add_argument("--expires", type=_instant, help="an earlier end than the maximum age")
    consent.add_argument("--source", help="where the consent was collected (form, call, ...)")
    consent.add_argument("--proof", help="the proof: a text or a reference to it")
    consent.add_argument("--proof-file", metavar="FILE",
                         help="the proof as a file: its SHA-256 and name are recorded")  # fmt: skip
    consent.add_argument("--by", help="who consented, when not the line's holder")
    consent.add_argument("--collected-by", metavar="NAME",
                         help="who collected it (an agent, a partner, a web form)")  # fmt: skip
    consent.add_argument("--channel", choices=[c.value for c in ConsentChannel])
    consent.add_argument("--covers", metavar="TEXT", help="the products or services it covers")
    consent.add_argument("--format", choices=["text", "html", "pdf"], default="text",
                         help="receipt: the document's format (default: text)")  # fmt: skip
    consent.add_argument(
        "--output", metavar="FILE", help="receipt: write it to FILE (a PDF needs one unless piped)"
    )
    _json(consent)
    consent.set_defaults(handler=_consent)

    contract = commands.add_parser("contract", help="record, end or list contracts")
    contract.add_argument("action", choices=["add", "end", "list"])
    contract.add_argument("--to", dest="callee", metavar="NUMBER")
    _company(contract)
    _at(contract, "when the contract starts or ends (default: now)")
    contract.add_argument("--until", type=_instant, help="when the contract ends, if known")
    _json(contract)
    contract.set_defaults(handler=_contract)

    optout = commands.add_parser("optout", help="the opposition (do-not-call) list")
    optout.add_argument("action", choices=["add", "remove", "list", "import"])
    optout.add_argument("file", nargs="?", help="for import: a CSV or one-number-per-line file")
    optout.add_argument("--to", dest="callee", metavar="NUMBER")
    optout.add_argument("--company", help="only against this company (default: every company)")
    optout.add_argument("--source", choices=["bloctel", "internal"], default=None)
    _at(optout)
    _json(optout)
    optout.set_defaults(handler=_optout)

    outcome = commands.add_parser(
        "outcome", help="record what happened on a call, or list the refusals recorded"
    )
    outcome.add_argument(
        "result", choices=["refused", "withdrawn", "list"],
        help="refused: the callee refused the offer; withdrawn: the callee said"
        ' "ne m\'appelez plus" (revokes consent, opts out of this company, starts the'
        " cool-down); list: the refusals and withdrawals recorded, *7 and *8 included",
    )  # fmt: skip
    outcome.add_argument("--to", dest="callee", metavar="NUMBER")
    outcome.add_argument("--company", help="company id (list: default every company)")
    _at(outcome)
    _json(outcome)
    outcome.set_defaults(handler=_outcome)

    appointment = commands.add_parser(
        "appointment", help="calls the callee agreed to at a precise date and time"
    )
    appointment.add_argument("action", choices=["add", "cancel", "list"])
    appointment.add_argument("--to", dest="callee", metavar="NUMBER")
    _company(appointment)
    appointment.add_argument("--at", type=_instant, metavar="START",
                             help="ISO 8601: when the agreed call starts")  # fmt: skip
    appointment.add_argument(
        "--until", type=_instant, metavar="END",
        help="when it ends (default: rules.appointment_window_minutes after START)",
    )  # fmt: skip
    appointment.add_argument("--source", help="how it was agreed (call, web form, ...)")
    appointment.add_argument("--proof", help="the proof: a text or a reference to it")
    appointment.add_argument("--by", help="who agreed, when not the line's holder")
    _json(appointment)
    appointment.set_defaults(handler=_appointment)

    run = commands.add_parser("run", help="the ARI gate: decide every call put in Stasis")
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(handler=_run)

    agi = commands.add_parser("agi", help="the FastAGI gate, and the agents' refusal key")
    agi.add_argument("--listen", help="HOST:PORT (default: [agi] listen, 127.0.0.1:4573)")
    agi.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    agi.set_defaults(handler=_agi)

    api = commands.add_parser("api", help="the HTTP API, /healthz and /metrics")
    api.add_argument("--bind", help="HOST:PORT (default: [api] bind, 127.0.0.1:8090)")
    api.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    api.add_argument(
        "--scrub-workers", type=_workers, metavar="N",
        help="processes judging call lists (default: [api] scrub_workers, 1 = this process)",
    )  # fmt: skip
    api.set_defaults(handler=_api)

    for service in (run, agi):
        service.add_argument(
            "--metrics",
            metavar="HOST:PORT",
            help="serve /metrics (Prometheus) and /healthz there (default: off)",
        )

    doctor = commands.add_parser(
        "doctor", help="check that this PBX is wired right for callgate",
        description="Check the live PBX against what callgate needs (ARI, modules, the app"
        " name, the trunk, the store, emergency routes, channelvars) and place one call that"
        " the gate must reject: Local/+000000@CTX. One line per check, with the fix of each"
        " fault. Exit status 0 when nothing fails (warnings allowed), 1 otherwise.",
    )  # fmt: skip
    doctor.add_argument(
        "--trunk", type=_asterisk_name, default="carrier", metavar="ENDPOINT",
        help="the PJSIP endpoint of the carrier (default: carrier)",
    )  # fmt: skip
    doctor.add_argument(
        "--context", type=_asterisk_name, default="callgate-outbound", metavar="CTX",
        help="the gated context dialers send calls to (default: callgate-outbound)",
    )  # fmt: skip
    _json(doctor)
    doctor.set_defaults(handler=_doctor)

    add_log_parser(commands, _instant)

    db = commands.add_parser(
        "db", help="the store itself: migrate it, or copy it to another store",
        description="migrate: bring the store's schema up to date and print its version. "
        "copy --to URL: copy every record (history, consents, contracts, opt-outs, the "
        "decision log) to an empty store, e.g. from SQLite to PostgreSQL.",
    )  # fmt: skip
    db.add_argument("action", choices=["migrate", "copy"])
    db.add_argument("--to", metavar="URL", help="copy: the store to fill (must hold no records)")
    db.set_defaults(handler=_db)
    return parser


def _asterisk_name(text: str) -> str:
    """A context or endpoint name: it goes into a dial string and a URL, as it is."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]*", text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a context or endpoint name (letters, digits, - _ . +)"
        )
    return text


def _company(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--company", help="company id (default: the only configured company)")


def _at(
    parser: argparse.ArgumentParser, text: str = "the instant to act at (default: now)"
) -> None:
    parser.add_argument("--at", type=_instant, help=f"ISO 8601; {text}")


def _json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


# ---------------------------------------------------------------- plumbing


async def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "log" and verifies_an_export(args):  # needs neither store nor config
        return verify_export(args)
    config = _config(args.config)
    if args.handler is _doctor:  # it opens the store itself: a store that fails is a finding
        return await _doctor(args, config)
    if args.handler is _db and args.action == "migrate":  # counts the rows before opening
        return await _db_migrate(args, config)
    url = store_url(args, config)
    store = await open_store(
        url, synchronous=config.synchronous, read_only=_opens_read_only(args, url)
    )
    if config.log.node:
        store.node = config.log.node
    tune_collector()
    try:
        handler: Callable[[argparse.Namespace, Config, Store], Awaitable[int]] = args.handler
        return await handler(args, config, store)
    finally:
        await store.close()


def store_url(args: argparse.Namespace, config: Config) -> str:
    return args.db or os.environ.get("CALLGATE_DB") or config.store_url


# The commands that only read: they open the store read-only, so that an auditor's copy or
# a snapshot on a read-only mount can be read, and nothing is migrated behind their back.
_READ_ONLY = {
    ("consent", "list"), ("consent", "receipt"), ("contract", "list"), ("optout", "list"),
    ("appointment", "list"), ("log", "list"), ("log", "stats"), ("log", "explain"),
    ("log", "replay"), ("log", "export"), ("log", "verify"),
}  # fmt: skip


def _opens_read_only(args: argparse.Namespace, url: str) -> bool:
    """A command that only reads opens the store read-only, and never creates one: an
    auditor's mistyped path must not "verify" an empty store made on the spot. Following
    the log waits for the gate that will write it, so it may create the file."""
    if (args.command, getattr(args, "action", None)) not in _READ_ONLY:
        return False
    if getattr(args, "follow", False):
        return False
    path = sqlite_path(url)
    if path is not None and path != ":memory:" and not Path(path).exists():
        raise UsageError(
            f"no store at {path}: nothing was recorded there (a wrong --db or [store] url?"
            " `callgate db migrate` makes a new one)"
        )
    return path != ":memory:"


# The options whose text is recorded, logged or echoed: bounded and printable.
_TEXT_OPTIONS = {
    "caller": "--from", "callee": "--to", "company": "--company", "campaign": "--campaign",
    "dept": "--dept", "source": "--source", "proof": "--proof", "by": "--by",
    "collected_by": "--collected-by", "covers": "--covers", "reason": "--reason",
    "listen": "--listen", "bind": "--bind", "metrics": "--metrics",
}  # fmt: skip
# `callgate log` names the numbers it filters on after the log's columns.
_LOG_TEXT_OPTIONS = {**_TEXT_OPTIONS, "caller": "--caller", "callee": "--callee"}


def _check_texts(args: argparse.Namespace) -> None:
    """Every free-text option within inputs.free_text's bounds; InvalidInput names it."""
    options = _LOG_TEXT_OPTIONS if args.command == "log" else _TEXT_OPTIONS
    for dest, option in options.items():
        inputs.free_text(getattr(args, dest, None), option)
    if args.command == "log" and args.action == "explain":
        inputs.free_text(args.target, "log explain: the decision id")


def _config(explicit: str | None) -> Config:
    path = find_config_file(explicit)
    if path is None:
        raise ConfigError(
            "no configuration: pass --config FILE, set CALLGATE_CONFIG, or create ./callgate.toml "
            "(see examples/callgate.toml)"
        )
    return load_config(path)


def _now(args: argparse.Namespace) -> datetime:
    return args.at or datetime.now(UTC)


def _number(text: str | None, option: str = "--to") -> str:
    return inputs.e164(text, option)


def _company_id(config: Config, given: str | None) -> str:
    return inputs.company_id(config, given, "--company")


def _print_records(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        print("(none)")
        return
    table = [list(columns), *([_cell(row[column]) for column in columns] for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        )


def _cell(value: Any) -> str:
    if isinstance(value, str) and len(value) > 18 and value[4:5] == "-" and value[10:11] == "T":
        return local_text(datetime.fromisoformat(value))
    return "-" if value is None else str(value)


# ---------------------------------------------------------------- commands


async def _check(args: argparse.Namespace, config: Config, store: Store) -> int:
    request = CallRequest(
        caller=args.caller,
        callee=args.callee,
        company=args.company,
        purpose=Purpose(args.purpose) if args.purpose else None,
        campaign=args.campaign,
        dept=args.dept,
    )
    now = _now(args)
    try:
        decision = await check_call(store, config, request, now, record=args.record)
    except StoreError as error:
        decision = gate_error(request, now, str(error))  # fail closed
    if args.json:
        print(json.dumps(decision_json(decision), ensure_ascii=False))
    else:
        print(render_decision(decision))
    return EXIT_OK if decision.allowed else EXIT_REJECT


async def _consent(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.action == "list":
        company = _company_id(config, args.company) if args.company else None
        callee = _number(args.callee) if args.callee else None
        records = await store.consents(company, callee)
        _print_records(
            [consent_json(r) for r in records], args.json,
            ("id", "callee", "company", "scope", "given_at", "expires_at", "revoked_at", "source"),
        )  # fmt: skip
        return EXIT_OK
    if args.action == "receipt":
        return await _consent_receipt(args, config, store)
    callee, company, at = _number(args.callee), _company_id(config, args.company), _now(args)
    if args.action == "add":
        digest, name = _proof_file(args.proof_file) if args.proof_file else (None, None)
        fields = inputs.ConsentFields(
            at, args.scope, args.expires, args.source, args.proof, args.by, args.collected_by,
            args.channel, args.covers, digest, name,
        )  # fmt: skip
        consent = inputs.consent(fields, config.rules.consent_max_age_days, _CONSENT_OPTIONS)
        record_id = await store.add_consent(company, callee, consent)
        print(
            f"consent {record_id}: {callee} consents to {company} ({consent.scope})"
            f" from {local_text(at)}"
        )
        return EXIT_OK
    scope = ConsentScope(args.scope) if args.scope else None
    count = await store.revoke_consents(company, callee, scope, at)
    print(f"revoked {count} consent(s) of {callee} to {company} at {local_text(at)}")
    return EXIT_OK


_CONSENT_OPTIONS = {"expires": "--expires", "scope": "--scope", "channel": "--channel",
                    "proof_sha256": "--proof-file"}  # fmt: skip


def _proof_file(name: str) -> tuple[str, str]:
    """The SHA-256 and the name of a proof file: the record points to the file for good."""
    digest = hashlib.sha256()
    try:
        with Path(name).open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as error:
        raise UsageError(f"--proof-file {name}: {error.strerror}") from None
    return digest.hexdigest(), inputs.free_text(Path(name).name, "--proof-file") or ""


async def _consent_receipt(args: argparse.Namespace, config: Config, store: Store) -> int:
    from callgate.receipt import consent_receipt

    callee = _number(args.callee)
    company = _company_id(config, args.company) if args.company else None
    if args.format == "pdf" and not args.output and sys.stdout.isatty():
        raise UsageError("a PDF receipt goes to a file: add --output FILE (or pipe it)")
    document, _ = await consent_receipt(store, config, callee, company, args.format, _now(args))
    if args.output:
        try:
            Path(args.output).write_bytes(document)
        except OSError as error:
            raise UsageError(f"--output {args.output}: {error.strerror}") from None
        print(f"receipt for {callee} written to {args.output} ({len(document):,} bytes)")
    else:
        sys.stdout.buffer.write(document)
        sys.stdout.flush()
    return EXIT_OK


async def _contract(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.action == "list":
        company = _company_id(config, args.company) if args.company else None
        callee = _number(args.callee) if args.callee else None
        records = await store.contracts(company, callee)
        _print_records(
            [contract_json(r) for r in records], args.json,
            ("id", "callee", "company", "start", "end"),
        )  # fmt: skip
        return EXIT_OK
    callee, company, at = _number(args.callee), _company_id(config, args.company), _now(args)
    if args.action == "add":
        if args.until is not None and args.until <= at:
            raise UsageError("--until must be later than the contract's start (--at)")
        record_id = await store.add_contract(company, callee, Contract(at, args.until))
        print(f"contract {record_id}: {company} with {callee} from {local_text(at)}"
              f" until {local_text(args.until) if args.until else 'further notice'}")  # fmt: skip
        return EXIT_OK
    count = await store.end_contracts(company, callee, at)
    print(f"ended {count} contract(s) of {company} with {callee} at {local_text(at)}")
    return EXIT_OK


async def _optout(args: argparse.Namespace, config: Config, store: Store) -> int:
    company = _company_id(config, args.company) if args.company else None
    at = _now(args)
    if args.action == "import":
        return await _optout_import(args, company, store, at)
    if args.file:
        raise UsageError(f"optout {args.action} takes --to NUMBER, not a file")
    if args.action == "list":
        callee = _number(args.callee) if args.callee else None
        rows = [opposition_json(r) async for r in store.oppositions(callee, company)]
        _print_records(
            rows, args.json, ("id", "callee", "company", "source", "added_at", "removed_at")
        )
        return EXIT_OK
    callee = _number(args.callee)
    if args.action == "add":
        source = args.source or "internal"
        added = await store.add_oppositions([callee], company, source, at)
        target = company or "every company"
        print(f"{callee} opposed to calls from {target} ({source})"
              + ("" if added else ": already listed"))  # fmt: skip
        return EXIT_OK
    count = await store.remove_oppositions(callee, company, at)
    print(f"removed {count} opposition entr{'y' if count == 1 else 'ies'} for {callee}")
    return EXIT_OK


async def _optout_import(
    args: argparse.Namespace, company: str | None, store: Store, at: datetime
) -> int:
    if not args.file:
        raise UsageError("optout import needs a FILE (a CSV or one number per line; - for stdin)")
    stats = ImportStats()
    started = time.monotonic()
    progress = _Progress(stats, started)
    source = args.source or "bloctel"
    # The chain's entry for the import names the file by its SHA-256, known once it is all
    # read: the store takes the origin after the last number, when it writes the entry.
    origin: dict[str, Any] = {"file": args.file}
    with _open_hashed(args.file) as (handle, digest):
        numbers = progress.watch(read_numbers(text_lines(handle), stats))
        added = await store.add_oppositions(
            _then(numbers, lambda: origin.update(file_sha256=digest.hexdigest(),
                                                 lines=stats.lines)),
            company, source, at, origin=origin,
        )  # fmt: skip
    progress.done()
    elapsed = time.monotonic() - started
    print(
        f"imported {args.file}: {stats.lines:,} lines, {stats.numbers:,} numbers, "
        f"{added:,} new entries, {stats.numbers - added:,} already listed, "
        f"{stats.rejected:,} rejected ({stats.unreadable:,} unreadable), in {elapsed:.1f} s"
    )
    for line_number, why in stats.first_rejected:
        print(f"  line {line_number}: {why}", file=sys.stderr)
    if stats.rejected and not stats.numbers:  # a wrong file, not a list with a few typos
        raise UsageError(
            f"{args.file}: no phone number in it ({stats.rejected:,} lines rejected,"
            f" {stats.unreadable:,} of them unreadable)"
        )
    return EXIT_OK


@contextlib.contextmanager
def _open_hashed(name: str) -> Iterator[tuple[TextIO, Any]]:
    """The file as text, and the SHA-256 of its bytes as they are read."""
    try:
        raw = sys.stdin.buffer if name == "-" else Path(name).open("rb")  # noqa: SIM115 (closed below)
    except OSError as error:
        raise UsageError(f"{name}: {error.strerror}") from None
    hashed = _HashingReader(raw)
    # Bloctel files are not always UTF-8; numbers are ASCII either way.
    text = io.TextIOWrapper(io.BufferedReader(hashed), encoding="utf-8", errors="replace")
    try:
        yield text, hashed.digest
    finally:
        text.detach()
        if raw is not sys.stdin.buffer:
            raw.close()


class _HashingReader(io.RawIOBase):
    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer)
        if count:
            self.digest.update(memoryview(buffer)[:count])
        return count or 0


def _then(items: Iterable[Any], finished: Callable[[], None]) -> Iterator[Any]:
    yield from items
    finished()


class _Progress:
    """A line on stderr every second or so, while a big file goes in."""

    def __init__(self, stats: ImportStats, started: float) -> None:
        self._stats, self._started, self._last = stats, started, started
        self._shown = False

    def watch(self, numbers: Any) -> Any:
        for number in numbers:
            now = time.monotonic()
            if now - self._last >= 1.0:
                self._last, self._shown = now, True
                rate = self._stats.lines / (now - self._started)
                print(f"  {self._stats.lines:,} lines read ({rate:,.0f}/s)...", file=sys.stderr)
            yield number

    def done(self) -> None:
        if self._shown:
            print(f"  {self._stats.lines:,} lines read", file=sys.stderr)


async def _outcome(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.result == "list":
        company = _company_id(config, args.company) if args.company else None
        callee = _number(args.callee) if args.callee else None
        rows = [outcome_json(o) for o in await store.outcomes(company, callee)]
        _print_records(rows, args.json, OUTCOME_COLUMNS)
        return EXIT_OK
    if not args.callee:
        raise UsageError(f"outcome {args.result} needs --to NUMBER")
    callee, company, at = _number(args.callee), _company_id(config, args.company), _now(args)
    if args.result == "refused":
        record_id = await store.add_refusal(company, callee, at, "cli")
        print(f"refusal {record_id}: {callee} refused {company} at {local_text(at)}")
        return EXIT_OK
    done = await store.withdraw(company, callee, at, "cli")
    print(
        f"withdrawal: {callee} withdrew from {company} at {local_text(at)}:"
        f" {done.revoked} consent(s) revoked, "
        + ("added to its opposition list" if done.opposed else "already on its opposition list")
        + f", refusal {done.refusal_id} recorded (cool-down)"
    )
    return EXIT_OK


async def _appointment(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.action == "list":
        company = _company_id(config, args.company) if args.company else None
        callee = _number(args.callee) if args.callee else None
        window = config.rules.appointment_window_minutes
        rows = [appointment_json(r, window) for r in await store.appointments(company, callee)]
        _print_records(rows, args.json, ("id", "callee", "company", "start", "end", "cancelled_at"))
        return EXIT_OK
    callee, company = _number(args.callee), _company_id(config, args.company)
    if args.at is None:
        raise UsageError(f"appointment {args.action} needs --at START")
    if args.action == "add":
        booked = inputs.appointment(args.at, args.until, "--until")
        record = AppointmentRecord(
            0, company, callee, booked, datetime.now(UTC),
            source=args.source, proof=args.proof, agreed_by=args.by,
        )  # fmt: skip
        record_id = await store.add_appointment(company, callee, record)
        end = booked.ends_at(config.rules.appointment_window_minutes)
        print(f"appointment {record_id}: {company} may call {callee}"
              f" from {local_text(args.at)} until {local_text(end)}")  # fmt: skip
        return EXIT_OK
    count = await store.cancel_appointments(company, callee, args.at, datetime.now(UTC))
    if not count:
        raise UsageError(f"no appointment of {company} with {callee} at {local_text(args.at)}")
    print(f"cancelled {count} appointment(s) of {company} with {callee} at {local_text(args.at)}")
    return EXIT_OK


async def _run(args: argparse.Namespace, config: Config, store: Store) -> int:
    from ari_app.client import AriClient
    from ari_app.gate import AriGate

    _service_logging(args.log_level)
    health = _health_listen(args)
    settings = config.ari
    password = settings.password()
    stop = _stop_on_signals()
    logging.getLogger("callgate").info(
        "callgate run: store %s, ARI %s, app %r", safe_url(store_url(args, config)),
        safe_url(settings.url), settings.app,
    )  # fmt: skip
    async with AriClient(settings.url, settings.username, password, settings.app) as client:
        gate = AriGate(client, store, config)

        def ari() -> tuple[str, str, bool]:
            up = gate.connected.is_set()
            return "ari", "connected" if up else "disconnected", up

        async with _health_server(health, store, ari):
            why = await gate.run(stop)
    return EXIT_OK if why == "stopped" else EXIT_REJECT


async def _agi(args: argparse.Namespace, config: Config, store: Store) -> int:
    from agi.server import AgiGate

    _service_logging(args.log_level)
    health = _health_listen(args)
    listen = args.listen or config.agi.listen
    host, port = _host_port(listen, "--listen")
    stop = _stop_on_signals()
    logging.getLogger("callgate").info("callgate agi: store %s", safe_url(store_url(args, config)))
    gate = AgiGate(store, config)

    def agi() -> tuple[str, str, bool]:
        return "agi", "listening" if gate.listening else "not listening", gate.listening

    try:
        async with _health_server(health, store, agi):
            await gate.serve(host, port, stop)
    except OSError as error:
        raise UsageError(f"cannot listen on {listen}: {error.strerror}") from None
    return EXIT_OK


async def _api(args: argparse.Namespace, config: Config, store: Store) -> int:
    from callgate.api import make_app, serve

    _service_logging(args.log_level)
    host, port = _host_port(args.bind or config.api.bind, "--bind")
    tokens = config.api.tokens()
    workers = await _scrub_workers(args, config)
    try:
        try:
            runner = await serve(make_app(store, config, tokens, workers), host, port)
        except OSError as error:
            raise UsageError(f"cannot listen on {host}:{port}: {error.strerror}") from None
        logging.getLogger("callgate").info(
            "callgate api listening on http://%s:%d; the console is at /console/", host, port
        )
        stop = _stop_on_signals()
        await stop.wait()
        await runner.cleanup()
    finally:
        if workers is not None:
            workers.close()
    return EXIT_OK


async def _scrub_workers(args: argparse.Namespace, config: Config) -> ScrubWorkers | None:
    count = args.scrub_workers or config.api.scrub_workers
    if count == 1:
        return None
    url = store_url(args, config)
    if url == ":memory:":
        raise UsageError("scrub workers need a store file or server: :memory: lives in one process")
    path = find_config_file(args.config)
    assert path is not None, "the configuration was loaded from a file"
    workers = ScrubWorkers(path, url, count)
    await workers.start()
    logging.getLogger("callgate").info("callgate api: %d scrub workers", count)
    return workers


def _host_port(text: str, option: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"{option}: {text!r} is not HOST:PORT, such as 127.0.0.1:8090")
    return host, int(port)


def _health_listen(args: argparse.Namespace) -> tuple[str, int] | None:
    return _host_port(args.metrics, "--metrics") if args.metrics else None


@contextlib.asynccontextmanager
async def _health_server(
    listen: tuple[str, int] | None, store: Store, part: Callable[[], tuple[str, str, bool]]
) -> AsyncIterator[None]:
    from callgate.health import ListenError, health_server

    try:
        async with health_server(listen, store, part):
            yield
    except ListenError as error:
        raise UsageError(f"--metrics: cannot listen on {error}") from None


def _service_logging(level: str) -> None:
    # The format shows none of them: each would cost every line a lookup (getpid is a
    # system call), and a gate writes a line per call.
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.server").addFilter(_client_errors_in_one_line)
    # A PDF receipt made fontTools log each font table it subsets: some 75 lines.
    for chatty in ("fontTools", "fpdf"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _client_errors_in_one_line(record: logging.LogRecord) -> bool:
    """A malformed request is the client's fault: one line, not a traceback; a flood of
    them, one line per kind every 10 s and the count of the others."""
    from aiohttp.http_exceptions import HttpProcessingError

    error = record.exc_info[1] if record.exc_info else None
    if not isinstance(error, HttpProcessingError):
        return True
    kind = type(error).__name__  # aiohttp's classes: a fixed set, never the client's text
    first = (error.message or "").strip().splitlines()[:1] or [kind]
    record.msg, record.args = "bad HTTP request (%s): %s", (kind, _one_line(first[0]))
    record.exc_info, record.exc_text, record.levelno, record.levelname = (
        None, None, logging.WARNING, "WARNING",
    )  # fmt: skip
    return _BAD_REQUESTS.due(kind)


def _more_bad_requests(kind: str, count: int) -> None:
    logging.getLogger("aiohttp.server").warning(
        "bad HTTP request (%s): %d more within %g s", kind, count, _BAD_REQUESTS.interval
    )


_BAD_REQUESTS: Throttle[str] = Throttle(_more_bad_requests)


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    return stop


async def _doctor(args: argparse.Namespace, config: Config) -> int:
    from callgate.doctor import Options, run_doctor

    url = store_url(args, config)
    options = Options(
        store_url=url, store_label=safe_url(url), synchronous=config.synchronous,
        trunk=args.trunk, context=args.context,
    )  # fmt: skip
    return await run_doctor(config, options, as_object=args.json)


async def _db(args: argparse.Namespace, config: Config, store: Store) -> int:
    # `db migrate` never gets here: _dispatch runs it before the store is opened.
    return await _db_copy(args, config, store)


async def _db_migrate(args: argparse.Namespace, config: Config) -> int:
    from callgate.upgrade import migrate_store, report_lines

    if args.to:
        raise UsageError("--to goes with db copy")
    url = store_url(args, config)
    print(f"migrating {safe_url(url)}", file=sys.stderr)
    report = await migrate_store(url, synchronous=config.synchronous)
    for line in report_lines(report):
        print(line)
    return EXIT_OK if report.ok else EXIT_ERROR


async def _db_copy(args: argparse.Namespace, config: Config, store: Store) -> int:
    from callgate.cli_log import verify_chain
    from callgate.store.copy import copy_store

    source = store_url(args, config)
    if not args.to:
        raise UsageError("db copy needs --to URL, the store to copy into")
    if args.to == source:
        raise UsageError("db copy: --to names the store being copied")
    target = await open_store(args.to, synchronous=config.synchronous)
    print(f"copying {safe_url(source)} to {safe_url(args.to)}", file=sys.stderr)
    started = time.monotonic()
    progress = _CopyProgress()
    try:
        copied = await copy_store(store, target, progress=progress.show)
        progress.done()
        check = await verify_chain(target)
    finally:
        await target.close()
    seconds = time.monotonic() - started
    print(f"copied {sum(copied.values()):,} records in {seconds:.1f} s: " + ", ".join(
        f"{table} {count:,}" for table, count in copied.items()
    ))  # fmt: skip
    if not check.ok:
        print(f"BROKEN: the copy's decision log: {check}")
        return EXIT_REJECT
    print(
        f"the copy's decision log verifies: {check.verifier.count:,} entries,"
        f" {check.rows:,} fact rows as it says"
    )
    return EXIT_OK


class _CopyProgress:
    """One line per table, and a line a second on a long one."""

    def __init__(self) -> None:
        self._table: str | None = None
        self._rows = 0
        self._total = 0
        self._last = time.monotonic()

    def show(self, batch: Batch) -> None:
        if batch.table != self._table:
            self.done()
            self._table, self._rows, self._total = batch.table, 0, batch.total
        self._rows += len(batch.rows)
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            print(f"  {self._table}: {self._rows:,} of {self._total:,}...", file=sys.stderr)

    def done(self) -> None:
        if self._table is not None:
            print(f"  {self._table}: {self._total:,}", file=sys.stderr)
            self._table = None
