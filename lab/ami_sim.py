"""AMI simulator: an asyncio TCP server that speaks Asterisk 20's Manager Interface and plays the
PBX-neutral scenarios of `lab.scenarios` as SIP-shaped calls (trunk + phone channels, like fixtures
S7/S8), writing MixMonitor r()/t() leg files as real 8 kHz WAVs (a tone per party, silence while
muted). The Asterisk twin of the ESL simulator; it doubles as a load generator.

Wire shapes follow the real captures (tests/fixtures/asterisk): the banner line, `Response`/`ActionID`
replies, event blocks with `Privilege` and `Timestamp`, the channel snapshot headers in Asterisk's
order, `ChanVariable:` lines for the configured channelvars, `Events:` class filtering, list actions
(`CoreShowChannels` → CoreShowChannel… + Complete), and `Command` output as `Output:` lines.

Audio semantics are Asterisk's: `r()` gets what the recorded channel SENDS (its own party), `t()` what
is SENT TO it (whoever it is bridged to; silence while ringing or on hold). Hold music and ringback
are written as silence, so a file's only tones are the parties'.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from lab import scenarios as sc
from lab.tones import WavWriter

log = logging.getLogger(__name__)

BANNER = "Asterisk Call Manager/9.0.0"
DEFAULT_CHANNELVARS = (
    "CALLREC_ACCOUNT",
    "CALLREC_ACCOUNT_NUMBER",
    "CALLREC_DIRECTION",
    "CALLREC_RECORD",
    "CALLREC_RECORDING",
    "CALLREC_FILES",
    "CALLREC_MIXMON",
)
STATE_DESC = {0: "Down", 4: "Ring", 5: "Ringing", 6: "Up"}
PRIVILEGE = {
    "FullyBooted": "system",
    "VarSet": "dialplan",
    "Newexten": "dialplan",
    "UserEvent": "user",
}
EOL = "\r\n"


@dataclass
class SimChannel:
    name: str
    uniqueid: str
    linkedid: str
    caller: str
    caller_name: str
    context: str
    exten: str
    tone: int | None
    state: int = 0
    connected: str = ""
    connected_name: str = ""
    priority: int = 1
    variables: dict[str, str] = field(default_factory=dict)
    bridge: SimBridge | None = None
    held: bool = False
    monitors: list[SimMixMonitor] = field(default_factory=list)
    alive: bool = True

    def snapshot(self, channelvars: tuple[str, ...], prefix: str = "") -> list[tuple[str, str]]:
        h = [
            ("Channel", self.name),
            ("ChannelState", str(self.state)),
            ("ChannelStateDesc", STATE_DESC.get(self.state, "Unknown")),
            ("CallerIDNum", self.caller or "<unknown>"),
            ("CallerIDName", self.caller_name or "<unknown>"),
            ("ConnectedLineNum", self.connected or "<unknown>"),
            ("ConnectedLineName", self.connected_name or "<unknown>"),
            ("Language", "en"),
            ("AccountCode", ""),
            ("Context", self.context),
            ("Exten", self.exten),
            ("Priority", str(self.priority)),
            ("Uniqueid", self.uniqueid),
            ("Linkedid", self.linkedid),
        ]
        h += [("ChanVariable", f"{v}={self.variables.get(v, '')}") for v in channelvars]
        return [(prefix + k, v) for k, v in h]


@dataclass
class SimBridge:
    uniqueid: str
    members: list[SimChannel] = field(default_factory=list)

    def snapshot(self, prefix: str = "Bridge") -> list[tuple[str, str]]:
        p = prefix
        return [
            (f"{p}Uniqueid", self.uniqueid),
            (f"{p}Type", "basic"),
            (f"{p}Technology", "simple_bridge"),
            (f"{p}Creator", "<unknown>"),
            (f"{p}Name", "<unknown>"),
            (f"{p}NumChannels", str(len(self.members))),
            (f"{p}VideoSourceMode", "none"),
        ]


@dataclass
class SimMixMonitor:
    id: str
    channel: SimChannel
    read: WavWriter | None  # r(): what the channel sends
    write: WavWriter | None  # t(): what is sent to the channel
    mute_read: bool = False
    mute_write: bool = False

    def advance(self, ms: float) -> None:
        ch = self.channel
        own = None if (self.mute_read or ch.state != 6) else ch.tone
        far = None
        if not self.mute_write and not ch.held and ch.bridge is not None:
            others = [m for m in ch.bridge.members if m is not ch and not m.held]
            if len(others) == 1:
                far = others[0].tone
        if self.read:
            self.read.write((own,), ms)
        if self.write:
            self.write.write((far,), ms)

    def close(self) -> None:
        for w in (self.read, self.write):
            if w:
                w.close()


class _Session:
    def __init__(self, sim: AmiSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sim, self.reader, self.writer = sim, reader, writer
        self.authenticated = False
        self.events: set[str] | None = None  # None = all; empty = none

    def wants(self, privilege: str) -> bool:
        if not self.authenticated:
            return False
        if self.events is None:
            return True
        return privilege in self.events

    def send(self, headers: list[tuple[str, str]]) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(("".join(f"{k}: {v}{EOL}" for k, v in headers) + EOL).encode())

    def set_events(self, value: str) -> None:
        v = value.strip().lower()
        if v in ("on", "yes", "true", "all", ""):
            self.events = None
        elif v in ("off", "no", "false"):
            self.events = set()
        else:
            self.events = {x.strip() for x in v.split(",") if x.strip()}


ActionHandler = Callable[[_Session, dict[str, list[str]], str], Awaitable[None]]


class AmiSimulator:
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
        self.settle_timeout = settle_timeout
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.channelvars = channelvars
        self.time_scale = time_scale  # wall seconds slept per simulated second (0 = as fast as possible)
        self.sessions: set[_Session] = set()
        self.channels: dict[str, SimChannel] = {}  # by name
        self.actions_seen: list[dict[str, list[str]]] = []
        self._server: asyncio.base_events.Server | None = None
        self._seq = itertools.count(1)
        self._uid = itertools.count(1)
        self._epoch = int(time.time())
        self.logins_refused = 0

    # ---- server ---------------------------------------------------------------------------------

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for ch in list(self.channels.values()):
            for m in ch.monitors:
                m.close()

    def drop_connections(self) -> None:
        """Cut every AMI connection abruptly (the calls go on)."""
        for s in list(self.sessions):
            with contextlib.suppress(Exception):
                s.writer.transport.abort()
        self.sessions.clear()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = _Session(self, reader, writer)
        self.sessions.add(s)
        writer.write((BANNER + EOL).encode())
        try:
            while True:
                raw = await reader.readuntil(b"\r\n\r\n")
                action = _parse(raw.decode("utf-8", "replace"))
                if action:
                    self.actions_seen.append(action)
                    await self._dispatch(s, action)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self.sessions.discard(s)
            with contextlib.suppress(Exception):
                writer.close()

    def _respond(self, s: _Session, aid: str, ok: bool, message: str = "", extra: list[tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
        h = [("Response", "Success" if ok else "Error")]
        if aid:
            h.append(("ActionID", aid))
        if message:
            h.append(("Message", message))
        s.send(h + list(extra))

    async def _dispatch(self, s: _Session, a: dict[str, list[str]]) -> None:
        name = _get(a, "Action").lower()
        aid = _get(a, "ActionID")
        if name == "login":
            if _get(a, "Username") == self.username and _get(a, "Secret") == self.secret:
                s.authenticated = True
                s.set_events(_get(a, "Events") or "on")
                self._respond(s, aid, True, "Authentication accepted")
                self._event_to(s, "FullyBooted", [("Uptime", "473"), ("LastReload", "473"), ("Status", "Fully Booted")])
            else:
                self.logins_refused += 1
                self._respond(s, aid, False, "Authentication failed")
                await s.writer.drain()
                s.writer.close()
            return
        if name == "ping":
            s.send([("Response", "Success"), ("ActionID", aid), ("Ping", "Pong"), ("Timestamp", f"{time.time():.6f}")])
            return
        if name == "logoff":
            s.send([("Response", "Goodbye"), ("ActionID", aid), ("Message", "Thanks for all the fish.")])
            await s.writer.drain()
            s.writer.close()
            return
        if not s.authenticated:
            self._respond(s, aid, False, "Permission denied")
            return
        handler = getattr(self, "_action_" + name, None)
        if handler is None:
            self._respond(s, aid, False, "Invalid/unknown command")
            return
        await handler(s, a, aid)

    # ---- events ---------------------------------------------------------------------------------

    def _event_headers(self, name: str, body: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
        cls = PRIVILEGE.get(name, "call")
        h = [("Event", name), ("Privilege", f"{cls},all")]
        if name != "FullyBooted":
            h.append(("Timestamp", f"{time.time():.6f}"))
        return cls, h + body

    def _event_to(self, s: _Session, name: str, body: list[tuple[str, str]]) -> None:
        cls, h = self._event_headers(name, body)
        if s.wants(cls):
            s.send(h)

    def event(self, name: str, body: list[tuple[str, str]]) -> None:
        cls, h = self._event_headers(name, body)
        for s in list(self.sessions):
            if s.wants(cls):
                s.send(h)

    def snap(self, ch: SimChannel, prefix: str = "") -> list[tuple[str, str]]:
        return ch.snapshot(self.channelvars, prefix)

    # ---- channel model --------------------------------------------------------------------------

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

    def enter(self, b: SimBridge, ch: SimChannel) -> None:
        b.members.append(ch)
        ch.bridge = b
        self.event("BridgeEnter", [*b.snapshot(), *self.snap(ch)])

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
        self.event("Hangup", [*self.snap(ch), ("Cause", cause), ("Cause-txt", "Normal Clearing")])

    def advance_audio(self, ms: float) -> None:
        for ch in list(self.channels.values()):
            for m in ch.monitors:
                m.advance(ms)

    async def elapse(self, ms: float) -> None:
        """Simulated time passes: every running MixMonitor gets `ms` of audio."""
        step = 250.0
        left = float(ms)
        while left > 0:
            chunk = min(step, left)
            self.advance_audio(chunk)
            left -= chunk
            await asyncio.sleep(chunk / 1000 * self.time_scale)

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

    # ---- actions --------------------------------------------------------------------------------

    def _channel_arg(self, s: _Session, a: dict[str, list[str]], aid: str, key: str = "Channel") -> SimChannel | None:
        name = _get(a, key)
        if not name:
            self._respond(s, aid, False, "No channel specified")
            return None
        ch = self.channels.get(name)
        if ch is None:
            self._respond(s, aid, False, "No such channel")
        return ch

    async def _action_events(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        s.set_events(_get(a, "EventMask"))
        s.send([("Response", "Success"), ("ActionID", aid), ("Events", _get(a, "EventMask") or "on")])

    async def _action_command(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        cmd = _get(a, "Command").strip()
        if cmd == "core show version":
            out = ["Asterisk 20.20.1 (callrec AMI simulator)"]
        elif cmd == "core show channels":
            out = [f"{c.name:<30} {c.context}/{c.exten} {STATE_DESC.get(c.state, '?')}" for c in self.channels.values()]
            out.append(f"{len(self.channels)} active channels")
        else:
            self._respond(s, aid, False, "Command output follows", [("Output", f"No such command '{cmd}'")])
            return
        self._respond(s, aid, True, "Command output follows", [("Output", line) for line in out])

    async def _action_coreshowchannels(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
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
            s.send(self._event_headers("CoreShowChannel", body)[1])  # list replies ignore the Events filter
        s.send(
            [("Event", "CoreShowChannelsComplete"), ("ActionID", aid), ("EventList", "Complete"), ("ListItems", str(n))]
        )

    async def _action_getvar(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is not None:
            var = _get(a, "Variable")
            s.send(
                [("Response", "Success"), ("ActionID", aid), ("Variable", var), ("Value", ch.variables.get(var, ""))]
            )

    async def _action_setvar(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is not None:
            self._respond(s, aid, True, "Variable Set")
            self.set_var(ch, _get(a, "Variable"), _get(a, "Value"))

    async def _action_mixmonitor(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        opts = _get(a, "Options")
        args = dict(re.findall(r"([a-zA-Z])\(([^)]*)\)", opts))
        if not args.get("r") and not args.get("t") and not _get(a, "File"):
            self._respond(s, aid, False, "Could not start monitoring channel")
            return
        mon = SimMixMonitor(
            id=f"0x{id(ch) + len(ch.monitors):x}",
            channel=ch,
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

    async def _action_mixmonitormute(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        direction = (_get(a, "Direction") or "both").lower()
        state = _get(a, "State") in ("1", "yes", "true", "on")
        want = _get(a, "MixMonitorID")
        targets = [m for m in ch.monitors if not want or m.id == want]
        if not targets:
            self._respond(s, aid, False, "Cannot set mute flag")
            return
        for m in targets:
            if direction in ("read", "both"):
                m.mute_read = state
            if direction in ("write", "both"):
                m.mute_write = state
        self._respond(s, aid, True)
        self.event("MixMonitorMute", [*self.snap(ch), ("Direction", direction), ("State", "1" if state else "0")])

    async def _action_stopmixmonitor(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        want = _get(a, "MixMonitorID")
        targets = [m for m in ch.monitors if not want or m.id == want][:1]
        if not targets:
            self._respond(s, aid, False, "Could not stop MixMonitor")
            return
        for m in targets:
            m.close()
            ch.monitors.remove(m)
        self._respond(s, aid, True)
        self.event("MixMonitorStop", self.snap(ch))

    async def _action_hangup(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
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

    async def _action_redirect(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        call = self._calls.get(ch.linkedid)
        if call is None or ch is not call.customer:
            self._respond(s, aid, False, "Redirect of this channel is not simulated")
            return
        self._respond(s, aid, True, "Redirect successful")
        party = self._party_for(_get(a, "Exten"))
        self._spawn(self._blind(call, party, announce=False, ring_ms=500))

    async def _action_blindtransfer(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        call = self._calls.get(ch.linkedid)
        if call is None or ch is not call.agent:
            self._respond(s, aid, False, "Transfer of this channel is not simulated")
            return
        self._respond(s, aid, True, "Transfer succeeded")
        party = self._party_for(_get(a, "Exten"))
        self._spawn(self._blind(call, party, announce=True, ring_ms=500))

    async def _action_atxfer(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        ch = self._channel_arg(s, a, aid)
        if ch is None:
            return
        call = self._calls.get(ch.linkedid)
        if call is None or ch is not call.agent:
            self._respond(s, aid, False, "Transfer of this channel is not simulated")
            return
        self._respond(s, aid, True, "Atxfer successfully queued")
        party = self._party_for(_get(a, "Exten"))
        self._spawn(self._atxfer_consult(call, party, ring_ms=500))

    async def _action_originate(self, s: _Session, a: dict[str, list[str]], aid: str) -> None:
        """`Channel: SIP/<ext>` + `Exten: <number>`: the agent's phone places an outbound call that the
        customer answers at once; it runs until hung up (Hangup action) — enough for demos."""
        channel, exten = _get(a, "Channel"), _get(a, "Exten")
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

    # ---- calls (scenario playback) -------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        if not hasattr(self, "_tasks"):
            self._tasks: set[asyncio.Task[None]] = set()
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def _calls(self) -> dict[str, SimCall]:
        if not hasattr(self, "_calls_by_linkedid"):
            self._calls_by_linkedid: dict[str, SimCall] = {}
        return self._calls_by_linkedid

    def _party_for(self, number: str) -> sc.Party:
        for p in (sc.TARGET_INTERNAL, sc.TARGET_EXTERNAL, sc.AGENT):
            if p.number == number:
                return p
        internal = number.isdigit() and len(number) <= 5
        return sc.Party("target", number, sc.TARGET_INTERNAL.tone_hz, internal=internal, name=number)

    def _phone(self, p: sc.Party, linkedid: str, context: str = "from-internal", exten: str = "s") -> SimChannel:
        tech = f"SIP/{p.number}" if p.internal else "SIP/trunk"
        return self.new_channel(tech, p.number, p.name, context, exten, p.tone_hz, linkedid)

    def _place(self, step: sc.PlaceCall, parties: dict[str, sc.Party]) -> SimCall:
        cust_p, agent_p = parties["customer"], parties["agent"]
        if step.direction == "inbound":
            caller = self.new_channel("SIP/trunk", cust_p.number, cust_p.name, "from-trunk", step.did, cust_p.tone_hz)
            self.set_state(caller, 4)
        else:
            caller = self._phone(agent_p, "", exten=cust_p.number)
            self.set_state(caller, 4)
        if step.hook:
            self._run_hook(caller, step)
        if step.direction == "inbound":
            callee = self._phone(agent_p, caller.linkedid)
            dial = agent_p.number
            call = SimCall(step.direction, customer=caller, agent=callee, parties=dict(parties))
        else:
            callee = self.new_channel(
                "SIP/trunk", cust_p.number, cust_p.name, "from-internal", "s", cust_p.tone_hz, caller.linkedid
            )
            dial = f"trunk/{cust_p.number}"
            call = SimCall(step.direction, customer=callee, agent=caller, parties=dict(parties))
        self._calls[caller.linkedid] = call
        self.dial_begin(caller, callee, dial)
        self.set_state(callee, 5)
        self.event("DialState", [*self.snap(caller), *self.snap(callee, "Dest"), ("DialStatus", "RINGING")])
        call.caller, call.callee = caller, callee
        return call

    def _run_hook(self, ch: SimChannel, step: sc.PlaceCall) -> None:
        """What dialplan/asterisk/callrec.conf's [callrec-policy] Gosub does."""
        values = {
            "CALLREC_ACCOUNT": step.account,
            "CALLREC_ACCOUNT_NUMBER": step.did,
            "CALLREC_DIRECTION": step.direction,
            "CALLREC_RECORD": step.record or "",
        }
        # The Gosub runs in [callrec-policy]: its VarSet/UserEvent snapshots show that position (real
        # capture tests/fixtures/asterisk/real/R1: Context callrec-policy, Exten s, Priority 2..6).
        route = (ch.context, ch.exten, ch.priority)
        ch.context, ch.exten = "callrec-policy", "s"
        for priority, (k, v) in enumerate(values.items(), start=2):
            ch.priority = priority
            self.set_var(ch, k, v)
        ch.priority = 6
        self.event(
            "UserEvent",
            [
                *self.snap(ch),
                ("UserEvent", "CallrecPolicy"),
                ("CallrecAccount", step.account),
                ("CallrecAccountNumber", step.did),
                ("CallrecDirection", step.direction),
                ("CallrecRecord", step.record or ""),
            ],
        )
        ch.context, ch.exten, ch.priority = route

    def _answer(self, call: SimCall) -> None:
        caller, callee = call.caller, call.callee
        self.set_state(callee, 6)
        callee.connected, caller.connected = caller.caller, callee.caller
        self.dial_end(caller, callee, "ANSWER")
        self.set_state(caller, 6)
        b = self.new_bridge()
        self.enter(b, callee)
        self.enter(b, caller)

    def _hangup_call(self, call: SimCall, first: SimChannel) -> None:
        """Real order (S7/S8): HangupRequest, BridgeLeave, SoftHangupRequest of the side that hangs up,
        then the peer leaves, the bridge goes, the peer's Hangup, and the first side's Hangup."""
        self.event("HangupRequest", [*self.snap(first), ("Cause", "16")])
        b = first.bridge
        if b is not None:
            self.leave(first)
        self.event("SoftHangupRequest", [*self.snap(first), ("Cause", "16")])
        others = [c for c in self.channels.values() if c.linkedid == call.customer.linkedid and c is not first]
        if b is not None:
            for c in list(b.members):
                self.leave(c)
            self.destroy(b)
        for c in others:
            self.hangup(c)
        self.hangup(first)
        self._calls.pop(call.customer.linkedid, None)

    def _cancel(self, call: SimCall) -> None:
        self.event("HangupRequest", [*self.snap(call.caller), ("Cause", "16")])
        self.dial_end(call.caller, call.callee, "CANCEL")
        self.hangup(call.callee, "16")
        self.hangup(call.caller, "16")
        self._calls.pop(call.caller.linkedid, None)

    async def _blind(self, call: SimCall, party: sc.Party, *, announce: bool, ring_ms: int) -> None:
        """BlindTransfer (announce: phone REFER or AMI BlindTransfer, fixtures S8/S3) or Redirect
        (no transfer event, S3b): the agent leg goes, the customer dials the target."""
        cust, agent = call.customer, call.agent
        b = cust.bridge
        if announce:
            self.event("Unhold", self.snap(agent))
            body = [("Result", "Success"), *self.snap(agent, "Transferer"), *self.snap(cust, "Transferee")]
            if b is not None:
                body += b.snapshot()
            body += [("IsExternal", "Yes"), ("Context", agent.context), ("Extension", party.number)]
            self.event("BlindTransfer", body)
        if b is not None:
            self.leave(cust)
            self.leave(agent)
        self.hangup(agent)
        target = self._phone(party, cust.linkedid)
        if b is not None:
            self.destroy(b)
        cust.exten = party.number
        self.dial_begin(cust, target, party.number if party.internal else f"trunk/{party.number}")
        self.set_state(target, 5)
        self.event("DialState", [*self.snap(cust), *self.snap(target, "Dest"), ("DialStatus", "RINGING")])
        await self.elapse(ring_ms)
        self.set_state(target, 6)
        self.dial_end(cust, target, "ANSWER")
        nb = self.new_bridge()
        self.enter(nb, target)
        self.enter(nb, cust)
        call.agent = target
        call.parties["agent"] = party

    async def _attended_phone(self, call: SimCall, party: sc.Party, ring_ms: int, consult_ms: int) -> None:
        """The agent's phone: hold, a second call to the target, REFER with Replaces (fixture S8c)."""
        cust, agent = call.customer, call.agent
        b1 = cust.bridge
        agent.held = True
        self.event("Hold", self.snap(agent))
        self.event("MusicOnHoldStart", [*self.snap(cust), ("Class", "default")])
        agent_p = call.parties["agent"]
        second = self.new_channel(
            f"SIP/{agent_p.number}", agent_p.number, agent_p.name, "from-internal", party.number, agent_p.tone_hz
        )
        self.set_state(second, 4)
        target = self._phone(party, second.linkedid)
        self.dial_begin(second, target, party.number if party.internal else f"trunk/{party.number}")
        self.set_state(target, 5)
        await self.elapse(ring_ms)
        self.set_state(target, 6)
        self.dial_end(second, target, "ANSWER")
        self.set_state(second, 6)
        b2 = self.new_bridge()
        self.enter(b2, target)
        self.enter(b2, second)
        await self.elapse(consult_ms)
        agent.held = False
        self.event("Unhold", self.snap(agent))
        self.event("MusicOnHoldStop", self.snap(cust))
        self.leave(cust)
        self.leave(second)
        self.enter(b2, cust)
        self.leave(agent)
        body = [("Result", "Success"), *self.snap(agent, "OrigTransferer")]
        body += (b1.snapshot("OrigBridge") if b1 else []) + self.snap(second, "SecondTransferer")
        body += b2.snapshot("SecondBridge") + self.snap(cust, "Transferee") + self.snap(target, "TransferTarget")
        body += [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", b2.uniqueid)]
        self.event("AttendedTransfer", body)
        target.linkedid = cust.linkedid
        self.hangup(second)
        self.hangup(agent)
        if b1 is not None:
            self.destroy(b1)
        call.agent = target
        call.parties["agent"] = party

    async def _atxfer_consult(self, call: SimCall, party: sc.Party, ring_ms: int) -> None:
        """Atxfer (fixture S4): the bridge's feature makes a Local consultation channel for the agent."""
        cust, agent = call.customer, call.agent
        agent.held = True
        self.event("Hold", self.snap(agent))
        self.event("MusicOnHoldStart", [*self.snap(cust), ("Class", "default")])
        seq = next(self._seq)
        name = f"Local/{party.number}@from-internal-{seq:08x}"
        x1 = SimChannel(
            name + ";1",
            f"{self._epoch}.{next(self._uid)}",
            cust.linkedid,
            "",
            "",
            "from-internal",
            party.number,
            party.tone_hz,
        )
        x2 = SimChannel(
            name + ";2",
            f"{self._epoch}.{next(self._uid)}",
            cust.linkedid,
            agent.caller,
            "",
            "from-internal",
            party.number,
            None,
            state=4,
        )
        for x in (x1, x2):
            self.channels[x.name] = x
            self.event("Newchannel", self.snap(x))
        b2 = self.new_bridge()
        self.enter(b2, x1)
        self.leave(agent)
        self.enter(b2, agent)
        agent.held = False
        target = self._phone(party, cust.linkedid)
        self.dial_begin(x2, target, party.number if party.internal else f"trunk/{party.number}")
        self.set_state(target, 5)
        await self.elapse(ring_ms)
        self.set_state(target, 6)
        self.dial_end(x2, target, "ANSWER")
        self.set_state(x2, 6)
        self.set_state(x1, 6)
        b3 = self.new_bridge()
        self.enter(b3, target)
        self.enter(b3, x2)
        call.pending_atxfer = (party, x1, x2, target, b2, b3)

    def _complete_atxfer(self, call: SimCall) -> None:
        """The transferer hangs up: the consultation joins the customer's bridge, then optimizes away."""
        assert call.pending_atxfer is not None
        party, x1, x2, target, b2, b3 = call.pending_atxfer
        cust, agent = call.customer, call.agent
        b1 = cust.bridge
        self.leave(agent)
        self.leave(x1)
        if b1 is not None:
            self.enter(b1, x1)
        self.event("MusicOnHoldStop", self.snap(cust))
        body = [("Result", "Success"), *self.snap(agent, "OrigTransferer")]
        body += (b1.snapshot("OrigBridge") if b1 else []) + self.snap(agent, "SecondTransferer")
        body += b2.snapshot("SecondBridge") + self.snap(cust, "Transferee")
        body += [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", b1.uniqueid if b1 else "")]
        self.event("AttendedTransfer", body)
        self.destroy(b2)
        self.hangup(agent)
        self.event("LocalOptimizationBegin", [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo")])
        self.leave(target)
        self.leave(x1)
        if b1 is not None:
            self.enter(b1, target)
        self.event("LocalOptimizationEnd", [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo"), ("Success", "Yes")])
        self.leave(x2)
        self.destroy(b3)
        self.hangup(x2)
        self.hangup(x1)
        call.agent = target
        call.parties["agent"] = party
        call.pending_atxfer = None

    async def _until(self, cond: Callable[[], bool]) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + self.settle_timeout
        while not cond():
            if loop.time() >= end:
                return False
            await asyncio.sleep(0.005)
        return True

    async def play(
        self,
        scenario: sc.Scenario,
        on_step: Callable[[sc.Step], Awaitable[None]] | None = None,
        *,
        settle: bool = True,
    ) -> SimCall:
        """Play one scenario; returns the call (its `first_customer` is the recorded channel).

        `on_step(step)` is awaited after the simulator did its part of each step: the harness performs
        Pause/Resume through the controller and restarts it on ControllerRestart. With `settle`, the
        simulator waits (up to settle_timeout) after the answer for the recording the scenario
        expects, and after a transfer that should stop it for the stop — as a real PBX's call would
        not outrun a controller that reacts in milliseconds — so the files are deterministic."""
        call: SimCall | None = None
        for step in scenario.steps:
            if isinstance(step, sc.PlaceCall):
                call = self._place(step, scenario.parties)
            elif call is None:
                raise ValueError(f"{scenario.name}: {step} before PlaceCall")
            elif isinstance(step, sc.Ring):
                await self.elapse(step.ms)
            elif isinstance(step, sc.Answer):
                self._answer(call)
                if settle and scenario.expect.recorded:
                    await self._until(lambda c=call: bool(c.customer.monitors))  # type: ignore[misc]
            elif isinstance(step, sc.Talk):
                await self.elapse(step.ms)
            elif isinstance(step, sc.Transfer):
                party = scenario.parties[step.to]
                if step.kind == "blind":
                    await self._blind(call, party, announce=step.method == "phone", ring_ms=step.ring_ms)
                elif step.method == "phone":
                    await self._attended_phone(call, party, step.ring_ms, step.consult_ms)
                else:
                    await self._atxfer_consult(call, party, step.ring_ms)
                    await self.elapse(step.consult_ms)
                    self._complete_atxfer(call)
                if settle and scenario.expect.ends_at_transfer:
                    await self._until(lambda c=call: not c.customer.monitors)  # type: ignore[misc]
            elif isinstance(step, sc.Hangup):
                who = {"customer": call.customer, "agent": call.agent, "target": call.agent}[step.party]
                self._hangup_call(call, who)
            elif isinstance(step, sc.Cancel):
                self._cancel(call)
            elif isinstance(step, sc.LinkDrop):
                self.drop_connections()
            if on_step is not None:
                await on_step(step)
        assert call is not None
        return call


@dataclass
class SimCall:
    direction: str
    customer: SimChannel
    agent: SimChannel
    parties: dict[str, sc.Party]
    caller: SimChannel | None = None  # type: ignore[assignment]
    callee: SimChannel | None = None  # type: ignore[assignment]
    pending_atxfer: tuple | None = None  # type: ignore[type-arg]


def _parse(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.split("\r\n"):
        k, sep, v = line.partition(":")
        if sep:
            out.setdefault(k.strip().lower(), []).append(v.strip())
    return out


def _get(a: dict[str, list[str]], key: str) -> str:
    v = a.get(key.lower())
    return v[0] if v else ""


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
