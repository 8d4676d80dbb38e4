"""Load benchmark: the same Asterisk with no gate, with the ARI gate, with the FastAGI gate.

    python -m bench.load --plot docs/load.png   # 100 to 1600 calls/s, 10 s a step
    python -m bench.load --fixed                # 100, 200 and 400 calls/s: the CPU per call
    python -m bench.load --rates 100 300 --seconds 5 --flavours bare ari
    python -m bench.load --flavours bare null ari agi   # null: a Stasis round trip alone
    python -m bench.load --flavours ari ari-reads agi agi-reads   # the inputs' round trips

Rig: sipp (the agent, authenticated) -> Asterisk 22 (asterisk-conf/) -> the gate ->
Dial(Local/<n>@carrier-sim), which answers Busy(): the carrier is simulated inside Asterisk
so that no SIP UAS bounds the measurement. Every call is a real decision on a fresh
callee, recorded in SQLite (the default `synchronous = "full"`); the gate's clock is set to
a Monday morning in the opposition regime (no consent needed), so every call is allowed.

The flavours run side by side (one Asterisk instance each), each rate in turn for each,
so that the machine's noise falls on all alike; a flavour stops at its first step that
does not carry the offered rate (that step is reported, the higher rates are not run).
``--fixed`` is ``--rates 100 200 400``: rates every flavour carries on a small machine,
where the CPU per call compares the flavours at equal load.

The first table has a row per step: the calls that failed, the rate sustained, the
response time (INVITE to final answer, from the microsecond stamps of sipp's message
trace) mean, p50 and p99, and the CPU seconds Asterisk and the gate used per second of
the step. Then each flavour's highest rate against bare's, and the delay added at half
of bare's highest rate.

The second table, "per call", has a row per step too:
- gate ms/call: the gate process's CPU time over the step (utime + stime of
  /proc/PID/stat, which sums its threads, SQLite's and the default executor's included),
  divided by the calls the step carried (calls less those that failed);
- Asterisk ms/call: the same for the Asterisk process;
- Asterisk / bare: that flavour's Asterisk ms/call over bare's at the same rate in the
  same run ("-" for bare itself, or when bare has no step at that rate): what the gate's
  protocol costs Asterisk;
- mean ms, p99 ms: the response time, as in the first table;
- delay added mean / p99: the response time less bare's at the same rate;
- gate RSS MB: the gate's resident memory (VmRSS of /proc/PID/status) at the step's end.
A step that did not carry its rate is marked "(saturated)". The JSON (``--json``) has
each step's raw CPU seconds and RSS too. Prints Markdown for docs/benchmarks.md.

``null`` is the ARI gate's own client (ari_app.gate.AriGate) with a decider that returns
one allowed decision at once, deciding and recording nothing (bench/null_gate.py), on an
Asterisk with the ARI gate's dialplan: its gate ms/call is the floor a Python ARI app
pays per Stasis round trip, its Asterisk ms/call what the round trip costs Asterisk.

``ari-reads`` and ``agi-reads`` are the gates on a PBX that hands them no inputs: an
ari.conf without channelvars, AGI() without arguments. The gate then reads the four
inputs from the channel (GET /channels/{id}/variable, GET VARIABLE) on every call.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from harness.asterisk import CONF_DIR, REPO, AsteriskInstance, Ports, ensure_root
from harness.gate import GateProcess, write_config
from harness.sipp import free_port

FAKE_NOW = "2026-03-02 10:00:00"  # Monday 11:00 in Paris, before the opt-in law
TICKS = os.sysconf("SC_CLK_TCK")
DEFAULT_RATES = [100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1400, 1600]
FIXED_RATES = [100, 200, 400]


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
    asterisk_cpu: float  # CPU seconds per second of the step
    gate_cpu: float
    asterisk_cpu_s: float = 0.0  # CPU seconds over the step
    gate_cpu_s: float | None = None  # None: no gate (bare)
    gate_rss_mb: float | None = None  # at the step's end

    @property
    def carried(self) -> int:
        """The calls that did not fail (-1 failed: sipp left no statistics, count none)."""
        return self.calls - max(self.failed, 0)

    @property
    def sustained(self) -> float:
        """Calls answered as expected per second, first INVITE to last answer."""
        return self.carried / self.seconds if self.seconds else 0.0

    @property
    def asterisk_ms_per_call(self) -> float:
        return per_call_ms(self.asterisk_cpu_s, self.carried)

    @property
    def gate_ms_per_call(self) -> float | None:
        return None if self.gate_cpu_s is None else per_call_ms(self.gate_cpu_s, self.carried)


def per_call_ms(cpu_seconds: float, calls: int) -> float:
    """CPU milliseconds per call; NaN when no call got through (nothing to divide by)."""
    return cpu_seconds * 1000 / calls if calls > 0 else float("nan")


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int | None) -> float | None:
    """The process's resident memory (VmRSS) in MB; None without a process."""
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) / 1024 if found else None


