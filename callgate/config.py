"""The TOML configuration: loaded once, validated whole, every error naming its key."""

from __future__ import annotations

import ipaddress
import os
import re
import reprlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from callgate.model import Purpose
from callgate.numbering import (
    DEFAULT_NPV_PREFIXES,
    Kind,
    Number,
    PrefixTable,
    Territory,
    parse_number,
)

if TYPE_CHECKING:
    from callgate.tokens import Tokens

__all__ = [
    "DEFAULT_EMERGENCY_NUMBERS",
    "LIMITS",
    "AgiSettings",
    "AmiSettings",
    "ApiSettings",
    "AriSettings",
    "Company",
    "Config",
    "ConfigError",
    "LogSettings",
    "RuleSettings",
    "find_config_file",
    "load_config",
    "parse_config",
]

DEFAULT_EMERGENCY_NUMBERS = frozenset(
    {"15", "17", "18", "112", "114", "115", "116000", "119", "191", "196", "197"}
)
SEARCH_PATHS = (Path("callgate.toml"), Path("/etc/callgate/callgate.toml"))
DEFAULT_STORE = "sqlite:///callgate.db"


class ConfigError(Exception):
    """A configuration that must not start: the message names the key and the problem."""


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    name: str
    sector: str | None = None
    numbers: tuple[str, ...] = ()  # normalised: E.164, or a short code such as 3010

    @property
    def first_number(self) -> str:
        """The caller of a check made for the company rather than for an agent's call (a
        scrubbed list, "when may we call next"): its first number, or none."""
        return self.numbers[0] if self.numbers else ""


@dataclass(frozen=True, slots=True)
class RuleSettings:
    pack: str = "fr"
    default_purpose: Purpose = Purpose.PROSPECTING
    strict_holidays: bool = True
    refusal_cooldown_days: int = 60
    consent_max_age_days: int = 365
    appointment_window_minutes: int = 15
    allow_foreign: bool = False
    npv_prefixes: Mapping[str, frozenset[Territory]] = field(
        default_factory=lambda: DEFAULT_NPV_PREFIXES
    )
    emergency_numbers: frozenset[str] = DEFAULT_EMERGENCY_NUMBERS


@dataclass(frozen=True, slots=True)
class AriSettings:
    url: str = "http://127.0.0.1:8088"
    username: str = "callgate"
    password_file: str | None = None  # or $CALLGATE_ARI_PASSWORD; never inline
    app: str = "callgate"
    max_concurrent: int = 256  # calls decided at once; more wait for a slot
    decision_timeout: float = 2.0  # seconds; past it the call is rejected (GATE_ERROR)

    def password(self) -> str:
        """The ARI password, from $CALLGATE_ARI_PASSWORD or ``password_file``."""
        return read_secret("CALLGATE_ARI_PASSWORD", self.password_file, "ari.password_file")


@dataclass(frozen=True, slots=True)
class AgiSettings:
    listen: str = "127.0.0.1:4573"  # loopback: Asterisk runs on the same host
    max_concurrent: int = 256
    decision_timeout: float = 1.5  # seconds; well inside Asterisk's 2 s FastAGI timeout
    # Connections served at once; more are refused at once (GATE_ERROR). Well under the
    # usual 1,024 open files, which a flood of connections would otherwise exhaust.
    max_connections: int = 500
    # Seconds for a whole connection, headers to last reply: Asterisk's take milliseconds.
    connection_timeout: float = 10.0


@dataclass(frozen=True, slots=True)
class AmiSettings:
    """The Asterisk Manager Interface, for `callgate doctor` only: it reads the dialplan."""

    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "callgate"
    password_file: str | None = None  # or $CALLGATE_AMI_PASSWORD; never inline

    def password(self) -> str:
        return read_secret("CALLGATE_AMI_PASSWORD", self.password_file, "ami.password_file")


