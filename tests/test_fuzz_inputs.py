"""Property-based fuzzing of what reads outside input: the configuration loader, the
reader of `log verify`, the number parser. Each returns its result or its documented
error, in bounded time; the real command exits with a documented status, no traceback."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate.auditlog import CHAINED_FIELDS, GENESIS, entry_hash
from callgate.cli_log import _verify_file
from callgate.config import (
    AgiSettings,
    AmiSettings,
    ApiSettings,
    AriSettings,
    Config,
    ConfigError,
    LogSettings,
    RuleSettings,
    load_config,
    parse_config,
)
from callgate.inputs import InvalidInput, e164
from callgate.numbering import Kind, Number, parse_number

ROOT = Path(__file__).resolve().parent.parent
QUICK = settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
# A few runs of the real command: each starts a Python process.
COMMAND = settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))


def _file(content: bytes, suffix: str) -> Path:
    handle = tempfile.NamedTemporaryFile(suffix=suffix, delete=False)  # noqa: SIM115
    with handle:
        handle.write(content)
    return Path(handle.name)


def _command(*args: str, db: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALLGATE_DB": str(db)}
    env.pop("CALLGATE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "callgate", *args],
        capture_output=True, text=True, errors="replace", env=env, cwd=ROOT, timeout=30,
    )  # fmt: skip


def _no_crash(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "internal error" not in result.stderr, result.stderr


# ---------------------------------------------------------------- values as TOML has them

_SCALARS = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.sampled_from([0, 1, -1, 2**63, 10**12, 65536, 99999999999]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["", "0612345678", "+33 1 40 00 00 00", "3010", "²", "127.0.0.1:²", "FR-MET"]),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    st.times(),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
# A section's keys are its settings' fields: a key added later is fuzzed too.
_SECTION_KEYS = {
    "store": ["url", "synchronous"],
    **{
        section: [f.name for f in dataclasses.fields(settings)]
        for section, settings in (
            ("rules", RuleSettings), ("ari", AriSettings), ("agi", AgiSettings),
            ("api", ApiSettings), ("log", LogSettings), ("ami", AmiSettings),
        )
    },
}  # fmt: skip
_NUMBERS = st.lists(
    st.one_of(st.sampled_from(["+33140000000", "0140000000", "3010", "0948000001"]), _SCALARS),
    max_size=4,
)
_COMPANY = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.sampled_from(["acme", "globex"]), st.just(""), _SCALARS),
        "name": st.one_of(st.text(max_size=20), _VALUES),
        "sector": st.one_of(st.sampled_from(["telecom", "energy_renovation"]), _VALUES),
        "numbers": st.one_of(_NUMBERS, _NUMBERS, _VALUES),
    },
)  # fmt: skip


# Values a key may well hold, so that a table often passes and the next one is reached.
_PLAUSIBLE = st.sampled_from([
    0, 1, 15, 60, 365, 3650, 256, 1.5, 2.0, 5038, True, False, "full", "fr", "prospecting",
    "http://127.0.0.1:8088", "127.0.0.1:4573", "callgate", "/etc/callgate/secret", [],
    ["3624"], {"0948": ["FR-MET"]},
])  # fmt: skip


def _section(keys: list[str]) -> st.SearchStrategy[dict]:
    names = st.one_of(st.sampled_from(keys), st.sampled_from(keys), st.text(max_size=10))
    return st.dictionaries(names, st.one_of(_PLAUSIBLE, _VALUES), max_size=5)


_CONFIGS = st.fixed_dictionaries(
    {},
    optional={
        **{
            name: st.one_of(_section(keys), _section(keys), _VALUES)
            for name, keys in _SECTION_KEYS.items()
        },
        "companies": st.one_of(st.lists(_COMPANY, max_size=3), _VALUES),
    },
)


def _config_or_error(load: Callable[..., Config], *args: object) -> Config | ConfigError:
    try:
        return load(*args)
    except ConfigError as error:
        message = str(error)
        assert message and "\n" not in message and len(message) < 600, message
        return error


@QUICK
@given(_CONFIGS)
def test_any_table_is_a_config_or_a_config_error(data):
    assert isinstance(_config_or_error(parse_config, data), Config | ConfigError)


def _toml_scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a basic string in TOML's escapes, lists of those too


_TOML_PIECES = st.sampled_from([
    "[", "]", "[[", "]]", "{", "}", "=", " = ", ",", ".", "\n", " ", "#", '"', "'", '"""',
    "rules", "companies", "agi", "api", "log", "refusal_cooldown_days", "numbers", "id",
    "1", "0x1", "1e9", "inf", "nan", "true", "1979-05-27", "T07:32:00", "\\u", "\\", "é",
    "9" * 5000, "[" * 2000, "\x00", "\r",
])  # fmt: skip
_TOML_TEXT = st.one_of(
    st.lists(_TOML_PIECES, max_size=40).map("".join),
    st.builds(
        lambda section, key, value: f"[{section}]\n{key} = {_toml_scalar(value)}\n",
        st.sampled_from(list(_SECTION_KEYS)),
        st.sampled_from(sorted({k for keys in _SECTION_KEYS.values() for k in keys})),
        st.one_of(_SCALARS, st.lists(st.text(max_size=10), max_size=3)),
    ),
)
_CONFIG_BYTES = st.one_of(st.binary(max_size=3000), _TOML_TEXT.map(lambda t: t.encode("utf-8")))


@QUICK
@given(_CONFIG_BYTES)
def test_any_file_is_a_config_or_a_config_error(content):
    path = _file(content, ".toml")
    try:
        assert isinstance(_config_or_error(load_config, path), Config | ConfigError)
    finally:
        path.unlink()


