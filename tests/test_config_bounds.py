"""Every numeric key of the configuration is bounded, every wrong type named, and a file
that is no configuration (binary, huge, nested without end) is a one-line error."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from builders import MONDAY, POOL, a_config, a_request

from callgate import config as config_module
from callgate.config import ConfigError, load_config, parse_config
from callgate.gate import check_call
from callgate.model import Verdict

ROOT = Path(__file__).resolve().parent.parent
LIMITS: dict = getattr(config_module, "LIMITS", {})
# Before the bounds existed, the keys this file must find bounded.
NUMERIC_KEYS = sorted(LIMITS) or ["rules.refusal_cooldown_days", "log.retention_days"]


def _with(key: str, value: object) -> dict:
    section, name = key.split(".")
    return {section: {name: value}}


def _range(key: str) -> tuple:
    low, high, _ = LIMITS.get(key, (0, 0, ""))
    return low, high


# ---------------------------------------------------------------- the bounds


def test_every_numeric_setting_has_a_range():
    """A numeric field of a section's settings is a key LIMITS bounds (a new one too)."""
    sections = {
        "rules": config_module.RuleSettings, "ari": config_module.AriSettings,
        "agi": config_module.AgiSettings, "ami": config_module.AmiSettings,
        "api": config_module.ApiSettings, "log": config_module.LogSettings,
    }  # fmt: skip
    numeric = {
        f"{section}.{f.name}"
        for section, settings in sections.items()
        for f in dataclasses.fields(settings)
        if str(f.type).split(" | ")[0] in ("int", "float")
    }
    assert numeric, "the settings have numeric fields"
    assert numeric <= set(LIMITS), numeric - set(LIMITS)


@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_a_value_past_either_end_stops_naming_the_key_and_its_range(key):
    low, high = _range(key)
    step = 1 if isinstance(low, int) else 0.01
    for value in (high + step, high * 1000, 99999999999, low - step, -(10**30)):
        expected = re.escape(f"{key}: must be {low} to {high}")
        with pytest.raises(ConfigError, match=rf"^{expected}\b") as caught:
            parse_config(_with(key, value))
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("key", NUMERIC_KEYS)
def test_both_ends_of_a_range_pass_its_bounds(key):
    """Each end is taken, unless another key's default forbids it (a timeout must exceed
    another, say): then the error is that rule, not the range."""
    section, name = key.split(".")
    for value in _range(key):
        try:
            settings = getattr(parse_config(_with(key, value)), section)
        except ConfigError as error:
            assert not re.match(re.escape(key) + r": (must be|expected)", str(error)), error
        else:
            assert getattr(settings, name) == value


@pytest.mark.parametrize("key", NUMERIC_KEYS)
@pytest.mark.parametrize(
    "value", [True, False, "60", [60], {"days": 60}, math.nan, math.inf, -math.inf]
)
def test_a_value_of_the_wrong_kind_stops_naming_the_key(key, value):
    with pytest.raises(ConfigError, match="^" + re.escape(f"{key}: ")):
        parse_config(_with(key, value))


@pytest.mark.parametrize("key", [k for k in NUMERIC_KEYS if isinstance(_range(k)[0], int)])
def test_a_float_where_a_whole_number_is_expected_stops(key):
    low, _ = _range(key)
    with pytest.raises(ConfigError, match="^" + re.escape(f"{key}: expected an integer, got")):
        parse_config(_with(key, low + 0.5))


def test_the_reported_overflow_is_refused_at_load_time():
    with pytest.raises(ConfigError, match=r"rules\.refusal_cooldown_days: must be .* 99999999999"):
        parse_config({"rules": {"refusal_cooldown_days": 99999999999}})
    with pytest.raises(ConfigError, match=r"^log\.retention_days: must be"):
        parse_config({"log": {"retention_days": 10**12}})


async def test_the_rules_at_the_top_of_their_ranges_still_decide(store):
    """The widest values a config can now hold are values a decision can compute with."""
    widest = {key.split(".")[1]: _range(key)[1] for key in LIMITS if key.startswith("rules.")}
    assert widest, "the rule settings are bounded"
    decision = await check_call(store, a_config(**widest), a_request(), MONDAY, record=True)
    assert decision.verdict in (Verdict.ALLOW, Verdict.REJECT)
    assert not {r.code for r in decision.reasons} & {"GATE_ERROR"}


