"""`callgate db migrate`: bring a running installation's store to this release's schema,
and show that nothing was lost: every table's rows before and after, and the decision
log's hash chain verified on the migrated store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from callgate.cli_log import verify_chain
from callgate.factlog import FACT_TABLES
from callgate.store import open_store, sqlite_path, stored_row_counts, stored_schema_version
from callgate.store.base import RECORD_TABLES
from callgate.store.factwrite import FACT_CHAIN_VERSION

__all__ = ["MigrationReport", "migrate_store", "report_lines"]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    from_version: int
    to_version: int
    before: dict[str, int]  # rows per record table; a table the old schema lacks is 0
    after: dict[str, int]
    entries: int  # decision log entries verified after the migration
    chain_head: str | None  # the last entry's hash, before and after alike
    chain_problem: str | None  # where the chain breaks, if it does

    @property
    def lost(self) -> dict[str, tuple[int, int]]:
        return {
            table: (self.before[table], self.after[table])
            for table in RECORD_TABLES if self.after[table] < self.before[table]
        }  # fmt: skip

    @property
    def ok(self) -> bool:
        return not self.lost and self.chain_problem is None


async def migrate_store(url: str, *, synchronous: str = "full") -> MigrationReport:
    """Migrate the store at ``url`` in place; a SQLite file that does not exist yet is
    created at this release's schema (a new installation), its folder must exist."""
    path = sqlite_path(url)
    if path is not None and path != ":memory:" and not Path(path).exists():
        from_version, before = 0, dict.fromkeys(RECORD_TABLES, 0)
    else:
        from_version = await stored_schema_version(url)
        before = await stored_row_counts(url, RECORD_TABLES)
    store = await open_store(url, synchronous=synchronous)  # migrates, in one transaction
    try:
        to_version = await store.migrate()
        check = await verify_chain(store)
    finally:
        await store.close()
    after = await stored_row_counts(url, RECORD_TABLES)
    verifier = check.verifier
    return MigrationReport(
        from_version, to_version, before, after, verifier.count,
        verifier.expected_prev if verifier.count else None, None if check.ok else str(check),
    )  # fmt: skip


def report_lines(report: MigrationReport) -> list[str]:
    if report.from_version == 0:
        lines = [f"store created at schema version {report.to_version}"]
    elif report.from_version == report.to_version:
        lines = [f"already at schema version {report.to_version}: nothing to do"]
    else:
        lines = [f"store migrated from schema version {report.from_version}"
                 f" to {report.to_version}"]  # fmt: skip
    lines += [
        f"  {table}: {report.before[table]:,} -> {report.after[table]:,}" for table in RECORD_TABLES
    ]
    if report.from_version and report.from_version < FACT_CHAIN_VERSION <= report.to_version:
        held = sum(report.after[table] for table in FACT_TABLES)
        lines.append(f"the facts it held are chained: {held:,} rows, in one genesis entry")
    for table, (was, now) in report.lost.items():
        lines.append(f"LOST: {table} held {was:,} rows and now holds {now:,}")
    if report.chain_problem:
        lines.append(f"the decision log does not verify: {report.chain_problem}")
    else:
        lines.append(f"decision log verifies: {report.entries:,} entries")
    return lines
