"""End-to-end recording-start latency on a REAL PBX (issue #15 §1), beside the controller-only figure.

    .venv/bin/python -m lab.bench.real_pbx_latency --freeswitch 127.0.0.1:8021:PASSWORD
        [--calls 100] [--blocks 2] [--rate 3] [--talk 2] [--dsn postgresql://…]
    .venv/bin/python -m lab.bench.real_pbx_latency --asterisk 127.0.0.1:5038:USER:SECRET --asterisk-lab U:S …

FreeSWITCH below; Asterisk (MixMonitorStart - BridgeEnter, AMI Timestamps) in lab.bench.real_pbx_latency_ami.

What it measures, per call: e2e = RECORD_START - CHANNEL_BRIDGE, both FreeSWITCH's own
`Event-Date-Timestamp` (µs, the PBX's clock, stamped when the PBX creates each event) of the recorded
leg (Bridge-A). It holds everything between the two: the event queued to the Event Socket, read and
decided by the client, `uuid_record … start` written, read and executed by FreeSWITCH, the media bug
added and its RECORD_START created. The timestamps come from a SEPARATE ESL listener connection of
this bench, so how fast the listener itself reads does not count. FreeSWITCH stamps an event with its
timer tick (`runtime.timestamp`): 20 ms by default, which makes e2e a whole number of 20 ms steps; with
`<param name="1ms-timer" value="true"/>` in switch.conf the stamps are 1 ms apart. The two "of it" rows
set the recorder's wall clock at its `uuid_record` write against those stamps (one host, one clock),
splitting e2e into the recorder's part (the event through the socket, parsed, decided, command written)
and the PBX's (the command read and run: media bug, recording thread started, RECORD_START).

Who records, in alternated blocks of `--calls / --blocks` calls each (order flipped every block):
- callrec: the service as `callrec run` composes it (lab.bench.load_service in a child process: real
  PostgreSQL in a throw-away database, finalize held so only the recording start runs; default
  policy records inbound calls). Its probes also give the controller-only figure: the driver's reader
  handing over the parsed CHANNEL_BRIDGE → `uuid_record` written to the socket.
- anchor: a bare `greenswitch.InboundESL` (lab.bench.anchors.run_freeswitch) doing the same
  `uuid_record` on every CHANNEL_BRIDGE, with the same probe for its controller-only figure.

Calls are placed by this bench over ESL inside the PBX, as tests/freeswitch/real_pbx/harness.py does:
a loopback handset (440 Hz) dials the test DID +15557000101 in context `callrec_test` (routes
tests/freeswitch/real_pbx/callrec_test.xml, our hook included), agent 2001 rings 1 s and answers;
the handset is hung up `--talk` seconds after the bridge. Before each block, warm-up calls run until
one is recorded (the recorder is connected and warm); they are not counted. The PBX is held with the
real-PBX tests' lock (tests.real_pbx_common.one_run_at_a_time: same file), so a test run and this
bench take turns. Prints a table; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pyrage import x25519

from controller.drivers.esl_protocol import EslProtocol, connect
from lab.pbx_turn import pbx_turn

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DSN = os.environ.get("CALLREC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ROUTES, PHONES = "callrec_test", "callrec_test_phones"
DID = "+15557000101"  # inbound DID → agent 2001 (rings 1 s, answers)
TAG = "callrec_bench_call"  # set on the handset, copied to the PBX-side loopback leg that bridges
EVENTS = "CHANNEL_BRIDGE RECORD_START CHANNEL_HANGUP_COMPLETE"


class Listener:
    """The bench's own connection to the PBX: places the calls and keeps the PBX's timestamps of each
    call's bridge and recording start (µs). Subclasses: EslListener here, AmiListener in
    lab.bench.real_pbx_latency_ami."""

    bridge_event, record_event, command = "CHANNEL_BRIDGE", "RECORD_START", "uuid_record"

    def __init__(self) -> None:
        self.bridge: dict[str, tuple[str, int]] = {}  # call tag → (recorded leg / call key, µs)
        self.record: dict[str, int] = {}  # leg / call key → µs of its first recording start
        self.gone: set[str] = set()  # channels hung up
        self.changed = asyncio.Event()

    async def open(self) -> str:
        """Connect and log in; the PBX's version."""
        raise NotImplementedError

    async def call(self, talk: float, *, wait_record: float = 0.0) -> str:
        """One inbound call, `talk` s from the bridge to the hangup; its tag once it has ended."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def pbx_toml(self) -> str:
        """The `[[pbx]]` table of the service's callrec.toml."""
        raise NotImplementedError

    def anchor_argv(self, record_dir: Path, out: Path) -> list[str]:
        raise NotImplementedError

    async def until(self, cond: Any, within: float) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while not cond():
            self.changed.clear()
            left = end - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


