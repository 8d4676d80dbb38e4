"""The real `callgate` command against what a hostile user or a broken disk throws at it:
it exits, with status 2 and one line, never a traceback, a hang or a leaked password."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from test_store_open import a_store_with_a_consent, fill, seal, tmpfs, unopenable

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "callgate.toml"
PATIENCE = 15  # seconds: a command that has not exited by then hangs
NOT_UTF8 = b"\xff\xfe0612".decode("utf-8", "surrogateescape")  # argv as Python reads it


class Ran:
    def __init__(self, status: int | None, stdout: str, stderr: str, seconds: float) -> None:
        self.status, self.stdout, self.stderr, self.seconds = status, stdout, stderr, seconds

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def callgate(
    *args: str, cwd: Path, db: Path | str | None = None, python: str = "-m callgate", **env: str
) -> Ran:
    """`python -m callgate ARGS` from this checkout (``python``: what goes before ARGS);
    a hang is reported, not waited out."""
    environ = {**os.environ, "PYTHONPATH": str(ROOT), "CALLGATE_CONFIG": str(EXAMPLE), **env}
    environ.pop("CALLGATE_DEBUG", None)
    environ.pop("CALLGATE_DB", None)
    where = ["--db", str(db)] if db else []
    command = [sys.executable, *python.split(), *where, *args]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, cwd=cwd, env=environ, timeout=PATIENCE
        )  # fmt: skip
    except subprocess.TimeoutExpired as hung:
        stderr = (hung.stderr or b"").decode(errors="replace")
        return Ran(None, "", stderr, time.monotonic() - started)
    decode = lambda data: data.decode(errors="replace")  # noqa: E731
    return Ran(done.returncode, decode(done.stdout), decode(done.stderr),
               time.monotonic() - started)  # fmt: skip


def assert_one_line_error(ran: Ran, *words: str) -> None:
    assert ran.status is not None, f"hung for {PATIENCE} s; stderr: {ran.stderr[-500:]}"
    assert ran.status == 2, (ran.status, ran.stdout[-500:], ran.stderr[-500:])
    assert "Traceback" not in ran.stderr and "internal error" not in ran.stderr, ran.stderr
    assert len(ran.error_lines) == 1, ran.stderr
    [line] = ran.error_lines
    assert line.startswith("callgate: error: "), line
    for word in words:
        assert word in line, line


# ---------------------------------------------------------------- stores that cannot open

COMMANDS = [
    ("check", "--from", "0948000001", "--to", "0612345678", "--at", "2026-11-23T11:00"),
    ("check", "--from", "0948000001", "--to", "0612345678", "--at", "2026-11-23T11:00",
     "--record"),
    ("log", "verify"),
    ("consent", "list"),
]  # fmt: skip


def each_command_fails_in_one_line(folder: Path, db: Path) -> None:
    with ThreadPoolExecutor(len(COMMANDS)) as pool:
        runs = list(pool.map(lambda args: callgate(*args, cwd=folder, db=db), COMMANDS))
    for args, ran in zip(COMMANDS, runs, strict=True):
        assert ran.status is not None, f"{args[:2]} hung; stderr: {ran.stderr[-300:]}"
        assert_one_line_error(ran, "store")
        assert ran.seconds < PATIENCE


@pytest.mark.parametrize("kind", ["junk", "corrupt", "directory"])
async def test_a_store_that_cannot_be_opened_ends_each_command_in_one_line(tmp_path, kind):
    each_command_fails_in_one_line(tmp_path, await unopenable(kind, tmp_path))


def test_a_new_store_in_a_read_only_folder_ends_each_command_in_one_line(tmp_path):
    with tmpfs(tmp_path / "ro") as folder:
        seal(folder)
        each_command_fails_in_one_line(tmp_path, folder / "new.db")


def test_a_full_disk_ends_each_command_in_one_line(tmp_path):
    with tmpfs(tmp_path / "full", size="64k") as folder:
        fill(folder)
        each_command_fails_in_one_line(tmp_path, folder / "new.db")


@pytest.mark.parametrize("service", [("agi", "--listen", "127.0.0.1:45873"), ("run",)])
async def test_a_service_on_a_store_that_cannot_open_exits_non_zero(tmp_path, service):
    ran = callgate(*service, cwd=tmp_path, db=await unopenable("corrupt", tmp_path))
    assert ran.status is not None, f"{service[0]} neither serves nor exits"
    assert ran.status != 0
    assert_one_line_error(ran, "cannot open the store")


async def test_a_store_damaged_past_its_schema_fails_in_one_line(tmp_path):
    path = tmp_path / "damaged.db"
    await a_store_with_a_consent(path)
    page = 4096
    data = path.read_bytes()
    path.write_bytes(data[:page] + b"\xa5" * (len(data) - page))
    for args in (("consent", "list"), ("log", "verify")):
        assert_one_line_error(callgate(*args, cwd=tmp_path, db=path), "store")


# ---------------------------------------------------------------- a read-only copy

READS = [
    (("consent", "list", "--json"), "+33612345678"),
    (("contract", "list"), "(none)"),
    (("optout", "list"), "(none)"),
    (("appointment", "list"), "(none)"),
    (("log", "--json"), "+33612345678"),
    (("log", "stats", "--json"), "allow"),
    (("log", "verify"), "OK: the store: 2 entries"),  # the consent and the decision
    (("log", "export"), "+33612345678"),
    (("consent", "receipt", "--to", "0612345678"), "Consentement 1 sur 1"),
]


def test_the_read_commands_read_a_copy_on_a_read_only_mount(tmp_path):
    with tmpfs(tmp_path / "ro") as folder:
        db = folder / "callgate.db"
        callgate("consent", "add", "--to", "0612345678", "--at", "2026-09-01", cwd=tmp_path,
                 db=db)  # fmt: skip
        callgate("check", "--from", "0948000001", "--to", "0612345678", "--record",
                 "--at", "2026-11-23T11:00", cwd=tmp_path, db=db)  # fmt: skip
        seal(folder)
        with ThreadPoolExecutor(len(READS)) as pool:
            runs = list(pool.map(lambda read: callgate(*read[0], cwd=tmp_path, db=db), READS))
        for (args, shown), ran in zip(READS, runs, strict=True):
            assert ran.status == 0, (args, ran.stderr)
            assert shown in ran.stdout, (args, ran.stdout[:500])
        wrote = callgate("consent", "add", "--to", "0612345678", cwd=tmp_path, db=db)
        assert_one_line_error(wrote, "cannot open the store", "only the commands that read")


def test_a_read_command_on_an_older_store_says_to_migrate_and_changes_nothing(tmp_path):
    path = tmp_path / "previous.db"
    shutil.copy(ROOT / "tests" / "fixtures" / "previous-release" / "callgate.db", path)
    before = path.read_bytes()
    ran = callgate("log", "verify", cwd=tmp_path, db=path)
    assert_one_line_error(ran, "schema is version", "callgate db migrate")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous.db"]


@pytest.mark.parametrize(
    "command", [("consent", "list"), ("log", "verify"), ("log", "export"), ("log", "stats")]
)
def test_a_read_command_on_a_missing_store_says_so_and_creates_nothing(tmp_path, command):
    """An auditor's mistyped path: not "OK, 0 entries" on an empty store made on the spot."""
    ran = callgate(*command, cwd=tmp_path, db=tmp_path / "typo.db")
    assert_one_line_error(ran, "no store at", "typo.db")
    assert not (tmp_path / "typo.db").exists()


