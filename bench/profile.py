"""Where the time goes: py-spy on the live gate, on the store, on a scrub.

    python -m bench.profile                       # the ARI gate at 300 calls/s, 20 s
    python -m bench.profile --rate 200 --seconds 30 --raw /tmp/gate.folded
    python -m bench.profile --what store          # bench.core's 64 concurrent deciders
    python -m bench.profile --what scrub          # bench.scrub's list, in process

gate: the load benchmark's rig with the ARI gate; py-spy samples the gate process while
sipp places calls, counting only samples that hold the GIL (Python at work).
store: 64 concurrent recorded decisions on bench.core's store (10 M attempts), every
thread's non-idle samples, so that SQLite's thread shows.
scrub: bench.scrub's store and list through the API's ``scrub``, in one process, GIL
samples.
py-spy samples at 100 Hz; the functions holding the most samples, inclusive and self,
print as Markdown. The folded stacks can be kept (--raw) for a flame graph.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench.core
import bench.scrub
from bench.load import agent_load, callees, start_flavour
from callgate.collector import tune_collector
from harness.asterisk import ensure_root


def frame_name(frame: str) -> str:
    """'check_call (callgate/gate.py:53)' -> 'check_call (callgate/gate.py)'."""
    if frame.startswith("thread ("):  # --threads: "thread (0x7f..): MainThread"
        return "thread " + frame.rpartition("): ")[2]
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if "/callgate/" in path or "/ari_app/" in path or "/agi/" in path:
        path = path[path.rfind("/", 0, path.rfind("/")) + 1 :]
    return f"{name} ({path})"


def summarise(folded: Path, top: int) -> None:
    inclusive: collections.Counter[str] = collections.Counter()
    exclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [frame_name(f) for f in stack.split(";") if f]
        for name in set(frames):
            inclusive[name] += samples
        if frames:
            exclusive[frames[-1]] += samples
    print(f"\n{total:,} samples\n")
    print("| function | inclusive | self |\n|---|---|---|")
    for name, samples in inclusive.most_common(top):
        print(f"| `{name}` | {samples / total:.0%} | {exclusive[name] / total:.0%} |")
    print("\n| hottest self time | share |\n|---|---|")
    for name, samples in exclusive.most_common(top):
        print(f"| `{name}` | {samples / total:.0%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=("gate", "store", "scrub"), default="gate")
    parser.add_argument("--rate", type=int, default=300, help="gate: calls/s")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--raw", type=Path, help="keep the folded stacks there")
    parser.add_argument("--workload", choices=("store", "scrub"), help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.workload:  # the process py-spy samples, run as the services run
        tune_collector()
    if args.workload == "store":
        asyncio.run(profile_store(args.seconds))
        return
    if args.workload == "scrub":
        # About 25,000 numbers a second here: a list that lasts the sampling.
        asyncio.run(bench.scrub.scrub_in_process(args.db, int(25_000 * args.seconds)))
        return
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is missing: pip install -e '.[bench]'")

    workdir = Path(tempfile.mkdtemp(prefix="callgate-profile-"))
    folded = args.raw or workdir / f"{args.what}.folded"
    if args.what != "gate":
        workload = [sys.executable, "-m", "bench.profile", "--workload", args.what,
                    "--seconds", str(args.seconds)]  # fmt: skip
        if args.what == "scrub":  # the store is filled before sampling starts
            workload += ["--db", str(bench.scrub.prepare(workdir, callgate_command())[0])]
        every_thread = [] if args.what == "scrub" else ["--threads"]
        gil = ["--gil"] if args.what == "scrub" else []
        subprocess.run(
            [spy, "record", "--rate", "100", "--format", "raw", "--output", str(folded),
             *gil, *every_thread, "--", *workload],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        print(f"{args.what}, {args.seconds} s sampled by py-spy")
        summarise(folded, args.top)
        return
    calls = args.rate * (args.seconds + 10)
    numbers = callees(workdir, calls + 100)
    asterisk, gate = start_flavour("ari", ensure_root(), workdir)
    assert gate is not None and gate.process is not None
    try:
        sipp = subprocess.Popen(
            agent_load(asterisk.ports.sip, numbers, args.rate, calls),
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        subprocess.run(
            [spy, "record", "--pid", str(gate.process.pid), "--duration", str(args.seconds),
             "--rate", "100", "--format", "raw", "--output", str(folded), "--nonblocking",
             "--gil"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        sipp.wait()
    finally:
        gate.stop()
        asterisk.stop()
    print(f"callgate run at {args.rate} calls/s, {args.seconds} s sampled by py-spy")
    summarise(folded, args.top)


async def profile_store(seconds: float) -> None:
    path = Path(bench.core.DEFAULT_WORKDIR) / "core-10000000-1000000.db"
    if not path.exists():
        sys.exit(f"{path} is missing: run python -m bench.core once to fill it")
    with bench.core.kept_as_filled(path):
        await bench.core.bench_store(path, 1_000_000, seconds, record=True, concurrency=64)


def callgate_command() -> str:
    callgate = shutil.which("callgate")
    if callgate is None:
        sys.exit("callgate is not on PATH: pip install -e . first")
    return callgate


if __name__ == "__main__":
    main()
