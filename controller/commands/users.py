"""`callrec users add|list|revoke|token`: API users and their bearer tokens.

A token is printed exactly once, when created; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from controller.commands._common import config_from_args, open_pool
from storage import users


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("users", help="API users and tokens (add prints the token once)")
    cmds = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = cmds.add_parser("add", help="create a user and print their bearer token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("admin", "supervisor", "agent"))
    add.add_argument("--agent-ext", default="", help="the agent's extension (required for --role agent)")
    add.add_argument(
        "--listen-scope", default="all", help="all | none | ring_group:<id> | agent:<ext> (comma list); default all"
    )
    add.add_argument("--download-scope", default="none", help="same forms as --listen-scope; default none")
    add.set_defaults(handler=_add)

    ls = cmds.add_parser("list", help="list users (never tokens)")
    ls.set_defaults(handler=_list)

    rv = cmds.add_parser("revoke", help="disable a user and revoke all their tokens")
    rv.add_argument("name")
    rv.set_defaults(handler=_revoke)

    tk = cmds.add_parser("token", help="issue an additional token for an existing user (printed once)")
    tk.add_argument("name")
    tk.set_defaults(handler=_token)


def _run(args: argparse.Namespace, work) -> int:  # type: ignore[no-untyped-def]
    cfg = config_from_args(args)

    async def main() -> int:
        async with open_pool(cfg) as pool:
            return int(await work(pool))

    try:
        return asyncio.run(main())
    except users.UserError as e:
        print(f"callrec users: {e}", file=sys.stderr)
        return 2


def _add(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        user, token = await users.add_user(
            pool,
            args.name,
            args.role,
            agent_ext=args.agent_ext,
            listen_scope=args.listen_scope,
            download_scope=args.download_scope,
        )
        print(
            f"user {user.name} ({user.role}) listen={user.listen_scope} download={user.download_scope}",
            file=sys.stderr,
        )
        print("token (shown once; store it now):", file=sys.stderr)
        print(token)
        return 0

    return _run(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        rows = await users.list_users(pool)
        print(f"{'NAME':<20} {'ROLE':<10} {'EXT':<8} {'LISTEN':<24} {'DOWNLOAD':<24} {'TOKENS':>6}  STATUS")
        for u in rows:
            status = "disabled" if u.disabled else "active"
            print(
                f"{u.name:<20} {u.role:<10} {u.agent_ext:<8} {u.listen_scope:<24} {u.download_scope:<24}"
                f" {u.tokens:>6}  {status}"
            )
        return 0

    return _run(args, work)


def _revoke(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        n = await users.revoke_user(pool, args.name)
        print(f"user {args.name} disabled; {n} token(s) revoked", file=sys.stderr)
        return 0

    return _run(args, work)


def _token(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        token = await users.issue_token(pool, args.name)
        print("token (shown once; store it now):", file=sys.stderr)
        print(token)
        return 0

    return _run(args, work)
