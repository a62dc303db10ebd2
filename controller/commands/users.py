"""`callrec users add|list|revoke|token`: API users and their bearer tokens.

A token is printed exactly once, when created; only its hash is stored. Permissions belong to the
user's role (`callrec roles`); `--listen-scope` / `--download-scope` pick a role like `--role` with
those scopes (an existing one that grants exactly that, or a new one named after it).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from controller.access.audit import Who, log
from controller.commands._common import config_from_args, open_pool
from storage import users


def cli_actor() -> Who:
    try:
        return Who(f"cli:{getpass.getuser()}")
    except (KeyError, OSError):
        return Who("cli")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("users", help="API users and tokens (add prints the token once)")
    cmds = p.add_subparsers(dest="users_command", metavar="ACTION", required=True)

    add = cmds.add_parser("add", help="create a user and print their bearer token (shown once)")
    add.add_argument("name")
    add.add_argument("--role", required=True, help="a role: admin, supervisor, agent or one you added (callrec roles)")
    add.add_argument("--agent-ext", default="", help="the extension the user answers calls on (needed for agent)")
    add.add_argument("--ring-group", action="append", default=[], help="a ring group the user belongs to (repeat)")
    add.add_argument(
        "--listen-scope",
        default=None,
        help="instead of the role's: all | none | ring_group | agent | ring_group:<id> | agent:<ext> (comma list)",
    )
    add.add_argument("--download-scope", default=None, help="instead of the role's; same forms as --listen-scope")
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
        async with users.transaction(pool) as c:
            user, token = await users.add_user(
                c,
                args.name,
                args.role,
                agent_ext=args.agent_ext,
                listen_scope=args.listen_scope,
                download_scope=args.download_scope,
                ring_groups=args.ring_group,
            )
            await log(c, cli_actor(), "user.create", f"user:{user.name}", new=user.as_dict())
        print(f"user {user.name} (role {user.role})", file=sys.stderr)
        print("token (shown once; store it now):", file=sys.stderr)
        print(token)
        return 0

    return _run(args, work)


def _list(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        rows = await users.list_users(pool)
        print(f"{'NAME':<20} {'ROLE':<24} {'EXT':<8} {'RING GROUPS':<24} {'TOKENS':>6}  STATUS")
        for u in rows:
            status = "disabled" if u.disabled else "active"
            groups = ",".join(u.ring_groups) or "-"
            print(f"{u.name:<20} {u.role:<24} {u.agent_ext:<8} {groups:<24} {u.tokens:>6}  {status}")
        return 0

    return _run(args, work)


def _revoke(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        async with users.transaction(pool) as c:
            n = await users.revoke_user(c, args.name)
            await log(c, cli_actor(), "user.revoke", f"user:{args.name}", new={"disabled": True, "tokens_revoked": n})
        print(f"user {args.name} disabled; {n} token(s) revoked", file=sys.stderr)
        return 0

    return _run(args, work)


def _token(args: argparse.Namespace) -> int:
    async def work(pool) -> int:  # type: ignore[no-untyped-def]
        async with users.transaction(pool) as c:
            token = await users.issue_token(c, args.name)
            await log(c, cli_actor(), "user.token_issue", f"user:{args.name}")
        print("token (shown once; store it now):", file=sys.stderr)
        print(token)
        return 0

    return _run(args, work)