@COMMAND
@given(_CONFIG_BYTES)
def test_the_command_on_any_config_exits_0_or_2_in_one_line(content):
    path = _file(content, ".toml")
    try:
        result = _command("--config", str(path), "consent", "list", db=path.with_suffix(".db"))
    finally:
        path.unlink()
        path.with_suffix(".db").unlink(missing_ok=True)
    _no_crash(result)
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        assert result.stderr.startswith("callgate: error: ") and result.stderr.count("\n") == 1


# ---------------------------------------------------------------- log verify's reader


def _chain(count: int) -> list[dict]:
    """A valid chain of ``count`` entries, as an export holds them."""
    entries, prev = [], GENESIS
    for seq in range(1, count + 1):
        entry = dict.fromkeys(CHAINED_FIELDS)
        entry.update(seq=seq, id=f"decision-{seq}", verdict="allow", reasons=[], prev_hash=prev)
        entry["hash"] = prev = entry_hash(entry)
        entries.append(entry)
    return entries


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
_FIELD = st.sampled_from([*CHAINED_FIELDS, "hash", "callee", "callee_salt", "callee_in"])


@st.composite
def _export_lines(draw: st.DrawFn) -> list[bytes]:
    """A real chain, a line of it replaced, edited, or removed, and junk lines around."""
    items: list[object] = list(_chain(draw(st.integers(1, 4))))
    for _ in range(draw(st.integers(0, 3))):
        where = draw(st.integers(0, len(items)))
        kind = draw(st.sampled_from(["json", "edit", "bytes", "anchor", "drop"]))
        if kind == "json":
            items.insert(where, draw(_JSON))
        elif kind == "edit" and where < len(items) and isinstance(items[where], dict):
            items[where] = {**items[where], draw(_FIELD): draw(_JSON)}  # type: ignore[dict-item]
        elif kind == "bytes":
            items.insert(where, draw(st.binary(max_size=60)).replace(b"\n", b""))
        elif kind == "anchor":
            items.insert(0, {"anchor": draw(_JSON)})
        elif kind == "drop" and items:
            del items[min(where, len(items) - 1)]
    return [i if isinstance(i, bytes) else json.dumps(i).encode() for i in items]


def _check_file(content: bytes) -> None:
    path = _file(content, ".jsonl")
    try:
        verifier, broken, source = _verify_file(path)
    finally:
        path.unlink()
    if broken is None:
        assert source == str(path)
        return
    assert re.fullmatch(rf"{re.escape(str(path))} line [0-9]+", source)
    assert broken.position == verifier.count + 1
    assert "\n" not in str(broken) and "\x1b" not in str(broken)


@QUICK
@given(st.binary(max_size=2000))
def test_log_verify_reads_any_bytes(content):
    _check_file(content)


@QUICK
@given(_export_lines())
def test_log_verify_reads_any_json_lines(lines):
    _check_file(b"\n".join(lines) + b"\n")


def test_an_intact_chain_verifies_whole():
    """The reader is not blind: an untouched chain verifies to its last entry."""
    path = _file(b"\n".join(json.dumps(e).encode() for e in _chain(4)) + b"\n", ".jsonl")
    try:
        verifier, broken, _ = _verify_file(path)
    finally:
        path.unlink()
    assert broken is None and verifier.count == 4


@COMMAND
@given(st.one_of(st.binary(max_size=300), _export_lines().map(lambda ls: b"\n".join(ls))))
def test_the_command_on_any_export_exits_0_or_1(content):
    path = _file(content, ".jsonl")
    db = path.with_suffix(".db")
    config = _file(b'[[companies]]\nid = "acme"\n', ".toml")
    try:
        result = _command("--config", str(config), "log", "verify", str(path), db=db)
    finally:
        for leftover in (path, db, config):
            leftover.unlink(missing_ok=True)
    _no_crash(result)
    assert result.returncode in (0, 1), result.stderr
    assert result.stdout.startswith("BROKEN: " if result.returncode else "OK: ")


# ---------------------------------------------------------------- the number parser

_ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=80)
_PHONE_LIKE = st.text(st.sampled_from("0123456789+ .-()/\t٠١٢٣٤٥٦٧٨٩０１２³²x#*"), max_size=40).map(
    lambda t: t.strip() or t
)
_LONG = st.builds(
    lambda prefix, digits: prefix + digits,
    st.sampled_from(["", "+", "00", "+33", "0033", "+590", "0"]),
    st.text("0123456789", min_size=16, max_size=20_000),
)
_NUMBER_TEXT = st.one_of(_ANY_TEXT, _PHONE_LIKE, _LONG, st.none())


@settings(max_examples=300, deadline=500)
@given(_NUMBER_TEXT)
def test_any_text_is_a_number_or_a_clear_kind(raw):
    number = parse_number(raw)
    assert isinstance(number, Number) and number.kind in Kind
    if number.kind is Kind.VALID:
        assert re.fullmatch(r"\+[0-9]{4,16}", number.e164 or "")
    else:
        assert number.e164 is None
    if number.kind is Kind.SHORT:
        assert re.fullmatch(r"[0-9]{2,6}", number.national or "")


@settings(max_examples=200, deadline=500)
@given(_NUMBER_TEXT)
def test_inputs_e164_gives_a_number_or_invalid_input(raw):
    try:
        given_number = e164(raw, "to")
    except InvalidInput as error:
        assert error.field == "to" and "\n" not in error.detail
        return
    assert parse_number(given_number).e164 == given_number


def test_junk_never_fills_the_parse_cache():
    """Distinct long junk, as a hostile caller would send, leaves the memory as it was."""
    import gc
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(60):
            parse_number(f"junk {n} " + "x" * 200_000)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1_000_000, f"{kept:,} bytes kept"
