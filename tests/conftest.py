"""Shared fixtures: a throw-away PostgreSQL database per test session on the real server.

`CALLREC_TEST_DATABASE_URL` points at a server (default: the local one at 127.0.0.1:5432); a fresh
database `callrec_test_<random>` is created, migrated, and dropped at the end of the session.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from storage import db

SERVER_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SHARED_FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
async def db_dsn() -> AsyncIterator[str]:
    """DSN of a migrated, throw-away database for this test session."""
    name = f"callrec_test_{secrets.token_hex(4)}"
    try:
        admin = await asyncpg.connect(SERVER_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as e:
        pytest.fail(
            f"PostgreSQL test server not reachable at {SERVER_DSN}: {e} (start it or set CALLREC_TEST_DATABASE_URL)"
        )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = _with_database(SERVER_DSN, name)
    conn = await db.connect(dsn)
    try:
        await db.migrate(conn)
    finally:
        await conn.close()
    yield dsn
    admin = await asyncpg.connect(SERVER_DSN)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(db_dsn, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture
async def fresh_db(db_dsn: str) -> AsyncIterator[str]:
    """A DSN of its own, freshly migrated, for tests that need an empty database."""
    name = f"callrec_t_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(SERVER_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = _with_database(SERVER_DSN, name)
    conn = await db.connect(dsn)
    await db.migrate(conn)
    await conn.close()
    yield dsn
    admin = await asyncpg.connect(SERVER_DSN)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()
