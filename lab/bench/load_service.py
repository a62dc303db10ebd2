"""The service under load, as `callrec run` composes it, with recording-start latency probes.

    python -m lab.bench.load_service CONFIG OUT.json [--hold-finalize]

Run by `lab.bench.load_bench` in a child process, so the controller's CPU and RSS are its own. The
probes are driver SUBCLASSES (nothing in the product is edited): the FreeSWITCH one stamps the moment
the driver's reader hands over a parsed CHANNEL_BRIDGE and the moment `uuid_record … start` is written
to the socket (and keeps that write's time per leg: the bench sets it against the simulator's stamp of
the CHANNEL_BRIDGE write, which also counts the time the frame waited in the socket); the Asterisk
one stamps each BridgeEnter as panoramisk hands it over and the moment the MixMonitor action is
written. Latency = command written - bridge received for that call.

`--hold-finalize` keeps the finalize workers idle until SIGUSR1, so the bench can build a backlog and
then time its drain. SIGTERM writes OUT.json (latencies, counts) and stops the service.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import time
from collections.abc import Mapping
from typing import Any

from controller import service as service_mod
from controller.config import Config, PbxConfig, load_config
from controller.drivers.ami_translate import VAR_RECORDING
from controller.drivers.asterisk import AsteriskDriver
from controller.drivers.base import PbxDriver
from controller.drivers.freeswitch import FreeSwitchDriver
from storage.finalize import FinalizeWorker

LATENCIES: list[float] = []  # seconds, bridge received → recording command written
STAMPS: list[float] = []  # when each of those bridges was received (perf_counter)
FIRST: list[float] = []  # seconds, bridge received → FIRST command for that call written (the decision)
UNMATCHED = [0]
WRITTEN: dict[str, float] = {}  # FreeSWITCH: customer leg → perf_counter() when uuid_record was written
BY_LEG: dict[str, float] = {}  # customer leg (Asterisk: Linkedid) → its latency (s), for benches that pick calls
WALL: dict[str, float] = {}  # the same → time.time() of that write (to set against the PBX's timestamps)


class ProbedFreeSwitch(FreeSwitchDriver):
    """The bridge is stamped where the driver's reader hands over the parsed event; the command where
    it is written to the socket (`_write`)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.bridged_at: dict[str, float] = {}

    def _on_event(self, headers: Mapping[str, str]) -> None:
        if headers.get("Event-Name") == "CHANNEL_BRIDGE":
            now = time.perf_counter()
            for key in ("Bridge-A-Unique-ID", "Bridge-B-Unique-ID", "Unique-ID"):
                leg = headers.get(key)
                if leg:
                    self.bridged_at[leg] = now
        super()._on_event(headers)

    def _write(self, proto: Any, data: str) -> Any:
        if data.startswith("api uuid_setvar "):
            t0 = self.bridged_at.get(data.split()[2])
            if t0 is not None:
                FIRST.append(time.perf_counter() - t0)
        if data.startswith("api uuid_record ") and " start " in data:
            now = time.perf_counter()
            leg = data.split()[2]
            WRITTEN[leg], WALL[leg] = now, time.time()
            t0 = self.bridged_at.pop(leg, None)
            if t0 is None:
                UNMATCHED[0] += 1
            else:
                LATENCIES.append(now - t0)
                STAMPS.append(t0)
                BY_LEG[leg] = now - t0
        return super()._write(proto, data)


class ProbedAsterisk(AsteriskDriver):
    """Stamps on the asyncio loop: BridgeEnter as panoramisk dispatches it, MixMonitor as it is sent.
    The latency runs from the bridge event that completed the two-party bridge (the later one)."""

    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.linked: dict[str, str] = {}  # channel name → Linkedid
        self.bridged_at: dict[str, float] = {}  # Linkedid → last BridgeEnter

    def _on_message(self, msg: Any) -> None:
        if msg.get("Event") == "BridgeEnter":
            linked = msg.get("Linkedid")
            if isinstance(linked, list):
                linked = linked[0]
            name = msg.get("Channel")
            if isinstance(name, list):
                name = name[0]
            if linked and name:
                self.linked[name] = linked
                self.bridged_at[linked] = time.perf_counter()
        elif msg.get("Event") == "Hangup":
            name = msg.get("Channel")
            if isinstance(name, str):
                self.linked.pop(name, None)
        super()._on_message(msg)

    def _write(self, protocol: Any, action: dict[str, Any], as_list: bool | None = None) -> Any:
        if action.get("Action") == "Setvar" and action.get("Variable") == VAR_RECORDING:
            linked = self.linked.get(str(action.get("Channel")))
            t0 = self.bridged_at.get(linked) if linked else None
            if t0 is not None:
                FIRST.append(time.perf_counter() - t0)
        if action.get("Action") == "MixMonitor":
            now = time.perf_counter()
            linked = self.linked.get(str(action.get("Channel")))
            t0 = self.bridged_at.pop(linked, None) if linked else None
            if t0 is None or not linked:
                UNMATCHED[0] += 1
            else:
                LATENCIES.append(now - t0)
                STAMPS.append(t0)
                BY_LEG[linked], WALL[linked] = now - t0, time.time()
        return super()._write(protocol, action, as_list)


def probed_driver(pbx: PbxConfig, config: Config) -> PbxDriver:
    if pbx.type == "freeswitch":
        return ProbedFreeSwitch(
            pbx.name, pbx.host, pbx.effective_port, pbx.password, record_dir=pbx.record_dir or str(config.spool_dir)
        )
    return ProbedAsterisk.from_config(pbx)


async def main(config_path: str, out: str, hold_finalize: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="service %(levelname)s %(name)s: %(message)s")
    config = load_config(config_path, env={})
    service_mod.make_driver = probed_driver  # type: ignore[assignment]
    release = asyncio.Event()
    if hold_finalize:
        original_run = FinalizeWorker.run

        async def held_run(self: FinalizeWorker) -> None:
            await release.wait()
            await original_run(self)

        FinalizeWorker.run = held_run  # type: ignore[method-assign]
    svc = service_mod.Service(config)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, svc.stop)
    loop.add_signal_handler(signal.SIGINT, svc.stop)
    loop.add_signal_handler(signal.SIGUSR1, release.set)
    try:
        await svc.run()
    finally:
        errors = list(svc.recorder.errors) if svc.recorder else []
        _dump(
            out,
            {
                "latencies": LATENCIES,
                "at": STAMPS,
                "first": FIRST,
                "unmatched": UNMATCHED[0],
                "written": WRITTEN,
                "by_leg": BY_LEG,
                "wall": WALL,
                "recorder_errors": errors[:20],
            },
        )


def _dump(out: str, data: dict[str, Any]) -> None:
    with open(out, "w") as f:
        json.dump(data, f)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("out")
    ap.add_argument("--hold-finalize", action="store_true")
    args = ap.parse_args()
    asyncio.run(main(args.config, args.out, args.hold_finalize))
