"""`callrec backup run|list`: a backup run now (as the schedule would), and the recorded runs."""

from __future__ import annotations

import argparse
import asyncio
import json

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail
from storage.backup import BackupError, BackupRun, run_backup


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="scheduled backups: run one now, or list the runs")
    bsub = p.add_subparsers(dest="backup_command", required=True)
    run = bsub.add_parser("run", help="archive the rolling window into the backup location now and verify it")
    run.set_defaults(handler=_run)
    ls = bsub.add_parser("list", help="the recorded backup runs, newest first")
    ls.add_argument("--limit", type=int, default=20)
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(handler=_list)


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if cfg.backup.storage is None:
        return fail("no backup location configured: add a [backup.storage] table to callrec.toml")

    async def go() -> BackupRun | None:
        async with open_pool(cfg) as pool:
            return await run_backup(pool, cfg, node="cli")

    try:
        run = asyncio.run(go())
    except BackupError as e:
        return fail(str(e))
    if run is None:
        return fail("another backup run is in progress; nothing done")
    if run.state != "verified":
        return fail(f"backup run {run.id} FAILED: {run.error}")
    print(f"backup run {run.id}: {run.recordings} recording(s) verified in {run.destination}")
    print(f"  archive sha256 {run.archive_sha256}")
    return 0


def _list(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)

    async def go() -> list[dict]:
        async with open_pool(cfg) as pool:
            rows = await pool.fetch("SELECT * FROM backup_runs ORDER BY id DESC LIMIT $1", args.limit)
            return [dict(r) for r in rows]

    runs = asyncio.run(go())
    if args.json:
        print(json.dumps(runs, default=str, indent=2))
        return 0
    for r in runs:
        what = r["destination"] if r["state"] == "verified" else r["error"]
        print(f"{r['id']:>6}  {r['started_at']:%Y-%m-%d %H:%M}  {r['state']:<8}  {r['recordings']:>6}  {what}")
    return 0
