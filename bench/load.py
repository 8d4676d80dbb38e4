"""Load benchmark: the same Asterisk with no gate, with the ARI gate, with the FastAGI gate.

    python -m bench.load --plot docs/load.png   # 100 to 1000 calls/s, 10 s a step
    python -m bench.load --rates 100 300 --seconds 5 --flavours bare ari
    python -m bench.load --flavours ari ari-reads agi agi-reads   # the inputs' round trips

Rig: sipp (the agent, authenticated) -> Asterisk 22 (asterisk-conf/) -> the gate ->
Dial(Local/<n>@carrier-sim), which answers Busy(): the carrier is simulated inside Asterisk
so that no SIP UAS bounds the measurement. Every call is a real decision on a fresh
callee, recorded in SQLite (the default `synchronous = "full"`); the gate's clock is set to
a Monday morning in the opposition regime (no consent needed), so every call is allowed.

The three flavours run side by side (three Asterisk instances), each rate in turn for
each, so that the machine's noise falls on all alike; a flavour stops at its first step
that does not carry the offered rate. For each step it reports the calls that failed,
the rate sustained, the response time (INVITE to final answer, from the microsecond
stamps of sipp's message trace) mean, p50 and p99, and the CPU seconds Asterisk and
callgate used per second; then each flavour's highest rate against bare's, and the delay
added at half of bare's highest rate. Prints Markdown for docs/benchmarks.md.

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

from harness.asterisk import CONF_DIR, AsteriskInstance, Ports, ensure_root
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

    @property
    def sustained(self) -> float:
        """Calls answered as expected per second, first INVITE to last answer."""
        return (self.calls - max(self.failed, 0)) / self.seconds if self.seconds else 0.0


def cpu_seconds(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


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
    trace = Path(f"{prefix}-messages.log")
    rtts, answered_in = response_times(trace)
    trace.unlink(missing_ok=True)
    failed = read_failed(Path(f"{prefix}-stat.csv"))
    return Step(
        flavour, rate, calls, failed, answered_in,
        statistics.fmean(rtts) if rtts else float("nan"),
        percentile(rtts, 50), percentile(rtts, 99),
        (cpu_seconds(asterisk.process.pid) - before[1]) / elapsed,
        (cpu_seconds(gate_pid) - before[2]) / elapsed,
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


def start_flavour(flavour, root, workdir, synchronous="full"):
    """A fresh Asterisk for one flavour, and its gate (none for bare)."""
    password = secrets.token_urlsafe(12)
    ports = Ports(sip=free_port(), http=free_port(), carrier=free_port(), agi=free_port())
    gate_flavour = flavour.removesuffix("-reads")
    extra = {"conf_dir": conf_without_inputs(workdir)} if flavour.endswith("-reads") else {}
    asterisk = AsteriskInstance(
        f"bench-{flavour}", ports, password, root=root, globals_={"CALLGATE_ANNOUNCE": "no"},
        flavour="agi" if gate_flavour == "agi" else "ari", **extra,
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
    gate = GateProcess(
        config, site / "gate.log", ari_url=asterisk.ari_url, ari_password=password,
        fake_now=FAKE_NOW, command="run" if gate_flavour == "ari" else "agi",
    )  # fmt: skip
    gate.start()
    return asterisk, gate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", type=int, nargs="+",
        default=[100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1400, 1600],
    )  # fmt: skip
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--flavours", nargs="+", default=["bare", "ari", "agi"])
    parser.add_argument("--json", type=Path, help="write the steps there as JSON")
    parser.add_argument(
        "--synchronous", choices=["full", "normal"], default="full",
        help="the gates' SQLite durability (default full, as shipped)",
    )  # fmt: skip
    parser.add_argument("--plot", type=Path, help="draw response time against rate (PNG)")
    args = parser.parse_args()

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
                    f"cpu asterisk {step.asterisk_cpu:.2f} gate {step.gate_cpu:.2f}",
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
    if args.json:
        args.json.write_text(json.dumps([asdict(s) for s in steps], indent=1))
    if args.plot:
        plot(steps, args.plot)


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
