"""Reading opposition files: a Bloctel result file, a CSV export, or one number per line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from callgate.numbering import Kind, parse_number

__all__ = ["ImportStats", "read_numbers"]

_FIELD_SPLIT = re.compile(r"[,;\t|]")


@dataclass
class ImportStats:
    lines: int = 0
    numbers: int = 0
    skipped: int = 0  # blank lines, comments, a header
    rejected: int = 0  # lines whose first field is not a valid number
    first_rejected: list[tuple[int, str]] = field(default_factory=list)


def read_numbers(lines: Iterable[str], stats: ImportStats) -> Iterator[str]:
    """The E.164 numbers of the file, one per line (the first field of a CSV line).

    Bad lines are counted in ``stats`` and reported, never silently dropped.
    """
    # Each line is a fresh number: the parse cache would only churn.
    parse = parse_number.__wrapped__
    for lines_read, line in enumerate(lines, start=1):
        stats.lines = lines_read
        text = line.strip().lstrip("\ufeff")
        if not text or text.startswith("#"):
            stats.skipped += 1
            continue
        first = _FIELD_SPLIT.split(text, 1)[0].strip().strip('"').strip("'")
        number = parse(first)
        if number.kind is Kind.VALID:
            stats.numbers += 1
            yield number.e164
        elif lines_read == 1 and any(c.isalpha() for c in first):
            stats.skipped += 1  # a header line such as "numero;date"
        else:
            stats.rejected += 1
            if len(stats.first_rejected) < 5:
                stats.first_rejected.append((lines_read, text[:60]))
