"""AMI simulator: an asyncio TCP server that speaks Asterisk 20's Manager Interface and plays the
PBX-neutral scenarios of `lab.scenarios` as SIP-shaped calls (trunk + phone channels, like fixtures
S7/S8), writing MixMonitor r()/t() leg files as real 8 kHz WAVs (a tone per party, silence while
muted). The Asterisk twin of the ESL simulator; it doubles as a load generator.

Wire shapes follow the real captures (tests/fixtures/asterisk): the banner line, `Response`/`ActionID`
replies, event blocks with `Privilege` and `Timestamp`, the channel snapshot headers in Asterisk's
order, `ChanVariable:` lines for the configured channelvars, `Events:` class filtering, list actions
(`CoreShowChannels` → CoreShowChannel… + Complete), and `Command` output as `Output:` lines.

The parts live in `lab.ami` (wire format, channel model, media, server, channel life cycle, scenario
playback); this module is the simulator a test or the demo starts: those parts plus the AMI actions
a controller or a CTI application sends.

Audio semantics are Asterisk's: `r()` gets what the recorded channel SENDS (its own party), `t()` what
is SENT TO it (whoever it is bridged to; silence while ringing or on hold). Hold music and ringback
are written as silence, so a file's only tones are the parties'.
"""

from __future__ import annotations

import asyncio
import re

from lab import scenarios as sc
from lab.ami import protocol as wire
from lab.ami.calls import AmiCalls, SimCall
from lab.ami.media import SimMixMonitor
from lab.ami.model import DEFAULT_CHANNELVARS, STATE_DESC, SimBridge, SimChannel
from lab.ami.protocol import Session
from lab.tones import PROMPT_SEGMENTS, WavWriter, parse_playtones

DTMF_EXTEN = re.compile(r"^[0-9*#]+$")  # what AMI Atxfer can type into the transfer feature

__all__ = ["DEFAULT_CHANNELVARS", "AmiSimulator", "SimBridge", "SimCall", "SimChannel", "SimMixMonitor"]


APPLICATIONMAP = {"*1": "pause", "*2": "resume", "*3": "record"}  # asterisk_conf/features.conf


