"""The doctor's judgement: each check from the facts gathered on the PBX. Pure.

Every function here takes what was observed (an HTTP reply, a module list, a traced
call) and returns one Check: its status, what was seen, and on a fault the fix, naming
the file and the line to change. Nothing here talks to Asterisk or to the store.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ari_app.gate import EVENTS
from callgate.dialplan import CHANNELVARS_LINE, INPUT_VARIABLES
from callgate.doctor.routes import Priority, Trace

__all__ = [
    "CHANNELVARS_FIX",
    "GATE_EVENTS",
    "SYNTHETIC_NUMBER",
    "AmiSetup",
    "AriSetup",
    "CallTrace",
    "Check",
    "HttpReply",
    "Status",
    "ari_access",
    "asterisk_release",
    "channelvars",
    "emergency_routes",
    "emergency_unreadable",
    "emergency_without_ami",
    "gate_app",
    "loaded_modules",
    "modules",
    "modules_needed",
    "not_checked",
    "parse_version",
    "stasis_broadcast",
    "store",
    "synthetic_call",
    "trunk_from_user",
    "trunk_pai",
]


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but not as well as it should
    FAIL = "fail"  # calls are refused, or not checked as they must be
    SKIP = "skip"  # not checked: nothing to check it with; never a failure


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None


@dataclass(frozen=True, slots=True)
class HttpReply:
    """One ARI answer: a status and its JSON (or text), or why there was none."""

    status: int | None
    body: Any = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class AriSetup:
    """What callgate.toml says about ARI, for the messages and the fixes."""

    url: str
    username: str
    password_file: str | None
    app: str


# A number the gate's `_[+0-9].` matches and a trunk's `_X.`/`_0X.` cannot (the "+"),
# and that callgate judges DEST_INVALID: a mis-wired context cannot make it a real call.
SYNTHETIC_NUMBER = "+000000"
# The events a callgate gate asks Asterisk for: how the doctor tells a callgate gate from
# another client holding the app name.
GATE_EVENTS = frozenset(EVENTS)
CHANNELVARS_FIX = f"ari.conf [general]: {CHANNELVARS_LINE}, then `module reload res_ari.so`"


def not_checked(name: str, why: str, fix: str | None = None) -> Check:
    return Check(name, Status.SKIP, f"not checked: {why}", fix)


# ---------------------------------------------------------------- ARI


def ari_access(setup: AriSetup, password_problem: str | None, reply: HttpReply | None) -> Check:
    """GET /ari/asterisk/info: ARI answers, and takes callgate's user and password."""
    name = "ari"
    password_fix = (
        f"callgate.toml [ari] password_file: a file callgate can read, holding the password"
        f" of [{setup.username}] in ari.conf (or set $CALLGATE_ARI_PASSWORD)"
    )
    if password_problem is not None or reply is None:
        return Check(name, Status.FAIL, password_problem or "no ARI password", password_fix)
    if reply.status is None:
        return Check(
            name, Status.FAIL, f"cannot reach ARI at {setup.url}: {reply.error}",
            f"http.conf [general]: enabled = yes, with bindaddr/bindport matching callgate.toml"
            f" [ari] url = {setup.url}; ari.conf [general]: enabled = yes",
        )  # fmt: skip
    if reply.status == 401:
        where = setup.password_file or "$CALLGATE_ARI_PASSWORD"
        return Check(
            name, Status.FAIL,
            f"ARI at {setup.url} refuses user {setup.username!r}: no such user, or not"
            f" this password",
            f"ari.conf [{setup.username}]: type = user, password = the password in {where}"
            f" (callgate.toml [ari] password_file); then `module reload res_ari.so`",
        )  # fmt: skip
    if reply.status == 404:
        return Check(
            name, Status.FAIL,
            f"{setup.url} answers, but not ARI's /ari/asterisk/info (HTTP 404)",
            "modules.conf: load => res_ari.so and load => res_ari_asterisk.so; ari.conf"
            " [general]: enabled = yes; callgate.toml [ari] url: Asterisk's HTTP server",
        )  # fmt: skip
    if reply.status != 200:
        return Check(
            name, Status.FAIL, f"ARI at {setup.url} answers HTTP {reply.status}: {reply.body}"
        )
    return Check(name, Status.OK, f"ARI at {setup.url} takes user {setup.username!r}")


Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    """Asterisk's version from /asterisk/info: "22.10.1+dfsg+~cs6.17-1", "certified/20.7-cert1"."""
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    if not match:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _version_text(info: Mapping[str, Any]) -> str:
    system = info.get("system") if isinstance(info, Mapping) else None
    return str(system.get("version", "")) if isinstance(system, Mapping) else ""


