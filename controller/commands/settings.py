"""`callrec settings import FILE.toml` / `callrec settings export`: policy kept in files.

Import validates the whole file before writing anything, then writes it in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from controller.access.audit import log
from controller.commands._common import config_from_args, open_pool
from controller.commands.users import cli_actor
from controller.policy import PolicyError
from controller.settings_file import dump_settings, parse_settings_file
from storage import repo
from storage import ring_groups as ring_groups_repo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "settings", help="import or export account settings, numbering plans, number overrides and ring groups"
    )
    ssub = p.add_subparsers(dest="settings_command", metavar="SUBCOMMAND", required=True)
    imp = ssub.add_parser("import", help="validate FILE.toml, then write it in one transaction")
    imp.add_argument("file")
    imp.set_defaults(handler=_import)
    exp = ssub.add_parser("export", help="print all settings in the import format")
    exp.add_argument("-o", "--output", help="write to this file instead of stdout")
    exp.set_defaults(handler=_export)


def _import(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    try:
        with open(args.file, encoding="utf-8") as f:
            ps, groups = parse_settings_file(f.read())
    except OSError as e:
        print(f"callrec: cannot read {args.file}: {e.strerror}", file=sys.stderr)
        return 2
    except PolicyError as e:
        print(f"callrec: {args.file}: {e}", file=sys.stderr)
        return 2

    async def go() -> None:
        async with open_pool(cfg) as pool, pool.acquire() as conn, conn.transaction():
            await repo.save_policy_set(conn, ps)
            for old, new in await ring_groups_repo.save_specs(conn, groups or {}):
                await log(
                    conn, cli_actor(), "ring_group.import", f"ring_group:{new.id}",
                    old=old.as_dict() if old else None, new=new.as_dict(),
                )  # fmt: skip

    try:
        asyncio.run(go())
    except PolicyError as e:
        print(f"callrec: {args.file}: {e}", file=sys.stderr)
        return 2
    print(f"imported {len(ps.accounts)} account(s) and {len(ps.numbers)} number(s) from {args.file}")
    if groups is not None:
        print(f"imported {len(groups)} ring group(s) from {args.file}")
    return 0


def _export(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)

    async def go() -> str:
        async with open_pool(cfg) as pool:
            return dump_settings(await repo.load_policy_set(pool), await ring_groups_repo.load_specs(pool))

    text = asyncio.run(go())
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0