class EslListener(Listener):
    """FreeSWITCH: an ESL connection of the bench's own (the product's framing; its speed does not count)."""

    def __init__(self, host: str, port: int, password: str) -> None:
        super().__init__()
        self.host, self.port, self.password = host, port, password
        self.proto: EslProtocol | None = None

    async def open(self) -> str:
        self.proto = await connect(self.host, self.port, self.password, self._on_event)
        reply = await self.proto.send(f"event plain {EVENTS}")
        if not reply.startswith("+OK"):
            raise ConnectionError(f"event subscription refused: {reply}")
        return (await self.api("version")).strip().split(" (")[0] or "FreeSWITCH"

    def close(self) -> None:
        if self.proto is not None:
            self.proto.abort()

    def pbx_toml(self) -> str:
        return (
            f'[[pbx]]\nname = "fs-real"\ntype = "freeswitch"\nhost = "{self.host}"\nport = {self.port}\n'
            f'password = "{self.password}"\n'
        )

    def anchor_argv(self, record_dir: Path, out: Path) -> list[str]:
        return ["freeswitch", str(self.port), str(out), str(record_dir), "--password", self.password]

    def _on_event(self, h: dict[str, str]) -> None:
        name, stamp = h.get("Event-Name"), int(h.get("Event-Date-Timestamp", "0"))
        tag, leg = h.get(f"variable_{TAG}"), h.get("Bridge-A-Unique-ID")
        if name == "CHANNEL_BRIDGE" and tag and leg and tag not in self.bridge:
            self.bridge[tag] = (leg, stamp)
        elif name == "RECORD_START":
            self.record.setdefault(h.get("Unique-ID", ""), stamp)
        elif name == "CHANNEL_HANGUP_COMPLETE":
            self.gone.add(h.get("Unique-ID", ""))
        self.changed.set()

    async def api(self, line: str) -> str:
        assert self.proto is not None
        return await asyncio.wait_for(self.proto.send(f"api {line}"), 15)

    async def call(self, talk: float, *, wait_record: float = 0.0) -> str:
        tag, handset = secrets.token_hex(6), str(uuidlib.uuid4())
        secs = int(talk) + 10  # the phones' own tones outlast the call; the bench hangs up
        vars_ = (
            f"origination_uuid={handset},origination_caller_id_number=+15551230001,{TAG}={tag},"
            f"callrec_test_secs={secs},loopback_bowout=false"
        )
        assert self.proto is not None
        await self.proto.send(
            f"bgapi originate {{{vars_}}}loopback/{DID}/{ROUTES} &playback(tone_stream://%({secs * 1000},0,440))"
        )
        if await self.until(lambda: tag in self.bridge, 15):
            await asyncio.sleep(talk)
            if wait_record:
                await self.until(lambda: self.bridge[tag][0] in self.record, wait_record)
        await self.api(f"uuid_kill {handset}")
        await self.until(lambda: handset in self.gone, 10)
        return tag


