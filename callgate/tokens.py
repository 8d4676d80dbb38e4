"""The API's bearer tokens and their scopes.

``[api] tokens_file`` holds one ``scope[,scope...] token`` per line; the single
``[api] token_file`` (or $CALLGATE_API_TOKEN) is an admin token. Scopes: ``read`` (every
GET, the console), ``write`` (every POST: checks, scrubs, outcomes, records) and ``admin``
(both, and the console's purge). No message ever shows a token.
"""

from __future__ import annotations

import hmac
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from callgate.config import ConfigError

__all__ = [
    "MIN_LENGTH",
    "SCOPES",
    "Tokens",
    "expand",
    "parse_tokens",
    "read_tokens_file",
    "tokens_of",
]

SCOPES = ("read", "write", "admin")
MIN_LENGTH = 16
MAX_FILE_BYTES = 1 << 20  # a tokens file is a few lines; /dev/zero is not one
# What an HTTP header carries unchanged: visible ASCII, no space.
_TOKEN = re.compile(r"[\x21-\x7e]+")
_SHOWN_SCOPE = re.compile(r"[a-z]{1,12}")  # a scope that is short and plain enough to show


@dataclass(frozen=True, slots=True)
class Tokens:
    """The known tokens, each with its scopes (admin already implying read and write)."""

    # Never in a repr: a traceback or a debug line must not show a token.
    entries: tuple[tuple[bytes, frozenset[str]], ...] = field(repr=False)

    @classmethod
    def admin(cls, token: str) -> Tokens:
        """One admin token (the single ``token_file``'s)."""
        return cls(((token.encode("utf-8", "surrogatepass"), expand({"admin"})),))

    def scopes_of(self, given: str) -> frozenset[str] | None:
        """The scopes of ``given``, or None when it is no token. Compared in constant time
        against every token, whichever matches (if any)."""
        candidate = given.encode("utf-8", "surrogatepass")
        found: frozenset[str] | None = None
        for token, scopes in self.entries:
            if hmac.compare_digest(candidate, token):
                found = scopes
        return found

    def __len__(self) -> int:
        return len(self.entries)


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """``scopes`` with what they imply: admin is read and write too."""
    given = frozenset(scopes)
    return given | {"read", "write"} if "admin" in given else given


def read_tokens_file(path: str, key: str = "api.tokens_file") -> list[tuple[str, frozenset[str]]]:
    """The (token, scopes) of each line of the file at ``path``."""
    file = Path(path)
    try:
        # A FIFO or a device would block or never end.
        if not stat.S_ISREG(file.stat().st_mode):
            raise ConfigError(f"{key}: {path} is not a regular file")
        with file.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"{key}: cannot read {path}: {error.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{key}: {path} is larger than {MAX_FILE_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} is not UTF-8 text") from None
    return parse_tokens(text, key)


def parse_tokens(text: str, key: str = "api.tokens_file") -> list[tuple[str, frozenset[str]]]:
    """The (token, scopes) of each line of ``text``: ``scope[,scope...] token``, with
    ``#`` comments and blank lines. Any fault is a ConfigError naming the line."""
    found: list[tuple[str, frozenset[str]]] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        where = f"{key}: line {number}"
        scopes, token = _fields(fields, where)
        if token in first_line:
            raise ConfigError(f"{where}: the same token as line {first_line[token]}")
        first_line[token] = number
        found.append((token, scopes))
    return found


def _fields(fields: list[str], where: str) -> tuple[frozenset[str], str]:
    if len(fields) > 2 and fields[2].startswith("#"):  # a comment after the token
        fields = fields[:2]
    if len(fields) != 2:
        raise ConfigError(f"{where}: expected 'SCOPE[,SCOPE...] TOKEN', such as 'read TOKEN'")
    scopes = [scope.strip() for scope in fields[0].split(",")]
    for scope in scopes:
        if scope not in SCOPES:
            # Shown only when it cannot be a token written in the wrong column.
            shown = f" {scope!r}" if _SHOWN_SCOPE.fullmatch(scope) else ""
            raise ConfigError(f"{where}: unknown scope{shown} (known: {', '.join(SCOPES)})")
    token = fields[1]
    if len(token) < MIN_LENGTH:
        raise ConfigError(f"{where}: the token must be {MIN_LENGTH} characters or more")
    if not _TOKEN.fullmatch(token):
        raise ConfigError(f"{where}: the token must be printable ASCII without spaces")
    return expand(scopes), token


def tokens_of(entries: list[tuple[str, frozenset[str]]], single: str | None = None) -> Tokens:
    """The Tokens of a file's entries and of the single admin token, if any."""
    pairs = [(token.encode(), scopes) for token, scopes in entries]
    if single is not None:
        admin = single.encode("utf-8", "surrogatepass")
        if any(hmac.compare_digest(admin, token) for token, _ in pairs):
            raise ConfigError("api.token_file: the same token is in api.tokens_file")
        pairs.append((admin, expand({"admin"})))
    return Tokens(tuple(pairs))
