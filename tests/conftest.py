"""Shared fixtures: throw-away PostgreSQL databases on a real server.

The server is `CALLREC_TEST_DATABASE_URL`, else the local one at 127.0.0.1:5432, else (a fresh machine
without one) the embedded PostgreSQL wheel. A database `callrec_test_<random>` is created, migrated
and dropped at the end of the session.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from storage import db

SLOW_TEST_TIMEOUT = 3 * 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Drills and soak runs (`-m slow`) may run for long; the default per-test timeout is for the rest."""
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))


SERVER_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


async def _create_migrated(server: str, name: str) -> str:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(server, name)
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    return dsn


async def _drop(server: str, name: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def server_dsn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """DSN of the PostgreSQL server (maintenance database) the tests create their databases on."""
    try:
        conn = await asyncpg.connect(SERVER_DSN, timeout=5)
        await conn.close()
        return SERVER_DSN
    except (OSError, asyncpg.PostgresError) as e:
        if os.environ.get("CALLREC_TEST_DATABASE_URL"):
            pytest.fail(f"PostgreSQL test server not reachable at {SERVER_DSN}: {e}")
    # Outside pytest's 0700 temp root: as root, the embedded server runs as its own system user.
    base = Path(tempfile.mkdtemp(prefix="callrec-test-pg-"))
    os.chmod(base, 0o755)
    return db.start_embedded(base / "pgdata", database="postgres")


@pytest.fixture(scope="session")
async def db_dsn(server_dsn: str) -> AsyncIterator[str]:
    """DSN of a migrated, throw-away database shared by this test session."""
    name = f"callrec_test_{secrets.token_hex(4)}"
    dsn = await _create_migrated(server_dsn, name)
    yield dsn
    await _drop(server_dsn, name)


@pytest.fixture(scope="session")
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(db_dsn, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture
async def fresh_db(server_dsn: str) -> AsyncIterator[str]:
    """A DSN of its own, freshly migrated, for tests that need an empty database."""
    name = f"callrec_t_{secrets.token_hex(4)}"
    dsn = await _create_migrated(server_dsn, name)
    yield dsn
    await _drop(server_dsn, name)
