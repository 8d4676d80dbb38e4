"""How the CLI shows things: plain words for people, one JSON shape for machines."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from callgate.model import Decision
from callgate.store import ConsentRecord, ContractRecord, OppositionRecord
from callgate.store.base import AppointmentRecord, Outcome
from callgate.timeparse import DEFAULT_ZONE

__all__ = [
    "consent_json",
    "contract_json",
    "decision_json",
    "opposition_json",
    "render_decision",
]


def decision_json(decision: Decision) -> dict[str, Any]:
    """The public verdict object of DESIGN.md (``check --json``, the API)."""
    return {
        "verdict": decision.verdict.value,
        "caller_in": decision.caller_in,
        "caller_out": decision.caller_out,
        "callee": decision.callee,
        "territory": decision.territory,
        "purpose": decision.purpose.value,
        "reasons": [
            {"code": r.code, "message": r.message, "blocking": r.blocking} for r in decision.reasons
        ],
        "retry_after": _iso(decision.retry_after),
        "ruleset": decision.ruleset,
        "decision_id": decision.decision_id,
    }


def render_decision(decision: Decision) -> str:
    callee = decision.callee or "(invalid number)"
    where = f" ({decision.territory})" if decision.territory else ""
    lines = [
        f"{decision.verdict.value.upper()}  call to {callee}{where}",
        f"  purpose    {decision.purpose.value}, company {decision.company or '(none)'}",
        f"  caller ID  {_caller_line(decision)}",
    ]
    blocking = [r for r in decision.reasons if r.blocking]
    notes = [r for r in decision.reasons if not r.blocking]
    for title, reasons in (("blocked by", blocking), ("notes", notes)):
        if reasons:
            lines.append(f"  {title}:")
            lines.extend(f"    {r.code:<24} {r.message}" for r in reasons)
    if decision.retry_after:
        at = decision.retry_after
        lines.append(f"  retry from {at:%A %d %B %Y %H:%M} callee time (UTC{_offset(at)})")
    elif blocking:
        lines.append("  retry      not before the blocking records change")
    lines.append(f"  ruleset    {decision.ruleset}   decision {decision.decision_id}")
    return "\n".join(lines)


def _caller_line(decision: Decision) -> str:
    if decision.caller_out is None:
        return f"{decision.caller_in or '(none)'}: no compliant number to present"
    if any(r.code == "CLI_REWRITTEN" for r in decision.reasons):
        return f"{decision.caller_in or '(none)'} -> {decision.caller_out} (rewritten)"
    return f"{decision.caller_out} (kept)"


def _offset(at: datetime) -> str:
    text = at.strftime("%z")
    return f"{text[:3]}:{text[3:]}" if text else ""


def consent_json(record: ConsentRecord) -> dict[str, Any]:
    c = record.consent
    return {
        "id": record.id, "company": record.company, "callee": record.callee,
        "scope": c.scope.value, "given_at": _iso(c.given_at),
        "expires_at": _iso(c.expires_at), "revoked_at": _iso(c.revoked_at),
        "source": c.source, "proof": c.proof, "given_by": c.given_by,
        "collected_by": c.collected_by, "channel": c.channel.value if c.channel else None,
        "covers": c.covers, "proof_sha256": c.proof_sha256, "proof_name": c.proof_name,
        "revoked_how": c.revoked_how,
    }  # fmt: skip


def appointment_json(record: AppointmentRecord, window_minutes: int) -> dict[str, Any]:
    booked = record.appointment
    return {
        "id": record.id, "company": record.company, "callee": record.callee,
        "start": _iso(booked.start), "end": _iso(booked.ends_at(window_minutes)),
        "recorded_at": _iso(record.recorded_at), "cancelled_at": _iso(record.cancelled_at),
        "source": record.source, "proof": record.proof, "agreed_by": record.agreed_by,
    }  # fmt: skip


def contract_json(record: ContractRecord) -> dict[str, Any]:
    return {
        "id": record.id, "company": record.company, "callee": record.callee,
        "start": _iso(record.contract.start), "end": _iso(record.contract.end),
    }  # fmt: skip


def opposition_json(record: OppositionRecord) -> dict[str, Any]:
    return {
        "id": record.id, "callee": record.callee, "company": record.company,
        "source": record.source, "added_at": _iso(record.added_at),
        "removed_at": _iso(record.removed_at),
    }  # fmt: skip


# `outcome list`'s columns; its JSON (and GET /v1/outcomes) has these keys.
OUTCOME_COLUMNS = ("at", "kind", "callee", "company", "source", "id", "seq")


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    """A refusal or a withdrawal; ``seq`` is the log entry that recorded it (`callgate log
    --kind refusal`), None when a genesis or purge entry vouches for it."""
    return {
        "at": outcome.at.isoformat(), "kind": outcome.kind, "callee": outcome.callee,
        "company": outcome.company, "source": outcome.source, "id": outcome.id,
        "seq": outcome.seq,
    }  # fmt: skip


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def local_text(at: datetime | None) -> str:
    """An instant for people: French legal time, to the minute."""
    return at.astimezone(DEFAULT_ZONE).strftime("%Y-%m-%d %H:%M %Z") if at else "-"