def test_a_new_store_is_made_by_a_command_that_writes(tmp_path):
    ran = callgate("optout", "add", "--to", "0612345678", cwd=tmp_path, db=tmp_path / "new.db")
    assert ran.status == 0, ran.stderr
    with sqlite3.connect(tmp_path / "new.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] > 0


# ---------------------------------------------------------------- crafted arguments

CHECK = ("check", "--from", "0948000001", "--to", "0612345678")
APPOINTMENT = ("appointment", "add", "--to", "0612345678", "--at", "2026-12-01T10:00")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (("check", "--from", NOT_UTF8, "--to", "0612345678", "--record"), "--from"),
        (("check", "--from", "0948000001", "--to", NOT_UTF8), "--to"),
        (("check", "--from", "0948000001", "--to", "06" * 5000), "--to"),
        (("check", "--from", "09" * 5000, "--to", "0612345678", "--record"), "--from"),
        ((*CHECK, "--campaign", "c" * 201, "--record"), "--campaign"),
        ((*CHECK, "--dept", "57\n"), "--dept"),
        ((*CHECK, "--company", "a" * 50_000), "--company"),
        (("consent", "add", "--to", "0612345678", "--source", "web\x1b[2J"), "--source"),
        (("consent", "add", "--to", "0612345678", "--proof", "p" * 201), "--proof"),
        (("consent", "add", "--to", "0612345678", "--by", "b" * 201), "--by"),
        (("consent", "add", "--to", "0612345678", "--collected-by", "\x7f"), "--collected-by"),
        (("consent", "add", "--to", "0612345678", "--covers", "c" * 201), "--covers"),
        ((*APPOINTMENT, "--source", "s" * 201), "--source"),
        ((*APPOINTMENT, "--by", NOT_UTF8), "--by"),
        (("outcome", "refused", "--to", "0612345678", "--company", "a" * 50_000), "--company"),
        (("log", "--campaign", "c" * 201), "--campaign"),
        (("log", "--callee", "06" * 5000), "--callee"),
        (("log", "explain", "x" * 5000), "decision id"),
    ],
)
def test_free_text_is_bounded_and_names_its_option(tmp_path, args, option):
    ran = callgate(*args, cwd=tmp_path, db=tmp_path / "callgate.db")
    assert_one_line_error(ran, option)
    assert len(ran.stderr) < 2000  # the offending text is not echoed back whole