@dataclass
class Side:
    """One recorder's figures, over all its blocks."""

    name: str
    e2e_ms: list[float] = field(default_factory=list)
    to_command_ms: list[float] = field(default_factory=list)  # CHANNEL_BRIDGE stamp → uuid_record written
    pbx_ms: list[float] = field(default_factory=list)  # uuid_record written → RECORD_START stamp
    controller_ms: list[float] = field(default_factory=list)
    calls: int = 0
    unrecorded: int = 0  # bridged, no RECORD_START
    unbridged: int = 0


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path="/" + name))


def write_config(base: Path, dsn: str, pbx_toml: str) -> Path:
    identity = x25519.Identity.generate()
    path = base / "callrec.toml"
    path.write_text(
        f'state_dir = "{base / "state"}"\nnode_id = "bench-real"\nlog_level = "warning"\n'
        f'[database]\nurl = "{dsn}"\npool_max = 10\n'
        f'[spool]\ndir = "{base / "spool"}"\n'
        f"{pbx_toml}"
        f'[encryption]\nrecipients = ["{identity.to_public()}"]\n'
        "[api]\nport = 0\n"
    )
    return path


async def run_block(side: Side, lis: Listener, n: int, rate: float, talk: float, dsn: str) -> None:
    """Start `side`'s recorder in a child process, warm it up, place `n` calls, stop it, keep the figures."""
    tmp = tempfile.TemporaryDirectory(prefix="callrec-real-latency-")
    base, out = Path(tmp.name), Path(tmp.name) / "probe.json"
    admin: asyncpg.Connection | None = None
    db_name = ""
    if side.name == "callrec":
        db_name = f"callrec_bench_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(dsn)
        await admin.execute(f'CREATE DATABASE "{db_name}"')
        cfg = write_config(base, _with_database(dsn, db_name), lis.pbx_toml())
        argv = ["-m", "lab.bench.load_service", str(cfg), str(out), "--hold-finalize"]
    else:
        argv = ["-m", "lab.bench.anchors", *lis.anchor_argv(base, out)]
    child = subprocess.Popen([sys.executable, *argv], cwd=ROOT)  # noqa: ASYNC220 - once per block
    try:
        for _ in range(30):  # warm-up: until one call is recorded (the recorder is connected)
            tag = await lis.call(0.5, wait_record=2.0)
            if tag in lis.bridge and lis.bridge[tag][0] in lis.record:
                break
        else:
            raise RuntimeError(f"{side.name}: no warm-up call was recorded")
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks: list[asyncio.Task[str]] = []
        for i in range(n):
            await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
            tasks.append(asyncio.create_task(lis.call(talk)))
        tags = await asyncio.gather(*tasks)
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(child.wait, 60)
        except subprocess.TimeoutExpired:
            child.kill()
        probe = json.loads(out.read_text()) if out.exists() else {}
        if admin is not None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
            await admin.close()
        tmp.cleanup()
    by_leg: dict[str, float] = probe.get("by_leg", {})
    wall: dict[str, float] = probe.get("wall", {})
    for tag in tags:
        side.calls += 1
        if tag not in lis.bridge:
            side.unbridged += 1
            continue
        leg, bridged = lis.bridge[tag]
        if leg not in lis.record:
            side.unrecorded += 1
            continue
        side.e2e_ms.append((lis.record[leg] - bridged) / 1000)
        if leg in by_leg:
            side.controller_ms.append(by_leg[leg] * 1000)
        if leg in wall:  # the write's wall clock against the PBX's (one host, one CLOCK_REALTIME)
            side.to_command_ms.append(wall[leg] * 1000 - bridged / 1000)
            side.pbx_ms.append(lis.record[leg] / 1000 - wall[leg] * 1000)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))] if xs else float("nan")


