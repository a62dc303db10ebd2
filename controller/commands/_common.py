"""Helpers shared by CLI commands: loading the config and opening the database."""

from __future__ import annotations

import argparse
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from controller.config import Config, load_config
from storage import db


def config_from_args(args: argparse.Namespace, *, service: bool = False) -> Config:
    """The validated config; `service=True` also checks the key material the service needs."""
    path = args.config or os.environ.get("CALLREC_CONFIG") or None
    return load_config(path, service=service)


@asynccontextmanager
async def open_pool(cfg: Config, *, migrate: bool = True) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the configured database (or the embedded one), migrated unless told otherwise."""
    dsn = await db.resolve_dsn(cfg.database.url, cfg.pgdata_dir)
    pool = await db.create_pool(dsn, min_size=cfg.database.pool_min, max_size=cfg.database.pool_max)
    try:
        if migrate:
            async with pool.acquire() as conn:
                await db.migrate(conn)
        yield pool
    finally:
        await pool.close()