def test_a_proof_file_with_an_unprintable_name_is_refused(tmp_path):
    proof = tmp_path / "proof\x1b.pdf"
    proof.write_bytes(b"%PDF-1.4")
    ran = callgate("consent", "add", "--to", "0612345678", "--proof-file", str(proof),
                   cwd=tmp_path, db=tmp_path / "callgate.db")  # fmt: skip
    assert_one_line_error(ran, "--proof-file")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ((*CHECK, "--at", "0001-01-01"), ("--at", "out of range")),
        ((*CHECK, "--at", "9999-12-31T23:59"), ("--at", "out of range")),
        ((*CHECK, "--at", "tomorrow\nrm -rf /"), ("--at", "not an ISO 8601")),
        (("consent", "add", "--to", "0612345678", "--expires", "x"), ("--expires",)),
        (("contract", "add", "--to", "0612345678", "--until", "x"), ("--until",)),
        (("optout", "add", "--to", "0612345678", "--at", "x"), ("--at",)),
        (("outcome", "refused", "--to", "0612345678", "--at", "x"), ("--at",)),
        (("appointment", "add", "--to", "0612345678", "--at", "x"), ("--at",)),
        (("log", "--since", "0001-01-01"), ("--since",)),
        (("log", "purge", "--before", "x"), ("--before",)),
        (("log", "--limit", "many"), ("--limit",)),
        (("log", "--limit", "-1"), ("--limit", "1 to 1,000,000")),
        (("log", "--limit", "9" * 30), ("--limit", "1 to 1,000,000")),
        (("api", "--scrub-workers", "-1"), ("--scrub-workers",)),
        (("doctor", "--trunk", "a b"), ("--trunk",)),
        (("check", "--from", "0948000001"), ("--to",)),
        ((*CHECK, "--purpose", "spam"), ("--purpose", "invalid choice")),
        ((*CHECK, "--bogus\x1b[31m"), ("unrecognized arguments", "\\x1b")),
        (("teleport",), ("invalid choice",)),
        ((), ("COMMAND",)),
    ],
)
def test_argument_errors_are_one_line(tmp_path, args, words):
    ran = callgate(*args, cwd=tmp_path, db=tmp_path / "callgate.db")
    assert_one_line_error(ran, *words)
    assert "usage:" not in ran.stderr


def test_a_binary_config_file_is_one_line(tmp_path):
    config = tmp_path / "callgate.toml"
    config.write_bytes(bytes(range(256)) * 4)
    ran = callgate(
        "consent", "list", cwd=tmp_path, db=tmp_path / "x.db", CALLGATE_CONFIG=str(config)
    )
    assert_one_line_error(ran, str(config))


