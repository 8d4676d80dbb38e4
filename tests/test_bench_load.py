"""bench.load's arithmetic and tables, and the null gate's decision: no Asterisk, no sipp.

The per-call figures are what docs/benchmarks.md compares the gates by; a wrong divisor
or a ratio against the wrong step would read as a gate made cheaper or dearer.
"""

from __future__ import annotations

import asyncio
import math
import os
from datetime import UTC, datetime

import pytest

from bench.load import (
    FIXED_RATES,
    Step,
    asterisk_against_bare,
    parse_arguments,
    per_call_ms,
    per_call_table,
    rss_mb,
)


def step(flavour, rate, *, calls=None, failed=0, asterisk_s=0.0, gate_s=None, mean=10.0,
         p99=20.0, rss=None) -> Step:  # fmt: skip
    calls = rate * 10 if calls is None else calls
    return Step(
        flavour, rate, calls, failed, 10.0, mean, mean, p99, asterisk_s / 10, (gate_s or 0) / 10,
        asterisk_cpu_s=asterisk_s, gate_cpu_s=gate_s, gate_rss_mb=rss,
    )  # fmt: skip


def test_cpu_per_call_divides_by_the_calls_that_did_not_fail():
    assert per_call_ms(1.5, 1000) == pytest.approx(1.5)
    ok = step("ari", 100, asterisk_s=0.5, gate_s=2.0)
    assert ok.asterisk_ms_per_call == pytest.approx(0.5)
    assert ok.gate_ms_per_call == pytest.approx(2.0)
    failing = step("ari", 100, failed=200, asterisk_s=0.4, gate_s=1.6)
    assert failing.carried == 800
    assert failing.asterisk_ms_per_call == pytest.approx(0.5)
    assert failing.gate_ms_per_call == pytest.approx(2.0)


def test_cpu_per_call_without_statistics_or_calls():
    # sipp left no statistics (failed = -1): every call counts, none is subtracted.
    assert step("ari", 100, failed=-1, asterisk_s=1.0).asterisk_ms_per_call == pytest.approx(1.0)
    assert math.isnan(step("ari", 100, failed=1000, asterisk_s=1.0).asterisk_ms_per_call)
    assert step("bare", 100, asterisk_s=1.0).gate_ms_per_call is None


def test_asterisk_against_bare_at_the_same_rate_only():
    bare_100 = step("bare", 100, asterisk_s=0.5)
    bare_200 = step("bare", 200, asterisk_s=2.0)
    ari_100 = step("ari", 100, asterisk_s=1.5, gate_s=3.0)
    assert asterisk_against_bare(ari_100, bare_100) == pytest.approx(3.0)
    assert asterisk_against_bare(ari_100, bare_200) is None
    assert asterisk_against_bare(ari_100, None) is None
    assert asterisk_against_bare(bare_100, bare_100) is None
    # Per call, not per step: twice the calls at twice the CPU is the same cost.
    ari_200 = step("ari", 200, asterisk_s=6.0, gate_s=6.0)
    assert asterisk_against_bare(ari_200, bare_200) == pytest.approx(3.0)


def test_per_call_table_with_a_flavour_saturated_at_200():
    steps = [
        step("bare", 100, asterisk_s=0.5, mean=5.0, p99=9.0),
        step("null", 100, asterisk_s=0.8, gate_s=0.3, mean=6.0, p99=11.0, rss=40.4),
        step("agi", 100, asterisk_s=1.0, gate_s=2.0, mean=7.0, p99=12.0, rss=80.0),
        step("bare", 200, asterisk_s=1.0, mean=5.5, p99=10.0),
        step("null", 200, asterisk_s=1.6, gate_s=0.6, mean=6.5, p99=12.0, rss=41.0),
        step("agi", 200, failed=500, asterisk_s=1.5, gate_s=3.0, mean=900.0, p99=3000.0, rss=90.0),
        step("bare", 400, asterisk_s=2.0, mean=6.0, p99=11.0),
        step("null", 400, asterisk_s=3.2, gate_s=1.2, mean=7.0, p99=14.0, rss=42.0),
    ]
    header, rule, *rows = per_call_table(steps)
    assert header == (
        "| flavour | offered calls/s | gate ms/call | Asterisk ms/call | Asterisk / bare | "
        "mean ms | p99 ms | delay added mean / p99 | gate RSS MB |"
    )
    assert rule == "|" + "---|" * 9
    assert rows == [
        "| bare | 100 | - | 0.50 | - | 5.0 | 9.0 | - | - |",
        "| null | 100 | 0.30 | 0.80 | 1.60 | 6.0 | 11.0 | +1.0 / +2.0 | 40 |",
        "| agi | 100 | 2.00 | 1.00 | 2.00 | 7.0 | 12.0 | +2.0 / +3.0 | 80 |",
        "| bare | 200 | - | 0.50 | - | 5.5 | 10.0 | - | - |",
        "| null | 200 | 0.30 | 0.80 | 1.60 | 6.5 | 12.0 | +1.0 / +2.0 | 41 |",
        # 1500 of 2000 calls carried: 1.5 s over 1500 calls is 1.00 ms, twice bare's 0.50.
        "| agi | 200 (saturated) | 2.00 | 1.00 | 2.00 | 900.0 | 3000.0 | +894.5 / +2990.0 | 90 |",
        "| bare | 400 | - | 0.50 | - | 6.0 | 11.0 | - | - |",
        "| null | 400 | 0.30 | 0.80 | 1.60 | 7.0 | 14.0 | +1.0 / +3.0 | 42 |",
    ]


def test_per_call_table_without_bare():
    (row,) = per_call_table([step("ari", 100, asterisk_s=1.0, gate_s=2.0, rss=50.0)])[2:]
    assert row == "| ari | 100 | 2.00 | 1.00 | - | 10.0 | 20.0 | - | 50 |"


def test_fixed_rates_and_flavours():
    assert parse_arguments(["--fixed"]).rates == FIXED_RATES == [100, 200, 400]
    assert parse_arguments([]).rates[:3] == [100, 200, 300]
    args = parse_arguments(["--rates", "100", "200", "--flavours", "bare", "null", "ari", "agi"])
    assert args.rates == [100, 200] and args.flavours == ["bare", "null", "ari", "agi"]
    with pytest.raises(SystemExit):
        parse_arguments(["--fixed", "--rates", "100"])


def test_rss_of_this_process():
    assert 1 < rss_mb(os.getpid()) < 10_000
    assert rss_mb(None) is None


def test_the_null_gate_allows_every_call(tmp_path):
    from bench.null_gate import NullDecider, allowed_decision
    from callgate.config import load_config
    from callgate.dialplan import encode_result
    from harness.gate import write_config

    (tmp_path / "pw").write_text("secret")
    config = load_config(write_config(
        tmp_path / "callgate.toml", db=tmp_path / "callgate.db", ari_url="http://127.0.0.1:1",
        password_file=tmp_path / "pw",
    ))  # fmt: skip
    decision = allowed_decision(config)
    assert decision.allowed
    assert encode_result(decision).startswith("ALLOW|")
    decider = NullDecider(decision)
    now = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert asyncio.run(decider.decide("+33948000001", "0611111111", now, "c1")) is decision
    assert asyncio.run(decider.close()) is None
    assert not (tmp_path / "callgate.db").exists()
