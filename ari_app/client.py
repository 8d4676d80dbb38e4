"""A small ARI client on aiohttp: the events WebSocket and the few REST calls the gate needs.

The calls made for every call (set the result, continue, claim, hang up) go over the
events WebSocket itself where Asterisk offers it (ARI REST over WebSocket: Asterisk 20.14,
21.9, 22.4 and later): one frame each way instead of an HTTP exchange. Elsewhere, and for
everything else, plain HTTP. Authentication goes in an Authorization header, never in a
URL, so it stays out of logs.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from typing import Any

import aiohttp

__all__ = ["AriClient", "AriError"]

log = logging.getLogger("callgate.ari")


class AriError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {body[:200]}")
        self.status = status


class AriClient:
    def __init__(self, url: str, username: str, password: str, app: str) -> None:
        self.url = url.rstrip("/")
        self.app = app
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._authorization = f"Basic {token}"
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._request_ids = itertools.count(1)

    async def __aenter__(self) -> AriClient:
        # One session, kept-alive connections: a call costs no TCP handshake.
        connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            headers={"Authorization": self._authorization},
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=5),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("AriClient used outside 'async with'")
        return self._session

    async def events(self) -> aiohttp.ClientWebSocketResponse:
        """Open the events WebSocket for this app; Asterisk then owns the app name to us."""
        ws_url = self.url.replace("http", "ws", 1) + "/ari/events"
        return await self.session.ws_connect(
            ws_url, params={"app": self.app, "subscribeAll": "false"}, heartbeat=5.0,
            timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
        )  # fmt: skip

    async def request(
        self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        async with self.session.request(
            method, self.url + "/ari" + path, params=params, json=body
        ) as reply:
            body = await reply.text()
            if reply.status >= 300:
                raise AriError(reply.status, method, path, body)
            return await reply.json(content_type=None) if body else None

    # ------------------------------------------------------------ REST over the WebSocket

    async def use_websocket(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Send the per-call requests over ``ws`` if Asterisk answers them there.

        The caller must be reading ``ws`` and handing RESTResponse events to ``deliver``.
        """
        self._ws = ws
        try:
            await self.call("GET", "/asterisk/ping", timeout=1.0)
        except (AriError, aiohttp.ClientError):
            self.drop_websocket()
            return False
        return True

    def drop_websocket(self) -> None:
        self._ws = None
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(aiohttp.ClientConnectionError("ARI WebSocket closed"))
        self._replies.clear()

    def deliver(self, event: dict[str, Any]) -> None:
        """A RESTResponse event read from the WebSocket: the reply to one of our calls."""
        reply = self._replies.pop(str(event.get("request_id")), None)
        if reply is not None and not reply.done():
            reply.set_result(event)

    async def call(
        self, method: str, path: str, params: dict[str, str] | None = None,
        *, timeout: float = 5.0,
    ) -> Any:  # fmt: skip
        """A REST request over the WebSocket when it carries them, else over HTTP."""
        ws = self._ws
        if ws is None or ws.closed:
            return await self.request(method, path, params)
        request_id = str(next(self._request_ids))
        reply = asyncio.get_running_loop().create_future()
        self._replies[request_id] = reply
        message = {
            "type": "RESTRequest", "transaction_id": request_id, "request_id": request_id,
            "method": method, "uri": path.lstrip("/"),
            "query_strings": [{"name": k, "value": v} for k, v in (params or {}).items()],
        }  # fmt: skip
        try:
            await ws.send_str(json.dumps(message))
            async with asyncio.timeout(timeout):
                answer = await reply
        except TimeoutError:
            raise aiohttp.ServerTimeoutError(f"no answer to {method} {path}") from None
        finally:
            self._replies.pop(request_id, None)
        status, body = int(answer.get("status_code", 500)), answer.get("message_body") or ""
        if status >= 300:
            raise AriError(status, method, path, body)
        return json.loads(body) if body else None

    # ------------------------------------------------------------ the calls

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.call(
            "POST", f"/channels/{channel_id}/variable", {"variable": name, "value": value}
        )

    async def get_variable(self, channel_id: str, name: str) -> str:
        try:
            reply = await self.request(
                "GET", f"/channels/{channel_id}/variable", {"variable": name}
            )
        except AriError as error:
            if error.status == 404 and "variable" in str(error):
                return ""  # not set on this channel
            raise
        return str(reply.get("value", "")) if isinstance(reply, dict) else ""

    async def continue_in_dialplan(self, channel_id: str) -> None:
        await self.call("POST", f"/channels/{channel_id}/continue")

    async def hangup(self, channel_id: str, reason_code: int = 21) -> None:
        await self.call("DELETE", f"/channels/{channel_id}", {"reason_code": str(reason_code)})

    async def only_events(self, types: tuple[str, ...]) -> None:
        """Have Asterisk send this app only these event types (ARI event filter)."""
        await self.request(
            "PUT", f"/applications/{self.app}/eventFilter",
            body={"allowed": [{"type": kind} for kind in types]},
        )  # fmt: skip

    async def claim(self, channel_id: str) -> bool:
        """Claim a channel that StasisBroadcast offers; False when another app was first."""
        try:
            await self.call(
                "POST", "/events/claim", {"channelId": channel_id, "application": self.app}
            )
        except AriError as error:
            if error.status in (404, 409):  # claimed by another, or no longer offered
                return False
            raise
        return True

    async def channel(self, channel_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/channels/{channel_id}")

    async def channels_in_app(self) -> list[str]:
        """The channels still in this app, e.g. left there while we were disconnected."""
        reply = await self.request("GET", f"/applications/{self.app}")
        return list(reply.get("channel_ids", [])) if isinstance(reply, dict) else []
