"""`callrec policy explain`: which settings apply to a call, and where each one comes from (JSON)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from controller.commands._common import config_from_args, open_pool
from controller.config import Config
from controller.numbering import InvalidNumber
from controller.policy import PolicySet, explain_call
from storage import repo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="inspect the recording policy")
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    e = psub.add_parser("explain", help="print the effective policy for a call as JSON")
    e.add_argument("--direction", required=True, choices=["inbound", "outbound", "internal"])
    e.add_argument(
        "--number",
        required=True,
        help="the account's number: DID (inbound), caller ID (outbound), or an extension (internal)",
    )
    e.add_argument("--dialplan", choices=["force", "never"], help="the dialplan hook's callrec_record value")
    e.add_argument("--transfer-to", help="also decide a transfer to this number")
    e.add_argument("--account", help="account when the number is unknown (default: the first PBX node's, or main)")
    e.set_defaults(handler=_explain)


def known_accounts(ps: PolicySet, cfg: Config) -> list[str]:
    """Accounts a call can have: those with settings, and those the [[pbx]] nodes give their calls
    (`main` when none is configured); the latter use the built-in defaults until settings exist."""
    return sorted(set(ps.accounts) | {p.account for p in cfg.pbx} | (set() if cfg.pbx else {"main"}))


def _explain(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)

    async def go() -> PolicySet:
        async with open_pool(cfg) as pool:
            return await repo.load_policy_set(pool)

    ps = asyncio.run(go())
    known = known_accounts(ps, cfg)
    if args.account is not None and args.account not in known:
        print(f"callrec: --account: unknown account {args.account!r}; known: {', '.join(known)}", file=sys.stderr)
        return 2
    account = args.account or (cfg.pbx[0].account if cfg.pbx else "main")
    try:
        result = explain_call(
            ps,
            direction=args.direction,
            number=args.number,
            dialplan=args.dialplan,
            transfer_to=args.transfer_to,
            account=account,
        )
    except InvalidNumber as e:
        print(f"callrec: --number: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
