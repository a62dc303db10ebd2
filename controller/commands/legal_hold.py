"""`callrec legal-hold ID on|off [--reason TEXT]`: place or lift a legal hold on a recording."""

from __future__ import annotations

import argparse
import asyncio

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail
from storage.backends.base import BackendError
from storage.backends.locations import StorageLocations
from storage.retention import HoldResult, set_legal_hold


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("legal-hold", help="place or lift a legal hold (blocks purge and erasure; S3 Object Lock hold)")
    p.add_argument("recording", metavar="ID", help="recording id")
    p.add_argument("state", choices=("on", "off"), help="on: place the hold; off: lift it")
    p.add_argument("--reason", default="", help="why (case or matter reference; kept in the audit log)")
    p.set_defaults(handler=_hold)


def _hold(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)

    async def go() -> HoldResult:
        async with open_pool(cfg) as pool:
            return await set_legal_hold(
                pool,
                StorageLocations.from_config(cfg),
                args.recording,
                args.state == "on",
                actor="cli:legal-hold",
                reason=args.reason,
            )

    try:
        result = asyncio.run(go())
    except LookupError as e:
        return fail(str(e))
    except (BackendError, ValueError) as e:
        return fail(f"legal hold not changed: {e}")
    where = " (also as an S3 Object Lock legal hold on its objects)" if result.in_store else ""
    print(f"{result.recording_id}: legal hold {'ON' if result.on else 'OFF'}{where}")
    return 0
