"""An ESL (FreeSWITCH Event Socket) simulator: the lab PBX and the load generator.

It speaks real ESL over TCP (auth/request, auth, `event plain …`, `api`, `bgapi`, `exit`) and plays
`lab.scenarios` call stories as SIP-shaped FreeSWITCH calls (sofia legs, one leg per party), sending
the events a real FreeSWITCH 1.10 sends — same names, header names and per-leg order as the captures
in tests/fixtures/freeswitch (a test compares them). `uuid_record start|stop|mask|unmask` writes a
real 8 kHz stereo WAV (left = the tapped leg's own party, right = its bridge partner; masked =
silence; closed on stop or hangup), in simulated time: `time_scale` = real seconds per simulated
second (0 = as fast as possible), so tests do not wait for calls to be "long".

Channels are plain objects in dicts, events are formatted once per subscriber set, and nothing is
per-call-threaded, so thousands of concurrent calls are one event loop's work.

The parts live in `lab.esl` (wire format, leg model, media, server, leg life cycle, scenario
playback); this module is the simulator a test or the demo starts: those parts plus the `api`
commands a controller or another ESL client sends.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from typing import Any

from lab import scenarios as sc
from lab.esl.calls import CallHandle
from lab.esl.media import Recording
from lab.esl.model import Channel
from lab.esl.pbx import EslPbx
from lab.tones import PROMPT_SEGMENTS, TARGET_HZ, WavWriter, parse_tone_stream

__all__ = ["CallHandle", "Channel", "EslSimulator"]


class EslSimulator(EslPbx):
    """The simulated FreeSWITCH. `await start()`, then `await run(scenario)` for as many calls as you like."""

    def __init__(
        self,
        *,
        password: str = "ClueCon-lab",
        host: str = "127.0.0.1",
        port: int = 0,
        time_scale: float = 0.0,
        settle_timeout: float = 5.0,
    ) -> None:
        super().__init__(password=password, host=host, port=port, time_scale=time_scale, settle_timeout=settle_timeout)
        self._tasks: set[asyncio.Task[None]] = set()

    def api(self, cmd: str) -> str:
        self.commands.append(cmd)
        parts = cmd.split()
        if not parts:
            return "-ERR no command\n"
        name, args = parts[0], parts[1:]
        try:
            if name == "status":
                return "UP 0 years, 0 days\nFreeSWITCH (Version 1.10.12 simulated) is ready\n"
            if name == "uuid_record":
                return self._uuid_record(args, cmd)
            if name == "uuid_setvar" and len(args) >= 2:
                ch = self._chan(args[0])
                ch.variables[args[1]] = " ".join(args[2:])
                return "+OK\n"
            if name == "uuid_getvar" and len(args) >= 2:
                return self._chan(args[0]).variables.get(args[1], "_undef_")
            if name == "uuid_kill" and args:
                self._chan(args[0])
                asyncio.get_running_loop().create_task(self._hangup_leg(args[0], "NORMAL_CLEARING", "send_bye"))
                return "+OK\n"
            if name == "show" and args[:1] in (["channels"], ["calls"]):
                return self._show(args[0])
            if name == "uuid_broadcast" and len(args) >= 2:
                return self._uuid_broadcast(args)
            if name == "uuid_transfer" and len(args) >= 2:
                return self._uuid_transfer([a for a in args if not a.startswith("-")])
            if name == "uuid_bridge" and len(args) >= 2:
                return self._uuid_bridge(self._chan(args[0]), self._chan(args[1]))
            if name == "originate" and args:
                return self._originate_api(args[0])
        except KeyError:
            return "-ERR No such channel!\n"
        return f"-ERR {name} Command not found!\n"

    def _uuid_broadcast(self, args: list[str]) -> str:
        """`uuid_broadcast <uuid> <path> [aleg|bleg|both]`: a tone_stream:// URL plays its tones, any
        other path is a sound file (written as PROMPT_SEGMENTS); `aleg` (the default) plays to the named
        leg, `bleg` to its bridge partner, `both` to the two."""
        ch = self._chan(args[0])
        path, legs = args[1], args[2] if len(args) > 2 else "aleg"
        segments = parse_tone_stream(path) if path.startswith("tone_stream://") else PROMPT_SEGMENTS
        partner = self.channels.get(ch.bridged_to or "")
        targets = {"aleg": [ch], "bleg": [partner], "both": [ch, partner]}.get(legs, [ch])
        for target in targets:
            if target is not None:
                target.playing.add(list(segments))
        self._changed.set()
        return "+OK Message queued\n"

    def _uuid_transfer(self, args: list[str]) -> str:
        """Blind-transfer a call's customer leg to a number (FreeSWITCH runs the dialplan again; here the
        number rings as a target party: 2-5 digits = an internal phone, else the trunk)."""
        ch = self._chan(args[0])
        handle = self.handles.get(ch.uuid)
        if handle is None or "agent" not in handle.legs or handle.legs["agent"].gone:
            return "-ERR the simulator transfers only the customer leg of a bridged scenario call\n"
        dest = args[1]
        internal = bool(re.fullmatch(r"\d{2,5}", dest))
        handle.extra_parties["target"] = sc.Party("target", dest, TARGET_HZ, internal=internal, name=dest)
        task = asyncio.get_running_loop().create_task(
            handle._transfer(sc.Transfer(kind="blind", to="target", method="pbx"))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return "+OK\n"

    def _uuid_bridge(self, a: Channel, b: Channel) -> str:
        """Bridge two live legs; their previous partners are hung up (hangup_after_bridge). As on a
        real FreeSWITCH (capture S4: a warm transfer completed by a CTI client), each leg's
        transfer_history names the other with `uuid_br` before anything is unbridged."""
        now = int(time.time())
        for leg, other in ((a, b), (b, a)):
            entry = f"{now}:{uuidlib.uuid4()}:uuid_br:{other.uuid}"
            old = leg.variables.get("transfer_history", "")
            leg.variables["transfer_history"] = f"ARRAY::{old.removeprefix('ARRAY::')}|:{entry}" if old else entry
        for leg in (a, b):
            partner = self.channels.get(leg.bridged_to or "")
            if partner is not None and partner not in (a, b):
                self._hangup(partner, "NORMAL_CLEARING", "send_bye")
                self._hangup_complete(partner, "NORMAL_CLEARING")
                self._unbridge(leg, partner)
                self._destroy(partner)
        self._bridge(a, b)
        for handle in {id(h): h for h in (self.handles.get(a.uuid), self.handles.get(b.uuid)) if h}.values():
            handle.adopt_leg(a, b)
        return f"+OK {b.uuid}\n"

    def _originate_api(self, dial: str) -> str:
        """`originate [{vars}]sofia/<profile|gateway/gw>/<number> …`: one outbound leg, answered at once,
        parked (its far end sends silence)."""
        variables: dict[str, str] = {}
        if dial.startswith("{") and "}" in dial:
            for kv in dial[1 : dial.index("}")].split(","):
                if "=" in kv:
                    k, v = kv.split("=", 1)
                    variables[k] = v
            dial = dial[dial.index("}") + 1 :]
        number = dial.rsplit("/", 1)[-1].split("@", 1)[0]
        ch = self._new_channel(
            name=dial,
            direction="outbound",
            caller_num=variables.get("origination_caller_id_number", "0000000000"),
            caller_name=variables.get("origination_caller_id_name", "originate"),
            dest=number,
            context="default",
            call_uuid=variables.get("origination_uuid", ""),
            tone=None,
            party=number,
            variables=variables,
        )
        self._emit("CHANNEL_CREATE", ch)
        self._answer(ch)
        return f"+OK {ch.uuid}\n"

    def _uuid_record(self, args: list[str], cmd: str) -> str:
        if len(args) < 3:
            return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]\n"
        ch = self._chan(args[0])
        action, path = args[1], args[2]
        if action == "start":
            rvars: dict[str, str] = {}
            if "{" in cmd:
                inner = cmd[cmd.index("{") + 1 : cmd.rindex("}")]
                for kv in inner.split(","):
                    if "=" in kv:
                        k, v = kv.split("=", 1)
                        rvars[k] = v
            if path in ch.recordings:
                return "+OK Success\n"  # FreeSWITCH: starting the same path twice records once
            rec = Recording(path, WavWriter(path, channels=2), variables=rvars)
            ch.recordings[path] = rec
            self._emit(
                "RECORD_START",
                ch,
                {"Record-File-Path": path, **{f"Recording-Variable-{k}": v for k, v in rvars.items()}},
            )
            self._changed.set()
            return "+OK Success\n"
        found = ch.recordings.get(path)
        if found is None:
            return f"-ERR Cannot find media bug for {path}\n" if action != "stop" else "+OK Success\n"
        if action in ("mask", "unmask"):
            found.mask_changes += found.masked != (action == "mask")
            found.masked = action == "mask"
        elif action == "stop":
            self._close_recording(ch, found)
        else:
            return "-USAGE: <uuid> [start|stop|mask|unmask] <path>\n"
        self._changed.set()
        return "+OK Success\n"

    # ---- scenario runner ----
    async def run(
        self,
        scenario: sc.Scenario,
        *,
        on_step: Callable[[Any, CallHandle], Awaitable[None]] | None = None,
        settle: bool = True,
    ) -> CallHandle:
        """Play one scenario. `on_step(step, handle)` is awaited for controller steps (Pause, Resume,
        LinkDrop, ControllerRestart) — the harness does them. With `settle`, the runner waits (up to
        settle_timeout) after the answer for the recording the scenario expects, and after an
        external transfer that should stop it, for the stop, so files are deterministic."""
        handle = CallHandle(self, scenario)
        for step in scenario.steps:
            await handle.do(step, on_step, settle)
        return handle


async def _main() -> None:  # pragma: no cover - manual lab use
    import argparse

    ap = argparse.ArgumentParser(description="Run the ESL simulator and play scenarios against a controller")
    ap.add_argument("--port", type=int, default=8021)
    ap.add_argument("--password", default="ClueCon-lab")
    ap.add_argument("--scenario", action="append", default=[])
    ap.add_argument("--time-scale", type=float, default=1.0)
    ns = ap.parse_args()
    sim = EslSimulator(password=ns.password, port=ns.port, time_scale=ns.time_scale)
    await sim.start()
    print(f"ESL simulator on 127.0.0.1:{sim.port}")
    await sim.wait_connected(3600)
    for name in ns.scenario:
        await sim.run(sc.get(name))
    await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
