"""`callrec roles list|show|add|set|delete`: the permission sets users are given (same rules as the API)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from controller.access import roles as service
from controller.access.errors import AccessError, Invalid
from controller.commands._common import config_from_args, open_pool
from controller.commands.users import cli_actor
from controller.permissions import RIGHTS

_SCOPE_HELP = "all | none | comma list of ring_group, agent, ring_group:<id>, agent:<ext>"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("roles", help="roles: who may view, listen, download, pause and administer")
    cmds = p.add_subparsers(dest="roles_command", metavar="ACTION", required=True)
    ls = cmds.add_parser("list", help="list roles with their scopes, rights and user counts")
    ls.set_defaults(handler=_list)
    show = cmds.add_parser("show", help="one role as JSON")
    show.add_argument("name")
    show.set_defaults(handler=_show)
    for action, helptext in (("add", "create a role (defaults: listen all, download none)"), ("set", "change a role")):
        c = cmds.add_parser(action, help=helptext)
        c.add_argument("name")
        c.add_argument("--description")
        for scope in ("view", "listen", "download", "pause"):
            c.add_argument(f"--{scope}", help=_SCOPE_HELP)
        c.add_argument("--rights", help=f"comma list of {', '.join(RIGHTS)} (empty string: none)")
        c.set_defaults(handler=_add if action == "add" else _set)
    rm = cmds.add_parser("delete", help="delete a custom role that no user has")
    rm.add_argument("name")
    rm.set_defaults(handler=_delete)


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key in ("description", "view", "listen", "download", "pause"):
        if getattr(args, key) is not None:
            data[key] = getattr(args, key)
    if args.rights is not None:
        data["rights"] = [r.strip() for r in args.rights.split(",") if r.strip()]
    return data


def _run(args: argparse.Namespace, work) -> int:  # type: ignore[no-untyped-def]
    cfg = config_from_args(args)

    async def main() -> int:
        async with open_pool(cfg) as pool:
            return int(await work(pool))

    try:
        return asyncio.run(main())
    except Invalid as e:
        print(f"callrec roles: {e.message}", file=sys.stderr)
        return 2
    except AccessError as e:
        print(f"callrec roles: {args.name}: {e.message}", file=sys.stderr)
        return 2


def _list(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        print(f"{'NAME':<24} {'VIEW':<10} {'LISTEN':<16} {'DOWNLOAD':<16} {'PAUSE':<10} {'USERS':>5}  RIGHTS")
        for r in await service.list_roles(pool):
            print(
                f"{r['name']:<24} {r['view']:<10} {r['listen']:<16} {r['download']:<16} {r['pause']:<10}"
                f" {r['users']:>5}  {','.join(r['rights']) or '-'}"
            )
        return 0

    return _run(args, work)


def _show(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        print(json.dumps(await service.get_role(pool, args.name), indent=2))
        return 0

    return _run(args, work)


def _add(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        role = await service.create_role(pool, cli_actor(), {"name": args.name, **_fields(args)})
        print(json.dumps(role, indent=2))
        return 0

    return _run(args, work)


def _set(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        role = await service.update_role(pool, cli_actor(), args.name, _fields(args))
        print(json.dumps(role, indent=2))
        return 0

    return _run(args, work)


def _delete(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        await service.delete_role(pool, cli_actor(), args.name)
        print(f"role {args.name} deleted", file=sys.stderr)
        return 0

    return _run(args, work)
