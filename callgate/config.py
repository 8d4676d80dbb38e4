"""The TOML configuration: loaded once, validated whole, every error naming its key."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from callgate.model import Purpose
from callgate.numbering import (
    DEFAULT_NPV_PREFIXES,
    Kind,
    Number,
    PrefixTable,
    Territory,
    parse_number,
)

__all__ = [
    "DEFAULT_EMERGENCY_NUMBERS",
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

    def token(self) -> str:
        """The API's bearer token, from $CALLGATE_API_TOKEN or ``token_file``."""
        token = read_secret("CALLGATE_API_TOKEN", self.token_file, "api.token_file")
        if len(token) < 16:
            raise ConfigError("api.token_file: the token must be 16 characters or more")
        return token


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


def scrub_workers_problem(count: int) -> str | None:
    """What is wrong with a number of scrub workers, if anything (config and CLI alike)."""
    return None if 1 <= count <= MAX_SCRUB_WORKERS else f"must be 1 to {MAX_SCRUB_WORKERS}"


# Sections owned by the services (ARI, AGI, API). Kept as tables for them to validate.
_KNOWN_TOP = {"store", "rules", "companies", "ari", "agi", "log", "api", "ami"}


def find_config_file(explicit: str | None) -> Path | None:
    """--config, then $CALLGATE_CONFIG, then ./callgate.toml, then /etc/callgate."""
    chosen = explicit or os.environ.get("CALLGATE_CONFIG")
    if chosen:
        return Path(chosen)
    return next((path for path in SEARCH_PATHS if path.is_file()), None)


def load_config(path: Path) -> Config:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return parse_config(data, source=str(path))
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def parse_config(data: Mapping[str, Any], source: str | None = None) -> Config:
    _no_unknown_keys(data, _KNOWN_TOP, "")
    store = _table(data, "store")
    _no_unknown_keys(store, {"url", "synchronous"}, "store.")
    store_url = _get(store, "url", str, "store.", DEFAULT_STORE)
    synchronous = _get(store, "synchronous", str, "store.", "full")
    if synchronous not in ("full", "normal"):
        raise ConfigError(f"store.synchronous: {synchronous!r} is not full or normal")
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
        raise ConfigError(f"rules.pack: unknown rule pack {pack!r} (known: fr)")
    purpose = _get(table, "default_purpose", str, p, Purpose.PROSPECTING.value)
    if purpose not in Purpose._value2member_map_:
        raise ConfigError(f"rules.default_purpose: {purpose!r} is not one of {', '.join(Purpose)}")
    settings = RuleSettings(
        pack=pack,
        default_purpose=Purpose(purpose),
        strict_holidays=_get(table, "strict_holidays", bool, p, True),
        refusal_cooldown_days=_days(table, "refusal_cooldown_days", 60),
        consent_max_age_days=_days(table, "consent_max_age_days", 365),
        appointment_window_minutes=_minutes(table, "appointment_window_minutes", 15),
        allow_foreign=_get(table, "allow_foreign", bool, p, False),
    )
    if "npv_prefixes" in table:
        settings = replace(settings, npv_prefixes=_npv(table["npv_prefixes"]))
    if "emergency_numbers" in table:
        extra = _get(table, "emergency_numbers", list, p, [])
        for index, number in enumerate(extra):
            if not isinstance(number, str) or not number.isdigit():
                raise ConfigError(f"rules.emergency_numbers[{index}]: expected a string of digits")
        settings = replace(settings, emergency_numbers=DEFAULT_EMERGENCY_NUMBERS | set(extra))
    return settings


def _ari(table: Mapping[str, Any]) -> AriSettings:
    p = "ari."
    keys = {"url", "username", "password_file", "app", "max_concurrent", "decision_timeout"}
    _no_unknown_keys(table, keys, p)
    default = AriSettings()
    url = _get(table, "url", str, p, default.url)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"ari.url: {url!r} is not an http:// or https:// URL")
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
    _no_unknown_keys(table, {"bind", "token_file", "scrub_workers"}, "api.")
    bind = _get(table, "bind", str, "api.", ApiSettings().bind)
    _host_port(bind, "api.bind")
    workers = _get(table, "scrub_workers", int, "api.", ApiSettings().scrub_workers)
    if problem := scrub_workers_problem(workers):
        raise ConfigError(f"api.scrub_workers: {problem}, not {workers}")
    token_file = _get(table, "token_file", str, "api.", None)
    return ApiSettings(bind=bind, token_file=token_file, scrub_workers=workers)


def _ami(table: Mapping[str, Any]) -> AmiSettings:
    p = "ami."
    _no_unknown_keys(table, {"host", "port", "username", "password_file"}, p)
    default = AmiSettings()
    host = _get(table, "host", str, p, default.host).strip()
    if not _is_host(host):
        raise ConfigError(f"ami.host: {host!r} is not a host name or address, such as 127.0.0.1")
    port = _get(table, "port", int, p, default.port)
    if not 0 < port < 65536:
        raise ConfigError(f"ami.port: {port} is not a TCP port (1 to 65535)")
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
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{key}: {text!r} is not HOST:PORT, such as 127.0.0.1:8090")
    return host, int(port)


