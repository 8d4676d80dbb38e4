"""Where `callgate run` spends its time under load: py-spy on the live gate.

    python -m bench.profile                       # 300 calls/s, 20 s sampled
    python -m bench.profile --rate 200 --seconds 30 --raw /tmp/gate.folded

The load benchmark's rig with the ARI gate; py-spy samples the gate process (100 Hz,
idle threads left out) while sipp places calls, then prints the functions that hold the
most samples, inclusive and self, as Markdown. The folded stacks can be kept (--raw)
for a flame graph (flamegraph.pl, speedscope).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.load import agent_load, callees, start_flavour
from harness.asterisk import ensure_root


def frame_name(frame: str) -> str:
    """'check_call (callgate/gate.py:53)' -> 'check_call (callgate/gate.py)'."""
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
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--raw", type=Path, help="keep the folded stacks there")
    args = parser.parse_args()
    spy = shutil.which("py-spy")
    if spy is None:
        sys.exit("py-spy is missing: pip install -e '.[bench]'")

    workdir = Path(tempfile.mkdtemp(prefix="callgate-profile-"))
    calls = args.rate * (args.seconds + 10)
    numbers = callees(workdir, calls + 100)
    folded = args.raw or workdir / "gate.folded"
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


if __name__ == "__main__":
    main()