def histogram(xs: list[float], width: float = 10.0) -> str:
    """`[20,30): 140  [40,50): 8 …` — FreeSWITCH starts a recording in whole media frames."""
    bins: dict[int, int] = {}
    for x in xs:
        bins[int(x // width)] = bins.get(int(x // width), 0) + 1
    return "  ".join(f"[{b * width:g},{(b + 1) * width:g}): {n}" for b, n in sorted(bins.items()))


def table(sides: list[Side], version: str, lis: Listener, args: argparse.Namespace) -> str:
    where = ":".join((args.freeswitch or args.asterisk).split(":")[:2])
    lines = [
        f"Recording start on a REAL {version} ({where}), {args.calls} calls per recorder in {args.blocks} "
        f"alternated blocks, {args.rate:g} calls/s, {args.talk:g} s talk",
        "",
        f"{'recorder':<9} {'figure':<58} {'n':>4} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    bridge, record, command = lis.bridge_event, lis.record_event, lis.command
    what = {
        "e2e": f"end to end: {bridge} → {record} (PBX timestamps)",
        "to": f"  of it: {bridge} stamp → {command} written",
        "pbx": f"  of it: {command} written → {record} stamp",
        "ctl": f"controller only: bridge handed over → {command} written",
    }
    for s in sides:
        for key, xs in (("e2e", s.e2e_ms), ("to", s.to_command_ms), ("pbx", s.pbx_ms), ("ctl", s.controller_ms)):
            lines.append(
                f"{s.name:<9} {what[key]:<58} {len(xs):>4} {pct(xs, 50):>8.3f} {pct(xs, 99):>8.3f} "
                f"{max(xs, default=float('nan')):>8.3f}"
            )
    ours, anchor = sides
    for key, a, b in (("e2e", ours.e2e_ms, anchor.e2e_ms), ("ctl", ours.controller_ms, anchor.controller_ms)):
        lines.append(
            f"{'ratio':<9} {'callrec ÷ anchor, ' + key:<58} {'':>4} {pct(a, 50) / pct(b, 50):>8.2f} "
            f"{pct(a, 99) / pct(b, 99):>8.2f}"
        )
    lines.append("")
    for s in sides:
        lines.append(f"{s.name}: {s.calls} calls, {s.unbridged} never bridged, {s.unrecorded} bridged but not recorded")
        lines.append(f"  e2e in 10 ms bins: {histogram(s.e2e_ms)}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> str:
    lis: Listener
    if args.freeswitch:
        host, port, password = args.freeswitch.split(":", 2)
        lis = EslListener(host, int(port), password)
    else:
        from lab.bench.real_pbx_latency_ami import AmiListener

        host, port, user, secret = args.asterisk.split(":", 3)
        lab_user, lab_secret = (args.asterisk_lab or f"{user}:{secret}").split(":", 1)
        lis = AmiListener(host, int(port), (user, secret), (lab_user, lab_secret))
    sides = [Side("callrec"), Side("anchor")]
    per_block = max(1, args.calls // args.blocks)
    with pbx_turn(host, int(port)):
        version = await lis.open()
        try:
            for b in range(args.blocks):
                for side in sides if b % 2 == 0 else sides[::-1]:
                    print(f"block {b + 1}/{args.blocks}: {side.name}, {per_block} calls", file=sys.stderr)
                    await run_block(side, lis, per_block, args.rate, args.talk, args.dsn)
                    await asyncio.sleep(2.0)
        finally:
            lis.close()
    return table(sides, version, lis, args)


def cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    pbx = ap.add_mutually_exclusive_group(required=True)
    pbx.add_argument("--freeswitch", help="HOST:PORT:PASSWORD of the real FreeSWITCH's ESL")
    pbx.add_argument("--asterisk", help="HOST:PORT:USER:SECRET of the real Asterisk's AMI (the service's user)")
    ap.add_argument("--asterisk-lab", help="USER:SECRET of an AMI user that may originate (default: --asterisk's)")
    ap.add_argument("--calls", type=int, default=100, help="calls per recorder in all")
    ap.add_argument("--blocks", type=int, default=2, help="alternated blocks per recorder")
    ap.add_argument("--rate", type=float, default=3.0, help="new calls per second")
    ap.add_argument("--talk", type=float, default=2.0, help="seconds from the bridge to the hangup")
    ap.add_argument("--dsn", default=DEFAULT_DSN, help="a PostgreSQL server; a throw-away database is created")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    print(asyncio.run(main(args)))
    print(f"({time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
