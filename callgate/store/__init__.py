"""Stores: where attempts, refusals, consents, contracts, opposition and decisions live.

``open_store(url)`` picks the backend from the URL: a path or ``sqlite:///file.db``
(the embedded default); ``postgresql://user@host/db`` for the shared backend.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote

from callgate.store.base import (
    ConsentRecord,
    ContractRecord,
    OppositionRecord,
    Store,
    StoreError,
)

__all__ = [
    "ConsentRecord",
    "ContractRecord",
    "OppositionRecord",
    "Store",
    "StoreError",
    "newest_schema_version",
    "open_store",
    "safe_url",
    "sqlite_path",
    "stored_row_counts",
    "stored_schema_version",
]


def sqlite_path(url: str) -> str | None:
    """The file a SQLite URL or plain path names; None for another scheme."""
    if url.startswith("sqlite:///"):
        return url[len("sqlite:///") :] or None
    if url.startswith("sqlite://"):
        return None
    if "://" in url:
        return None
    return url


def newest_schema_version(url: str) -> int:
    """The schema version this callgate migrates a store of that URL's backend to."""
    from importlib import resources

    backend = "sqlite" if sqlite_path(url) is not None else "postgres"
    folder = resources.files("callgate.store") / "migrations" / backend
    return max(
        int(entry.name.split("_", 1)[0]) for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    )  # fmt: skip


async def stored_schema_version(url: str) -> int:
    """The schema version a store is at, read without migrating it (0: never migrated).

    Raises StoreError when the store cannot be read; a SQLite file is opened read-only.
    """
    path = sqlite_path(url)
    if path is not None:
        with _sqlite_read_only(path) as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])
    async with _postgres_reader(url) as db:
        exists = await db.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
        version = await db.fetchval("SELECT max(version) FROM schema_version") if exists else 0
        return int(version or 0)


async def stored_row_counts(url: str, tables: Iterable[str]) -> dict[str, int]:
    """Rows per table, read without migrating anything; a table the schema lacks is 0."""
    path = sqlite_path(url)
    if path is not None:
        with _sqlite_read_only(path) as db:
            present = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            return {
                table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                if table in present else 0
                for table in tables
            }  # fmt: skip
    async with _postgres_reader(url) as db:
        counts = {}
        for table in tables:
            exists = await db.fetchval("SELECT to_regclass($1) IS NOT NULL", table)
            counts[table] = await db.fetchval(f"SELECT count(*) FROM {table}") if exists else 0
        return counts


@contextlib.contextmanager
def _sqlite_read_only(path: str) -> Iterator[sqlite3.Connection]:
    """The file opened read-only: reading a store must never create or migrate it."""
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block the open
        raise StoreError(f"cannot read the store {path}: not a regular file")
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5)
        ) as db:
            yield db
    except sqlite3.Error as error:
        raise StoreError(f"cannot read the store {path}: {error}") from error


@contextlib.asynccontextmanager
async def _postgres_reader(url: str) -> AsyncIterator[Any]:
    import asyncpg

    try:
        db = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        raise StoreError(f"cannot reach PostgreSQL: {error}") from error
    try:
        yield db
    except asyncpg.PostgresError as error:
        raise StoreError(f"cannot read the PostgreSQL store: {error}") from error
    finally:
        await db.close()


async def open_store(url: str, *, synchronous: str = "full", read_only: bool = False) -> Store:
    """The store at ``url``, migrated to this callgate's schema.

    ``read_only``: only read it (an auditor's copy, a read-only mount): no migration, no
    journal mode switch, and a store at another schema version is refused.
    """
    path = sqlite_path(url)
    if path is not None:
        from callgate.store.sqlite import SqliteStore

        return await SqliteStore.open(path, synchronous=synchronous, read_only=read_only)
    if url.startswith(("postgresql://", "postgres://")):
        from callgate.store.postgres import PostgresStore

        return await PostgresStore.open(url, read_only=read_only)
    raise StoreError(
        f"unsupported store URL {safe_url(url)!r}: use a file path, sqlite:///file.db"
        " or postgresql://user@host/db"
    )


def safe_url(url: str) -> str:
    """A store URL fit for a message or a log: any password in it replaced."""
    # Up to the last "@": a password with an unescaped "@" in it is masked whole.
    url = re.sub(r"://([^:/@]*):.*@", r"://\1:***@", url)
    return re.sub(r"([?&])([^=&]*)=([^&]*)", _masked_parameter, url)


# Query parameters that carry a secret: password, sslpassword, ARI's api_key, a token...
_SECRET_NAME = re.compile(r"pass|key|token|secret", re.IGNORECASE)


def _masked_parameter(match: re.Match[str]) -> str:
    mark, name, value = match.groups()
    secret = _SECRET_NAME.search(unquote(name))  # %70assword is password too
    return f"{mark}{name}={'***' if secret else value}"


def schema_mismatch(version: int, newest: int) -> str | None:
    """Why a store at schema ``version`` cannot be read as it is, or None."""
    if version == newest:
        return None
    if version == 0:
        return "it holds no callgate schema (an empty file, or another program's database)"
    if version > newest:
        return f"its schema (version {version}) is newer than this callgate's ({newest})"
    return (
        f"its schema is version {version}, this callgate reads version {newest}:"
        " run `callgate db migrate` on it (or on a writable copy)"
    )
