"""Opposition import benchmark: `callgate optout import` of a big Bloctel-like file.

    python -m bench.optout_import               # 1,000,000 lines
    python -m bench.optout_import --lines 200000

Writes a CSV file (a header, then `number;date` lines in the national format, as a
Bloctel result file has them), runs the real command on a fresh store twice (the second
run finds every number already listed), and prints the wall times.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_file(path: Path, lines: int) -> None:
    with path.open("w") as handle:
        handle.write("numero;date_inscription\n")
        for i in range(lines):
            handle.write(f"06{10_000_000 + i:08d};2026-01-01\n")


def run_import(callgate: str, config: Path, db: Path, data: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(
        [callgate, "--config", str(config), "--db", str(db), "optout", "import", str(data)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return time.perf_counter() - started, result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    args = parser.parse_args()
    callgate = shutil.which("callgate")
    if callgate is None:
        sys.exit("callgate is not on PATH: pip install -e . first")
    config = Path(__file__).resolve().parent.parent / "examples" / "callgate.toml"
    with tempfile.TemporaryDirectory() as tmp:
        data, db = Path(tmp) / "bloctel.csv", Path(tmp) / "bench.db"
        write_file(data, args.lines)
        first, first_out = run_import(callgate, config, db, data)
        second, second_out = run_import(callgate, config, db, data)
    cpu = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"machine: {cpu}, Python {platform.python_version()}")
    print(f"first import  ({args.lines:,} lines): {first:.1f} s  {first_out}")
    print(f"second import (all already listed): {second:.1f} s  {second_out}")
    print("\n| lines | fresh store | re-import |\n|---|---|---|")
    print(f"| {args.lines:,} | {first:.1f} s | {second:.1f} s |")


if __name__ == "__main__":
    main()