def asterisk_release(info: Mapping[str, Any]) -> Check:
    """The version: hang-ups with a Q.850 cause and event filters (ARI, Asterisk 17)."""
    name = "asterisk"
    text = _version_text(info)
    version = parse_version(text)
    if version is None:
        return Check(name, Status.WARN, f"cannot read Asterisk's version from {text!r}")
    if version[0] < 17:
        return Check(
            name, Status.FAIL,
            f"Asterisk {text}: too old; the gate hangs up with cause 21 and filters its"
            " events through ARI, both from Asterisk 17",
            "upgrade Asterisk (callgate is tested on 22)",
        )  # fmt: skip
    if version[0] < 20:
        return Check(
            name, Status.WARN,
            f"Asterisk {text}: older than the releases callgate is tested with (22)",
            "upgrade Asterisk to 22 (LTS)",
        )  # fmt: skip
    return Check(name, Status.OK, f"Asterisk {text}")


# The first release of each branch with StasisBroadcast (each branch's ChangeLog: 20.20.0,
# 22.10.0, 23.4.0); later branches have it from their start, 21 never did.
BROADCAST_SINCE = {20: (20, 20, 0), 22: (22, 10, 0), 23: (23, 4, 0)}
BROADCAST_MODULES = ("app_stasis_broadcast.so", "res_stasis_broadcast.so")


def _has_broadcast(version: Version) -> bool:
    since = BROADCAST_SINCE.get(version[0])
    return version[0] >= 24 or (since is not None and version >= since)


def stasis_broadcast(
    info: Mapping[str, Any], loaded: frozenset[str] | None, gate: Priority | None
) -> Check:
    """StasisBroadcast, which callgate-via-ari-pool needs; ``gate`` is the gate application
    of the context when the dialplan was read (AMI), else None."""
    name = "stasis-broadcast"
    text = _version_text(info)
    version = parse_version(text)
    pool = gate is not None and gate.app.lower() == "stasisbroadcast"
    missing = [module for module in BROADCAST_MODULES if loaded is None or module not in loaded]
    if loaded is not None and not missing:
        return Check(name, Status.OK, "StasisBroadcast is loaded: callgate-via-ari-pool can run")
    if version is not None and not _has_broadcast(version):
        detail = f"Asterisk {text} has no StasisBroadcast (20.20, 22.10, 23.4 or newer have it)"
        if pool:
            return Check(
                name, Status.FAIL, f"the context runs {gate}, but {detail}",
                "upgrade Asterisk, or gate with one `callgate run`: extensions.conf"
                " [callgate-outbound]: include => callgate-via-ari",
            )  # fmt: skip
        return Check(name, Status.OK, f"{detail}; only callgate-via-ari-pool needs it")
    if loaded is None:
        return not_checked(name, "the module list could not be read")
    fix = "modules.conf: " + "; ".join(f"load => {module}" for module in missing)
    if pool:
        return Check(name, Status.FAIL, f"the context runs {gate}, but "
                     f"{', '.join(missing)} not loaded", fix)  # fmt: skip
    return Check(
        name, Status.OK, f"not loaded ({', '.join(missing)}); only callgate-via-ari-pool needs it"
    )


def modules_needed(agi: bool) -> tuple[tuple[str, str], ...]:
    """The modules callgate's dialplan and gates use, each with why."""
    needed = (
        ("app_stasis.so", "Stasis(), which hands calls to `callgate run`"),
        ("res_stasis.so", "Stasis()"),
        ("res_ari.so", "ARI"),
        ("res_http_websocket.so", "the gate's ARI WebSocket"),
        ("res_ari_events.so", "the gate's events"),
        ("res_ari_channels.so", "the gate answers and continues the channels"),
        ("res_ari_applications.so", "the gate's event filter, and the calls left in Stasis"),
        ("res_ari_asterisk.so", "callgate doctor"),
        ("func_cut.so", "[callgate-verdict] splits CALLGATE_RESULT with CUT()"),
        ("func_timeout.so", "TIMEOUT(absolute): a call the gate leaves waiting is refused"),
    )
    if agi:
        needed += (
            ("res_agi.so", "AGI(), for `callgate agi` and the agents' keys"),
            ("app_stack.so", "Gosub(), which runs the agents' keys ([callgate-keys])"),
            ("app_read.so", "Read(), the agent's key after *"),
        )
    return needed


