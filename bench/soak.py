"""Memory soak: `callgate run` under steady load; its resident memory over time.

    python -m bench.soak                          # 200 calls/s for 10 minutes
    python -m bench.soak --rate 100 --minutes 2 --plot docs/soak.png

The load benchmark's rig (sipp agent -> Asterisk -> the ARI gate -> the in-Asterisk
carrier), every call a recorded decision on a fresh callee. The gate's RSS is sampled
every 5 s; the report gives it at the start of the load, at the end, its peak, and the
growth over the second half (a leak shows as steady growth once the caches are warm).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.load import agent_load, callees, read_failed, rss_mb, start_flavour
from harness.asterisk import ensure_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--plot", type=Path, help="draw RSS against time (PNG)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="callgate-soak-"))
    calls = int(args.rate * args.minutes * 60)
    numbers = callees(workdir, calls + 100)
    asterisk, gate = start_flavour("ari", ensure_root(), workdir)
    assert gate is not None and gate.process is not None
    pid = gate.process.pid
    samples: list[tuple[float, float]] = [(0.0, rss_mb(pid))]
    try:
        sipp = subprocess.Popen(
            agent_load(
                asterisk.ports.sip, numbers, args.rate, calls,
                "-trace_stat", "-fd", "5", "-stf", str(workdir / "soak-stat.csv"),
            ),
            cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        started = time.monotonic()
        while sipp.poll() is None:
            time.sleep(5)
            samples.append((time.monotonic() - started, rss_mb(pid)))
            print(f"  {samples[-1][0]:5.0f} s  RSS {samples[-1][1]:6.1f} MB", file=sys.stderr)
    finally:
        gate.stop()
        asterisk.stop()
    failed = read_failed(workdir / "soak-stat.csv")
    half = [mb for at, mb in samples if at >= samples[-1][0] / 2]
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; {args.rate} calls/s for "
          f"{args.minutes:g} min ({calls:,} calls, {failed} failed)\n")  # fmt: skip
    print("| RSS before load | after 5 s | at the end | peak | growth over the second half |")
    print("|---|---|---|---|---|")
    print(f"| {samples[0][1]:.1f} MB | {samples[1][1]:.1f} MB | {samples[-1][1]:.1f} MB | "
          f"{max(mb for _, mb in samples):.1f} MB | {half[-1] - half[0]:+.1f} MB |")  # fmt: skip
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib import pyplot

        figure, axes = pyplot.subplots(figsize=(8, 4))
        axes.plot([at / 60 for at, _ in samples], [mb for _, mb in samples], marker=".")
        axes.set_xlabel("minutes under load")
        axes.set_ylabel("callgate run RSS (MB)")
        axes.set_ylim(bottom=0)
        axes.set_title(f"callgate run resident memory at {args.rate} calls/s")
        axes.grid(True, alpha=0.3)
        figure.tight_layout()
        figure.savefig(args.plot, dpi=100)


if __name__ == "__main__":
    main()
