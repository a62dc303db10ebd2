"""`callrec erase --number N [--dry-run]`: GDPR erasure of every recording of a customer number."""

from __future__ import annotations

import argparse
import asyncio

from controller.commands._common import config_from_args, open_pool
from controller.commands._storage_cli import fail
from controller.numbering import InvalidNumber, normalize_e164, search_forms
from storage import repo
from storage.backends.locations import StorageLocations
from storage.erasure import ErasureReport, erase_number


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("erase", help="erase all recordings of a customer number (GDPR); legal hold blocks it")
    p.add_argument("--number", required=True, help="the customer's phone number (any format; normalized to E.164)")
    p.add_argument("--dry-run", action="store_true", help="only list what would be erased and what is refused")
    p.add_argument("--request", default="", help="your reference of the erasure request (kept in the audit log)")
    p.set_defaults(handler=_erase)


def _erase(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)

    async def go() -> ErasureReport | str:
        async with open_pool(cfg) as pool:
            country = await pool.fetchval("SELECT value FROM app_settings WHERE key = $1", repo.DEFAULT_COUNTRY_KEY)
            try:
                number = normalize_e164(args.number, country or "US")
            except InvalidNumber as e:
                return str(e)
            return await erase_number(
                pool,
                StorageLocations.from_config(cfg),
                number,
                dry_run=args.dry_run,
                request=args.request,
                spellings=search_forms(number, country or "US"),
            )

    report = asyncio.run(go())
    if isinstance(report, str):
        fail(report)
        return 2
    verb = "would erase" if report.dry_run else "erased"
    for rid in report.erased:
        print(f"{verb} {rid}")
    for rid, why in report.refused:
        print(f"refused {rid}: {why}")
    for rid, err in report.errors:
        print(f"error {rid}: {err}")
    print(
        f"{report.number}: {verb} {len(report.erased)} recording(s), refused {len(report.refused)},"
        f" errors {len(report.errors)}" + (" (dry run: nothing deleted)" if report.dry_run else "")
    )
    return 0 if report.ok else 1
