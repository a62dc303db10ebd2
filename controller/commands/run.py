"""`callrec run`: the service, from --config callrec.toml and CALLREC_* environment."""

from __future__ import annotations

import argparse

from controller.commands._common import config_from_args
from controller.service import run_forever


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the recording service")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, service=True)  # every problem reported at once, before anything is touched
    return run_forever(cfg)