class AmiSimulator(AmiCalls):
    """`await start()`, then `await play(scenario)` for as many calls as you like (they may overlap).
    `time_scale` = wall seconds slept per simulated second (0 = as fast as possible)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "callrec",
        secret: str = "callrec-secret",
        channelvars: tuple[str, ...] = DEFAULT_CHANNELVARS,
        time_scale: float = 0.0,
        settle_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            host=host,
            port=port,
            username=username,
            secret=secret,
            channelvars=channelvars,
            time_scale=time_scale,
            settle_timeout=settle_timeout,
        )
        self._dtmf: dict[str, str] = {}  # digits received so far towards a feature code, per channel

    def _channel_arg(self, s: Session, a: dict[str, list[str]], aid: str, key: str = "Channel") -> SimChannel | None:
        name = wire.get(a, key)
        if not name:
            self._respond(s, aid, False, "No channel specified")
            return None
        ch = self.channels.get(name)
        if ch is None:
            self._respond(s, aid, False, "No such channel")
        return ch

    async def _action_events(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        s.set_events(wire.get(a, "EventMask"))
        s.send([("Response", "Success"), ("ActionID", aid), ("Events", wire.get(a, "EventMask") or "on")])

    async def _action_command(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        cmd = wire.get(a, "Command").strip()
        if cmd == "core show version":
            out = ["Asterisk 20.20.1 (callrec AMI simulator)"]
        elif cmd == "core show channels":
            out = [f"{c.name:<30} {c.context}/{c.exten} {STATE_DESC.get(c.state, '?')}" for c in self.channels.values()]
            out.append(f"{len(self.channels)} active channels")
        else:
            self._respond(s, aid, False, "Command output follows", [("Output", f"No such command '{cmd}'")])
            return
        self._respond(s, aid, True, "Command output follows", [("Output", line) for line in out])

    async def _action_coreshowchannels(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        s.send(
            [("Response", "Success"), ("ActionID", aid), ("EventList", "start"), ("Message", "Channels will follow")]
        )
        n = 0
        for ch in list(self.channels.values()):
            n += 1
            body = [
                ("ActionID", aid),
                *self.snap(ch),
                ("BridgeId", ch.bridge.uniqueid if ch.bridge else ""),
                ("Application", "Dial" if ch.bridge else "AppDial"),
                ("ApplicationData", ""),
                ("Duration", "00:00:01"),
            ]
            s.send(wire.event_headers("CoreShowChannel", body)[1])  # list replies ignore the Events filter
        s.send(
            [("Event", "CoreShowChannelsComplete"), ("ActionID", aid), ("EventList", "Complete"), ("ListItems", str(n))]
        )

    async def _action_getvar(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is not None:
            var = wire.get(a, "Variable")
            s.send(
                [("Response", "Success"), ("ActionID", aid), ("Variable", var), ("Value", ch.variables.get(var, ""))]
            )

    async def _action_setvar(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is not None:
            self._respond(s, aid, True, "Variable Set")
            self.set_var(ch, wire.get(a, "Variable"), wire.get(a, "Value"))

    async def _action_mixmonitor(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        opts = wire.get(a, "Options")
        args = dict(re.findall(r"([a-zA-Z])\(([^)]*)\)", opts))
        if not args.get("r") and not args.get("t") and not wire.get(a, "File"):
            self._respond(s, aid, False, "Could not start monitoring channel")
            return
        mon = SimMixMonitor(
            id=f"0x{id(ch) + len(ch.monitors):x}",
            read=WavWriter(args["r"], channels=1) if args.get("r") else None,
            write=WavWriter(args["t"], channels=1) if args.get("t") else None,
        )
        ch.monitors.append(mon)
        extra = []
        if args.get("i"):
            ch.variables[args["i"]] = mon.id
            extra.append(("MixMonitorID", mon.id))
        self._respond(s, aid, True, extra=extra)
        self.event("MixMonitorStart", self.snap(ch))

    async def _action_mixmonitormute(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        direction = (wire.get(a, "Direction") or "both").lower()
        state = wire.get(a, "State") in ("1", "yes", "true", "on")
        want = wire.get(a, "MixMonitorID")
        targets = [m for m in ch.monitors if not want or m.id == want]
        if not targets:
            self._respond(s, aid, False, "Cannot set mute flag")
            return
        for m in targets:
            was = (m.mute_read, m.mute_write)
            if direction in ("read", "both"):
                m.mute_read = state
            if direction in ("write", "both"):
                m.mute_write = state
            m.mute_changes += was != (m.mute_read, m.mute_write)
        self._respond(s, aid, True)
        self.event("MixMonitorMute", [*self.snap(ch), ("Direction", direction), ("State", "1" if state else "0")])

    async def _action_stopmixmonitor(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        want = wire.get(a, "MixMonitorID")
        targets = [m for m in ch.monitors if not want or m.id == want][:1]
        if not targets:
            self._respond(s, aid, False, "Could not stop MixMonitor")
            return
        for m in targets:
            m.close()
            ch.monitors.remove(m)
        self._respond(s, aid, True)
        self.event("MixMonitorStop", self.snap(ch))

    async def _action_playdtmf(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        """PlayDTMF. With `Receive: true` the channel "dials" the digit: the hidden applicationmap code
        D (callrec_tone) runs the hook's Gosub, which plays ${CALLREC_TONE} to that channel only."""
        name = wire.get(a, "Channel")
        ch = self.channels.get(name)
        if ch is None:
            self._respond(s, aid, False, "Channel not found")
            return
        digit = wire.get(a, "Digit")
        if not digit:
            self._respond(s, aid, False, "No digit specified")
            return
        self._respond(s, aid, True, "DTMF successfully queued")
        if wire.get(a, "Receive").lower() not in ("true", "yes", "1", "on"):
            return
        # the bridge matches received digits against asterisk_conf/features.conf's applicationmap
        # (the simulator offers the codes to every channel; Asterisk, to those the hook set them on)
        typed = self._dtmf.get(ch.name, "") + digit
        if typed == "D":
            self._dtmf.pop(ch.name, None)
            # [callrec-feature] tone: Playback(${CALLREC_PROMPT}) when set, else PlayTones(${CALLREC_TONE})
            if ch.variables.get("CALLREC_PROMPT"):
                ch.playing.add(list(PROMPT_SEGMENTS))
            else:
                ch.playing.add(parse_playtones(ch.variables.get("CALLREC_TONE", "")))
        elif typed in APPLICATIONMAP:
            self._dtmf.pop(ch.name, None)
            await self._feature_gosub(ch, APPLICATIONMAP[typed], settle=False)
        elif any(code.startswith(typed) for code in APPLICATIONMAP):
            self._dtmf[ch.name] = typed
        else:
            self._dtmf.pop(ch.name, None)

    async def _action_hangup(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is not None:
            self._respond(s, aid, True, "Channel Hungup")
            call = self._calls.get(ch.linkedid)
            if call is not None and call.pending_atxfer and ch is call.agent:
                self._complete_atxfer(call)
            elif call is not None:
                self._hangup_call(call, ch)
            else:
                self.hangup(ch)

    async def _action_redirect(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        call = self._calls.get(ch.linkedid)
        if call is None or ch is not call.customer:
            self._respond(s, aid, False, "Redirect of this channel is not simulated")
            return
        self._respond(s, aid, True, "Redirect successful")
        party = self._party_for(wire.get(a, "Exten"))
        self._spawn(self._blind(call, party, announce=False, ring_ms=500))

    async def _action_blindtransfer(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        call = self._calls.get(ch.linkedid)
        if call is None or ch is not call.agent:
            self._respond(s, aid, False, "Transfer of this channel is not simulated")
            return
        self._respond(s, aid, True, "Transfer succeeded")
        party = self._party_for(wire.get(a, "Exten"))
        self._spawn(self._blind(call, party, announce=True, ring_ms=500))

    async def _action_atxfer(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        call = self._calls.get(ch.linkedid)
        if call is None or ch is not call.agent:
            self._respond(s, aid, False, "Transfer of this channel is not simulated")
            return
        self._respond(s, aid, True, "Atxfer successfully queued")
        exten = wire.get(a, "Exten")
        if not DTMF_EXTEN.match(exten):
            # A real Asterisk 20.20.1 types the extension into the transfer feature as DTMF: a "+" is
            # no digit, the feature collects "15…", finds no such extension and consults nobody; the
            # agent stays on hold (captured on the real PBX, /work/pbx lab, 2026-12-02).
            self.event("Hold", self.snap(call.agent))
            return
        party = self._party_for(exten)
        self._spawn(
            self._atxfer_consult(call, party, ring_ms=500, outcome="busy" if self.busy(party.number) else "answer")
        )

    def busy(self, number: str) -> bool:
        """Whether the phone at `number` answers an attended transfer's consultation busy (subclasses)."""
        return False

    async def _action_originate(self, s: Session, a: dict[str, list[str]], aid: str) -> None:
        """`Channel: SIP/<ext>` + `Exten: <number>`: the agent's phone places an outbound call that the
        customer answers at once; it runs until hung up (Hangup action) — enough for demos."""
        channel, exten = wire.get(a, "Channel"), wire.get(a, "Exten")
        m = re.fullmatch(r"(?:SIP|PJSIP)/(\d+)", channel)
        if not m or not exten:
            self._respond(s, aid, False, "Originate of this channel is not simulated")
            return
        self._respond(s, aid, True, "Originate successfully queued")
        agent = sc.Party("agent", m.group(1), sc.AGENT.tone_hz, internal=True, name=f"Agent {m.group(1)}")
        customer = sc.Party("customer", exten, sc.CUSTOMER.tone_hz, internal=False, name="Customer")
        call = self._place(sc.PlaceCall("outbound", hook=False), {"agent": agent, "customer": customer})
        self._answer(call)
        resp = [("ActionID", aid), ("Response", "Success"), *self.snap(call.agent)[:1], ("Context", call.agent.context)]
        self.event("OriginateResponse", [*resp, ("Exten", exten), ("Reason", "4"), ("Uniqueid", call.agent.uniqueid)])


async def _main() -> None:  # pragma: no cover - manual lab use
    import argparse

    p = argparse.ArgumentParser(description="callrec AMI simulator")
    p.add_argument("--port", type=int, default=5038)
    p.add_argument("--username", default="callrec")
    p.add_argument("--secret", default="callrec-secret")
    args = p.parse_args()
    sim = AmiSimulator(port=args.port, username=args.username, secret=args.secret, time_scale=1.0)
    await sim.start()
    print(f"AMI simulator on 127.0.0.1:{sim.port} (user {args.username})")
    await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
