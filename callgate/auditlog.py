"""The decision log's hash chain: each entry carries the hash of the one before.

An entry's hash covers every field of the entry and the previous entry's hash, so that
editing, removing or reordering an entry breaks the chain at that entry; an entry with a
field more or less than those is a break too (ENTRY_FIELDS). The callee is
covered through a salted commitment (``callee_commit``): an export can leave the number
and its salt out (pseudonymised) and still verify, and nobody can recover the number from
the commitment without the salt. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from callgate.model import Decision

__all__ = [
    "CALLEE_FIELDS",
    "CHAINED_FIELDS",
    "ENTRY_FIELDS",
    "FACT_CHAINED_FIELDS",
    "GENESIS",
    "PSEUDONYMISED_FIELDS",
    "ChainBreak",
    "ChainVerifier",
    "callee_commit",
    "entry_hash",
    "foreign_json",
    "is_fact",
    "log_entry",
    "pseudonymise",
    "read_anchor",
    "shown_key",
    "verify_chain",
]

GENESIS = "0" * 64

# The fields an entry's hash covers, in this order. Never reorder or rename them: old
# logs must keep verifying. New fields go at the end, with a new chain version.
CHAINED_FIELDS = (
    "seq", "id", "at", "node", "channel", "kind", "company", "campaign", "purpose",
    "dept", "caller_in", "caller_out", "callee_commit", "territory", "verdict", "reasons",
    "retry_after", "ruleset", "latency_ms", "prev_hash",
)  # fmt: skip
# An entry holds exactly these keys, in one of two forms: whole, with the callee (the
# number, as dialled, and the salt its commitment is checked with), or pseudonymised,
# without all three. The hash covers no other key, so an added one ("approved_by") would
# pass for part of the signed entry; a callee kept without its salt would go unchecked.
CALLEE_FIELDS = ("callee_in", "callee", "callee_salt")
PSEUDONYMISED_FIELDS = frozenset((*CHAINED_FIELDS, "hash"))
ENTRY_FIELDS = PSEUDONYMISED_FIELDS | frozenset(CALLEE_FIELDS)

# A write of facts is an entry of the same chain (callgate/factlog.py), with "kind": "fact"
# and these fields; its callee is committed to as a decision's is.
FACT_CHAINED_FIELDS = (
    "seq", "at", "node", "kind", "fact", "op", "company", "callee_commit", "rows", "bulk",
    "prev_hash",
)  # fmt: skip
FACT_CALLEE_FIELDS = ("callee", "callee_salt")
FACT_ENTRY_FIELDS = frozenset((*FACT_CHAINED_FIELDS, "hash", *FACT_CALLEE_FIELDS))
MAX_SEQ = 2**63 - 1  # the stores keep seq in a signed 64-bit integer
_HASH = re.compile(r"[0-9a-f]{64}")


def callee_commit(callee: str | None, callee_in: str | None, salt: str) -> str:
    """A commitment to the callee (E.164 and as dialled): verifiable with the salt, opaque
    without it."""
    text = f"{salt}\x00{callee or ''}\x00{callee_in or ''}"
    return hashlib.sha256(text.encode()).hexdigest()


def entry_hash(entry: Mapping[str, Any]) -> str:
    """The hash of one entry, over its kind's chained fields in canonical JSON."""
    body = json.dumps(
        [entry.get(name) for name in _shape(entry)[0]],
        ensure_ascii=False, separators=(",", ":"), sort_keys=True, default=foreign_json,
    )  # fmt: skip
    return hashlib.sha256(body.encode()).hexdigest()


def foreign_json(value: Any) -> str:
    """A value JSON has no type for (a BLOB put in a fact row behind the log's back, which
    a write then read), as its type and repr: it differs from anything written, and the
    write that read it still goes through."""
    return f"<{type(value).__name__}> {value!r}"


def is_fact(entry: Mapping[str, Any]) -> bool:
    """A write of facts, rather than a decision."""
    return entry.get("kind") == "fact"


