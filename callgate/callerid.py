"""Choosing the presented number from a company's pool: territory first, then sticky.

Sticky by rendezvous hashing: each (company, callee, candidate) gets a stable score and
the highest wins, so a callee keeps its number as long as the pool still holds it, and
removing another number from the pool never moves it. No counter, no state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable

from callgate.numbering import Number, Territory, parse_number

__all__ = ["choose_presented_number"]


def choose_presented_number(
    pool: Iterable[str],
    company: str,
    callee_key: str,
    territory: Territory | None,
    allowed: Callable[[Number], bool],
    serves: Callable[[Number], frozenset[Territory]],
) -> Number | None:
    """The pool number to present to this callee, or None when none is allowed.

    ``allowed`` says whether a number may be presented for the call's purpose;
    ``serves`` gives the territories a number is of (RULES-FR §1.7).
    """
    candidates = [number for number in map(parse_number, pool) if allowed(number)]
    if not candidates:
        return None
    local = [number for number in candidates if territory in serves(number)]
    return max(local or candidates, key=lambda number: _score(company, callee_key, number))


def _score(company: str, callee_key: str, number: Number) -> bytes:
    key = f"{company}\x00{callee_key}\x00{number.display}".encode()
    return hashlib.blake2b(key, digest_size=16).digest()