@dataclass(frozen=True, slots=True)
class ApiSettings:
    bind: str = "127.0.0.1:8090"
    token_file: str | None = None  # or $CALLGATE_API_TOKEN; never inline
    scrub_workers: int = 1  # processes judging a call list; 1: in the API's own process
    # Open connections at most; at the cap the oldest idle one is closed for a new one
    # (lowered to fit the process's limit on open files).
    max_connections: int = 512
    idle_timeout: float = 15.0  # seconds a connection may wait for a request's headers
    stall_timeout: float = 30.0  # seconds a request's body, or a scrub's reader, may stall
    tokens_file: str | None = None  # one "scope[,scope...] token" per line
    session_minutes: int = 480  # a console login lasts this long, whatever is done meanwhile
    # Marks the console's cookies Secure behind a TLS proxy (under direct TLS they are).
    secure_cookies: bool = False

    def token(self) -> str:
        """The API's bearer token, from $CALLGATE_API_TOKEN or ``token_file``."""
        token = read_secret("CALLGATE_API_TOKEN", self.token_file, "api.token_file")
        if len(token) < 16:
            raise ConfigError("api.token_file: the token must be 16 characters or more")
        return token

    def tokens(self) -> Tokens:
        """Every token the API takes: ``tokens_file``'s, and the single admin token of
        $CALLGATE_API_TOKEN or ``token_file`` when set."""
        from callgate.tokens import read_tokens_file, tokens_of

        single = None
        if os.environ.get("CALLGATE_API_TOKEN") or self.token_file:
            single = self.token()
        entries = read_tokens_file(self.tokens_file) if self.tokens_file else []
        if single is None and not entries:
            where = "api.tokens_file has no token" if self.tokens_file else "no token"
            raise ConfigError(
                f"api: {where}; set api.tokens_file, api.token_file or $CALLGATE_API_TOKEN"
            )
        return tokens_of(entries, single)


def read_secret(variable: str, path: str | None, key: str) -> str:
    """A secret from the environment, else from a file; never from the config itself."""
    from_env = os.environ.get(variable)
    if from_env:
        return from_env
    if not path:
        raise ConfigError(f"{key}: not set, and {variable} is empty")
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as error:
        raise ConfigError(f"{key}: cannot read {path}: {error.strerror}") from None


@dataclass(frozen=True, slots=True)
class LogSettings:
    node: str | None = None  # this machine's name in the decision log (default: hostname)
    retention_days: int | None = None  # `callgate log purge` without --before


