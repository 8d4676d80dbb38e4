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

from callgate import metrics
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

T = TypeVar("T")


class Cached(Generic[T]):
    """An async probe's answer, kept ``seconds``: callers meanwhile get it, and callers that
    arrive during a probe wait for that one instead of starting their own."""

    def __init__(self, probe: Callable[[], Awaitable[T]], seconds: float = CACHE_SECONDS) -> None:
        self._probe, self._seconds = probe, seconds
        self._lock = asyncio.Lock()
        self._answer: tuple[T] | None = None
        self._expires = 0.0

    async def get(self) -> T:
        async with self._lock:
            if self._answer is None or time.monotonic() >= self._expires:
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
    state, e.g. ("ari", "connected", True)."""
    if listen is None:
        yield
        return

    async def healthz(request: web.Request) -> web.Response:
        name, state, ok = part()
        body, status = health_body(await store_state(store), **{name: (state, ok)})
        return web.json_response(body, status=status)

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_text)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=IDLE_SECONDS)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, *listen).start()
        except OSError as error:
            raise ListenError(f"{listen[0]}:{listen[1]}: {error.strerror}") from None
        yield
    finally:
        await runner.cleanup()
