"""The cheapest ARI app on the gate's own client: it continues every call at once.

    python -m bench.null_gate --config CALLGATE_TOML

Runs ``ari_app.gate.AriGate`` (the events WebSocket, the event filter, one task per
StasisStart, set CALLGATE_RESULT, continue) with its decider replaced by one that returns
the same allowed Decision for every call, made once at start: no store is opened, no
rule runs, nothing is recorded. bench.load runs it as the ``null`` flavour: the CPU it
uses per call is the floor a Python app on this client pays for a Stasis round trip, and
the Asterisk beside it pays what a Stasis round trip costs Asterisk, so that the gate's
own share of a call is what ``ari`` adds to ``null``.

Logs at WARNING (no line per call); prints the line ``callgate run`` logs once it is
connected, which harness.gate waits for.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ari_app.client import AriClient
from ari_app.gate import AriGate
from callgate.config import Config, load_config
from callgate.model import CallRequest, Decision, Facts
from callgate.policy import decide
from callgate.store import safe_url

# The instant bench.load fakes for the real gates: a Monday morning, every call allowed.
DECIDED_AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
CALLEE = "0620000000"


def allowed_decision(config: Config) -> Decision:
    """One allowed decision, made by the real policy on a callee the store knows nothing
    of, so that its CALLGATE_RESULT is the one the gate hands back for an allowed call."""
    company = next(iter(config.companies.values()), None)
    request = CallRequest(
        company.first_number if company else "", CALLEE, company.id if company else None
    )
    decision = decide(request, Facts(), DECIDED_AT, config)
    if not decision.allowed:
        raise SystemExit(f"the configuration refuses the null gate's call: {decision.codes}")
    return decision


class NullDecider:
    """Stands in for CallDecider: the same decision for every call, at once."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision

    async def decide(
        self, caller: str, callee: str, now: datetime, channel: str | None,
        *, arguments: Sequence[str] | None = (), carried: Mapping[str, str] | None = None,
        read_variable: Any = None,
    ) -> Decision:  # fmt: skip
        return self.decision

    async def close(self) -> None:
        pass


async def serve(config: Config) -> str:
    settings = config.ari
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    decider = NullDecider(allowed_decision(config))
    async with AriClient(settings.url, settings.username, settings.password(),
                         settings.app) as client:  # fmt: skip
        # No store: the decider that would use it is replaced before the first call.
        gate = AriGate(client, None, config)  # type: ignore[arg-type]
        gate.decider = decider  # type: ignore[assignment]
        ready = asyncio.create_task(_say_when_connected(gate, settings.url, settings.app))
        try:
            return await gate.run(stop)
        finally:
            ready.cancel()


async def _say_when_connected(gate: AriGate, url: str, app: str) -> None:
    # AriGate logs this at INFO, which the WARNING level hides: harness.gate waits for it.
    await gate.connected.wait()
    print(f"connected to ARI at {safe_url(url)} as app {app!r} (null gate)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="a callgate.toml")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )  # fmt: skip
    why = asyncio.run(serve(load_config(args.config)))
    sys.exit(0 if why == "stopped" else 1)


if __name__ == "__main__":
    main()