def callees(workdir: Path, count: int, first: int = 0) -> Path:
    """Fresh callees for one step: each is called once in a run, so no cap gets in."""
    path = workdir / f"callees-{first}.csv"
    lines = ["SEQUENTIAL"] + [f"06{20_000_000 + first + i:08d};" for i in range(count)]
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


AGENT_SCENARIO = Path(__file__).resolve().parent / "agent-load.xml"


def agent_load(pbx_port: int, numbers: Path, rate: int, calls: int, *extra: str) -> list[str]:
    """sipp as the authenticated agent placing ``calls`` at ``rate`` to the -inf numbers."""
    return [
        "sipp", f"127.0.0.1:{pbx_port}", "-sf", str(AGENT_SCENARIO), "-inf", str(numbers),
        "-i", "127.0.0.1", "-p", str(free_port()), "-r", str(rate), "-m", str(calls),
        "-l", str(max(rate * 2, 50)), "-au", "1001", "-ap", "demo-1001",
        "-key", "agent", "1001", "-key", "caller", "+33948000001", "-nostdin",
        "-recv_timeout", "10000", "-max_socket", "10000", *extra,
    ]  # fmt: skip


def run_step(flavour, rate, seconds, pbx_port, numbers, workdir, asterisk, gate_pid) -> Step:
    calls = int(rate * seconds)
    prefix = workdir / f"{flavour}-{rate}"
    before = (time.perf_counter(), cpu_seconds(asterisk.process.pid), cpu_seconds(gate_pid))
    subprocess.run(
        agent_load(
            pbx_port, numbers, rate, calls,
            "-trace_msg", "-message_file", f"{prefix}-messages.log",
            "-trace_stat", "-fd", "1", "-stf", f"{prefix}-stat.csv",
            "-timeout", f"{seconds * 3 + 30:g}s", "-timer_resol", "1",
        ),
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - before[0]
    asterisk_cpu = cpu_seconds(asterisk.process.pid) - before[1]
    gate_cpu = cpu_seconds(gate_pid) - before[2]
    gate_rss = rss_mb(gate_pid)
    trace = Path(f"{prefix}-messages.log")
    rtts, answered_in = response_times(trace)
    trace.unlink(missing_ok=True)
    failed = read_failed(Path(f"{prefix}-stat.csv"))
    return Step(
        flavour, rate, calls, failed, answered_in,
        statistics.fmean(rtts) if rtts else float("nan"),
        percentile(rtts, 50), percentile(rtts, 99),
        asterisk_cpu / elapsed, gate_cpu / elapsed,
        asterisk_cpu_s=asterisk_cpu, gate_cpu_s=gate_cpu if gate_pid else None,
        gate_rss_mb=gate_rss,
    )  # fmt: skip


_STAMP = re.compile(r"^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)$", re.MULTILINE)


def response_times(trace: Path) -> tuple[list[float], float]:
    """From sipp's message trace (microsecond stamps; its -trace_rtt ticks in 4 ms steps
    here): each call's time from the authenticated INVITE sent to its final answer, in
    ms, and the seconds from the first INVITE to the last final answer."""
    if not trace.exists():
        return [], float("nan")
    text = trace.read_text(errors="replace")
    sent: dict[str, float] = {}
    times: list[float] = []
    first = last = None
    stamps = list(_STAMP.finditer(text))
    for index, match in enumerate(stamps):
        end = stamps[index + 1].start() if index + 1 < len(stamps) else len(text)
        block = text[match.end() : end]
        if "CSeq: 2 INVITE" not in block:
            continue
        at = datetime.fromisoformat(match.group(1)).timestamp()
        call_id = block.split("Call-ID:", 1)[1].split(None, 1)[0] if "Call-ID:" in block else ""
        if "message sent" in block and "\nINVITE " in block:
            sent.setdefault(call_id, at)
            first = at if first is None else min(first, at)
        elif "message received" in block and call_id in sent:
            status = block.split("SIP/2.0 ", 1)[1][:3] if "SIP/2.0 " in block else ""
            if status.isdigit() and int(status) >= 200:
                times.append((at - sent.pop(call_id)) * 1000)
                last = at if last is None else max(last, at)
    span = (last - first) if first is not None and last is not None else float("nan")
    return times, span


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


def saturated(step: Step) -> bool:
    """The offered rate was not carried: calls failed, or the answers fell behind."""
    return step.failed != 0 or step.sustained < 0.95 * step.rate


def conf_without_inputs(workdir: Path) -> Path:
    """asterisk-conf/ with no channelvars in ari.conf and no arguments to AGI()."""
    conf = workdir / "conf-without-inputs"
    if conf.exists():
        return conf
    conf.mkdir()
    for source in CONF_DIR.glob("*.conf"):
        text = source.read_text()
        if source.name == "ari.conf":
            text = re.sub(r"(?m)^channelvars\s*=.*$", "", text)
        elif source.name == "extensions.conf":
            text = re.sub(r"(agi://127\.0\.0\.1:4573/check),[^)]*\)", r"\1)", text)
        (conf / source.name).write_text(text)
    return conf


class NullGateProcess(GateProcess):
    """bench/null_gate.py in place of `callgate run`: the same config, the same ready line."""

    cwd = REPO  # for python -m bench.null_gate

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "bench.null_gate", "--config", str(self.config)]


