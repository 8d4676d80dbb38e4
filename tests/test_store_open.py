"""Opening a store: a file that cannot be opened is one clear error and leaves nothing
running; a read-only opening reads a copy that cannot be written, and migrates nothing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import paris

from callgate.model import Consent, ConsentScope
from callgate.store import StoreError, newest_schema_version, open_store

CALLEE = "+33612345678"
PREVIOUS = Path(__file__).parent / "fixtures" / "previous-release" / "callgate.db"


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "8m") -> Iterator[Path]:
    """A fresh file system at ``folder``: a real read-only mount, or a really full disk,
    that binds root too (chmod does not). Skips where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("mount") is None:
        pytest.skip("no mount command here")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def seal(folder: Path) -> None:
    """Remount that tmpfs read-only: no process, root included, can write there."""
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def fill(folder: Path) -> None:
    """Leave no free byte on that tmpfs."""
    with contextlib.suppress(OSError), (folder / "filler").open("wb") as filler:
        while True:
            filler.write(b"\0" * 65536)
            filler.flush()


async def a_store_with_a_consent(path: Path) -> None:
    store = await open_store(str(path))
    consent = Consent(ConsentScope.PROSPECTING, paris(2026, 9, 1), source="web", proof="form 1")
    await store.add_consent("acme", CALLEE, consent)
    await store.close()


def workers() -> list[threading.Thread]:
    """aiosqlite's connection threads still alive: each keeps the process from exiting."""
    return [t for t in threading.enumerate() if "_connection_worker_thread" in t.name]


async def unopenable(kind: str, folder: Path) -> Path:
    """A store file that cannot be opened: junk, a damaged store, a directory."""
    path = folder / f"{kind}.db"
    if kind == "junk":
        path.write_bytes(b"this is not a database, only a header of junk " * 100)
    elif kind == "corrupt":  # its pages overwritten after the file's header
        await a_store_with_a_consent(path)
        data = path.read_bytes()
        path.write_bytes(data[:100] + b"\xa5" * (len(data) - 100))
    else:
        path.mkdir()
    return path


@pytest.mark.parametrize("kind", ["junk", "corrupt", "directory"])
async def test_a_file_that_cannot_be_opened_is_a_store_error_and_leaves_no_thread(tmp_path, kind):
    path = await unopenable(kind, tmp_path)
    before = set(workers())
    for read_only in (False, True):
        with pytest.raises(StoreError, match="cannot open the store"):
            await open_store(str(path), read_only=read_only)
    for thread in set(workers()) - before:
        thread.join(timeout=5)
        assert not thread.is_alive(), f"a {kind} store left a connection thread running"


async def test_a_bad_synchronous_setting_leaves_no_thread(tmp_path):
    before = set(workers())
    with pytest.raises(StoreError, match="synchronous"):
        await open_store(str(tmp_path / "s.db"), synchronous="sometimes")
    assert not set(workers()) - before


async def test_a_full_disk_is_a_store_error_and_leaves_no_thread(tmp_path):
    with tmpfs(tmp_path / "full", size="64k") as folder:
        fill(folder)
        before = set(workers())
        with pytest.raises(StoreError, match="full"):
            await open_store(str(folder / "new.db"))
        for thread in set(workers()) - before:
            thread.join(timeout=5)
            assert not thread.is_alive()


async def test_read_only_reads_a_store_on_a_read_only_mount(tmp_path):
    with tmpfs(tmp_path / "ro") as folder:
        await a_store_with_a_consent(folder / "callgate.db")
        seal(folder)
        listing = sorted(p.name for p in folder.iterdir())
        store = await open_store(str(folder / "callgate.db"), read_only=True)
        try:
            [record] = await store.consents(None, CALLEE)
            assert record.consent.proof == "form 1"
            assert await store.log_anchor() is None
        finally:
            await store.close()
        assert sorted(p.name for p in folder.iterdir()) == listing


async def test_read_only_sees_what_is_still_in_the_write_ahead_log(tmp_path):
    """A snapshot taken while a writer had the store open: its rows are in the -wal file,
    which an immutable reading would skip."""
    live = tmp_path / "live.db"
    await a_store_with_a_consent(live)
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute(
        "INSERT INTO opposition (callee, company, source, added_at) VALUES (?, '', 'bloctel', 0)",
        (CALLEE,),
    )
    writer.commit()
    with tmpfs(tmp_path / "ro") as folder:
        for suffix in ("", "-wal", "-shm"):
            shutil.copy(f"{live}{suffix}", folder / f"callgate.db{suffix}")
        writer.close()
        seal(folder)
        store = await open_store(str(folder / "callgate.db"), read_only=True)
        try:
            assert [r.callee async for r in store.oppositions(CALLEE, None)] == [CALLEE]
        finally:
            await store.close()


