"""`callrec policy explain`: which settings apply to a call, and where each one comes from."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from controller.commands._common import config_from_args, open_pool
from controller.numbering import InvalidNumber
from controller.policy import explain_call
from storage import repo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="inspect the recording policy")
    psub = p.add_subparsers(dest="policy_command", metavar="SUBCOMMAND", required=True)
    e = psub.add_parser("explain", help="print the effective policy for a call as JSON")
    e.add_argument("--direction", required=True, choices=["inbound", "outbound", "internal"])
    e.add_argument("--number", required=True, help="the account's number: DID (inbound) or caller ID (outbound)")
    e.add_argument("--dialplan", choices=["force", "never"], help="the dialplan hook's callrec_record value")
    e.add_argument("--transfer-to", help="also decide a transfer to this number")
    e.add_argument("--account", help="account when the number is unknown (default: the first PBX node's, or main)")
    e.set_defaults(handler=_explain)


def _explain(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    account = args.account or (cfg.pbx[0].account if cfg.pbx else "main")

    async def go() -> dict:
        async with open_pool(cfg) as pool:
            ps = await repo.load_policy_set(pool)
        return explain_call(
            ps,
            direction=args.direction,
            number=args.number,
            dialplan=args.dialplan,
            transfer_to=args.transfer_to,
            account=account,
        )

    try:
        result = asyncio.run(go())
    except InvalidNumber as e:
        print(f"callrec: --number: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
