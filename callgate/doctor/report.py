"""How the doctor shows its checks: a line each for people, one object for machines. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from callgate.doctor.checks import Check, Status

__all__ = ["as_json", "line", "overall", "summary"]

# FAIL in capitals: the one word an operator scanning the list must not miss.
LABELS = {Status.OK: "ok", Status.WARN: "warn", Status.FAIL: "FAIL", Status.SKIP: "skip"}
NAME_WIDTH = 17


def line(check: Check) -> str:
    """``STATUS NAME DETAIL``; under a fault its fix, under a skip how to check it."""
    text = f"{LABELS[check.status]:<5} {check.name:<{NAME_WIDTH}} {check.detail}"
    if check.fix and check.status is not Status.OK:
        label = "to check it" if check.status is Status.SKIP else "fix"
        text += f"\n{'':<5} {'':<{NAME_WIDTH}} {label}: {check.fix}"
    return text


def overall(checks: Sequence[Check]) -> Status:
    """fail if any check failed; warn if any warned; else ok (skipped checks do not count)."""
    statuses = {check.status for check in checks}
    for status in (Status.FAIL, Status.WARN):
        if status in statuses:
            return status
    return Status.OK


def summary(checks: Sequence[Check]) -> str:
    counts = Counter(check.status for check in checks)
    parts = [f"{counts[s]} {LABELS[s]}" for s in Status if counts[s]]
    verdict = {
        Status.OK: "this PBX is wired right for callgate",
        Status.WARN: "this PBX works with callgate; the warnings say what to improve",
        Status.FAIL: "this PBX is not wired right: fix what FAILs, then run the doctor again",
    }[overall(checks)]
    return f"doctor: {', '.join(parts)}: {verdict}"


def as_json(checks: Sequence[Check]) -> dict[str, Any]:
    return {
        "result": overall(checks).value,
        "checks": [
            {"name": c.name, "status": c.status.value, "detail": c.detail, "fix": c.fix}
            for c in checks
        ],
    }
