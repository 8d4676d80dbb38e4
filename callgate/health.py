"""Health: is the store answering, is the gate wired to Asterisk. Served by the API and,
with ``--metrics``, by each gate (`/healthz` and `/metrics` on one loopback port).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from callgate import metrics, serving
from callgate.store import Store

__all__ = [
    "Cached", "ListenError", "health_body", "health_server", "metrics_text", "store_state",
]  # fmt: skip

# A store that takes longer than this to answer a trivial read is down for the gate too.
PROBE_SECONDS = 1.0
# /healthz needs no token: whatever the rate of asking, the store and Asterisk are probed
# at most once in this many seconds.
CACHE_SECONDS = 1.0
# A health port's client that sends no request this long is closed (aiohttp keeps one
# for an hour by default).
IDLE_SECONDS = 15.0
# Connections a health port serves at once: a scraper and a monitor or two need a handful;
# a flood of them must not take the gate's file descriptors. Its kernel queue is short
# too (asyncio accepts a queue's worth at once, before any is counted).
MAX_CONNECTIONS, HEALTH_BACKLOG = 64, 16

T = TypeVar("T")


class Cached(Generic[T]):
    """An async probe's answer, kept ``seconds``: callers meanwhile get it, and callers that
    arrive during a probe wait for that one instead of starting their own. ``stale`` says
    of a kept answer that events have overtaken it: then it is probed again at once."""

    def __init__(
        self, probe: Callable[[], Awaitable[T]], seconds: float = CACHE_SECONDS,
        stale: Callable[[T], bool] = lambda _: False,
    ) -> None:  # fmt: skip
        self._probe, self._seconds, self._stale = probe, seconds, stale
        self._lock = asyncio.Lock()
        self._answer: tuple[T] | None = None
        self._expires = 0.0

    async def get(self) -> T:
        async with self._lock:
            if (
                self._answer is None
                or time.monotonic() >= self._expires
                or self._stale(self._answer[0])
            ):
                self._answer = (await self._probe(),)
                self._expires = time.monotonic() + self._seconds
            return self._answer[0]


async def store_state(store: Store) -> str:
    """ "ok" or "down", probed now; the callgate_store_up gauge follows."""
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            await store.log_anchor()
    except Exception:
        metrics.STORE_UP.set(0)
        return "down"
    metrics.STORE_UP.set(1)
    return "ok"


def _store_up() -> bool:
    """The callgate_store_up gauge: what the last probe or decision found."""
    return metrics.STORE_UP.collect()[0].samples[0].value == 1


def health_body(store: str, **parts: tuple[str, bool]) -> tuple[dict[str, str], int]:
    """The /healthz answer: 200 when the store and every part are fine, else 503."""
    healthy = store == "ok" and all(ok for _, ok in parts.values())
    body = {"status": "ok" if healthy else "degraded", "store": store}
    body.update({name: state for name, (state, _) in parts.items()})
    return body, 200 if healthy else 503


async def metrics_text(request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


class ListenError(Exception):
    """The health port cannot be bound; the message says where and why."""


@contextlib.asynccontextmanager
async def health_server(
    listen: tuple[str, int] | None, store: Store, part: Callable[[], tuple[str, str, bool]]
) -> AsyncIterator[None]:
    """Serve /healthz and /metrics while the gate runs; ``part`` names the gate's own
    state, e.g. ("ari", "connected", True). The port takes MAX_CONNECTIONS at most, and
    its /healthz probes the store at most once in CACHE_SECONDS."""
    if listen is None:
        yield
        return

    async def probe() -> tuple[dict[str, str], int]:
        name, state, ok = part()
        return health_body(await store_state(store), **{name: (state, ok)})

    def overtaken(answer: tuple[dict[str, str], int]) -> bool:
        # A decision that found the store down (or up again) since: a monitor sees an
        # outage at once, not a second late.
        return (answer[0]["store"] == "ok") != _store_up()

    health = Cached(probe, stale=overtaken)

    async def healthz(request: web.Request) -> web.Response:
        body, status = await health.get()
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_text)
    try:
        runner = await serving.serve(
            app, *listen, limit=MAX_CONNECTIONS, idle_timeout=IDLE_SECONDS,
            name="the --metrics port's connections", backlog=HEALTH_BACKLOG,
        )  # fmt: skip
    except OSError as error:
        raise ListenError(f"{listen[0]}:{listen[1]}: {error.strerror}") from None
    try:
        yield
    finally:
        await runner.cleanup()
