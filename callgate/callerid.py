"""Choosing the presented number from a company's pool: territory first, then sticky.

Sticky by rendezvous hashing: each (company, callee, candidate) gets a stable score and
the highest wins, so a callee keeps its number as long as the pool still holds it, and
removing another number from the pool never moves it. No counter, no state.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from callgate.numbering import Number, Territory

__all__ = ["choose_presented_number"]


def choose_presented_number(
    candidates: Sequence[tuple[Number, frozenset[Territory]]],
    company: str,
    callee_key: str,
    territory: Territory | None,
) -> Number | None:
    """The pool number to present to this callee, or None when none is allowed.

    ``candidates`` are the pool's numbers allowed for the call's purpose, each with the
    territories it is of (RULES-FR §1.7).
    """
    if not candidates:
        return None
    local = [number for number, serves in candidates if territory in serves]
    pool = local or [number for number, _ in candidates]
    return max(pool, key=lambda number: _score(company, callee_key, number))


def _score(company: str, callee_key: str, number: Number) -> bytes:
    key = f"{company}\x00{callee_key}\x00{number.display}".encode()
    return hashlib.blake2b(key, digest_size=16).digest()
