"""The ARI gate: decide every channel that enters Stasis(callgate), then hand it back.

Under StasisBroadcast (several gates for one Asterisk), a gate claims each channel offered
in a CallBroadcast unless it is saturated or stopping; the first claimant gets the
StasisStart, and a channel nobody claims returns to the dialplan, which refuses it.

For each StasisStart: build the request from the event (caller ID, dialled number, the
inputs from the Stasis arguments, else the snapshot's channelvars, else read from the
channel), decide and record through ``callgate.gate.check_call``, set CALLGATE_RESULT,
and continue the channel in the dialplan, which dials or hangs up.
Nothing here judges a call: a decision the gate cannot make in time is GATE_ERROR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from ari_app.client import AriClient, AriError
from callgate import metrics
from callgate.config import Config
from callgate.dialplan import CHANNELVARS_LINE, INPUT_VARIABLES, RESULT_VARIABLE, encode_result
from callgate.gate import CallDecider, DecisionLine, VariableReader
from callgate.model import Decision
from callgate.store import Store, safe_url

__all__ = ["AriGate", "Backoff"]

log = logging.getLogger("callgate.ari")

# The events the gate acts on.
EVENTS = ("StasisStart", "CallBroadcast", "ApplicationReplaced")


def utc_now() -> datetime:
    return datetime.now(UTC)


class Backoff:
    """Reconnection delays: short at first, doubling, capped; every second offline costs calls."""

    def __init__(self, first: float = 0.05, cap: float = 1.0) -> None:
        self.first, self.cap, self.current = first, cap, first

    def next(self) -> float:
        delay, self.current = self.current, min(self.current * 2, self.cap)
        return delay

    def reset(self) -> None:
        self.current = self.first


class AriGate:
    def __init__(
        self,
        client: AriClient,
        store: Store,
        config: Config,
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.clock = clock
        self.decider = CallDecider(
            store, config,
            max_concurrent=config.ari.max_concurrent, deadline=config.ari.decision_timeout,
        )  # fmt: skip
        self._deadline = config.ari.decision_timeout
        # Every task started is kept here until it ends, with the channel it serves.
        self._inflight: dict[asyncio.Task[None], str] = {}
        self._max_inflight = config.ari.max_concurrent
        self._claims: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()
        self._told_channelvars = False

    async def run(self, stop: asyncio.Event) -> str:
        """Serve until ``stop`` is set or another instance takes the app over.

        Returns "stopped" or "replaced".
        """
        backoff = Backoff()
        outage_since: float | None = None
        why = "stopped"
        while not stop.is_set():
            try:
                ws = await self.client.events()
            except (aiohttp.ClientError, OSError) as error:
                if outage_since is None:
                    outage_since = time.monotonic()
                    log.warning("cannot reach ARI at %s (%s); retrying",
                                safe_url(self.client.url), error)  # fmt: skip
                await _sleep_or_stop(stop, backoff.next())
                continue
            backoff.reset()
            if outage_since is not None:
                log.info("ARI back after %.1f s offline", time.monotonic() - outage_since)
                outage_since = None
            log.info("connected to ARI at %s as app %r", safe_url(self.client.url), self.client.app)
            self.connected.set()
            metrics.ARI_CONNECTED.set(1)
            try:
                await self._filter_events()
                await self._reconcile()
                why = await self._serve(ws, stop)
            finally:
                self.connected.clear()
                metrics.ARI_CONNECTED.set(0)
                await ws.close()
            if why == "replaced":
                log.error("another client took the ARI app %r over; stopping", self.client.app)
                break
            if why == "disconnected" and not stop.is_set():
                outage_since = time.monotonic()
                log.warning("ARI connection lost; reconnecting")
        await self._release_inflight()
        await self.decider.close()
        return why

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse, stop: asyncio.Event) -> str:
        closer = asyncio.create_task(_close_when(stop, ws))
        try:
            async for message in ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                event = message.json()
                kind = event.get("type")
                if kind == "StasisStart":
                    self._start(event["channel"], event.get("args") or [])
                elif kind == "CallBroadcast" and not stop.is_set():
                    self._offer(event["channel"]["id"])
                elif kind == "ApplicationReplaced":
                    return "replaced"
        finally:
            closer.cancel()
        return "stopped" if stop.is_set() else "disconnected"

    async def _filter_events(self) -> None:
        # Each call would otherwise bring a dozen events the gate ignores (variables set,
        # dialplan steps, StasisEnd): JSON that Asterisk writes and the gate parses.
        try:
            await self.client.only_events(EVENTS)
        except (AriError, aiohttp.ClientError) as error:
            log.info("cannot filter the app's events (all are received): %s", error)

    async def _reconcile(self) -> None:
        """Decide the channels left in the app while no connection was up."""
        try:
            waiting = await self.client.channels_in_app()
        except (AriError, aiohttp.ClientError) as error:
            log.warning("cannot list the app's channels: %s", error)
            return
        handled = set(self._inflight.values())
        for channel_id in waiting:
            if channel_id in handled:
                continue
            try:
                channel = await self.client.channel(channel_id)
            except (AriError, aiohttp.ClientError) as error:
                log.info("channel %s left while reconnecting: %s", channel_id, error)
                continue
            log.info("channel %s was waiting for a verdict: deciding it now", channel_id)
            self._start(channel, _stasis_arguments(channel))

    def _offer(self, channel_id: str) -> None:
        # A saturated gate leaves the call to a sibling; if every gate is saturated, the
        # broadcast times out and the dialplan refuses the call (fail closed).
        if len(self._inflight) + len(self._claims) >= self._max_inflight:
            metrics.ARI_CLAIMS.labels("declined").inc()
            return
        task = asyncio.create_task(self._claim(channel_id))
        self._claims.add(task)
        task.add_done_callback(self._claims.discard)

    async def _claim(self, channel_id: str) -> None:
        try:
            won = await self.client.claim(channel_id)
        except (AriError, aiohttp.ClientError, TimeoutError) as error:
            log.warning("channel %s: claim failed: %s", channel_id, error)
            metrics.ARI_CLAIMS.labels("failed").inc()
            return
        metrics.ARI_CLAIMS.labels("won" if won else "lost").inc()

    def _start(self, channel: dict[str, Any], arguments: list[str] | None) -> None:
        task = asyncio.create_task(self._handle(channel, arguments))
        self._inflight[task] = channel["id"]
        task.add_done_callback(self._inflight.pop)

    async def _handle(self, channel: dict[str, Any], arguments: list[str] | None) -> None:
        channel_id = channel["id"]
        started = time.perf_counter()
        decision = await self._decide(channel, arguments)
        try:
            await self.client.hand_back(channel_id, RESULT_VARIABLE, encode_result(decision))
        except AriError as error:
            if error.status == 404:
                log.info("channel %s hung up before its verdict", channel_id)
                return
            log.error("channel %s: cannot hand the verdict back: %s", channel_id, error)
            await self._hang_up(channel_id)
            return
        except aiohttp.ClientError as error:
            # The channel stays in Stasis: the dialplan's absolute timeout hangs it up.
            log.error("channel %s: ARI unreachable with the verdict: %s", channel_id, error)
            return
        log.info("%s", DecisionLine(decision, channel_id, time.perf_counter() - started))

    async def _decide(self, channel: dict[str, Any], arguments: list[str] | None) -> Decision:
        carried = channel.get("channelvars")
        return await self.decider.decide(
            channel.get("caller", {}).get("number", ""),
            channel.get("dialplan", {}).get("exten", ""),
            self.clock(),
            channel["id"],
            arguments=arguments,
            carried=carried if isinstance(carried, dict) else None,
            read_variable=self._reader(channel["id"], carried),
        )

    def _reader(self, channel_id: str, carried: object) -> VariableReader:
        async def read(name: str) -> str:
            metrics.INPUT_READS.labels("ari").inc()
            if not self._told_channelvars:
                self._told_channelvars = True
                log.warning(
                    "StasisStart carried no %s: each call now costs a request per input it "
                    "lacks. Add to ari.conf [general]: %s (or pass the inputs as Stasis "
                    "arguments: Stasis(%s,company=...,purpose=...))",
                    name, _channelvars_line(carried), self.client.app,
                )  # fmt: skip
            return await self.client.get_variable(channel_id, name)

        return read

    async def _hang_up(self, channel_id: str) -> None:
        # Already gone, or the dialplan's absolute timeout will hang it up.
        with contextlib.suppress(AriError, aiohttp.ClientError):
            await self.client.hangup(channel_id, reason_code=21)

    async def _release_inflight(self) -> None:
        """On stop: let decisions in flight finish briefly, then refuse what remains."""
        if not self._inflight:
            return
        pending = set(self._inflight)
        channels = dict(self._inflight)
        _, late = await asyncio.wait(pending, timeout=self._deadline + 0.5)
        for task in late:
            task.cancel()
        for task in late:
            channel_id = channels[task]
            log.warning("channel %s: stopping before its verdict; refusing it", channel_id)
            try:
                await self.client.hand_back(channel_id, RESULT_VARIABLE, "REJECT|GATE_ERROR|||")
            except (AriError, aiohttp.ClientError):
                await self._hang_up(channel_id)


def _stasis_arguments(channel: dict[str, Any]) -> list[str] | None:
    """The gate's arguments of a channel fetched by id (its StasisStart is gone), rebuilt
    from the application's data; None when they cannot be rebuilt exactly."""
    dialplan = channel.get("dialplan") or {}
    app, data = str(dialplan.get("app_name", "")).lower(), str(dialplan.get("app_data", ""))
    if any(mark in data for mark in '"\\()'):
        return None  # Asterisk's quoting rules; a guess could misread an input
    if app == "stasis":
        return data.split(",")[1:]
    if app == "stasisbroadcast":  # StasisBroadcast(timeout,filter,arg:arg...)
        parts = data.split(",", 2)
        return parts[2].split(":") if len(parts) > 2 and parts[2] else []
    return None


def _channelvars_line(carried: object) -> str:
    """The ari.conf line that carries the inputs, keeping the variables already listed."""
    if not isinstance(carried, dict) or not carried:
        return CHANNELVARS_LINE
    return "channelvars = " + ",".join(
        [*carried, *(n for n in INPUT_VARIABLES if n not in carried)]
    )


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _close_when(stop: asyncio.Event, ws: aiohttp.ClientWebSocketResponse) -> None:
    await stop.wait()
    await ws.close()
