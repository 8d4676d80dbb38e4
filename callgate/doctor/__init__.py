"""`callgate doctor`: is this PBX wired right for callgate, and if not, how to fix it.

``checks`` judges (pure), ``routes`` reads dialplan routes (pure), ``report`` shows the
result (pure); ``probe`` asks ARI, AMI and the store, and places the doctor's one call.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

from callgate.config import Config
from callgate.doctor.checks import Check, Status
from callgate.doctor.probe import Options, examine
from callgate.doctor.report import as_json, line, overall, summary

__all__ = ["Check", "Options", "Status", "run_doctor"]


async def run_doctor(
    config: Config, options: Options, *, as_object: bool = False, out: TextIO = sys.stdout
) -> int:
    """Run the checks, printing each as it completes (or one JSON object at the end).
    Returns 0 when nothing failed, 1 otherwise."""

    def emit(check: Check) -> None:
        if not as_object:
            print(line(check), file=out, flush=True)

    found = await examine(config, options, emit)
    if as_object:
        print(json.dumps(as_json(found), ensure_ascii=False), file=out)
    else:
        print(summary(found), file=out)
    return 1 if overall(found) is Status.FAIL else 0
