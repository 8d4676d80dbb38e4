"""Stores: where attempts, refusals, consents, contracts, opposition and decisions live.

``open_store(url)`` picks the backend from the URL: a path or ``sqlite:///file.db``
(the embedded default); ``postgresql://user@host/db`` for the shared backend.
"""

from __future__ import annotations

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
