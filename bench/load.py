"""Load benchmark: the same Asterisk with no gate, with the ARI gate, with the FastAGI gate.

    python -m bench.load                       # rates 50 100 200 400 800, 10 s a step
    python -m bench.load --rates 100 300 --seconds 5

Rig: sipp (the agent, authenticated) -> Asterisk 22 (asterisk-conf/) -> the gate ->
Dial(Local/<n>@carrier-sim), which answers Busy(): the carrier is simulated inside Asterisk
so that no SIP UAS bounds the measurement. Every call is a real decision on a fresh
callee, recorded in SQLite (the default `synchronous = "full"`); the gate's clock is set to
a Monday morning in the opposition regime (no consent needed), so every call is allowed.

For each flavour and rate it reports the calls that failed, the rate sustained, the
response time (INVITE to final answer, sipp -trace_rtt) mean, p50 and p99, and the CPU
seconds Asterisk and callgate used per second. Prints Markdown for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness.asterisk import AsteriskInstance, Ports, ensure_root
from harness.gate import GateProcess, write_config
from harness.sipp import free_port

FAKE_NOW = "2026-03-02 10:00:00"  # Monday 11:00 in Paris, before the opt-in law
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Step:
    flavour: str
    rate: int
    calls: int
    failed: int
    seconds: float
    mean_ms: float
    p50_ms: float
    p99_ms: float
    asterisk_cpu: float
    gate_cpu: float


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def callees(workdir: Path, count: int) -> Path:
    path = workdir / "callees.csv"
    lines = ["SEQUENTIAL"] + [f"06{20_000_000 + i:08d};" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")
    return path


def patch_for_load(asterisk: AsteriskInstance, flavour: str) -> None:
    """Dial the in-Asterisk carrier; for "bare", bypass the gate altogether."""
    extensions = asterisk.outside / "etc" / "extensions.conf"
    text = extensions.read_text().replace(
        "Dial(PJSIP/${EXTEN}@carrier)", "Dial(Local/${EXTEN}@carrier-sim)"
    )
    if flavour == "bare":
        text = text.replace("include => callgate-via-ari", "include => bench-bare")
        text += "\n[bench-bare]\nexten => _[+0-9].,1,Dial(Local/${EXTEN}@carrier-sim)\n"
    extensions.write_text(text)
    asterisk.rx("dialplan reload")


def run_step(
    flavour, rate, seconds, pbx_port, scenario, numbers, workdir, asterisk, gate_pid
) -> Step:
    calls = int(rate * seconds)
    prefix = workdir / f"{flavour}-{rate}"
    before = (time.perf_counter(), cpu_seconds(asterisk.process.pid), cpu_seconds(gate_pid))
    subprocess.run(
        [
            "sipp", f"127.0.0.1:{pbx_port}", "-sf", str(scenario), "-inf", str(numbers),
            "-i", "127.0.0.1", "-p", str(free_port()), "-r", str(rate), "-m", str(calls),
            "-l", str(max(rate * 2, 50)),
            "-au", "1001", "-ap", "demo-1001", "-key", "agent", "1001",
            "-key", "caller", "+33948000001", "-trace_rtt", "-rtt_freq", "1",
            "-trace_stat", "-fd", "1", "-stf", f"{prefix}-stat.csv", "-nostdin",
            "-timeout", f"{seconds * 3 + 30:g}s", "-recv_timeout", "10000",
            "-max_socket", "10000", "-timer_resol", "1",
        ],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - before[0]
    rtts = read_rtts(workdir)
    failed = read_failed(Path(f"{prefix}-stat.csv"))
    return Step(
        flavour, rate, calls, failed, elapsed,
        statistics.fmean(rtts) if rtts else float("nan"),
        percentile(rtts, 50), percentile(rtts, 99),
        (cpu_seconds(asterisk.process.pid) - before[1]) / elapsed,
        (cpu_seconds(gate_pid) - before[2]) / elapsed,
    )  # fmt: skip


def read_rtts(workdir: Path) -> list[float]:
    values: list[float] = []
    for path in workdir.glob("agent-load_*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            parts = line.split(";")
            if len(parts) >= 2:
                with contextlib.suppress(ValueError):  # a header or a torn last line
                    values.append(float(parts[1]))
        path.unlink()
    return values


def read_failed(path: Path) -> int:
    if not path.exists():
        return -1
    lines = path.read_text().splitlines()
    header, last = lines[0].split(";"), lines[-1].split(";")
    return int(last[header.index("FailedCall(C)")])


def percentile(values: list[float], pct: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[50, 100, 200, 400, 800])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flavours", nargs="+", default=["bare", "ari", "agi"])
    args = parser.parse_args()

    root = ensure_root()
    workdir = Path(tempfile.mkdtemp(prefix="callgate-load-"))
    scenario = Path(__file__).resolve().parent / "agent-load.xml"
    numbers = callees(workdir, int(max(args.rates) * args.seconds * 1.2) + 1000)
    steps: list[Step] = []
    for flavour in args.flavours:
        password = secrets.token_urlsafe(12)
        ports = Ports(sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port())
        asterisk = AsteriskInstance(
            f"bench-{flavour}", ports, password, root=root,
            globals_={"CALLGATE_ANNOUNCE": "no"},
            flavour="agi" if flavour == "agi" else "ari",
        )  # fmt: skip
        asterisk.start()
        patch_for_load(asterisk, flavour)
        gate = None
        try:
            if flavour != "bare":
                site = workdir / flavour
                site.mkdir()
                (site / "pw").write_text(password)
                config = write_config(
                    site / "callgate.toml", db=site / "callgate.db", ari_url=asterisk.ari_url,
                    password_file=site / "pw", agi_port=ports.agi,
                )  # fmt: skip
                text = config.read_text().replace('synchronous = "normal"', 'synchronous = "full"')
                config.write_text(text.replace("[ari]\n", "[ari]\nmax_concurrent = 512\n"))
                gate = GateProcess(
                    config, site / "gate.log", ari_url=asterisk.ari_url, ari_password=password,
                    fake_now=FAKE_NOW, command="run" if flavour == "ari" else "agi",
                )  # fmt: skip
                gate.start()
            for rate in args.rates:
                step = run_step(
                    flavour, rate, args.seconds, ports.sip, scenario, numbers, workdir,
                    asterisk, gate.process.pid if gate else None,
                )  # fmt: skip
                steps.append(step)
                print(
                    f"{flavour:5} {rate:5}/s  failed {step.failed:5}  "
                    f"mean {step.mean_ms:7.1f} ms  p50 {step.p50_ms:7.1f}  p99 {step.p99_ms:7.1f}  "
                    f"cpu asterisk {step.asterisk_cpu:.2f} gate {step.gate_cpu:.2f}",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
                time.sleep(2)
        finally:
            if gate:
                gate.stop()
            asterisk.stop()

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; {args.seconds:g} s per step\n")
    columns = (
        "flavour", "offered calls/s", "calls", "failed", "sustained calls/s", "mean ms",
        "p50 ms", "p99 ms", "Asterisk CPU", "gate CPU",
    )  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for s in steps:
        print(
            f"| {s.flavour} | {s.rate} | {s.calls} | {s.failed} | {s.calls / s.seconds:.0f} | "
            f"{s.mean_ms:.1f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | "
            f"{s.asterisk_cpu:.2f} | {s.gate_cpu:.2f} |"
        )


if __name__ == "__main__":
    main()