def modules(module_list: Sequence[Mapping[str, Any]], agi: bool) -> Check:
    """GET /ari/asterisk/modules: every module callgate needs is running."""
    loaded = loaded_modules(module_list)
    needed = modules_needed(agi)
    missing = [(module, why) for module, why in needed if module not in loaded]
    if missing:
        return Check(
            "modules", Status.FAIL,
            "not loaded: " + "; ".join(f"{module} ({why})" for module, why in missing),
            "modules.conf [modules]: " + "; ".join(f"load => {module}" for module, _ in missing)
            + ", then restart Asterisk",
        )  # fmt: skip
    return Check("modules", Status.OK, f"the {len(needed)} modules callgate uses are loaded")


def loaded_modules(module_list: Sequence[Mapping[str, Any]]) -> frozenset[str]:
    return frozenset(
        str(entry.get("name")) for entry in module_list
        if isinstance(entry, Mapping) and entry.get("status") == "Running"
    )  # fmt: skip


# ---------------------------------------------------------------- the ARI app


def gate_app(setup: AriSetup, reply: HttpReply, gate: Priority | None, context: str) -> Check:
    """GET /applications/{app}: the name is free, or held by a callgate gate."""
    name = "app"
    app = setup.app
    if reply.status == 404:
        if gate is not None and gate.app.lower() in ("agi", "eagi"):
            return Check(name, Status.OK, f"ARI app {app!r} is free: [{context}] gates through"
                         " AGI (`callgate agi`), which needs none")  # fmt: skip
        return Check(
            name, Status.WARN,
            f"no client holds ARI app {app!r}: no `callgate run` is connected, so calls"
            f" through Stasis({app}) are refused until one is",
            "start `callgate run` with this callgate.toml (deploy/callgate.service)",
        )  # fmt: skip
    if reply.status != 200 or not isinstance(reply.body, Mapping):
        return Check(name, Status.FAIL, f"cannot read ARI app {app!r}: "
                     f"{reply.error or f'HTTP {reply.status}'}")  # fmt: skip
    allowed = {
        str(event.get("type")) for event in reply.body.get("events_allowed") or ()
        if isinstance(event, Mapping)
    }  # fmt: skip
    if allowed != GATE_EVENTS:
        takes = ", ".join(sorted(allowed)) if allowed else "every event"
        return Check(
            name, Status.FAIL,
            f"ARI app {app!r} is held by another client (it takes {takes}; a callgate gate"
            f" takes only {', '.join(sorted(GATE_EVENTS))}): it, not callgate, gets the calls",
            "stop that client, or give callgate a name of its own: callgate.toml [ari] app ="
            " and Stasis(<that name>) in extensions.conf [callgate-via-ari]",
        )  # fmt: skip
    mismatch = _stasis_mismatch(gate, app)
    if mismatch:
        return Check(name, Status.FAIL, f"[{context}] runs {gate}, {mismatch}",
                     f"extensions.conf: Stasis({app}) (or callgate.toml [ari] app ="
                     f" the name the dialplan uses)")  # fmt: skip
    return Check(name, Status.OK, f"ARI app {app!r} is held by a callgate gate")


def _stasis_mismatch(gate: Priority | None, app: str) -> str | None:
    """Whether the context's gate application would reach this app name."""
    if gate is None:
        return None
    arguments = [part.strip() for part in gate.data.split(",")]
    if gate.app.lower() == "stasis" and arguments[0] != app:
        return f"not Stasis({app}) as callgate.toml [ari] app says"
    if gate.app.lower() == "stasisbroadcast" and len(arguments) > 1 and arguments[1]:
        try:
            if not re.search(arguments[1], app):
                return f"whose filter {arguments[1]!r} leaves out [ari] app {app!r}"
        except re.error:
            return None
    return None


# ---------------------------------------------------------------- the trunk


def _attributes(reply: HttpReply) -> dict[str, str] | None:
    if reply.status != 200 or not isinstance(reply.body, list):
        return None
    return {
        str(item.get("attribute")): str(item.get("value", ""))
        for item in reply.body if isinstance(item, Mapping)
    }  # fmt: skip


