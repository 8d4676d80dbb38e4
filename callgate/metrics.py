"""Prometheus metrics, the same in every process that decides: gates, API."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from callgate.model import Decision

__all__ = [
    "AGI_DROPPED",
    "AGI_LISTENING",
    "ARI_CLAIMS",
    "ARI_CONNECTED",
    "DECISIONS",
    "DECISION_SECONDS",
    "INPUT_READS",
    "REASONS",
    "STORE_ERRORS",
    "STORE_UP",
    "observe",
]

DECISIONS = Counter("callgate_decisions", "Decisions made, by verdict", ["verdict"])
REASONS = Counter("callgate_decision_reasons", "Reasons given, by code", ["reason"])
DECISION_SECONDS = Histogram(
    "callgate_decision_seconds",
    "Time to decide one call, store included",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
)
STORE_ERRORS = Counter("callgate_store_errors", "Decisions the store could not answer")
STORE_UP = Gauge("callgate_store_up", "1 while the store answers, 0 during an outage")
ARI_CONNECTED = Gauge("callgate_ari_connected", "1 while the ARI gate's WebSocket is up")
ARI_CLAIMS = Counter(
    "callgate_ari_claims", "Channels offered by StasisBroadcast, by outcome", ["outcome"]
)
INPUT_READS = Counter(
    "callgate_input_reads",
    "Inputs read from the channel because the call did not carry them, by gate",
    ["gate"],
)
AGI_LISTENING = Gauge("callgate_agi_listening", "1 while the FastAGI gate listens")
AGI_DROPPED = Counter(
    "callgate_agi_dropped",
    "FastAGI connections ended without a normal answer, and failed accepts, by cause",
    ["cause"],
)


def observe(decision: Decision, seconds: float) -> None:
    DECISIONS.labels(decision.verdict.value).inc()
    for reason in decision.reasons:
        REASONS.labels(reason.code).inc()
    DECISION_SECONDS.observe(seconds)
