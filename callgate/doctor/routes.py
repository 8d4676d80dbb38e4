"""Where a number goes in the dialplan, from what AMI's ShowDialPlan lists. Pure.

ShowDialPlan with a context and a number lists every priority of every extension that
matches the number, in that context and then in its includes, depth first: the order in
which Asterisk looks for an extension. Asterisk itself does the pattern matching; what is
left here is to pick the extension a call would run, walk its priorities, and follow its
Goto/GotoIf/Gosub to the next listing. The shell fetches the listings a trace asks for
(``Trace.missing``) until it needs no more.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "Listing",
    "Priority",
    "Trace",
    "chosen_extension",
    "parse_listing",
    "trace",
]


@dataclass(frozen=True, slots=True)
class Priority:
    """One priority of an extension, as ShowDialPlan lists it."""

    context: str
    extension: str
    priority: int
    label: str | None
    app: str
    data: str

    def __str__(self) -> str:
        return f"{self.app}({self.data})"


# One listing per (context, number) asked; None when nothing in the context matches
# (or the context does not exist: ShowDialPlan says which, ``Trace`` keeps it).
Listing = tuple[Priority, ...] | None
Key = tuple[str, str]


def parse_listing(events: Iterable[Mapping[str, str]]) -> tuple[Priority, ...]:
    """The ListDialplan events of a ShowDialPlan answer; hints and includes left out."""
    found = []
    for event in events:
        if event.get("Event") != "ListDialplan" or "Application" not in event:
            continue
        priority = event.get("Priority", "")
        if not priority.isdigit():  # "hint"
            continue
        found.append(
            Priority(
                context=event.get("Context", ""),
                extension=event.get("Extension", ""),
                priority=int(priority),
                label=event.get("ExtensionLabel") or None,
                app=event.get("Application", ""),
                data=event.get("AppData", ""),
            )
        )
    return tuple(found)


def chosen_extension(listing: tuple[Priority, ...]) -> tuple[Priority, ...]:
    """The priorities of the extension Asterisk runs, in order: the first context listed
    (its own extensions come before its includes'), and in it an exact extension before
    any pattern, the narrowest pattern first."""
    if not listing:
        return ()
    first_context = listing[0].context
    extensions: dict[str, list[Priority]] = {}
    for step in listing:
        if step.context == first_context:
            extensions.setdefault(step.extension, []).append(step)
    best = min(extensions, key=_precedence)
    return tuple(sorted(extensions[best], key=lambda step: step.priority))


def _precedence(extension: str) -> tuple[int, tuple[int, ...]]:
    if not extension.startswith("_"):
        return (0, ())
    return (1, tuple(_class_size(part) for part in _pattern_parts(extension[1:])))


_CLASSES = {"X": 10, "Z": 9, "N": 8, ".": 1000, "!": 1001}


def _pattern_parts(pattern: str) -> list[str]:
    return re.findall(r"\[[^\]]*\]|.", pattern)


def _class_size(part: str) -> int:
    if part.startswith("["):
        body = part[1:-1]
        size, index = 0, 0
        while index < len(body):
            if index + 2 < len(body) and body[index + 1] == "-":
                size += abs(ord(body[index + 2]) - ord(body[index])) + 1
                index += 3
            else:
                size += 1
                index += 1
        return size
    return _CLASSES.get(part.upper(), 1)


# The applications that hand a call to callgate. AGI is the gate only for its check
# endpoint: other FastAGI scripts on a route are none of the doctor's business.
_GATE_APPS = {"stasis", "stasisbroadcast"}
_AGI_APPS = {"agi", "eagi", "deadagi"}


def is_gate(step: Priority) -> bool:
    app = step.app.lower()
    return app in _GATE_APPS or (app in _AGI_APPS and "/check" in step.data)


@dataclass(frozen=True, slots=True)
class Trace:
    """Where one number goes from one context, as far as the listings given show it."""

    number: str
    context: str
    matched: bool  # some extension of the context (or its includes) matches the number
    first: Priority | None  # the first priority it runs: where it went first
    gates: tuple[Priority, ...]  # the gate applications on its routes
    dials: tuple[Priority, ...]  # the Dial()s on its routes
    unresolved: tuple[str, ...]  # jumps the doctor could not follow
    missing: frozenset[Key] = field(default_factory=frozenset)  # listings still to fetch


_MAX_STEPS = 500  # a dialplan that loops is walked once, and a huge one not forever


def trace(listings: Mapping[Key, Listing], context: str, number: str) -> Trace:
    """Every route of ``number`` from ``context``: all branches of a GotoIf are followed,
    so a gate on any of them is found."""
    gates: list[Priority] = []
    dials: list[Priority] = []
    unresolved: list[str] = []
    missing: set[Key] = set()
    matched = False
    first: Priority | None = None
    queue: list[tuple[str, str, str]] = [(context, number, "1")]
    seen: set[tuple[str, str, str]] = set()
    steps = 0
    while queue and steps < _MAX_STEPS:
        where, exten, start = queue.pop(0)
        if (where, exten, start) in seen:
            continue
        seen.add((where, exten, start))
        if (where, exten) not in listings:
            missing.add((where, exten))
            continue
        listing = listings[(where, exten)]
        extension = chosen_extension(listing or ())
        if where == context and exten == number and start == "1":
            matched = bool(extension)
            first = extension[0] if extension else None
        if not extension:
            if (where, exten) != (context, number):
                unresolved.append(f"{exten}@{where}: no such extension")
            continue
        for step in _from(extension, start, unresolved):
            steps += 1
            app = step.app.lower()
            if is_gate(step):
                gates.append(step)
                break  # this route waits on the gate: what follows is the gate's business
            if app == "dial":
                dials.append(step)
            jumps, falls_through = _jumps(step)
            for jump in jumps:
                target = _target(jump, where, exten)
                if target is None:
                    unresolved.append(f"{step} in [{step.context}]")
                else:
                    queue.append(target)
            if not falls_through or app == "hangup":
                break
    return Trace(
        number, context, matched, first, tuple(gates), tuple(dials), tuple(unresolved),
        frozenset(missing),
    )  # fmt: skip


def _from(extension: tuple[Priority, ...], start: str, unresolved: list[str]) -> list[Priority]:
    """The priorities from ``start`` (a number or a label) on."""
    for index, step in enumerate(extension):
        if str(step.priority) == start or (step.label and step.label == start):
            return list(extension[index:])
    unresolved.append(f"no priority {start} in [{extension[0].context}] {extension[0].extension}")
    return []


def _jumps(step: Priority) -> tuple[list[str], bool]:
    """Where a priority may send the call next, and whether it may also go on to the next
    priority."""
    app = step.app.lower()
    if app == "goto":
        return [step.data], False
    if app in ("gotoif", "gosubif"):
        _, _, branches = step.data.partition("?")
        when_true, colon, when_false = branches.partition(":")
        taken = [branch for branch in (when_true, when_false) if branch.strip()]
        # A GotoIf with both branches never falls through; a Gosub always comes back.
        return taken, app == "gosubif" or not (when_true.strip() and colon and when_false.strip())
    if app == "gosub":
        return [step.data], True
    return [], True


def _target(spec: str, context: str, exten: str) -> tuple[str, str, str] | None:
    """A Goto's ``[[context,]extension,]priority``, with ${EXTEN} as the number; None when
    it names something only the running call knows."""
    spec = re.sub(r"\(.*\)$", "", spec.strip())  # Gosub's arguments
    spec = spec.replace("${EXTEN}", exten)
    if "$" in spec or not spec:
        return None
    parts = [part.strip() for part in spec.split(",")]
    if len(parts) == 1:
        return context, exten, parts[0]
    if len(parts) == 2:
        return context, parts[0], parts[1]
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    return None