def start_flavour(flavour, root, workdir, synchronous="full"):
    """A fresh Asterisk for one flavour, and its gate (none for bare)."""
    password = secrets.token_urlsafe(12)
    ports = Ports(sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port())
    gate_flavour = flavour.removesuffix("-reads")
    extra = {"conf_dir": conf_without_inputs(workdir)} if flavour.endswith("-reads") else {}
    # The instance's folder holds its control socket: a fixed name would let a concurrent
    # bench.load, bench.soak or bench.profile rewrite its configuration, or stop it.
    asterisk = AsteriskInstance(
        f"bench-{flavour}-{os.getpid()}", ports, password, root=root,
        globals_={"CALLGATE_ANNOUNCE": "no"}, flavour="agi" if gate_flavour == "agi" else "ari",
        **extra,
    )  # fmt: skip
    asterisk.start()
    patch_for_load(asterisk, flavour)
    if flavour == "bare":
        return asterisk, None
    site = workdir / flavour
    site.mkdir()
    (site / "pw").write_text(password)
    config = write_config(
        site / "callgate.toml", db=site / "callgate.db", ari_url=asterisk.ari_url,
        password_file=site / "pw", agi_port=ports.agi,
    )  # fmt: skip
    text = config.read_text().replace('synchronous = "normal"', f'synchronous = "{synchronous}"')
    config.write_text(text.replace("[ari]\n", "[ari]\nmax_concurrent = 512\n"))
    if flavour == "null":  # decides nothing: no store, no clock to fake
        gate = NullGateProcess(
            config, site / "gate.log", ari_url=asterisk.ari_url, ari_password=password
        )
    else:
        gate = GateProcess(
            config, site / "gate.log", ari_url=asterisk.ari_url, ari_password=password,
            fake_now=FAKE_NOW, command="run" if gate_flavour == "ari" else "agi",
        )  # fmt: skip
    gate.start()
    return asterisk, gate


