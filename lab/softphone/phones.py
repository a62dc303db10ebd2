#!/usr/bin/env python3
"""Four baresip softphones for the callrec lab, and the calls they place through a real PBX.

Standard library only, so it runs unchanged in the softphone container and on any Debian host with
`apt-get install baresip-core`. Every socket is on loopback (or the compose network namespace).

    phones.py setup --pbx freeswitch|asterisk --dir DIR [--pbx-host H] [--pbx-port P]
                                                         render config + accounts + tone WAVs
    phones.py start --dir DIR [--foreground]             start the four phones (pids in DIR/pids.json)
    phones.py stop --dir DIR
    phones.py dial FROM TO --dir DIR                     e.g. dial 1001 2001
    phones.py answer USER | hangup USER --dir DIR
    phones.py transfer USER TARGET --dir DIR             blind transfer (SIP REFER) by USER's phone
    phones.py place-calls --dir DIR [--scenario inbound|outbound|blind-transfer|all]

The phones (tones per the project's convention; 3001 keeps the 1000 Hz of the real captures so a
second agent is told apart from the external party):

    1001 customer       440 Hz   answers manually (it only dials)
    2001 agent          880 Hz   auto-answer
    3001 second agent  1000 Hz   auto-answer
    9001 external/PSTN  660 Hz   answers manually: `place-calls` accepts after 1.5 s of real ringing

Every phone binds ports the OS picks (SIP and ctrl_tcp are picked by `setup`, again by `start` if
one was taken since, and written to DIR/phones.json); only the PBX's SIP port is fixed, by the PBX.

The parts, one concern each (this file is the command line and the API the tests import):
ctrl_tcp.py (baresip's control protocol), phone_config.py (who the phones are, their ports and
baresip files), phone_procs.py (start/stop by pid, connect), call_scenarios.py (place-calls).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

if __package__:
    from .call_scenarios import CLOSED, ESTABLISHED, INCOMING, SCENARIOS, place_calls, ring_then_accept
    from .ctrl_tcp import NetstringDecoder, Phone, PhoneError, netstring
    from .phone_config import (
        APP_MODULES,
        MODULES,
        PBXES,
        PHONES,
        PbxSpec,
        PhonePorts,
        PhoneSpec,
        assign_ports,
        ephemeral_range,
        load_manifest,
        os_picked_ports,
        phone_entry,
        ports_free,
        render_account,
        render_config,
        setup,
        sip_uri,
        write_tone,
    )
    from .phone_procs import (
        baresip_binary,
        connect,
        one_command,
        registered,
        running_pids,
        start,
        stop,
        wait_registered,
    )
else:  # run as a script: the softphone container mounts only this directory
    from call_scenarios import (  # type: ignore[no-redef]
        CLOSED,
        ESTABLISHED,
        INCOMING,
        SCENARIOS,
        place_calls,
        ring_then_accept,
    )
    from ctrl_tcp import NetstringDecoder, Phone, PhoneError, netstring  # type: ignore[no-redef]
    from phone_config import (  # type: ignore[no-redef]
        APP_MODULES,
        MODULES,
        PBXES,
        PHONES,
        PbxSpec,
        PhonePorts,
        PhoneSpec,
        assign_ports,
        ephemeral_range,
        load_manifest,
        os_picked_ports,
        phone_entry,
        ports_free,
        render_account,
        render_config,
        setup,
        sip_uri,
        write_tone,
    )
    from phone_procs import (  # type: ignore[no-redef]
        baresip_binary,
        connect,
        one_command,
        registered,
        running_pids,
        start,
        stop,
        wait_registered,
    )

__all__ = [
    "APP_MODULES",
    "CLOSED",
    "ESTABLISHED",
    "INCOMING",
    "MODULES",
    "PBXES",
    "PHONES",
    "SCENARIOS",
    "NetstringDecoder",
    "PbxSpec",
    "Phone",
    "PhoneError",
    "PhonePorts",
    "PhoneSpec",
    "assign_ports",
    "baresip_binary",
    "connect",
    "ephemeral_range",
    "load_manifest",
    "main",
    "netstring",
    "one_command",
    "os_picked_ports",
    "phone_entry",
    "place_calls",
    "ports_free",
    "registered",
    "render_account",
    "render_config",
    "ring_then_accept",
    "running_pids",
    "setup",
    "sip_uri",
    "start",
    "stop",
    "wait_registered",
    "write_tone",
]


def main(argv: list[str] | None = None) -> int:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--dir", type=Path, default=Path(os.environ.get("CALLREC_PHONES_DIR", "phones")), help="the phones' directory"
    )
    parser = argparse.ArgumentParser(prog="phones.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    add = lambda name, **kw: sub.add_parser(name, parents=[common], **kw)  # noqa: E731
    s = add("setup", help="render baresip config + accounts + tone WAVs for the four phones")
    s.add_argument("--pbx", choices=sorted(PBXES), required=True)
    s.add_argument("--pbx-host", default="127.0.0.1", help="where the PBX's SIP port is (default 127.0.0.1)")
    s.add_argument(
        "--pbx-port", type=int, default=None, help="the PBX's SIP port (default: 5080 FreeSWITCH, 5060 Asterisk)"
    )
    s.add_argument("--bind", default="127.0.0.1", help="address the phones bind (default 127.0.0.1)")
    s.add_argument("--module-path", default="", help="baresip modules (default /usr/lib/baresip/modules)")
    s = add("start", help="start the phones")
    s.add_argument("--baresip", default="", help="baresip binary (default: from PATH)")
    s.add_argument("--foreground", action="store_true", help="stay until SIGTERM/SIGINT, then stop the phones")
    add("stop", help="stop the phones started by `start`")
    s = add("dial", help="FROM dials TO through the PBX")
    s.add_argument("from_user")
    s.add_argument("to")
    for name in ("answer", "hangup"):
        s = add(name, help=f"{name} the current call of USER")
        s.add_argument("user")
    s = add("transfer", help="USER's phone blind-transfers its call to TARGET (SIP REFER)")
    s.add_argument("user")
    s.add_argument("target")
    s = add("place-calls", help="inbound, outbound and blind-transfer calls through the PBX")
    s.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    s.add_argument("--talk", type=float, default=4.0, help="seconds of talk per call segment")
    s.add_argument("--register-timeout", type=float, default=15.0, help="seconds to wait for the phones to register")
    args = parser.parse_args(argv)
    out: Path = args.dir.resolve()
    try:
        if args.cmd == "setup":
            m = setup(args.pbx, out, args.pbx_host, args.bind, args.module_path, args.pbx_port)
            print(f"{len(m['phones'])} phones for {m['pbx']} in {out.resolve()}")
        elif args.cmd == "start":
            pids = start(out, args.baresip)
            print(json.dumps(pids))
            if args.foreground:
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
                try:
                    while True:
                        time.sleep(3600)
                except (KeyboardInterrupt, SystemExit):
                    pass
                finally:
                    stop(out)
        elif args.cmd == "stop":
            print(json.dumps(stop(out)))
        elif args.cmd == "dial":
            print(one_command(out, args.from_user, "dial", sip_uri(load_manifest(out), args.to)))
        elif args.cmd == "answer":
            print(one_command(out, args.user, "accept"))
        elif args.cmd == "hangup":
            print(one_command(out, args.user, "hangup"))
        elif args.cmd == "transfer":
            print(one_command(out, args.user, "transfer", sip_uri(load_manifest(out), args.target)))
        elif args.cmd == "place-calls":
            names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
            results = place_calls(out, names, args.talk, args.register_timeout)
            print(json.dumps(results, indent=2))
            return 0 if all(r["ok"] for r in results) else 1
    except PhoneError as e:
        print(f"phones.py: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