def _trunk_unreadable(name: str, endpoint: str, reply: HttpReply) -> Check:
    if reply.status == 404:
        return Check(
            name, Status.FAIL, f"no PJSIP endpoint {endpoint!r}",
            "pass --trunk ENDPOINT, the endpoint [callgate-verdict] dials"
            " (Dial(PJSIP/${EXTEN}@ENDPOINT)), or define it in pjsip.conf",
        )  # fmt: skip
    return Check(name, Status.WARN, f"cannot read PJSIP endpoint {endpoint!r}: "
                 f"{reply.error or f'HTTP {reply.status} {reply.body}'}")  # fmt: skip


def trunk_from_user(endpoint: str, reply: HttpReply) -> Check:
    """A from_user on the trunk would put its own user in From, hiding the caller ID."""
    name = "trunk"
    attributes = _attributes(reply)
    if attributes is None:
        return _trunk_unreadable(name, endpoint, reply)
    from_user = attributes.get("from_user", "")
    if from_user:
        return Check(
            name, Status.FAIL,
            f"endpoint {endpoint!r} sets from_user = {from_user}: every call shows {from_user}"
            " in From, never the caller ID callgate chose",
            f"pjsip.conf [{endpoint}]: remove the line from_user = {from_user}, then"
            " `module reload res_pjsip.so`",
        )  # fmt: skip
    return Check(
        name, Status.OK, f"endpoint {endpoint!r}: no from_user, From carries the caller ID"
    )


_TRUE = {"true", "yes", "1", "on"}


def trunk_pai(endpoint: str, reply: HttpReply) -> Check:
    name = "trunk-pai"
    attributes = _attributes(reply)
    if attributes is None:
        if reply.status == 404:
            return not_checked(name, f"no PJSIP endpoint {endpoint!r}")
        return _trunk_unreadable(name, endpoint, reply)
    if attributes.get("send_pai", "").lower() not in _TRUE:
        return Check(
            name, Status.WARN,
            f"endpoint {endpoint!r} does not send P-Asserted-Identity: a carrier that"
            " wants it sees the caller ID in From only",
            f"pjsip.conf [{endpoint}]: send_pai = yes and trust_id_outbound = yes",
        )  # fmt: skip
    return Check(name, Status.OK, f"endpoint {endpoint!r} sends P-Asserted-Identity")


# ---------------------------------------------------------------- the store


def store(url: str, error: str | None, version: int | None, shipped: int) -> Check:
    """The store opens at the schema this callgate migrates to: not older, not newer."""
    name = "store"
    if error is not None or version is None:
        return Check(
            name, Status.FAIL, error if error and url in error else f"store {url}: {error}",
            "callgate.toml [store] url (or --db, $CALLGATE_DB): a store this user can open",
        )  # fmt: skip
    if version > shipped:
        return Check(
            name, Status.FAIL,
            f"store {url} is at schema version {version}, newer than this callgate's"
            f" ({shipped}): a newer callgate migrated it",
            "upgrade callgate here to the version the other nodes run",
        )  # fmt: skip
    if version < shipped:
        return Check(
            name, Status.FAIL,
            f"store {url} is at schema version {version}, older than this callgate's"
            f" ({shipped}): the gates on it run an older callgate, or it was never migrated",
            "upgrade the gates to this callgate, then `callgate db migrate` (the gates also"
            " migrate it when they start)",
        )  # fmt: skip
    return Check(name, Status.OK, f"store {url} answers, schema version {version} (current)")


# ---------------------------------------------------------------- emergency numbers


