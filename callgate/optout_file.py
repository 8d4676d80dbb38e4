"""Reading opposition files: a Bloctel result file, a CSV export, or one number per line."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from callgate.numbering import Kind, parse_number_once

__all__ = ["MAX_LINE", "ImportStats", "read_numbers", "text_lines"]

# Far beyond any Bloctel or CSV line: a longer one is not a list of numbers.
MAX_LINE = 1000

_FIELD_SPLIT = re.compile(r"[,;\t|]")
# Control characters other than the tab a CSV may use: binary data, not text.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
_UNDECODABLE = "\ufffd"  # what a byte that is not UTF-8 was read as


@dataclass
class ImportStats:
    lines: int = 0
    numbers: int = 0
    skipped: int = 0  # blank lines, comments, a header
    rejected: int = 0  # lines whose first field is not a valid number, unreadable ones too
    unreadable: int = 0  # lines that are not text: binary data, undecodable, over-long
    first_rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, why)


def text_lines(handle: TextIO, limit: int = MAX_LINE) -> Iterator[str]:
    """The file's lines, a line longer than ``limit`` cut after ``limit + 1`` characters
    (its rest skipped): a file without line breaks cannot fill the memory."""
    while line := handle.readline(limit + 1):
        if len(line) > limit and not line.endswith("\n"):
            while (rest := handle.readline(limit)) and not rest.endswith("\n"):
                pass
        yield line


def read_numbers(lines: Iterable[str], stats: ImportStats) -> Iterator[str]:
    """The E.164 numbers of the file, one per line (the first field of a CSV line).

    Bad lines are counted in ``stats`` and reported, never silently dropped.
    """
    # Each line is a fresh number: the parse cache would only churn.
    parse = parse_number_once
    for lines_read, line in enumerate(lines, start=1):
        stats.lines = lines_read
        text = line.strip().lstrip("\ufeff")
        if not text or text.startswith("#"):
            stats.skipped += 1
            continue
        first = _FIELD_SPLIT.split(text, 1)[0].strip().strip('"').strip("'")
        number = parse(first) if len(text) <= MAX_LINE else None
        if number is not None and number.kind is Kind.VALID:
            stats.numbers += 1
            yield number.e164
        elif lines_read == 1 and _is_header(text, first):
            stats.skipped += 1  # a header line such as "numero;date"
        elif _unreadable(text, first):
            _reject(stats, lines_read, "unreadable: not a line of text")
            stats.unreadable += 1
        else:
            _reject(stats, lines_read, f"not a valid number: {text[:60]!r}")


def _is_header(text: str, first: str) -> bool:
    # A header in Latin-1 ("numéro") has undecodable letters, never control characters.
    return len(text) <= MAX_LINE and not _CONTROL.search(text) and any(c.isalpha() for c in first)


def _unreadable(text: str, first: str) -> bool:
    return len(text) > MAX_LINE or bool(_CONTROL.search(text)) or _UNDECODABLE in first


def _reject(stats: ImportStats, line: int, why: str) -> None:
    stats.rejected += 1
    if len(stats.first_rejected) < 5:
        stats.first_rejected.append((line, why))
