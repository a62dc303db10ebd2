"""Anchors for the recording-start latency rows: bare PBX clients reacting to the same simulator.

    python -m lab.bench.anchors {freeswitch|asterisk} PORT OUT.json RECORD_DIR [--password PW] [--username U]

Run by `lab.bench.load_bench` in a child process, exactly where the service would run, against the
same simulator under the same load, so `callrec ÷ anchor` says what the service adds on top of the
client library it is built on. Each anchor is the smallest honest client of its library:

- freeswitch: a stock `greenswitch.InboundESL` (gevent in the main thread, nothing monkey-patched)
  subscribed to the service's own event list; its CHANNEL_BRIDGE handler spawns a greenlet that sends
  `api uuid_record <A-leg> start <path> 0 {RECORD_STEREO=true}` (a handler must not block
  greenswitch's dispatch greenlet while it waits for the reply).
- asterisk: a stock `panoramisk.Manager` (events `call,user`, as the service logs in); on the
  BridgeEnter that makes a bridge two-party it sends `MixMonitor` with r()/t() files on the channel
  that was already in the bridge, and does not wait for the reply.

Stamps are the probes' (lab.bench.load_service): bridge event handed over by the library → command
written to the socket; for FreeSWITCH also when each leg's command was written, which the bench sets
against the simulator's own stamp of the CHANNEL_BRIDGE write. SIGTERM writes OUT.json
({"latencies": [seconds...], "written": {leg: perf_counter}}).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import time
from typing import Any

LATENCIES: list[float] = []
BY_LEG: dict[str, float] = {}  # FreeSWITCH: recorded leg → its latency (seconds)
WALL: dict[str, float] = {}  # FreeSWITCH: recorded leg → time.time() of its uuid_record write
WRITTEN: dict[str, float] = {}  # FreeSWITCH: A leg → perf_counter() when its uuid_record was written


def _dump(out: str, extra: dict[str, Any] | None = None) -> None:
    with open(out, "w") as f:
        json.dump({"latencies": LATENCIES, "by_leg": BY_LEG, "wall": WALL, **(extra or {})}, f)


def run_freeswitch(port: int, out: str, record_dir: str, password: str = "ClueCon-lab") -> None:
    import gevent
    import gevent.event
    import greenswitch

    from controller.drivers.freeswitch import SUBSCRIBED

    class Stamped(greenswitch.InboundESL):  # type: ignore[misc]
        """Stock client; `send` is greenswitch's own, with the write stamped."""

        bridged_at: dict[str, float] = {}

        def send(self, data: str) -> Any:
            if data.startswith("api uuid_record "):
                now, leg = time.perf_counter(), data.split()[2]
                WRITTEN[leg], WALL[leg] = now, time.time()
                t0 = self.bridged_at.pop(leg, None)
                if t0 is not None:
                    LATENCIES.append(now - t0)
                    BY_LEG[leg] = now - t0
            return super().send(data)

    conn = Stamped("127.0.0.1", port, password)
    conn.connect()
    conn.send("event plain " + SUBSCRIBED)

    def record(leg: str) -> None:
        path = os.path.join(record_dir, f"{leg}.wav")
        try:
            conn.send(f"api uuid_record {leg} start {path} 0 {{RECORD_STEREO=true,record_sample_rate=8000}}")
        except Exception:  # the simulator is going away at the end of the run
            pass

    def on_bridge(event: Any) -> None:
        leg = event.headers.get("Bridge-A-Unique-ID") or event.headers.get("Unique-ID")
        if leg:
            conn.bridged_at[leg] = time.perf_counter()
            gevent.spawn(record, leg)

    conn.register_handle("CHANNEL_BRIDGE", on_bridge)
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    stop.wait()
    _dump(out, {"written": WRITTEN})
    conn._run = False
    os._exit(0)  # greenswitch's stop() waits on greenlets blocked in reads


def run_asterisk(
    port: int, out: str, record_dir: str, username: str = "callrec", secret: str = "callrec-secret"
) -> None:
    import asyncio

    from panoramisk import Manager

    async def main() -> None:
        loop = asyncio.get_running_loop()
        manager = Manager(loop=loop, host="127.0.0.1", port=port, username=username, secret=secret, events="call,user")
        members: dict[str, list[str]] = {}  # bridge id → channel names, in order of entry

        def on_enter(mgr: Any, msg: Any) -> None:
            now = time.perf_counter()
            bridge, channel = msg.get("BridgeUniqueid"), msg.get("Channel")
            if isinstance(channel, list):
                channel = channel[0]
            inside = members.setdefault(bridge, [])
            inside.append(channel)
            if msg.get("BridgeNumChannels") == "2" and len(inside) >= 2:
                first = inside[0]
                mgr.send_action(
                    {
                        "Action": "MixMonitor",
                        "Channel": first,
                        "Options": f"r({record_dir}/{bridge}-rx.wav)t({record_dir}/{bridge}-tx.wav)",
                    }
                )
                LATENCIES.append(time.perf_counter() - now)
                linked = msg.get("Linkedid")
                if isinstance(linked, str):  # the call, for lab.bench.real_pbx_latency
                    BY_LEG[linked], WALL[linked] = LATENCIES[-1], time.time()

        def on_destroy(mgr: Any, msg: Any) -> None:
            members.pop(msg.get("BridgeUniqueid"), None)

        manager.register_event("BridgeEnter", on_enter)
        manager.register_event("BridgeDestroy", on_destroy)
        await manager.connect()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        _dump(out)
        manager.close()

    asyncio.run(main())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("pbx", choices=["freeswitch", "asterisk"])
    ap.add_argument("port", type=int)
    ap.add_argument("out")
    ap.add_argument("record_dir")
    ap.add_argument("--password", help="ESL password / AMI secret (lab.bench.real_pbx_latency: a real PBX's)")
    ap.add_argument("--username", default="callrec", help="AMI user")
    args = ap.parse_args()
    if args.pbx == "freeswitch":
        run_freeswitch(args.port, args.out, args.record_dir, args.password or "ClueCon-lab")
    else:
        run_asterisk(args.port, args.out, args.record_dir, args.username, args.password or "callrec-secret")
