"""`callrec db migrate`: apply pending schema migrations (also done at every service start)."""

from __future__ import annotations

import argparse
import asyncio

from controller.commands._common import config_from_args
from storage import db


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="database maintenance")
    dbsub = p.add_subparsers(dest="db_command", metavar="SUBCOMMAND", required=True)
    m = dbsub.add_parser("migrate", help="apply pending migrations (idempotent)")
    m.set_defaults(handler=_migrate)


def _migrate(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)

    async def go() -> list[str]:
        dsn = await db.resolve_dsn(cfg.database.url, cfg.pgdata_dir)
        conn = await db.connect(dsn)
        try:
            return await db.migrate(conn)
        finally:
            await conn.close()

    applied = asyncio.run(go())
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0
