"""Stores: where attempts, refusals, consents, contracts, opposition and decisions live.

``open_store(url)`` picks the backend from the URL: a path or ``sqlite:///file.db``
(the embedded default); ``postgresql://user@host/db`` for the shared backend.
"""

from __future__ import annotations

import contextlib

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
    "sqlite_path",
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
        import sqlite3
        from urllib.parse import quote

        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=5)
            ) as db:
                return int(db.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the store {path}: {error}") from error
    import asyncpg

    try:
        db = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError) as error:
        raise StoreError(f"cannot reach PostgreSQL: {error}") from error
    try:
        exists = await db.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
        version = await db.fetchval("SELECT max(version) FROM schema_version") if exists else 0
        return int(version or 0)
    except asyncpg.PostgresError as error:
        raise StoreError(f"cannot read the PostgreSQL store: {error}") from error
    finally:
        await db.close()


async def open_store(url: str, *, synchronous: str = "full") -> Store:
    path = sqlite_path(url)
    if path is not None:
        from callgate.store.sqlite import SqliteStore

        return await SqliteStore.open(path, synchronous=synchronous)
    if url.startswith(("postgresql://", "postgres://")):
        from callgate.store.postgres import PostgresStore

        return await PostgresStore.open(url)
    raise StoreError(
        f"unsupported store URL {url!r}: use a file path, sqlite:///file.db"
        " or postgresql://user@host/db"
    )