FLAVOURS = ("bare", "null", "ari", "agi", "ari-reads", "agi-reads")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    which_rates = parser.add_mutually_exclusive_group()
    which_rates.add_argument("--rates", type=int, nargs="+", default=DEFAULT_RATES)
    which_rates.add_argument(
        "--fixed", action="store_const", dest="rates", const=FIXED_RATES,
        help=f"the rates {' '.join(map(str, FIXED_RATES))}: CPU per call at equal load",
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flavours", nargs="+", choices=FLAVOURS, default=["bare", "ari", "agi"])
    parser.add_argument("--json", type=Path, help="write the steps there as JSON")
    parser.add_argument(
        "--synchronous", choices=["full", "normal"], default="full",
        help="the gates' SQLite durability (default full, as shipped)",
    )  # fmt: skip
    parser.add_argument("--plot", type=Path, help="draw response time against rate (PNG)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_arguments()

    root = ensure_root()
    workdir = Path(tempfile.mkdtemp(prefix="callgate-load-"))
    # Every flavour runs at each rate in turn, so that the machine's noise falls on all.
    running = {
        flavour: start_flavour(flavour, root, workdir, args.synchronous)
        for flavour in args.flavours
    }
    steps: list[Step] = []
    done: set[str] = set()
    first = 0
    try:
        # Warm up (the gates' first calls load number metadata and holiday tables).
        warm_up = callees(workdir, 200, 79_000_000)
        for flavour, (asterisk, gate) in running.items():
            run_step(flavour, 50, 3, asterisk.ports.sip, warm_up, workdir, asterisk,
                     gate.process.pid if gate else None)  # fmt: skip
        for rate in args.rates:
            numbers = callees(workdir, int(rate * args.seconds) + 100, first)
            first += int(rate * args.seconds) + 100
            for flavour, (asterisk, gate) in running.items():
                if flavour in done:
                    continue
                step = run_step(
                    flavour, rate, args.seconds, asterisk.ports.sip, numbers,
                    workdir, asterisk, gate.process.pid if gate else None,
                )  # fmt: skip
                steps.append(step)
                print(
                    f"{flavour:5} {rate:5}/s  failed {step.failed:5}  "
                    f"sustained {step.sustained:6.0f}/s  mean {step.mean_ms:6.1f} ms  "
                    f"p50 {step.p50_ms:6.1f}  p99 {step.p99_ms:6.1f}  "
                    f"cpu asterisk {step.asterisk_cpu:.2f} gate {step.gate_cpu:.2f}  "
                    f"ms/call asterisk {step.asterisk_ms_per_call:.2f} "
                    f"gate {_ms(step.gate_ms_per_call)}",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
                if saturated(step):
                    done.add(flavour)
                time.sleep(2)
            if done == set(running):
                break
    finally:
        for asterisk, gate in running.values():
            if gate:
                gate.stop()
            asterisk.stop()
    report(steps, args)


def report(steps: list[Step], args: argparse.Namespace) -> None:
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; {args.seconds:g} s per step\n")
    columns = (
        "flavour", "offered calls/s", "calls", "failed", "sustained calls/s", "mean ms",
        "p50 ms", "p99 ms", "Asterisk CPU", "gate CPU",
    )  # fmt: skip
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for s in steps:
        print(
            f"| {s.flavour} | {s.rate} | {s.calls} | {s.failed} | {s.sustained:.0f} | "
            f"{s.mean_ms:.1f} | {s.p50_ms:.1f} | {s.p99_ms:.1f} | "
            f"{s.asterisk_cpu:.2f} | {s.gate_cpu:.2f} |"
        )
    carried = {
        flavour: max((s.rate for s in steps if s.flavour == flavour and not saturated(s)),
                     default=0)
        for flavour in dict.fromkeys(s.flavour for s in steps)
    }  # fmt: skip
    print("\n| flavour | highest rate carried | of bare |\n|---|---|---|")
    for flavour, rate in carried.items():
        share = f"{rate / carried['bare']:.0%}" if carried.get("bare") else "-"
        print(f"| {flavour} | {rate}/s | {share} |")
    if carried.get("bare"):
        half = min(args.rates, key=lambda r: abs(r - carried["bare"] / 2))
        at_half = {s.flavour: s for s in steps if s.rate == half}
        bare = at_half.get("bare")
        print(f"\nAt {half} calls/s (about half of bare's highest rate):")
        for flavour, s in at_half.items():
            if bare and flavour != "bare":
                print(f"- {flavour}: response time mean {s.mean_ms:.1f} ms, p99 {s.p99_ms:.1f} ms; "
                      f"added to bare's: mean {s.mean_ms - bare.mean_ms:+.1f} ms, "
                      f"p99 {s.p99_ms - bare.p99_ms:+.1f} ms")  # fmt: skip
    print("\nPer call:\n")
    print("\n".join(per_call_table(steps)))
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in steps], indent=1))
    if args.plot:
        plot(steps, args.plot)


