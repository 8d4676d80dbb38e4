"""The doctor's probing: ask the live PBX (ARI, AMI) and the store, hand the answers to
the checks one by one as they come in.

Everything it does is read-only, but for one call: Local/+000000@<context>, originated
through ARI, which the gate must reject (DEST_INVALID) and the dialplan hang up with
cause 21, as it must any refused call on a channel other than an agent's PJSIP one (that
one gets 603 Decline). A '+' number no trunk pattern like _X. matches, with country code 0: a
mis-wired context cannot turn it into a real call. The gate records it in the decision
log, with the campaign "callgate-doctor".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from panoramisk import Manager

from ari_app.client import AriClient
from callgate.config import Config, ConfigError
from callgate.doctor import checks
from callgate.doctor.checks import (
    SYNTHETIC_NUMBER,
    AmiSetup,
    AriSetup,
    CallTrace,
    Check,
    HttpReply,
    Status,
)
from callgate.doctor.routes import Key, Listing, Priority, Trace, parse_listing, trace
from callgate.store import (
    Store,
    StoreError,
    newest_schema_version,
    open_store,
    sqlite_path,
    stored_schema_version,
)

__all__ = ["Options", "examine"]

HTTP_TIMEOUT = 5.0  # AriClient's own limit on one request
_NO_ARI = "needs ARI, which failed (see the ari check)"
AMI_TIMEOUT = 5.0
# The doctor's call rings for at most this long: the gate decides in milliseconds, and
# CALLGATE_WAIT (5 s) refuses a call the gate leaves waiting.
CALL_TIMEOUT = 10
# The campaign of the doctor's call in the decision log, so an auditor knows it.
DOCTOR_CAMPAIGN = "callgate-doctor"
_MAX_LISTINGS = 40  # ShowDialPlan requests for one number's routes


@dataclass(frozen=True, slots=True)
class Options:
    store_url: str
    store_label: str  # the URL without its password, for the output
    synchronous: str = "full"
    trunk: str = "carrier"
    context: str = "callgate-outbound"
    call_timeout: int = CALL_TIMEOUT


async def examine(config: Config, options: Options, emit: Callable[[Check], None]) -> list[Check]:
    """Run every check, each handed to ``emit`` as soon as it is known."""
    found: list[Check] = []

    def report(check: Check) -> None:
        found.append(check)
        emit(check)

    ari = AriSetup(config.ari.url, config.ari.username, config.ari.password_file, config.ari.app)
    try:
        password: str | None = config.ari.password()
        problem = None
    except ConfigError as error:
        password, problem = None, str(error)
    async with AriClient(ari.url, ari.username, password or "", ari.app) as client:
        session = client.session
        info = await _get(session, ari.url, "/asterisk/info") if password is not None else None
        report(checks.ari_access(ari, problem, info))
        up = info is not None and info.status == 200
        loaded = None
        if up:
            assert info is not None
            report(checks.asterisk_release(info.body))
            listed = await _get(session, ari.url, "/asterisk/modules")
            if listed.status == 200 and isinstance(listed.body, list):
                loaded = checks.loaded_modules(listed.body)
                report(checks.modules(listed.body, agi="agi" in config.tables))
            else:
                report(
                    Check("modules", Status.WARN, f"cannot read the module list: {_why(listed)}")
                )
        else:
            for name in ("asterisk", "modules"):
                report(checks.not_checked(name, _NO_ARI))

        store, store_check = await _open(options)
        report(store_check)
        try:
            if up:
                endpoint = await _get(
                    session, ari.url,
                    f"/asterisk/config/dynamic/res_pjsip/endpoint/{quote(options.trunk, safe='')}",
                )  # fmt: skip
                report(checks.trunk_from_user(options.trunk, endpoint))
                report(checks.trunk_pai(options.trunk, endpoint))
            else:
                for name in ("trunk", "trunk-pai"):
                    report(checks.not_checked(name, _NO_ARI))

            gate = await _dialplan(config, options.context, report)
            if up:
                assert info is not None
                report(checks.stasis_broadcast(info.body, loaded, gate))
                held = await _get(session, ari.url, f"/applications/{quote(ari.app, safe='')}")
                report(checks.gate_app(ari, held, gate, options.context))
                call = await _call(session, ari.url, config, options, store)
                report(checks.synthetic_call(call, options.call_timeout))
                report(checks.channelvars(call))
            else:
                for name in ("stasis-broadcast", "app", "call", "channelvars"):
                    report(checks.not_checked(name, _NO_ARI))
        finally:
            if store is not None:
                await store.close()
    return found


# ---------------------------------------------------------------- ARI


async def _get(session: aiohttp.ClientSession, url: str, path: str) -> HttpReply:
    return await _request(session, "GET", url + "/ari" + path)


async def _request(
    session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> HttpReply:
    try:
        async with session.request(method, url, **kwargs) as reply:
            text = await reply.text()
    except TimeoutError:
        return HttpReply(None, error=f"no answer within {HTTP_TIMEOUT:g} s")
    except aiohttp.ClientConnectorError as error:
        return HttpReply(None, error=_os_error(error.os_error))
    except (aiohttp.ClientError, OSError) as error:
        return HttpReply(None, error=str(error) or type(error).__name__)
    try:
        body: Any = json.loads(text) if text else None
    except ValueError:
        body = text[:200]
    return HttpReply(reply.status, body)


def _os_error(error: OSError) -> str:
    # asyncio words a refused connection "Connect call failed (...)": say what it is.
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return error.strerror or str(error)


def _why(reply: HttpReply) -> str:
    if reply.status is None:
        return reply.error or "no answer"
    message = reply.body.get("message") if isinstance(reply.body, Mapping) else reply.body
    return f"HTTP {reply.status}" + (f" {message}" if message else "")


# ---------------------------------------------------------------- the store


async def _open(options: Options) -> tuple[Store | None, Check]:
    """The store's schema version, read first; then the store, opened as every command
    opens it (migrations would be applied, but an older schema has been reported)."""
    shipped = newest_schema_version(options.store_url)
    path = sqlite_path(options.store_url)
    if path is not None and path != ":memory:" and not Path(path).exists():
        # Opening would create an empty store and call it fine: a mistyped --db, or a
        # doctor run where the gates do not run.
        return None, checks.store(
            options.store_label, f"no store at {path} (the gates create it at start)", None,
            shipped,
        )  # fmt: skip
    try:
        # Read before opening: opening migrates, and would hide a store left behind.
        before = await stored_schema_version(options.store_url)
    except Exception as error:  # a malformed URL is a finding too, whatever raised it
        return None, checks.store(
            options.store_label, _unsecret(str(error) or type(error).__name__, options), None,
            shipped,
        )  # fmt: skip
    if before < shipped:
        return None, checks.store(options.store_label, None, before, shipped)
    try:
        store = await open_store(options.store_url, synchronous=options.synchronous)
    except Exception as error:  # a malformed URL is a finding too, whatever raised it
        return None, checks.store(
            options.store_label, _unsecret(str(error) or type(error).__name__, options), None,
            shipped,
        )  # fmt: skip
    try:
        version = await store.migrate()
    except StoreError as error:
        await store.close()
        return None, checks.store(
            options.store_label, _unsecret(str(error), options), None, shipped
        )
    return store, checks.store(options.store_label, None, version, shipped)


def _unsecret(text: str, options: Options) -> str:
    url = options.store_url
    secrets_in_url = [urlsplit(url).password] if "://" in url else []
    secrets_in_url += re.findall(r"[?&]password=([^&]+)", url)
    for secret in filter(None, secrets_in_url):
        text = text.replace(secret, "***")
    return text


# ---------------------------------------------------------------- AMI and the dialplan


class _AmiError(Exception):
    def __init__(self, message: str, denied: bool = False) -> None:
        super().__init__(message)
        self.denied = denied


class _OneShotManager(Manager):  # type: ignore[misc]
    """panoramisk's Manager, which reconnects forever; the doctor connects once and says
    so when it cannot."""

    def connection_made(self, future: asyncio.Future[Any]) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the doctor awaits the same connection and reports why
        super().connection_made(future)

    def connection_lost(self, exc: Exception | None) -> None:
        self._connected = False


# panoramisk logs through the logger it is given; the doctor reports in its own words.
_AMI_LOG = logging.getLogger("callgate.doctor.ami")
_AMI_LOG.addHandler(logging.NullHandler())
_AMI_LOG.propagate = False


async def _dialplan(
    config: Config, context: str, report: Callable[[Check], None]
) -> Priority | None:
    """Check the emergency routes through AMI; return the context's gate application
    (what the doctor's call will meet), when the dialplan could be read."""
    settings = config.ami
    if settings is None:
        report(checks.emergency_without_ami())
        return None
    ami = AmiSetup(settings.host, settings.port, settings.username, settings.password_file)
    try:
        password = settings.password()
    except ConfigError as error:
        report(checks.emergency_unreadable(ami, str(error)))
        return None
    numbers = sorted(config.rules.emergency_numbers, key=lambda n: (len(n), n))
    try:
        async with _ami_session(ami, password) as show:
            listings: dict[Key, Listing] = {}
            missing_context = False
            traces = []
            for number in (*numbers, SYNTHETIC_NUMBER):
                found, gone = await _routes(show, listings, context, number)
                missing_context = missing_context or gone
                traces.append(found)
    except _AmiError as error:
        report(checks.emergency_unreadable(ami, str(error), error.denied))
        return None
    *emergency, synthetic = traces
    report(checks.emergency_routes(context, emergency, missing_context))
    return synthetic.gates[0] if synthetic.gates else None


Show = Callable[[str, str], Awaitable[tuple[Listing, bool]]]


async def _routes(
    show: Show, listings: dict[Key, Listing], context: str, number: str
) -> tuple[Trace, bool]:
    """Trace a number, fetching the listings the trace asks for; and whether the context
    itself is missing."""
    gone = False
    for _ in range(_MAX_LISTINGS):
        found = trace(listings, context, number)
        if not found.missing:
            break
        for key in sorted(found.missing):
            listing, no_context = await show(*key)
            listings[key] = listing
            gone = gone or (no_context and key[0] == context)
    return found, gone


@contextlib.asynccontextmanager
async def _ami_session(ami: AmiSetup, password: str) -> AsyncIterator[Show]:
    """A logged-in AMI connection, as a ``show(context, number)`` for ShowDialPlan."""
    manager = _OneShotManager(
        loop=asyncio.get_running_loop(), host=ami.host, port=ami.port, username=ami.username,
        secret=password, events="off", ping_delay=3600, reconnect_timeout=3600, log=_AMI_LOG,
    )  # fmt: skip
    try:
        try:
            await asyncio.wait_for(manager.connect(), AMI_TIMEOUT)
        except TimeoutError:
            raise _AmiError(f"no connection within {AMI_TIMEOUT:g} s") from None
        except OSError as error:
            raise _AmiError(_os_error(error)) from None
        login = manager.authenticated_future
        if login is None:
            raise _AmiError("the connection closed at once")
        try:
            answer = await asyncio.wait_for(asyncio.shield(login), AMI_TIMEOUT)
        except TimeoutError:
            raise _AmiError(f"no answer to the login within {AMI_TIMEOUT:g} s") from None
        if not answer.success:
            raise _AmiError(
                f"user {ami.username!r} refused: {answer.get('Message') or 'login failed'}"
            )

        async def show(where: str, number: str) -> tuple[Listing, bool]:
            action = {"Action": "ShowDialPlan", "Context": where, "Extension": number}
            try:
                reply = await asyncio.wait_for(manager.send_action(action), AMI_TIMEOUT)
            except TimeoutError:
                raise _AmiError(f"no answer to ShowDialPlan within {AMI_TIMEOUT:g} s") from None
            messages = reply if isinstance(reply, list) else [reply]
            head = messages[0] if messages else {}
            if head.get("Response") == "Error":
                message = str(head.get("Message", ""))
                if message.startswith("Did not find"):  # no such context, or nothing matches
                    return None, message.startswith("Did not find context")
                raise _AmiError(f"ShowDialPlan: {message}", denied="denied" in message.lower())
            return parse_listing(messages), False

        yield show
    finally:
        manager.close()


# ---------------------------------------------------------------- the doctor's call


async def _call(
    session: aiohttp.ClientSession, url: str, config: Config, options: Options,
    store: Store | None,
) -> CallTrace:  # fmt: skip
    """Originate Local/+000000@<context> and watch both halves until they are gone."""
    # Not "callgate...": the pool flavour offers calls to every app matching ^callgate.
    app = f"doctor-{secrets.token_hex(4)}"
    # The ;1 half is ours; ;2 runs the dialplan, reaches the gate, and names the decision.
    mine, dialplan = str(uuid.uuid4()), str(uuid.uuid4())
    company = config.company(None) or next(iter(config.companies.values()), None)
    # Local channels hand these to the ;2 half. No announcement: the refusal at once.
    variables = {"CALLGATE_CAMPAIGN": DOCTOR_CAMPAIGN, "CALLGATE_ANNOUNCE": "no"}
    params = {
        "endpoint": f"Local/{SYNTHETIC_NUMBER}@{options.context}", "app": app,
        "channelId": mine, "otherChannelId": dialplan, "timeout": str(options.call_timeout),
    }  # fmt: skip
    if company is not None:
        variables["CALLGATE_COMPANY"] = company.id
        if company.numbers:
            params["callerId"] = company.numbers[0]
    base = CallTrace(options.context, SYNTHETIC_NUMBER, dialplan)
    started = datetime.now(UTC)
    ws_url = url.replace("http", "ws", 1) + "/ari/events"
    try:
        async with session.ws_connect(
            ws_url, params={"app": app, "subscribeAll": "false"}, heartbeat=5.0
        ) as ws:
            placed = await _request(
                session, "POST", url + "/ari/channels", params=params,
                json={"variables": variables},
            )  # fmt: skip
            if placed.status != 200 or not isinstance(placed.body, Mapping):
                return replace(base, originate_error=_why(placed))
            carried = placed.body.get("channelvars")
            seen = await _follow(ws, session, url, mine, dialplan, options.call_timeout + 3)
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        return replace(base, originate_error=f"the ARI WebSocket: {error or type(error).__name__}")
    decision, store_error = await _decision(store, dialplan, started, seen)
    return replace(
        base, decision=decision, store_error=store_error,
        channelvars=carried if isinstance(carried, Mapping) else None, **seen,
    )  # fmt: skip


async def _follow(
    ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession, url: str,
    mine: str, dialplan: str, patience: float,
) -> dict[str, Any]:  # fmt: skip
    """Watch the two halves' events until ours is destroyed; hang up what is left after
    ``patience`` seconds, or ours at once if something answered it."""
    ran: list[str] = []
    causes: dict[str, tuple[int | None, str | None]] = {}
    answered = False
    deadline = time.monotonic() + patience
    while mine not in causes:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            message = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            break
        if message.type is not aiohttp.WSMsgType.TEXT:
            break
        event = message.json()
        kind, channel = event.get("type"), event.get("channel") or {}
        if kind == "ChannelDialplan" and channel.get("id") == dialplan:
            where = (channel.get("dialplan") or {}).get("context", "?")
            ran.append(
                f"[{where}] {event.get('dialplan_app')}({event.get('dialplan_app_data', '')})"
            )
        elif kind == "StasisStart" and channel.get("id") == mine:
            answered = True  # in our app: answered by whatever the context dialled
            await _request(session, "DELETE", f"{url}/ari/channels/{mine}")
        elif kind == "ChannelDestroyed" and channel.get("id") in (mine, dialplan):
            causes[channel["id"]] = (event.get("cause"), event.get("cause_txt"))
    timed_out = mine not in causes
    if timed_out:
        for channel_id in (mine, dialplan):
            await _request(session, "DELETE", f"{url}/ari/channels/{channel_id}")
    cause, text = causes.get(mine) or causes.get(dialplan) or (None, None)
    return {"cause": cause, "cause_text": text, "answered": answered, "timed_out": timed_out,
            "ran": tuple(ran)}  # fmt: skip


async def _decision(
    store: Store | None, channel: str, started: datetime, seen: Mapping[str, Any]
) -> tuple[Mapping[str, Any] | None, str | None]:
    if store is None:
        return None, "the store does not answer (see the store check)"
    # Bounded by time (an index); wide enough for a gate's clock a little off the doctor's.
    since = started - timedelta(minutes=10)
    # A gate records its decision before it answers; another node's may take a moment.
    asked = any(" Stasis" in app or "AGI(" in app for app in seen.get("ran", ()))
    for attempt in range(5 if asked else 1):
        if attempt:
            await asyncio.sleep(0.1)
        try:
            decision = await store.decision_for_channel(channel, since)
        except Exception as error:  # whichever backend's error: the check reports it
            return None, str(error) or type(error).__name__
        if decision is not None:
            return decision, None
    return None, None