def _log(table: Mapping[str, Any]) -> LogSettings:
    _no_unknown_keys(table, {"node", "retention_days"}, "log.")
    days = _get(table, "retention_days", int, "log.", None)
    if days is not None and days < 1:
        raise ConfigError("log.retention_days: must be 1 or more days")
    return LogSettings(node=_get(table, "node", str, "log.", None), retention_days=days)


def _agi(table: Mapping[str, Any]) -> AgiSettings:
    p = "agi."
    _no_unknown_keys(table, {"listen", "max_concurrent", "decision_timeout"}, p)
    default = AgiSettings()
    listen = _get(table, "listen", str, p, default.listen)
    _host_port(listen, "agi.listen")
    max_concurrent, timeout = _limits(table, p, default.max_concurrent, default.decision_timeout)
    return AgiSettings(listen=listen, max_concurrent=max_concurrent, decision_timeout=timeout)


def _limits(
    table: Mapping[str, Any], p: str, max_default: int, timeout_default: float
) -> tuple[int, float]:
    """A gate's max_concurrent and decision_timeout, checked."""
    max_concurrent = _get(table, "max_concurrent", int, p, max_default)
    if max_concurrent < 1:
        raise ConfigError(f"{p}max_concurrent: must be 1 or more")
    timeout = table.get("decision_timeout", timeout_default)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 30:
        raise ConfigError(
            f"{p}decision_timeout: expected seconds between 0 and 30, got {timeout!r}"
        )
    return max_concurrent, float(timeout)


def _npv(value: Any) -> Mapping[str, frozenset[Territory]]:
    if not isinstance(value, Mapping):
        raise ConfigError('rules.npv_prefixes: expected a table such as {"0948" = ["FR-MET"]}')
    table: dict[str, frozenset[Territory]] = {}
    for prefix, territories in value.items():
        key = f"rules.npv_prefixes.{prefix}"
        if not (prefix.isdigit() and prefix.startswith("0") and 3 <= len(prefix) <= 6):
            raise ConfigError(f"{key}: expected a national prefix such as 0948")
        if not isinstance(territories, list) or not territories:
            raise ConfigError(f'{key}: expected a list of territories such as ["FR-MET"]')
        try:
            table[prefix] = frozenset(Territory(t) for t in territories)
        except ValueError:
            known = ", ".join(Territory)
            raise ConfigError(
                f"{key}: unknown territory in {territories} (known: {known})"
            ) from None
    return PrefixTable(table)


def _days(table: Mapping[str, Any], key: str, default: int) -> int:
    value = _get(table, key, int, "rules.", default)
    if value < 0:
        raise ConfigError(f"rules.{key}: must be zero or more days, not {value}")
    return value


def _minutes(table: Mapping[str, Any], key: str, default: int) -> int:
    value = _get(table, key, int, "rules.", default)
    if value < 1:
        raise ConfigError(f"rules.{key}: must be one minute or more, not {value}")
    return value


def _companies(value: Any) -> dict[str, Company]:
    if not isinstance(value, list):
        raise ConfigError("companies: expected [[companies]] tables")
    companies: dict[str, Company] = {}
    for index, table in enumerate(value):
        p = f"companies[{index}]."
        if not isinstance(table, Mapping):
            raise ConfigError(f"companies[{index}]: expected a table")
        _no_unknown_keys(table, {"id", "name", "sector", "numbers"}, p)
        company_id = _get(table, "id", str, p, None)
        if not company_id:
            raise ConfigError(f"{p}id: missing; every company needs an id")
        if company_id in companies:
            raise ConfigError(f"{p}id: duplicate company id {company_id!r}")
        sector = _get(table, "sector", str, p, None)
        numbers = []
        for n, raw in enumerate(_get(table, "numbers", list, p, [])):
            parsed = parse_number(raw) if isinstance(raw, str) else None
            if parsed is None or not _presentable(parsed):
                raise ConfigError(f"{p}numbers[{n}]: {raw!r} is not a valid phone number")
            numbers.append(parsed.display)
        companies[company_id] = Company(
            id=company_id,
            name=_get(table, "name", str, p, company_id),
            sector=sector,
            numbers=tuple(dict.fromkeys(numbers)),
        )
    return companies


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
            f"got {type(value).__name__} {value!r}"
        )
    return value


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list"}


def _no_unknown_keys(table: Mapping[str, Any], known: set[str], prefix: str) -> None:
    for key in table:
        if key not in known:
            raise ConfigError(
                f"{prefix}{key}: unknown key (known here: {', '.join(sorted(known))})"
            )