PER_CALL_COLUMNS = (
    "flavour", "offered calls/s", "gate ms/call", "Asterisk ms/call", "Asterisk / bare",
    "mean ms", "p99 ms", "delay added mean / p99", "gate RSS MB",
)  # fmt: skip


def asterisk_against_bare(step: Step, bare: Step | None) -> float | None:
    """The step's Asterisk CPU per call over bare's at the same rate; None for bare itself
    or without a bare step at that rate."""
    if bare is None or step.flavour == "bare" or bare.rate != step.rate:
        return None
    floor = bare.asterisk_ms_per_call
    return step.asterisk_ms_per_call / floor if floor > 0 else None


def per_call_table(steps: list[Step]) -> list[str]:
    """The per-call table's Markdown lines, a row per step: flavours compare at the rates
    both ran, and a flavour stopped by saturation has its rows up to that step."""
    bare = {s.rate: s for s in steps if s.flavour == "bare"}
    lines = ["| " + " | ".join(PER_CALL_COLUMNS) + " |", "|" + "---|" * len(PER_CALL_COLUMNS)]
    for s in steps:
        base = bare.get(s.rate)
        ratio = asterisk_against_bare(s, base)
        added = (
            f"{s.mean_ms - base.mean_ms:+.1f} / {s.p99_ms - base.p99_ms:+.1f}"
            if base is not None and s.flavour != "bare" else "-"
        )  # fmt: skip
        offered = f"{s.rate} (saturated)" if saturated(s) else str(s.rate)
        lines.append(
            f"| {s.flavour} | {offered} | {_ms(s.gate_ms_per_call)} | "
            f"{_ms(s.asterisk_ms_per_call)} | {'-' if ratio is None else f'{ratio:.2f}'} | "
            f"{s.mean_ms:.1f} | {s.p99_ms:.1f} | {added} | "
            f"{'-' if s.gate_rss_mb is None else f'{s.gate_rss_mb:.0f}'} |"
        )
    return lines


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def plot(steps: list[Step], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(8, 5))
    for flavour in dict.fromkeys(s.flavour for s in steps):
        mine = [s for s in steps if s.flavour == flavour]
        rates = [s.rate for s in mine]
        line = axes.plot(rates, [s.mean_ms for s in mine], marker="o", label=f"{flavour} mean")
        axes.plot(rates, [s.p99_ms for s in mine], linestyle="--", marker=".",
                  color=line[0].get_color(), label=f"{flavour} p99")  # fmt: skip
    axes.set_xlabel("offered calls/s")
    axes.set_ylabel("response time, INVITE to final answer (ms)")
    axes.set_yscale("log")
    axes.set_title("callgate load: response time against offered rate")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