@dataclass(frozen=True, slots=True)
class Config:
    store_url: str = DEFAULT_STORE
    # SQLite: "full" syncs every commit to disk (no attempt lost even on power loss);
    # "normal" survives process crashes and restarts, and is about twice as fast.
    synchronous: str = "full"
    rules: RuleSettings = field(default_factory=RuleSettings)
    companies: Mapping[str, Company] = field(default_factory=lambda: MappingProxyType({}))
    ari: AriSettings = field(default_factory=AriSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    log: LogSettings = field(default_factory=LogSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    ami: AmiSettings | None = None  # None: no [ami], the doctor does not read the dialplan
    # The top-level tables the file has: a service's defaults apply without its table,
    # yet the doctor checks what a PBX needs only for the services configured.
    tables: frozenset[str] = frozenset()
    source: str | None = None

    def company(self, company_id: str | None) -> Company | None:
        """The named company; with no name, the only company when there is just one."""
        if company_id is None:
            return next(iter(self.companies.values())) if len(self.companies) == 1 else None
        return self.companies.get(company_id)


MAX_SCRUB_WORKERS = 64
MAX_CONFIG_BYTES = 1 << 20  # a configuration is a few kilobytes; /dev/zero is not one
TCP_PORTS = (1, 65535)

# Every numeric key: its range (both ends included) and its unit, checked by `_bounded`.
# RULES-FR's figures where the law gives one, generous operating limits otherwise.
LIMITS: dict[str, tuple[int | float, int | float, str]] = {
    # §3.2: 60 days; 0 turns the rule off (a decree of July 2026 may have removed it).
    "rules.refusal_cooldown_days": (0, 3650, " days"),
    # §4: 365 (strict reading); a consent is given again, never kept for decades.
    "rules.consent_max_age_days": (1, 3650, " days"),
    # §2.4: a call "at a precisely specified date and time": minutes, a few hours at most.
    "rules.appointment_window_minutes": (1, 240, " minutes"),
    "ari.max_concurrent": (1, 10_000, ""),
    "ari.decision_timeout": (0.1, 30.0, " seconds"),
    "agi.max_concurrent": (1, 10_000, ""),
    "agi.decision_timeout": (0.1, 30.0, " seconds"),
    "agi.max_connections": (1, 10_000, ""),
    "agi.connection_timeout": (1.0, 300.0, " seconds"),
    "ami.port": (*TCP_PORTS, ""),
    "api.scrub_workers": (1, MAX_SCRUB_WORKERS, ""),
    "api.max_connections": (1, 1_000_000, ""),
    "api.idle_timeout": (1.0, 3600.0, " seconds"),
    "api.stall_timeout": (1.0, 3600.0, " seconds"),
    # A console login: five minutes to a week.
    "api.session_minutes": (5, 10_080, " minutes"),
    "log.retention_days": (1, 3650, " days"),
}


def scrub_workers_problem(count: int) -> str | None:
    """What is wrong with a number of scrub workers, if anything (config and CLI alike)."""
    low, high, _ = LIMITS["api.scrub_workers"]
    return None if low <= count <= high else f"must be {low} to {high}"


# Sections owned by the services (ARI, AGI, API). Kept as tables for them to validate.
_KNOWN_TOP = {"store", "rules", "companies", "ari", "agi", "log", "api", "ami"}


def find_config_file(explicit: str | None) -> Path | None:
    """--config, then $CALLGATE_CONFIG, then ./callgate.toml, then /etc/callgate."""
    chosen = explicit or os.environ.get("CALLGATE_CONFIG")
    if chosen:
        return Path(chosen)
    return next((path for path in SEARCH_PATHS if path.is_file()), None)


def load_config(path: Path) -> Config:
    """The configuration in ``path``, checked whole; any fault is a one-line ConfigError."""
    data = _read_toml(path)
    try:
        return parse_config(data, source=str(path))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    if path.exists() and not path.is_file():  # a FIFO or a device would block or never end
        raise ConfigError(f"{path}: not a regular file")
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes, not a configuration")
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not a UTF-8 text file (byte {error.start + 1} cannot be read)"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None
    except ValueError:  # tomllib hands int() a literal longer than Python converts
        raise ConfigError(f"{path}: not valid TOML: a number with too many digits") from None


def parse_config(data: Mapping[str, Any], source: str | None = None) -> Config:
    _no_unknown_keys(data, _KNOWN_TOP, "")
    store = _table(data, "store")
    _no_unknown_keys(store, {"url", "synchronous"}, "store.")
    store_url = _get(store, "url", str, "store.", DEFAULT_STORE)
    synchronous = _get(store, "synchronous", str, "store.", "full")
    if synchronous not in ("full", "normal"):
        raise ConfigError(f"store.synchronous: {_shown(synchronous)} is not full or normal")
    companies = _companies(data.get("companies", []))
    return Config(
        store_url=store_url,
        synchronous=synchronous,
        rules=_rules(_table(data, "rules")),
        ari=_ari(_table(data, "ari")),
        agi=_agi(_table(data, "agi")),
        log=_log(_table(data, "log")),
        api=_api(_table(data, "api")),
        ami=_ami(_table(data, "ami")) if "ami" in data else None,
        companies=MappingProxyType(companies),
        tables=frozenset(data),
        source=source,
    )


def _rules(table: Mapping[str, Any]) -> RuleSettings:
    p = "rules."
    _no_unknown_keys(
        table,
        {
            "pack", "default_purpose", "strict_holidays", "refusal_cooldown_days",
            "consent_max_age_days", "appointment_window_minutes", "allow_foreign",
            "npv_prefixes", "emergency_numbers",
        },
        p,
    )  # fmt: skip
    pack = _get(table, "pack", str, p, "fr")
    if pack != "fr":
        raise ConfigError(f"rules.pack: unknown rule pack {_shown(pack)} (known: fr)")
    purpose = _get(table, "default_purpose", str, p, Purpose.PROSPECTING.value)
    if purpose not in Purpose._value2member_map_:
        raise ConfigError(
            f"rules.default_purpose: {_shown(purpose)} is not one of {', '.join(Purpose)}"
        )
    settings = RuleSettings(
        pack=pack,
        default_purpose=Purpose(purpose),
        strict_holidays=_get(table, "strict_holidays", bool, p, True),
        refusal_cooldown_days=_bounded(table, "refusal_cooldown_days", p, 60),
        consent_max_age_days=_bounded(table, "consent_max_age_days", p, 365),
        appointment_window_minutes=_bounded(table, "appointment_window_minutes", p, 15),
        allow_foreign=_get(table, "allow_foreign", bool, p, False),
    )
    if "npv_prefixes" in table:
        settings = replace(settings, npv_prefixes=_npv(table["npv_prefixes"]))
    if "emergency_numbers" in table:
        extra = _get(table, "emergency_numbers", list, p, [])
        for index, number in enumerate(extra):
            if not isinstance(number, str) or not _SHORT_CODE.fullmatch(number):
                raise ConfigError(
                    f"rules.emergency_numbers[{index}]: expected a short code of 2 to 6 digits"
                )
        settings = replace(settings, emergency_numbers=DEFAULT_EMERGENCY_NUMBERS | set(extra))
    return settings


def _ari(table: Mapping[str, Any]) -> AriSettings:
    p = "ari."
    keys = {"url", "username", "password_file", "app", "max_concurrent", "decision_timeout"}
    _no_unknown_keys(table, keys, p)
    default = AriSettings()
    url = _get(table, "url", str, p, default.url)
    # Checked before the URL is shown anywhere: a password in it would reach this error,
    # a log line or a probe (and Basic auth already carries the credentials).
    if "@" in re.split(r"[/?#]", url.split("://", 1)[-1], maxsplit=1)[0]:
        raise ConfigError(
            "ari.url: no user or password in the URL: give ari.username, and the password in"
            " ari.password_file or $CALLGATE_ARI_PASSWORD"
        )
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"ari.url: {_shown(url)} is not an http:// or https:// URL")
    max_concurrent, timeout = _limits(table, p, default.max_concurrent, default.decision_timeout)
    return AriSettings(
        url=url.rstrip("/"),
        username=_get(table, "username", str, p, default.username),
        password_file=_get(table, "password_file", str, p, None),
        app=_get(table, "app", str, p, default.app),
        max_concurrent=max_concurrent,
        decision_timeout=float(timeout),
    )


def _api(table: Mapping[str, Any]) -> ApiSettings:
    p, default = "api.", ApiSettings()
    keys = {
        "bind", "token_file", "scrub_workers", "max_connections", "idle_timeout", "stall_timeout",
        "tokens_file", "session_minutes", "secure_cookies",
    }  # fmt: skip
    _no_unknown_keys(table, keys, p)
    bind = _get(table, "bind", str, p, default.bind)
    _host_port(bind, "api.bind")
    workers = _bounded(table, "scrub_workers", p, default.scrub_workers)
    token_file = _get(table, "token_file", str, p, None)
    return ApiSettings(
        bind=bind, token_file=token_file, scrub_workers=workers,
        max_connections=_bounded(table, "max_connections", p, default.max_connections),
        idle_timeout=_bounded(table, "idle_timeout", p, default.idle_timeout),
        stall_timeout=_bounded(table, "stall_timeout", p, default.stall_timeout),
        tokens_file=_get(table, "tokens_file", str, p, None),
        session_minutes=_bounded(table, "session_minutes", p, default.session_minutes),
        secure_cookies=_get(table, "secure_cookies", bool, p, default.secure_cookies),
    )  # fmt: skip


def _ami(table: Mapping[str, Any]) -> AmiSettings:
    p = "ami."
    _no_unknown_keys(table, {"host", "port", "username", "password_file"}, p)
    default = AmiSettings()
    host = _get(table, "host", str, p, default.host).strip()
    if not _is_host(host):
        raise ConfigError(
            f"ami.host: {_shown(host)} is not a host name or address, such as 127.0.0.1"
        )
    port = _bounded(table, "port", p, default.port)
    username = _get(table, "username", str, p, default.username)
    if not username.strip():
        raise ConfigError("ami.username: empty; manager.conf names the user in [brackets]")
    return AmiSettings(
        host=host.strip("[]"), port=port, username=username,
        password_file=_get(table, "password_file", str, p, None),
    )  # fmt: skip


def _is_host(text: str) -> bool:
    """A name or an address; "host:port" is the mistake this catches (ports are apart)."""
    if ":" in text:  # only an IPv6 address may hold one
        try:
            ipaddress.IPv6Address(text.strip("[]"))
        except ValueError:
            return False
        return True
    return bool(text) and not any(c.isspace() or c in "/@" for c in text)


def _host_port(text: str, key: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    low, high = TCP_PORTS
    # ASCII digits only: "²".isdigit() is true, yet int() refuses it.
    if not _is_host(host) or not _PORT.fullmatch(port) or not low <= int(port) <= high:
        raise ConfigError(f"{key}: {_shown(text)} is not HOST:PORT, such as 127.0.0.1:8090")
    return host, int(port)


def _log(table: Mapping[str, Any]) -> LogSettings:
    _no_unknown_keys(table, {"node", "retention_days"}, "log.")
    days = _bounded(table, "retention_days", "log.", None)
    return LogSettings(node=_get(table, "node", str, "log.", None), retention_days=days)


def _agi(table: Mapping[str, Any]) -> AgiSettings:
    p = "agi."
    keys = {"listen", "max_concurrent", "decision_timeout", "max_connections", "connection_timeout"}
    _no_unknown_keys(table, keys, p)
    default = AgiSettings()
    listen = _get(table, "listen", str, p, default.listen)
    _host_port(listen, "agi.listen")
    max_concurrent, timeout = _limits(table, p, default.max_concurrent, default.decision_timeout)
    whole = _bounded(table, "connection_timeout", p, default.connection_timeout)
    if whole <= timeout:
        raise ConfigError(
            f"agi.connection_timeout: {whole:g} s must exceed agi.decision_timeout ({timeout:g} s)"
        )
    return AgiSettings(
        listen=listen, max_concurrent=max_concurrent, decision_timeout=timeout,
        max_connections=_bounded(table, "max_connections", p, default.max_connections),
        connection_timeout=whole,
    )  # fmt: skip


def _limits(
    table: Mapping[str, Any], p: str, max_default: int, timeout_default: float
) -> tuple[int, float]:
    """A gate's max_concurrent and decision_timeout, checked."""
    max_concurrent = _bounded(table, "max_concurrent", p, max_default)
    return max_concurrent, _bounded(table, "decision_timeout", p, timeout_default)


def _npv(value: Any) -> Mapping[str, frozenset[Territory]]:
    if not isinstance(value, Mapping):
        raise ConfigError('rules.npv_prefixes: expected a table such as {"0948" = ["FR-MET"]}')
    table: dict[str, frozenset[Territory]] = {}
    for prefix, territories in value.items():
        key = f"rules.npv_prefixes.{_name(prefix)}"
        if not _NATIONAL_PREFIX.fullmatch(prefix):
            raise ConfigError(f"{key}: expected a national prefix such as 0948")
        if not isinstance(territories, list) or not territories:
            raise ConfigError(f'{key}: expected a list of territories such as ["FR-MET"]')
        try:
            table[prefix] = frozenset(Territory(t) for t in territories)
        except ValueError:
            known = ", ".join(Territory)
            raise ConfigError(
                f"{key}: unknown territory in {_shown(territories)} (known: {known})"
            ) from None
    return PrefixTable(table)


def _bounded(table: Mapping[str, Any], key: str, prefix: str, default: Any) -> Any:
    """A numeric key of its type and within its range of ``LIMITS``. A range given in
    floats takes seconds (an integer is one too); otherwise only an integer will do."""
    name = f"{prefix}{key}"
    low, high, unit = LIMITS[name]
    if key not in table:
        return default
    value = table[key]
    seconds = isinstance(low, float)
    # bool is an int in Python; `refusal_cooldown_days = true` is an error.
    if isinstance(value, bool) or not isinstance(value, (int, float) if seconds else int):
        expected = "a number of seconds" if seconds else "an integer"
        got = f"{type(value).__name__} {_shown(value)}"
        raise ConfigError(f"{name}: expected {expected}, got {got}")
    if not low <= value <= high:  # NaN fails this test too
        raise ConfigError(f"{name}: must be {low} to {high}{unit}, not {_shown(value)}")
    return float(value) if seconds else value


def _companies(value: Any) -> dict[str, Company]:
    if not isinstance(value, list):
        raise ConfigError("companies: expected [[companies]] tables")
    companies: dict[str, Company] = {}
    owners: dict[str, str] = {}  # a presented number -> the company whose pool holds it
    for index, table in enumerate(value):
        p = f"companies[{index}]."
        if not isinstance(table, Mapping):
            raise ConfigError(f"companies[{index}]: expected a table")
        _no_unknown_keys(table, {"id", "name", "sector", "numbers"}, p)
        company_id = _get(table, "id", str, p, None)
        if not company_id:
            raise ConfigError(f"{p}id: missing; every company needs an id")
        if company_id in companies:
            raise ConfigError(f"{p}id: duplicate company id {_shown(company_id)}")
        sector = _get(table, "sector", str, p, None)
        numbers = []
        for n, raw in enumerate(_get(table, "numbers", list, p, [])):
            parsed = parse_number(raw) if isinstance(raw, str) else None
            if parsed is None or not _presentable(parsed):
                raise ConfigError(f"{p}numbers[{n}]: {_shown(raw)} is not a valid phone number")
            _claim(owners, parsed.display, company_id, f"{p}numbers[{n}]")
            numbers.append(parsed.display)
        companies[company_id] = Company(
            id=company_id,
            name=_get(table, "name", str, p, company_id),
            sector=sector,
            numbers=tuple(dict.fromkeys(numbers)),
        )
    return companies


def _claim(owners: dict[str, str], number: str, company_id: str, key: str) -> None:
    """A number presented identifies one company: a second pool holding it (in any
    notation: numbers compare in E.164) would let one company call as the other."""
    owner = owners.setdefault(number, company_id)
    if owner != company_id:
        raise ConfigError(
            f"{key}: {number} is in the pools of both {_shown(owner)} and {_shown(company_id)};"
            " a number belongs to one company"
        )


def _presentable(number: Number) -> bool:
    """A pool may hold full numbers and 3BPQ short numbers (30PQ/31PQ are presentable)."""
    if number.kind is Kind.SHORT:
        code = number.national or ""
        return len(code) == 4 and code.startswith("3")
    return number.kind is Kind.VALID


def _table(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a table [{key}]")
    return value


def _get(table: Mapping[str, Any], key: str, kind: type, prefix: str, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    # bool is an int in Python; a config saying `refusal_cooldown_days = true` is an error.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(
            f"{prefix}{key}: expected {_KIND_NAMES.get(kind, kind.__name__)}, "
            f"got {type(value).__name__} {_shown(value)}"
        )
    return value


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}
_SHORT_CODE = re.compile(r"[1-9][0-9]{1,5}")  # what parse_number reads as a short code
_NATIONAL_PREFIX = re.compile(r"0[0-9]{2,5}")
_PORT = re.compile(r"[0-9]{1,5}")
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60


def _name(key: Any) -> str:
    """A key of the file as a message names it: as written, unless that would break the
    line or the terminal (TOML's quoted keys may hold anything)."""
    if isinstance(key, str) and key.isprintable() and len(key) <= 60:
        return key
    return _shown(key)


def _shown(value: Any) -> str:
    """A value for a one-line message: short, whatever its size."""
    if isinstance(value, int) and value.bit_length() > 64:  # repr() refuses the biggest
        return f"an integer of {value.bit_length()} bits"
    return _REPR.repr(value)


def _no_unknown_keys(table: Mapping[str, Any], known: set[str], prefix: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{prefix}{_name(key)}: unknown key (known here: {', '.join(sorted(known))})"
            )
