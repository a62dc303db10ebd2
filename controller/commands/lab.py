"""`callrec lab`: the demo (simulated FreeSWITCH + Asterisk, the real service, a stream of calls)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="run the demo: simulated PBXes, the service, the web page and a stream of calls")
    p.add_argument("--calls", type=int, help="place this many calls of the mix, wait until finalized, then exit")
    p.add_argument("--json", action="store_true", help="with --calls: print one JSON document (for scripts and CI)")
    p.add_argument(
        "--state-dir", help="where the lab keeps its database, keys and recordings (default: a new temp dir)"
    )
    p.add_argument("--port", type=int, default=8080, help="API/page port (0 = any free port; default 8080)")
    p.add_argument("--bind", default="127.0.0.1", help="API bind address (default 127.0.0.1)")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between new calls in the live demo")
    p.add_argument("--concurrency", type=int, default=6, help="calls in progress at once")
    p.set_defaults(handler=_lab)


def _lab(args: argparse.Namespace) -> int:
    if args.json and args.calls is None:
        print("callrec: --json needs --calls N")
        return 2
    from lab.demo import run  # the simulators are only needed here

    return run(args)
