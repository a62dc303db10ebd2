"""`callrec import-archive FILE.tar`: restore an export archive into this installation."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail, progress_bar
from storage import archive, crypto
from storage.backends.base import open_backend


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-archive", help="restore recordings from an export archive")
    p.add_argument("archive", help="FILE.tar written by `callrec export`")
    p.add_argument("--public-key", help="the exporting installation's manifest key: reject anything it did not sign")
    p.set_defaults(handler=_import)


def _import(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        trusted = crypto.load_public_key(args.public_key) if args.public_key else None
    except crypto.KeyFileError as e:
        return fail(str(e))
    update, close = progress_bar("importing")

    async def go() -> archive.ImportReport:
        async with open_pool(cfg) as pool:
            return await archive.import_archive(
                pool, open_backend(cfg.storage, cfg.storage_path), Path(args.archive), trusted=trusted, progress=update
            )

    try:
        report = asyncio.run(go())
    except (ValueError, OSError) as e:
        return fail(f"cannot import {args.archive}: {e}")
    finally:
        close()
    print(f"imported {len(report.imported)}, already present {len(report.skipped)}, rejected {len(report.rejected)}")
    for r in report.rejected:
        print(f"  rejected: {r}")
    return 1 if report.rejected else 0
