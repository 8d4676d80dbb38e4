"""Fixtures shared by the suites: the store under test, on each backend."""

from __future__ import annotations

import os

import pytest

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres():
    from harness.postgres import PostgresServer, postgres_bin

    if postgres_bin() is None:
        if os.environ.get("CALLGATE_SKIP_POSTGRES"):
            pytest.skip("CALLGATE_SKIP_POSTGRES is set")
        pytest.fail(
            "PostgreSQL is missing: apt-get install postgresql (or CALLGATE_SKIP_POSTGRES=1)"
        )
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A fresh, empty store: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "callgate.db")
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
async def store(store_url):
    """That store, opened (and migrated), closed after the test."""
    from callgate.store import open_store

    opened = await open_store(store_url)
    yield opened
    await opened.close()