async def test_a_wal_without_its_index_on_a_read_only_mount_says_what_to_do(tmp_path):
    """The -wal file copied without -shm: SQLite cannot read it there, and skipping it would
    hide committed rows, so the error says how to take a copy that reads."""
    live = tmp_path / "live.db"
    await a_store_with_a_consent(live)
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("DELETE FROM consents")
    writer.commit()
    with tmpfs(tmp_path / "ro") as folder:
        for suffix in ("", "-wal"):
            shutil.copy(f"{live}{suffix}", folder / f"callgate.db{suffix}")
        writer.close()
        seal(folder)
        with pytest.raises(StoreError, match="needs a writable folder"):
            await open_store(str(folder / "callgate.db"), read_only=True)


async def test_read_only_refuses_an_older_schema_and_leaves_it_as_it_is(tmp_path):
    path = tmp_path / "previous.db"
    shutil.copy(PREVIOUS, path)
    before = path.read_bytes()
    with pytest.raises(StoreError) as refused:
        await open_store(str(path), read_only=True)
    message = str(refused.value)
    assert f"this callgate reads version {newest_schema_version(str(path))}" in message
    assert "callgate db migrate" in message
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["previous.db"]


async def test_read_only_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "newer.db"
    await a_store_with_a_consent(path)
    newer = newest_schema_version(str(path)) + 1
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {newer}")
    with pytest.raises(StoreError, match=f"version {newer}.* newer"):
        await open_store(str(path), read_only=True)


async def test_read_only_never_creates_a_file(tmp_path):
    path = tmp_path / "missing.db"
    with pytest.raises(StoreError, match="cannot open the store"):
        await open_store(str(path), read_only=True)
    assert not path.exists()


async def test_read_only_on_postgresql_migrates_nothing_and_checks_the_schema(postgres):
    url = postgres.new_database()
    await (await open_store(url)).close()
    store = await open_store(url, read_only=True)
    await store.close()
    newest = newest_schema_version(url)
    import asyncpg

    db = await asyncpg.connect(url)
    try:
        await db.execute("DELETE FROM schema_version WHERE version = $1", newest)
        with pytest.raises(StoreError, match=f"version {newest - 1}"):
            await open_store(url, read_only=True)
        assert await db.fetchval("SELECT max(version) FROM schema_version") == newest - 1
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mysql://user:secret@host/db", "mysql://user:***@host/db"),
        ("postgresql://user:p@ss@host/db", "postgresql://user:***@host/db"),
        (
            "postgresql://user@host/db?password=secret&x=1",
            "postgresql://user@host/db?password=***&x=1",
        ),
        ("/var/lib/callgate/callgate.db", "/var/lib/callgate/callgate.db"),
        ("postgresql://h/db?Password=secret", "postgresql://h/db?Password=***"),
        ("postgresql://h/db?x=1&sslpassword=secret", "postgresql://h/db?x=1&sslpassword=***"),
        ("postgresql://h/db?%70assword=secret", "postgresql://h/db?%70assword=***"),
        ("http://127.0.0.1:8088?api_key=user:secret&x=1", "http://127.0.0.1:8088?api_key=***&x=1"),
    ],
)
def test_safe_url_hides_passwords(url, masked):
    from callgate.store import safe_url  # one masking, for the store's errors and the CLI

    assert safe_url(url) == masked


async def test_an_unsupported_url_does_not_show_its_password():
    with pytest.raises(StoreError, match="unsupported store URL") as refused:
        await open_store("mysql://user:secret@host/db")
    assert "secret" not in str(refused.value)


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw@host:abc/db", "postgresql://u:pw@[::1/db",
            "postgresql://u:pw@127.0.0.1:1/db?sslmode=bogus",
            "postgresql://u:pw@127.0.0.1:99999/db"],
)  # fmt: skip
async def test_a_malformed_postgresql_url_is_a_store_error_without_its_password(url):
    with pytest.raises(StoreError, match="invalid PostgreSQL URL") as refused:
        await open_store(url)
    assert "pw" not in str(refused.value)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
async def test_a_store_path_that_is_no_regular_file_is_refused_at_once(tmp_path, kind):
    """A FIFO would block SQLite's open forever, and the gate with it."""
    path = tmp_path / "store.db"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    async with asyncio.timeout(5):
        with pytest.raises(StoreError, match="not a regular file"):
            await open_store(str(path))
