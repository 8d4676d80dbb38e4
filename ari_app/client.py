"""A small ARI client on aiohttp: the events WebSocket and the few REST calls the gate needs.

Authentication goes in an Authorization header, never in a URL, so it stays out of logs.
"""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote

import aiohttp

from ari_app.rest import Request, RestPool, request

__all__ = ["AriClient", "AriError"]

log = logging.getLogger("callgate.ari")


class AriError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status} {body[:200]}")
        self.status = status
        self.body = body


class AriClient:
    def __init__(self, url: str, username: str, password: str, app: str) -> None:
        self.url = url.rstrip("/")
        self.app = app
        token = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._authorization = f"Basic {token}"
        self._session: aiohttp.ClientSession | None = None
        self._rest: RestPool | None = None

    async def __aenter__(self) -> AriClient:
        # One session, kept-alive connections: a call costs no TCP handshake.
        connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=60)
        self._session = aiohttp.ClientSession(
            headers={"Authorization": self._authorization},
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=5),
        )
        # Each call's own requests: on connections of their own, without aiohttp's
        # per-request machinery (ari_app/rest.py).
        self._rest = RestPool(self.url, self._authorization, timeout=5)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._rest is not None:
            self._rest.close()
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

    async def _send(self, *requests: Request) -> None:
        """A call's requests, pipelined on one kept-alive connection; AriError for the
        first that fails (those after it fail too: they concern the same channel)."""
        if self._rest is None:
            raise RuntimeError("AriClient used outside 'async with'")
        for sent, answer in zip(requests, await self._rest.send(requests), strict=True):
            if answer.status >= 300:
                body = answer.body.decode(errors="replace")
                raise AriError(answer.status, sent.method, sent.label, body)

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self._send(_set_variable(channel_id, name, value))

    async def hand_back(self, channel_id: str, name: str, value: str) -> None:
        """Set the verdict's variable and continue the channel in the dialplan, in one
        write: Asterisk answers them in order, so the dialplan never runs before the
        variable is set."""
        await self._send(
            _set_variable(channel_id, name, value),
            request("POST", f"/channels/{_quoted(channel_id)}/continue"),
        )

    async def get_variable(self, channel_id: str, name: str) -> str:
        """The variable's value, "" when it is not set; AriError when the channel is gone."""
        try:
            reply = await self.request(
                "GET", f"/channels/{_quoted(channel_id)}/variable", {"variable": name}
            )
        except AriError as error:
            # Asterisk answers 404 both for an unset variable and for a missing channel.
            if error.status == 404 and "variable was not found" in error.body:
                return ""
            raise
        return str(reply.get("value", "")) if isinstance(reply, dict) else ""

    async def continue_in_dialplan(self, channel_id: str) -> None:
        await self._send(request("POST", f"/channels/{_quoted(channel_id)}/continue"))

    async def hangup(self, channel_id: str, reason_code: int = 21) -> None:
        await self._send(
            request("DELETE", f"/channels/{_quoted(channel_id)}", {"reason_code": str(reason_code)})
        )

    async def only_events(self, types: tuple[str, ...]) -> None:
        """Have Asterisk send this app only these event types (ARI event filter)."""
        await self.request(
            "PUT", f"/applications/{self.app}/eventFilter",
            body={"allowed": [{"type": kind} for kind in types]},
        )  # fmt: skip

    async def claim(self, channel_id: str) -> bool:
        """Claim a channel that StasisBroadcast offers; False when another app was first."""
        try:
            await self.request(
                "POST", "/events/claim", {"channelId": channel_id, "application": self.app}
            )
        except AriError as error:
            if error.status in (404, 409):  # claimed by another, or no longer offered
                return False
            raise
        return True

    async def channel(self, channel_id: str) -> dict[str, Any]:
        return await self.request("GET", f"/channels/{_quoted(channel_id)}")

    async def channels_in_app(self) -> list[str]:
        """The channels still in this app, e.g. left there while we were disconnected."""
        reply = await self.request("GET", f"/applications/{self.app}")
        return list(reply.get("channel_ids", [])) if isinstance(reply, dict) else []


def _set_variable(channel_id: str, name: str, value: str) -> Request:
    return request(
        "POST", f"/channels/{_quoted(channel_id)}/variable", {"variable": name, "value": value}
    )


def _quoted(channel_id: str) -> str:
    """A channel's id in a path: whoever originates a call through ARI chooses it, and an
    id with a space, "?" or "/" must still name that channel."""
    return quote(channel_id, safe="")