def test_an_unsupported_store_url_does_not_print_its_password(tmp_path):
    ran = callgate("consent", "list", cwd=tmp_path, db="mysql://user:s3cr3t@db.example/callgate")
    assert_one_line_error(ran, "unsupported store URL", "user:***@db.example")
    assert "s3cr3t" not in ran.stderr


# ---------------------------------------------------------------- optout import


def test_importing_a_binary_file_counts_its_lines_as_unreadable_and_fails(tmp_path):
    binary = tmp_path / "bloctel.zip"
    binary.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 64)
    ran = callgate("optout", "import", str(binary), cwd=tmp_path, db=tmp_path / "c.db")
    assert ran.status == 2, (ran.stdout, ran.stderr)
    assert "0 numbers" in ran.stdout and "unreadable)" in ran.stdout
    rejected = int(ran.stdout.split(" rejected (")[0].rsplit(" ", 1)[-1].replace(",", ""))
    unreadable = int(ran.stdout.split(" rejected (")[1].split(" ")[0].replace(",", ""))
    assert rejected >= unreadable > 0
    assert "unreadable: not a line of text" in ran.stderr
    assert ran.error_lines[-1].startswith("callgate: error: ")
    assert "no phone number" in ran.error_lines[-1]
    assert "Traceback" not in ran.stderr


def test_a_latin1_list_with_a_header_still_imports(tmp_path):
    listing = tmp_path / "bloctel.csv"
    listing.write_bytes("numéro;prénom\n0612345678;Hélène\n0612345679;Zoé\n".encode("latin-1"))
    ran = callgate("optout", "import", str(listing), cwd=tmp_path, db=tmp_path / "c.db")
    assert ran.status == 0, ran.stderr
    assert "2 numbers, 2 new entries" in ran.stdout and "0 rejected (0 unreadable)" in ran.stdout


# Runs a command, then prints the peak memory (KiB) of the processes it waited for.
PEAK = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:]);"
    " print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def test_a_file_without_line_breaks_is_read_in_bounded_memory(tmp_path):
    endless = tmp_path / "endless.txt"
    endless.write_bytes(b"0612345678" * 10_000_000 + b"\n0612345679\n")  # a 100 MB line
    ran = callgate("-c", PEAK, sys.executable, "-m", "callgate", "--db", str(tmp_path / "c.db"),
                   "optout", "import", str(endless), cwd=tmp_path, python="")  # fmt: skip
    assert ran.status == 0, ran.stderr
    summary, peak = ran.stdout.strip().splitlines()
    assert "2 lines, 1 numbers" in summary and "1 rejected (1 unreadable)" in summary
    assert int(peak) < 150 * 1024, f"{int(peak) // 1024} MB to read a 100 MB line"


@pytest.mark.parametrize("command", [("db", "migrate"), ("doctor",)])
def test_a_fifo_as_the_store_of_a_command_that_reads_it_first_is_refused_at_once(
    tmp_path, command
):  # fmt: skip
    """`db migrate` and the doctor read the store's version before opening it."""
    fifo = tmp_path / "store.db"
    os.mkfifo(fifo)
    ran = callgate(*command, cwd=tmp_path, db=fifo)
    assert ran.status is not None, "blocked on the FIFO"
    assert "not a regular file" in ran.stderr + ran.stdout
    assert "Traceback" not in ran.stderr


@pytest.mark.parametrize("target", ["missing.jsonl", "."])
def test_log_verify_of_a_file_that_cannot_be_read_is_one_line(tmp_path, target):
    ran = callgate("log", "verify", str(tmp_path / target), cwd=tmp_path, db=tmp_path / "x.db")
    assert_one_line_error(ran)


def test_an_export_to_a_full_device_is_one_line(tmp_path):
    callgate(*CHECK, "--record", cwd=tmp_path, db=tmp_path / "x.db")
    ran = callgate("log", "export", "-o", "/dev/full", cwd=tmp_path, db=tmp_path / "x.db")
    assert_one_line_error(ran)