def test_log_purge_at_the_longest_retention_runs(tmp_path):
    _, longest = _range("log.retention_days")
    path = tmp_path / "callgate.toml"
    path.write_text(f"[log]\nretention_days = {longest}\n")
    result = _command(tmp_path, "--config", str(path), "log", "purge")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("purged 0 decisions before ")


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"agi": {"listen": "127.0.0.1:²"}}, "agi.listen"),  # "²".isdigit(), int("²") fails
        ({"api": {"bind": "127.0.0.1:" + "9" * 5000}}, "api.bind"),
        ({"api": {"bind": "no host:8090"}}, "api.bind"),
        ({"rules": {"emergency_numbers": ["²"]}}, "rules.emergency_numbers[0]"),
        ({"rules": {"emergency_numbers": ["0612345678"]}}, "rules.emergency_numbers[0]"),
        ({"rules": {"npv_prefixes": {"0９４８": ["FR-MET"]}}}, "rules.npv_prefixes.0９４８"),
    ],
)
def test_numbers_inside_strings_are_ascii_digits_in_range(table, key):
    with pytest.raises(ConfigError, match="^" + re.escape(f"{key}: ")):
        parse_config(table)


def test_an_error_stays_one_short_line_whatever_the_value():
    for table in (
        {"rules": {"refusal_cooldown_days": "x" * 100_000}},
        {"rules": {"consent_max_age_days": 10**4000}},
        {"companies": [{"id": "a", "numbers": ["0" * 100_000]}]},
    ):
        with pytest.raises(ConfigError) as caught:
            parse_config(table)
        assert len(str(caught.value)) < 300 and "\n" not in str(caught.value)


# ---------------------------------------------------------------- one number, one company


@pytest.mark.parametrize(
    ("first", "second", "shown"),
    [
        ("+33140000000", "+33140000000", "+33140000000"),
        ("+33 1 40 00 00 00", "0140000000", "+33140000000"),
        ("0033948000001", "09.48.00.00.01", "+33948000001"),
        ("3010", "3010", "3010"),
    ],
)
def test_a_number_in_two_companies_pools_stops_naming_it_and_both(first, second, shown):
    companies = [
        {"id": "acme", "numbers": [POOL[0], first]},
        {"id": "globex", "numbers": [second]},
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config({"companies": companies})
    message = str(caught.value)
    assert message.startswith("companies[1].numbers[0]: ")
    assert shown in message and "'acme'" in message and "'globex'" in message


def test_a_company_may_list_its_own_number_twice_and_others_keep_theirs():
    companies = [
        {"id": "acme", "numbers": ["+33140000000", "01 40 00 00 00"]},
        {"id": "globex", "numbers": ["+33140000001"]},
    ]
    config = parse_config({"companies": companies})
    assert config.companies["acme"].numbers == ("+33140000000",)
    assert config.companies["globex"].numbers == ("+33140000001",)


# ---------------------------------------------------------------- files that are no config


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00\x01binary\x00", "not a UTF-8 text file"),
        (b"[rules]\nrefusal_cooldown_days = 6\xe90\n", "not a UTF-8 text file"),
        (b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested too deeply"),
        (b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000 + b"\n", "nested too deeply"),
        (b"[rules]\nrefusal_cooldown_days = " + b"9" * 5000 + b"\n", "too many digits"),
        (b"# " + b"x" * (2 << 20) + b"\n", "not a configuration"),
    ],
)
def test_a_file_that_is_no_configuration_is_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "callgate.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def _command(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALLGATE_DB": str(tmp_path / "c.db")}
    env.pop("CALLGATE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "callgate", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip


def test_the_command_on_a_binary_config_says_so_in_one_line(tmp_path):
    path = tmp_path / "callgate.toml"
    path.write_bytes(bytes(range(256)) * 4)
    result = _command(tmp_path, "--config", str(path), "consent", "list")
    assert result.returncode == 2
    assert result.stderr.startswith("callgate: error: ")
    assert "not a UTF-8 text file" in result.stderr
    assert "internal error" not in result.stderr and result.stderr.count("\n") == 1


def test_a_configuration_that_is_no_regular_file_is_refused_at_once(tmp_path):
    """A FIFO given as --config would block the read forever."""
    import os
    import threading

    from callgate.config import ConfigError, load_config

    fifo = tmp_path / "callgate.toml"
    os.mkfifo(fifo)
    refused: list[BaseException] = []

    def load() -> None:
        try:
            load_config(fifo)
        except ConfigError as error:
            refused.append(error)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(timeout=5)
    assert not loader.is_alive(), "blocked on the FIFO"
    [error] = refused
    assert "not a regular file" in str(error)