def _shape(entry: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    """The chained fields, the callee's fields and every field of an entry of its kind."""
    if is_fact(entry):
        return FACT_CHAINED_FIELDS, FACT_CALLEE_FIELDS, FACT_ENTRY_FIELDS
    return CHAINED_FIELDS, CALLEE_FIELDS, ENTRY_FIELDS


def log_entry(
    decision: Decision, *, seq: int, at: str, node: str | None, channel: str | None,
    kind: str, latency_ms: float | None, salt: str, prev_hash: str,
) -> dict[str, Any]:  # fmt: skip
    """The log entry of a decision, with its hash."""
    entry: dict[str, Any] = {
        "seq": seq, "id": decision.decision_id, "at": at, "node": node, "channel": channel,
        "kind": kind, "company": decision.company, "campaign": decision.campaign,
        "purpose": decision.purpose.value, "dept": decision.dept,
        "caller_in": decision.caller_in, "caller_out": decision.caller_out,
        "callee_in": decision.callee_in, "callee": decision.callee, "callee_salt": salt,
        "callee_commit": callee_commit(decision.callee, decision.callee_in, salt),
        "territory": decision.territory, "verdict": decision.verdict.value,
        "reasons": [
            {"code": r.code, "message": r.message, "blocking": r.blocking}
            for r in decision.reasons
        ],
        "retry_after": decision.retry_after.isoformat() if decision.retry_after else None,
        "ruleset": decision.ruleset, "latency_ms": latency_ms, "prev_hash": prev_hash,
    }  # fmt: skip
    entry["hash"] = entry_hash(entry)
    return entry


def pseudonymise(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The entry without the callee's number and salt; its hash still verifies."""
    hidden = ("callee", "callee_in", "callee_salt")
    return {key: value for key, value in entry.items() if key not in hidden}


@dataclass(frozen=True)
class ChainBreak:
    """Where the chain breaks, and how, in words an auditor can act on."""

    position: int  # 1-based rank of the entry in the export or the store
    seq: int | None
    entry_id: str | None
    problem: str

    def __str__(self) -> str:
        return f"entry {self.position} (seq {self.seq}, id {self.entry_id}): {self.problem}"


def read_anchor(value: Any) -> tuple[int, str] | None:
    """An export's anchor, ``{"seq": N, "hash": H}``, as (seq, hash); None if malformed
    (another key included: nothing vouches for it)."""
    if not isinstance(value, Mapping) or set(value) != {"seq", "hash"}:
        return None
    seq, digest = value.get("seq"), value.get("hash")
    if not (_is_seq(seq, low=0) and isinstance(digest, str) and _HASH.fullmatch(digest)):
        return None
    return seq, digest


class ChainVerifier:
    """Checks a log entry by entry, in order, so that a big log streams through it.

    It takes whatever an export holds: a value that is no log entry is a break, never an
    exception (an auditor's tool reports, it does not crash)."""

    def __init__(self, anchor: tuple[int, str] | None = None) -> None:
        self.expected_seq: int | None = anchor[0] + 1 if anchor else None
        self.expected_prev = anchor[1] if anchor else GENESIS
        self.count = 0

    def feed(self, entry: Any) -> ChainBreak | None:
        """Check the next entry; returns the break it shows, if any."""
        if not isinstance(entry, Mapping):
            problem = "not a log entry: a JSON object is expected"
            return ChainBreak(self.count + 1, None, None, problem)
        seq = entry.get("seq")
        where = (self.count + 1, seq if _is_seq(seq) else None, _shown_id(entry.get("id")))
        problem = _malformed(entry) or _misshapen(entry) or _edited(entry)
        if problem:
            return ChainBreak(*where, problem)
        if self.expected_seq is not None and seq != self.expected_seq:
            if seq > self.expected_seq:
                problem = f"entries {self.expected_seq} to {seq - 1} before it were removed"
            else:
                problem = f"out of order: seq {seq} comes after seq {self.expected_seq - 1}"
            return ChainBreak(*where, problem)
        if entry.get("prev_hash") != self.expected_prev:
            return ChainBreak(*where, "the entry before it was removed, replaced or reordered")
        self.expected_seq = seq + 1
        self.expected_prev = entry["hash"]
        self.count += 1
        return None


def _is_seq(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_SEQ


def _shown_id(value: Any) -> str | None:
    """The entry's id for a report, when it looks like one (a forged one could hold
    terminal escapes, or a megabyte)."""
    if isinstance(value, str) and len(value) <= 64 and value.isprintable():
        return value
    return None


def _malformed(entry: Mapping[str, Any]) -> str | None:
    """What makes the value no log entry at all, if anything."""
    if not _is_seq(entry.get("seq")):
        return "not a log entry: its seq is not a positive 64-bit integer"
    for name in ("hash", "prev_hash"):
        digest = entry.get(name)
        if not (isinstance(digest, str) and _HASH.fullmatch(digest)):
            return f"not a log entry: its {name} is not 64 hexadecimal digits"
    return None


def shown_key(key: Any) -> str:
    """A key for a report: quoted and escaped (a forged one could hold terminal escapes),
    and cut short (or a megabyte)."""
    text = str(key)
    return repr(text[:40]) + ("..." if len(text) > 40 else "")


def _misshapen(entry: Mapping[str, Any]) -> str | None:
    """The key the entry should not hold, or lacks, if any (see ENTRY_FIELDS)."""
    chained, callee_fields, fields = _shape(entry)
    for key in entry:
        if key not in fields:
            return f"edited: it holds a key its hash does not cover: {shown_key(key)}"
    callee = [name for name in callee_fields if name in entry]
    if callee and len(callee) < len(callee_fields):
        missing = next(name for name in callee_fields if name not in entry)
        return (
            f"edited: it holds {shown_key(callee[0])} without {shown_key(missing)}: the"
            " callee is kept whole, or left out of a pseudonymised export"
        )
    for name in (*chained, "hash"):
        if name not in entry:
            return f"edited: its key {shown_key(name)} was removed"
    return None


def _edited(entry: Mapping[str, Any]) -> str | None:
    """How the entry's content departs from its hash or its callee commitment, if it does."""
    try:
        if "callee" in entry and "callee_salt" in entry:
            # A fact's callee is its E.164 number alone: a fact has no number "as dialled".
            commit = callee_commit(entry["callee"], entry.get("callee_in"), entry["callee_salt"])
            if commit != entry.get("callee_commit"):
                return "edited: the callee number was changed"
        if entry_hash(entry) != entry["hash"]:
            return "edited: its content does not match its hash"
    except UnicodeEncodeError:  # a lone surrogate, which no entry written can hold
        return "edited: it holds an invalid code point (a lone surrogate)"
    except RecursionError:
        return "not a log entry: nested too deeply"
    return None


def verify_chain(
    entries: Iterable[Mapping[str, Any]], anchor: tuple[int, str] | None = None
) -> tuple[int, ChainBreak | None]:
    """Check a log in order. Returns how many entries verified, and the first break.

    ``anchor`` is (seq, hash) of the last entry purged, when the log's start was purged.
    """
    verifier = ChainVerifier(anchor)
    for entry in entries:
        broken = verifier.feed(entry)
        if broken:
            return verifier.count, broken
    return verifier.count, None
