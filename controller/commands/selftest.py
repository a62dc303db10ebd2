"""`callrec selftest`: place test calls on a real FreeSWITCH or Asterisk and check the recordings."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

# signals that end a run from outside (`timeout`, a CI job's end, `kill`, a closed terminal); SIGINT
# is asyncio.run's own, which cancels the run the same way
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftest",
        help="originate test calls on a real PBX and check the stored recordings (see dialplan/SELFTEST.md)",
        description="Originates short tone calls inside the PBX (inbound, outbound, pause, external transfer with"
        " the rule off and on), records them through the real chain and checks the stored recordings by FFT."
        " Needs dialplan/freeswitch/callrec_selftest.xml or dialplan/asterisk/callrec-selftest.conf installed."
        " Exit 0 only when every check passes.",
    )
    pbx = p.add_mutually_exclusive_group(required=True)
    pbx.add_argument("--freeswitch", metavar="HOST:PORT", help="FreeSWITCH event socket (ESL)")
    pbx.add_argument("--asterisk", metavar="HOST:PORT", help="Asterisk manager interface (AMI)")
    p.add_argument("--password", help="ESL password (FreeSWITCH)")
    p.add_argument("--username", help="AMI username (Asterisk; needs originate rights)")
    p.add_argument("--secret", help="AMI secret (Asterisk)")
    p.add_argument(
        "--record-dir",
        help="directory the PBX writes recordings to, as the PBX sees it (default for FreeSWITCH: its"
        " recordings_dir; required for Asterisk, e.g. its monitor directory)",
    )
    p.add_argument("--spool-dir", help="the same directory as this machine sees it (default: --record-dir)")
    p.add_argument(
        "--config",
        dest="selftest_config",
        default=argparse.SUPPRESS,
        help="use this callrec.toml's database and storage (default: a temporary embedded PostgreSQL and"
        " temporary keys, nothing left behind)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    p.add_argument("--talk-seconds", type=float, default=3.0, help="talk time per call segment (default 3)")
    p.set_defaults(handler=_selftest)


def _hostport(value: str, default_port: int) -> tuple[str, int]:
    host, _, port = value.rpartition(":") if ":" in value else (value, "", "")
    if not host:
        host, port = value, ""
    try:
        return host, int(port) if port else default_port
    except ValueError:
        raise ValueError(f"{value!r} is not HOST:PORT") from None


def _selftest(args: argparse.Namespace) -> int:
    from controller.selftest import Options, SelftestError, render_table, run

    if args.log_level is None:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        if args.freeswitch:
            if not args.password:
                raise ValueError("--freeswitch needs --password")
            host, port = _hostport(args.freeswitch, 8021)
            opts = Options("freeswitch", host, port, password=args.password)
        else:
            if not args.username or args.secret is None:
                raise ValueError("--asterisk needs --username and --secret")
            host, port = _hostport(args.asterisk, 5038)
            opts = Options("asterisk", host, port, username=args.username, secret=args.secret)
        opts.record_dir = args.record_dir or ""
        opts.spool_dir = args.spool_dir or ""
        opts.config = getattr(args, "selftest_config", None) or args.config
        opts.talk_seconds = args.talk_seconds
        if not opts.record_dir and opts.kind == "freeswitch":
            opts.record_dir = asyncio.run(_fs_recordings_dir(opts))
        report = asyncio.run(_cancelled_by_signals(run(opts)))
    except asyncio.CancelledError:
        if args.json:
            print(json.dumps({"ok": False, "error": "terminated"}))
        print("callrec selftest: terminated; temporary database, keys and spool directory removed", file=sys.stderr)
        return 2
    except (ValueError, SelftestError, OSError) as e:
        if args.json:
            print(json.dumps({"ok": False, "error": str(e)}))
        print(f"callrec selftest: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        print(render_table(report))
    return 0 if report.ok else 1


async def _cancelled_by_signals(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro`, cancelled by SIGTERM / SIGHUP, so the run's own clean-up (stop and delete the
    embedded database, remove the temporary keys and the spool sub-directory) happens as at the end of
    a normal run; the default action of these signals ends the process at once and leaves them."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(coro)
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    finally:
        for sig in STOP_SIGNALS:
            loop.remove_signal_handler(sig)


async def _fs_recordings_dir(opts) -> str:  # type: ignore[no-untyped-def]
    """FreeSWITCH knows where it records: `global_getvar recordings_dir`."""
    from controller.selftest import SelftestError
    from controller.selftest_freeswitch import EslClient

    esl = EslClient(opts.host, opts.port, opts.password)
    try:
        await asyncio.wait_for(esl.connect(), 10)
        value = (await esl.command("api global_getvar recordings_dir")).strip()
    finally:
        await esl.close()
    if not value or value.startswith("-ERR"):
        raise SelftestError("FreeSWITCH did not tell its recordings_dir: give --record-dir")
    return value