def emergency_routes(context: str, traces: Sequence[Trace], context_missing: bool) -> Check:
    """Every emergency number leaves the context for a Dial without meeting the gate."""
    name = "emergency"
    # A context's own extensions match before its includes: the gate's pattern belongs
    # in an included context, after `include => emergency`.
    fix = (
        f"extensions.conf [{context}]: include => emergency as its first line, and the gate"
        " through an include after it (include => callgate-via-ari), not an extension of"
        f" [{context}] itself"
    )
    if context_missing:
        return Check(name, Status.FAIL, f"no context [{context}] in the dialplan",
                     f"extensions.conf: define [{context}], or pass --context CTX")  # fmt: skip
    gated = [t for t in traces if t.gates]
    if gated:
        gate = gated[0].gates[0]
        return Check(
            name, Status.FAIL,
            f"{_numbers(gated)} reach{'es' if len(gated) == 1 else ''} the gate from"
            f" [{context}] ({gate} in [{gate.context}]): emergency calls would wait on"
            " callgate, and fail when it is down",
            fix,
        )  # fmt: skip
    unrouted = [t for t in traces if not t.matched]
    if unrouted:
        return Check(name, Status.FAIL, f"{_numbers(unrouted)}: no extension of [{context}]"
                     " matches: emergency calls would fail", fix)  # fmt: skip
    undialled = [t for t in traces if not t.dials]
    unsure = [t for t in undialled if t.unresolved]
    if len(unsure) < len(undialled):  # followed to their end, and never dialled
        dead = [t for t in undialled if not t.unresolved]
        start = dead[0].first
        return Check(
            name, Status.FAIL,
            f"{_numbers(dead)}: the route from [{context}] ends without a Dial()"
            + (f" ([{start.context}] {start.extension}: {start})" if start else "")
            + ": emergency calls would fail",
            fix,
        )  # fmt: skip
    if unsure:
        hidden = sorted({u for t in unsure for u in t.unresolved})
        return Check(
            name, Status.WARN,
            f"{_numbers(unsure)}: no Dial() found from [{context}], and the doctor could"
            f" not follow {'; '.join(hidden)}",
            "check by hand that emergency numbers are dialled before the gate",
        )  # fmt: skip
    via = sorted({f"[{t.first.context}]" for t in traces if t.first})
    dials = sorted({str(step) for t in traces for step in t.dials})
    return Check(
        name, Status.OK,
        f"{_numbers(traces)} routed before the gate, through {', '.join(via)} to"
        f" {', '.join(dials)}",
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class AmiSetup:
    """What callgate.toml says about AMI, for the messages and the fixes."""

    host: str
    port: int
    username: str
    password_file: str | None


def emergency_without_ami() -> Check:
    return not_checked(
        "emergency", "no [ami] in callgate.toml, so the dialplan cannot be read",
        "a manager.conf user with write = reporting, and [ami] in callgate.toml"
        " (docs/doctor.md)",
    )  # fmt: skip


def emergency_unreadable(ami: AmiSetup, error: str, denied: bool = False) -> Check:
    """AMI is configured but the doctor could not read the dialplan through it."""
    where = ami.password_file or "$CALLGATE_AMI_PASSWORD"
    if denied:
        fix = f"manager.conf [{ami.username}]: write = reporting (ShowDialPlan's class)"
    else:
        fix = (
            f"manager.conf [general]: enabled = yes, bindaddr/port as callgate.toml [ami]"
            f" ({ami.host}:{ami.port}); [{ami.username}]: secret = the password in {where},"
            " write = reporting; then `manager reload`"
        )
    return Check("emergency", Status.FAIL,
                 f"cannot read the dialplan through AMI at {ami.host}:{ami.port}: {error}",
                 fix)  # fmt: skip


def _numbers(traces: Iterable[Trace]) -> str:
    return ", ".join(sorted((t.number for t in traces), key=lambda n: (len(n), n)))


# ---------------------------------------------------------------- the synthetic call


@dataclass(frozen=True, slots=True)
class CallTrace:
    """What happened to the doctor's call: Local/<number>@<context>, through ARI."""

    context: str
    number: str
    channel: str  # the ;2 half, which runs the dialplan: the gate's decision names it
    originate_error: str | None = None
    cause: int | None = None  # the hang-up cause on the originated channel
    cause_text: str | None = None
    answered: bool = False
    timed_out: bool = False
    ran: tuple[str, ...] = ()  # the applications the ;2 half ran, "[ctx] App(data)"
    decision: Mapping[str, Any] | None = None  # its entry in the decision log
    store_error: str | None = None
    channelvars: Mapping[str, str] | None = None  # the originated channel's, None: absent


def synthetic_call(call: CallTrace, waited: float) -> Check:
    name = "call"
    dialled = f"Local/{call.number}@{call.context}"
    gate_fix = (
        f"extensions.conf [{call.context}]: include => callgate-via-ari (or callgate-via-ari-pool"
        ", callgate-via-agi), and run `callgate run` (or `callgate agi`) with this callgate.toml"
    )
    if call.originate_error is not None:
        return Check(
            name, Status.FAIL, f"cannot originate {dialled}: {call.originate_error}",
            f"extensions.conf: define [{call.context}], or pass --context CTX",
        )  # fmt: skip
    if call.store_error is not None:
        return Check(name, Status.FAIL, f"{dialled}: cannot read the decision log:"
                     f" {call.store_error}")  # fmt: skip
    dials = [app for app in call.ran if "Dial(" in app]
    decision = call.decision
    if decision is not None:
        codes = [str(reason.get("code")) for reason in decision.get("reasons") or ()]
        seen = f"decision {str(decision.get('id', ''))[:8]}"
        if decision.get("verdict") != "reject" or "DEST_INVALID" not in codes:
            return Check(
                name, Status.FAIL,
                f"{dialled}: the gate's {seen} is {decision.get('verdict')}"
                f" {', '.join(codes)}, where it must reject DEST_INVALID",
                "run the same callgate version for the gate and the doctor, on the same"
                " callgate.toml",
            )  # fmt: skip
        if call.answered or call.timed_out or call.cause != 21:
            # PJSIPHangup answers PJSIP calls only: on a Local channel (a dialer's
            # originate, this call) it fails, and the channel ends with no cause at all.
            pjsip_only = any("PJSIPHangup(" in app for app in call.ran)
            return Check(
                name, Status.FAIL,
                f"{dialled}: the gate rejected it ({seen} DEST_INVALID), but the call "
                + _ending(call, waited) + ", not hung up with cause 21"
                + ("; PJSIPHangup() refuses PJSIP channels only" if pjsip_only else ""),
                "extensions.conf [callgate-verdict]: a verdict other than ALLOW ends in"
                " PJSIPHangup(603) on an agent's PJSIP channel and in Hangup(21) on any"
                " other, as asterisk-conf/extensions.conf does: ExecIf($[\"${CHANNEL("
                'channeltype)}" = "PJSIP"]?PJSIPHangup(603)), then Hangup(21)',
            )  # fmt: skip
        return Check(name, Status.OK, f"{dialled}: rejected DEST_INVALID by the gate ({seen}),"
                     " hung up with cause 21")  # fmt: skip
    if call.answered or call.timed_out or dials:
        return Check(
            name, Status.FAIL,
            f"{dialled}: the gate never decided it, and it "
            + (f"was dialled ({'; '.join(dials)})" if dials else _ending(call, waited)),
            gate_fix,
        )  # fmt: skip
    if not call.ran:
        return Check(
            name, Status.FAIL,
            f"{dialled}: nothing ran: no context [{call.context}], or no extension of it"
            f" matches {call.number}",
            f"extensions.conf: [{call.context}] must include a gate (include =>"
            " callgate-via-ari), or pass --context CTX",
        )  # fmt: skip
    gated = [app for app in call.ran if re.search(r"\] (Stasis|StasisBroadcast|E?AGI)\(", app)]
    ended = f"hung up with cause {call.cause} ({call.cause_text})" if call.cause else "hung up"
    if gated:
        return Check(
            name, Status.FAIL,
            f"{dialled} reached {gated[0].split('] ', 1)[1]}, but no gate decided it (no decision"
            f" for channel {call.channel} in the store); it {ended}",
            "run `callgate run` (or `callgate agi`) with this callgate.toml, so that the"
            " gate and the doctor share one store and one [ari] app",
        )  # fmt: skip
    return Check(
        name, Status.FAIL,
        f"{dialled} never asked the gate: it ran {_apps(call.ran)} and {ended}; no decision"
        f" for channel {call.channel}",
        gate_fix,
    )  # fmt: skip


def _ending(call: CallTrace, waited: float) -> str:
    if call.answered:
        return "was answered"
    if call.timed_out:
        return f"was still up after {waited:g} s"
    return f"hung up with cause {call.cause} ({call.cause_text})"


def _apps(ran: Sequence[str], most: int = 4) -> str:
    shown = [app.split("] ", 1)[-1] for app in ran[:most]]
    return ", ".join(shown) + (", ..." if len(ran) > most else "")


def channelvars(call: CallTrace) -> Check:
    """ari.conf's channelvars, seen in the snapshot of the doctor's own channel."""
    name = "channelvars"
    if call.originate_error is not None:
        return not_checked(name, "the doctor's call could not be placed")
    carried = call.channelvars
    if carried is None:
        return Check(
            name, Status.WARN,
            "ari.conf sets no channelvars: calls work, but the gate asks Asterisk for each"
            " of its inputs, one REST call per variable, before it decides",
            CHANNELVARS_FIX,
        )  # fmt: skip
    missing = [variable for variable in INPUT_VARIABLES if variable not in carried]
    if missing:
        return Check(
            name, Status.WARN,
            f"ari.conf channelvars lacks {', '.join(missing)}: the gate asks Asterisk for"
            " each of them, one REST call per variable",
            CHANNELVARS_FIX,
        )  # fmt: skip
    return Check(name, Status.OK, "ari.conf channelvars carries " + ", ".join(INPUT_VARIABLES))
