"""Copy every record from one store to another: SQLite to PostgreSQL when a call center
outgrows one PBX, or back. One snapshot of the source, one transaction on the target."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from callgate.store.base import RECORD_TABLES, Batch, Store, StoreError

__all__ = ["copy_store"]


async def copy_store(
    source: Store,
    target: Store,
    *,
    batch: int = 10_000,
    progress: Callable[[Batch], None] | None = None,
) -> dict[str, int]:
    """Copy the records; the target must hold none. Returns the rows copied per table."""
    totals: dict[str, int] = {}

    async def batches() -> AsyncIterator[Batch]:
        async for chunk in source.snapshot(batch):
            totals[chunk.table] = chunk.total
            if progress is not None:
                progress(chunk)
            yield chunk

    copied = await target.restore(batches())
    for table in RECORD_TABLES:
        if copied[table] != totals.get(table):
            raise StoreError(f"{table}: {copied[table]:,} rows copied of {totals.get(table, 0):,}")
    return copied
