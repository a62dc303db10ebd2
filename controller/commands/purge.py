"""`callrec purge [--dry-run]`: delete recordings past their retention date (legal hold blocks it)."""

from __future__ import annotations

import argparse
import asyncio

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import progress_bar
from storage.backends.locations import StorageLocations
from storage.retention import PurgeReport, purge_expired


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("purge", help="delete recordings whose retention date has passed")
    p.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    p.set_defaults(handler=_purge)


def _purge(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    update, close = progress_bar("purging", unit="rec")

    async def go() -> PurgeReport:
        async with open_pool(cfg) as pool:
            return await purge_expired(
                pool,
                StorageLocations.from_config(cfg),
                dry_run=args.dry_run,
                actor="cli:purge",
                require_backup=cfg.retention.require_verified_backup,
                progress=update,
            )

    try:
        report = asyncio.run(go())
    finally:
        close()
    if args.dry_run:
        for rid in report.candidates:
            print(f"would purge {rid}")
        print(f"{len(report.candidates)} recording(s) past retention; {report.held} kept by legal hold (dry run)")
        return 0
    worm = f" {len(report.locked)} kept by WORM lock;" if report.locked else ""
    errors = len(report.errors)
    print(f"purged {len(report.purged)} recording(s); {report.held} kept by legal hold;{worm} {errors} error(s)")
    for lk in report.locked:
        print(f"  kept: {lk}")
    if report.not_backed_up:
        print(f"{len(report.not_backed_up)} kept: not in a verified backup (retention.require_verified_backup)")
    for e in report.errors:
        print(f"  error: {e}")
    return 1 if report.errors else 0
