"""The channel life cycle of a simulated Asterisk, each change sent as the event Asterisk sends
(Newchannel, Newstate, VarSet, DialBegin/End, BridgeCreate/Enter/Leave/Destroy, Hangup), and
simulated time: `elapse(ms, channels)` writes `ms` of audio to the MixMonitors of those channels only,
so calls that overlap each get files as long as they are."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from typing import Any

from lab.ami.model import DEFAULT_CHANNELVARS, SimBridge, SimChannel
from lab.ami.server import AmiServer
from lab.tones import Earpieces

# Q.850 causes the simulated calls hang up with, as Asterisk names them in Hangup's Cause-txt.
CAUSE_TEXT = {"16": "Normal Clearing", "17": "User busy", "19": "User alerting, no answer"}


class AmiPbx(AmiServer):
    def __init__(
        self, *, channelvars: tuple[str, ...] = DEFAULT_CHANNELVARS, time_scale: float = 0.0, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.channelvars = channelvars
        self.time_scale = time_scale  # wall seconds slept per simulated second (0 = as fast as possible)
        self.channels: dict[str, SimChannel] = {}  # by name
        self._seq = itertools.count(1)
        self._uid = itertools.count(1)
        self._epoch = int(time.time())
        self.earpieces: Earpieces | None = None  # set to keep what every channel's party hears (tests)

    async def close(self) -> None:
        await super().close()
        for ch in list(self.channels.values()):
            for m in ch.monitors:
                m.close()
        if self.earpieces is not None:
            self.earpieces.close()

    def snap(self, ch: SimChannel, prefix: str = "") -> list[tuple[str, str]]:
        return ch.snapshot(self.channelvars, prefix)

    def new_channel(
        self, tech: str, caller: str, caller_name: str, context: str, exten: str, tone: int | None, linkedid: str = ""
    ) -> SimChannel:
        seq = next(self._seq)
        uid = f"{self._epoch}.{next(self._uid)}"
        ch = SimChannel(
            name=f"{tech}-{seq:08x}",
            uniqueid=uid,
            linkedid=linkedid or uid,
            caller=caller,
            caller_name=caller_name,
            context=context,
            exten=exten,
            tone=tone,
        )
        self.channels[ch.name] = ch
        self.event("Newchannel", self.snap(ch))
        return ch

    def set_state(self, ch: SimChannel, state: int) -> None:
        ch.state = state
        self.event("Newstate", self.snap(ch))

    def set_var(self, ch: SimChannel, name: str, value: str) -> None:
        ch.variables[name] = value
        self.event("VarSet", [*self.snap(ch), ("Variable", name), ("Value", value)])

    def dial_begin(self, caller: SimChannel, dest: SimChannel, dial_string: str) -> None:
        self.event("DialBegin", [*self.snap(caller), *self.snap(dest, "Dest"), ("DialString", dial_string)])

    def dial_end(self, caller: SimChannel, dest: SimChannel, status: str) -> None:
        self.event("DialEnd", [*self.snap(caller), *self.snap(dest, "Dest"), ("DialStatus", status)])

    def new_bridge(self) -> SimBridge:
        b = SimBridge(str(uuid.uuid4()))
        self.event("BridgeCreate", b.snapshot())
        return b

    def enter(self, b: SimBridge, ch: SimChannel, swap: SimChannel | None = None) -> None:
        """`swap`: the channel this one replaces (Local optimization), named in SwapUniqueid."""
        b.members.append(ch)
        ch.bridge = b
        extra = [("SwapUniqueid", swap.uniqueid)] if swap is not None else []
        self.event("BridgeEnter", [*b.snapshot(), *self.snap(ch), *extra])

    def leave(self, ch: SimChannel) -> None:
        b = ch.bridge
        if b is None:
            return
        b.members.remove(ch)
        ch.bridge = None
        self.event("BridgeLeave", [*b.snapshot(), *self.snap(ch)])

    def destroy(self, b: SimBridge) -> None:
        self.event("BridgeDestroy", b.snapshot())

    def hangup(self, ch: SimChannel, cause: str = "16") -> None:
        if not ch.alive:
            return
        if ch.bridge is not None:
            self.leave(ch)
        ch.alive = False
        for m in ch.monitors:
            m.close()
        ch.monitors.clear()
        self.channels.pop(ch.name, None)
        self.event(
            "Hangup", [*self.snap(ch), ("Cause", cause), ("Cause-txt", CAUSE_TEXT.get(cause, "Normal Clearing"))]
        )

    # ---- simulated time ---------------------------------------------------------------------------

    def advance_audio(self, ms: float, channels: list[SimChannel] | None = None) -> None:
        """`ms` of audio for the MixMonitors of `channels` (default: every channel, as a wall clock)."""
        for ch in list(self.channels.values()) if channels is None else list(channels):
            if ch.alive:
                heard = ch.advance_monitors(ms)
                if self.earpieces is not None:
                    self.earpieces.write(ch.uniqueid, heard)

    def ring_wall(self, ring_ms: float) -> float:
        """Wall seconds a controller is given to act on a transfer announcement before the target
        answers: as long as it rings, less what the ring itself takes on this clock (none in
        simulated time, all of it in real time), at least 50 ms."""
        return max(0.05, ring_ms / 1000 * (1 - min(self.time_scale, 1.0)))

    async def elapse(self, ms: float, channels: list[SimChannel] | None = None) -> None:
        """Simulated time passes for one call: the MixMonitors of `channels` (that call's; the list is
        read again every step, so channels a transfer adds count) get `ms` of audio — never those of
        the calls beside it. With a time_scale the wall clock keeps pace (sleeps to a deadline, so
        the audio does not fall behind the controller's timestamps under load)."""
        loop = asyncio.get_running_loop()
        start, done = loop.time(), 0.0
        step = 100.0 if self.time_scale else 250.0  # in real time, audio is written at most 100 ms ahead
        while done < ms:
            chunk = min(step, ms - done)
            self.advance_audio(chunk, channels)
            done += chunk
            await asyncio.sleep(max(0.0, start + done / 1000 * self.time_scale - loop.time()))

    def recording_channels(self) -> list[SimChannel]:
        return [c for c in self.channels.values() if c.monitors]

    async def wait_recording(self, within: float = 5.0) -> bool:
        """True once some channel has a MixMonitor running (the controller reacted to the bridge)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + within
        while loop.time() < end:
            if self.recording_channels():
                return True
            await asyncio.sleep(0.01)
        return False
