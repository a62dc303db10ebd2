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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import time
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from lab import scenarios as sc
from lab.tones import TARGET_HZ, WavWriter

log = logging.getLogger("callrec.lab.esl_sim")

CORE_UUID = "5e1c0de5-0000-4000-8000-00000000c0de"
DOMAIN = "127.0.0.1"
TRUNK_HOST = "203.0.113.10"


@dataclass
class Recording:
    path: str
    writer: WavWriter
    masked: bool = False
    variables: dict[str, str] = field(default_factory=dict)


@dataclass
class Channel:
    uuid: str
    name: str
    direction: str  # FreeSWITCH Call-Direction of this leg: inbound | outbound
    caller_num: str
    caller_name: str
    dest: str
    context: str
    call_uuid: str
    tone: int | None
    party: str  # number of the phone/party on this leg
    variables: dict[str, str] = field(default_factory=dict)
    answer_state: str = "ringing"
    call_state: str = "DOWN"
    state: str = "CS_INIT"
    created_us: int = 0
    answered_us: int = 0
    bridged_to: str | None = None
    other_type: str = ""
    other_leg: str | None = None
    held: bool = False
    recordings: dict[str, Recording] = field(default_factory=dict)
    gone: bool = False


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class _Conn:
    """One ESL client connection."""

    def __init__(self, sim: EslSimulator, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sim, self.reader, self.writer = sim, reader, writer
        self.authed = False
        self.events: set[str] = set()
        self.subclasses: set[str] = set()
        self.all_events = False

    def wants(self, name: str, subclass: str = "") -> bool:
        if not self.authed:
            return False
        if self.all_events:
            return True
        if name == "CUSTOM":
            return "CUSTOM" in self.events and (not self.subclasses or subclass in self.subclasses)
        return name in self.events

    def send(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def reply(self, text: str) -> None:
        self.send(f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def api_response(self, body: str) -> None:
        raw = body.encode()
        self.send(f"Content-Type: api/response\nContent-Length: {len(raw)}\n\n".encode() + raw)


class EslSimulator:
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
        self.password, self.host, self.port = password, host, port
        self.time_scale = time_scale
        self.settle_timeout = settle_timeout
        self.channels: dict[str, Channel] = {}
        self.conns: set[_Conn] = set()
        self.server: asyncio.base_events.Server | None = None
        self._seq = itertools.count(1000)
        self.commands: list[str] = []  # every api/bgapi command received (for tests)
        self.sent_events: list[dict[str, str]] = []  # kept only when record_events is on
        self.record_events = False
        self._changed = asyncio.Event()
        self.refuse_auth = False
        self.handles: dict[str, CallHandle] = {}  # customer leg → its scenario call
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- server ----
    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        self.drop_connections()
        if self.server:
            self.server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.server.wait_closed(), 2)
        for ch in self.channels.values():
            for rec in ch.recordings.values():
                rec.writer.close()

    def drop_connections(self) -> None:
        """Cut every ESL connection abruptly (the calls go on)."""
        for c in list(self.conns):
            with contextlib.suppress(Exception):
                c.writer.transport.abort()
        self.conns.clear()

    async def wait_connected(self, limit: float = 5.0) -> bool:
        """Wait until a client subscribed to events (the controller is listening)."""
        return await self._wait(lambda: any(c.events for c in self.conns), limit)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(self, reader, writer)
        self.conns.add(conn)
        conn.send(b"Content-Type: auth/request\n\n")
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\n\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                lines = raw.decode("utf-8", "replace").strip("\n").split("\n")
                if not lines or not lines[0]:
                    continue
                if not await self._command(conn, lines[0].strip(), lines[1:]):
                    break
                await writer.drain()
        finally:
            self.conns.discard(conn)
            with contextlib.suppress(Exception):
                writer.close()

    async def _command(self, conn: _Conn, line: str, extra: list[str]) -> bool:
        if not conn.authed:
            if line.startswith("auth "):
                if line[5:] == self.password and not self.refuse_auth:
                    conn.authed = True
                    conn.reply("+OK accepted")
                    return True
                conn.reply("-ERR invalid")
                conn.send(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n")
                await conn.writer.drain()
                return False
            conn.reply("-ERR command not found")
            return True
        if line.startswith("event "):
            words = line.split()[1:]
            if words and words[0] in ("plain", "json", "xml"):
                words = words[1:]
            for w in words:
                if w == "ALL":
                    conn.all_events = True
                elif "::" in w:
                    conn.subclasses.add(w)
                else:
                    conn.events.add(w)
            conn.reply("+OK event listener enabled plain")
            self._changed.set()
            return True
        if line in ("exit", "quit"):
            conn.reply("+OK bye")
            conn.send(b"Content-Type: text/disconnect-notice\nContent-Length: 0\n\n")
            return False
        if line.startswith("noevents"):
            conn.events.clear()
            conn.all_events = False
            conn.reply("+OK no longer listening for events")
            return True
        if line.startswith("api "):
            conn.api_response(self.api(line[4:].strip()))
            return True
        if line.startswith("bgapi "):
            job = str(uuidlib.uuid4())
            conn.send(f"Content-Type: command/reply\nReply-Text: +OK Job-UUID: {job}\nJob-UUID: {job}\n\n".encode())
            result = self.api(line[6:].strip())
            self._emit("BACKGROUND_JOB", None, {"Job-UUID": job, "Job-Command": line[6:].split(" ", 1)[0]}, body=result)
            return True
        conn.reply("-ERR command not found")
        return True

    # ---- api ----
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
            if name == "uuid_transfer" and len(args) >= 2:
                return self._uuid_transfer([a for a in args if not a.startswith("-")])
            if name == "uuid_bridge" and len(args) >= 2:
                return self._uuid_bridge(self._chan(args[0]), self._chan(args[1]))
            if name == "originate" and args:
                return self._originate_api(args[0])
        except KeyError:
            return "-ERR No such channel!\n"
        return f"-ERR {name} Command not found!\n"

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
        """Bridge two live legs; their previous partners are hung up (hangup_after_bridge)."""
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

    def _chan(self, uid: str) -> Channel:
        ch = self.channels.get(uid)
        if ch is None or ch.gone:
            raise KeyError(uid)
        return ch

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
        if action == "mask":
            found.masked = True
        elif action == "unmask":
            found.masked = False
        elif action == "stop":
            self._close_recording(ch, found)
        else:
            return "-USAGE: <uuid> [start|stop|mask|unmask] <path>\n"
        self._changed.set()
        return "+OK Success\n"

    def _close_recording(self, ch: Channel, rec: Recording, cause: str = "success-silence") -> None:
        rec.writer.close()
        ch.recordings.pop(rec.path, None)
        ms = int(rec.writer.duration_ms)
        self._emit(
            "RECORD_STOP",
            ch,
            {
                "Record-File-Path": rec.path,
                "Record-Completion-Cause": cause,
                **{f"Recording-Variable-{k}": v for k, v in rec.variables.items()},
                "variable_record_seconds": str(ms // 1000),
                "variable_record_ms": str(ms),
            },
        )
        self._changed.set()

    def _show(self, what: str) -> str:
        live = [c for c in self.channels.values() if not c.gone]
        if what == "channels":
            rows = [self._show_row(c) for c in live]
        else:
            rows = []
            seen: set[str] = set()
            for c in live:
                if c.uuid in seen:
                    continue
                row = self._show_row(c)
                partner = self.channels.get(c.bridged_to or "")
                if partner and not partner.gone:
                    seen.add(partner.uuid)
                    row.update({"b_" + k: v for k, v in self._show_row(partner).items() if k != "call_uuid"})
                rows.append(row)
                seen.add(c.uuid)
        if not rows:
            return json.dumps({"row_count": 0})
        return json.dumps({"row_count": len(rows), "rows": rows})

    @staticmethod
    def _show_row(c: Channel) -> dict[str, str]:
        return {
            "uuid": c.uuid,
            "direction": c.direction,
            "created_epoch": str(c.created_us // 1_000_000),
            "name": c.name,
            "state": c.state,
            "cid_name": c.caller_name,
            "cid_num": c.caller_num,
            "dest": c.dest,
            "context": c.context,
            "callstate": c.call_state,
            "call_uuid": c.call_uuid,
            "presence_id": c.variables.get("presence_id", ""),
        }

    # ---- events ----
    def _channel_headers(self, ch: Channel) -> dict[str, str]:
        h = {
            "Channel-State": ch.state,
            "Channel-Call-State": ch.call_state,
            "Channel-Name": ch.name,
            "Unique-ID": ch.uuid,
            "Call-Direction": ch.direction,
            "Presence-Call-Direction": ch.direction,
            "Channel-HIT-Dialplan": "true" if ch.direction == "inbound" else "false",
            "Channel-Call-UUID": ch.call_uuid,
            "Answer-State": ch.answer_state,
            "Channel-Read-Codec-Name": "PCMU",
            "Channel-Read-Codec-Rate": "8000",
            "Channel-Write-Codec-Name": "PCMU",
            "Channel-Write-Codec-Rate": "8000",
            "Caller-Direction": ch.direction,
            "Caller-Logical-Direction": ch.direction,
            "Caller-Dialplan": "XML",
            "Caller-Caller-ID-Name": ch.caller_name,
            "Caller-Caller-ID-Number": ch.caller_num,
            "Caller-Orig-Caller-ID-Name": ch.caller_name,
            "Caller-Orig-Caller-ID-Number": ch.caller_num,
            "Caller-Network-Addr": DOMAIN,
            "Caller-ANI": ch.caller_num,
            "Caller-Destination-Number": ch.dest,
            "Caller-Unique-ID": ch.uuid,
            "Caller-Source": "mod_sofia",
            "Caller-Context": ch.context,
            "Caller-Channel-Name": ch.name,
            "Caller-Profile-Index": "1",
            "Caller-Profile-Created-Time": str(ch.created_us),
            "Caller-Channel-Created-Time": str(ch.created_us),
            "Caller-Channel-Answered-Time": str(ch.answered_us),
        }
        other = self.channels.get(ch.other_leg or "")
        if other is not None and ch.other_type:
            h["Other-Type"] = ch.other_type
            h.update(
                {
                    "Other-Leg-Direction": other.direction,
                    "Other-Leg-Caller-ID-Name": other.caller_name,
                    "Other-Leg-Caller-ID-Number": other.caller_num,
                    "Other-Leg-Destination-Number": other.dest,
                    "Other-Leg-Unique-ID": other.uuid,
                    "Other-Leg-Context": other.context,
                    "Other-Leg-Channel-Name": other.name,
                }
            )
        h["variable_direction"] = ch.direction
        h["variable_uuid"] = ch.uuid
        h["variable_call_uuid"] = ch.call_uuid
        h["variable_channel_name"] = ch.name
        for k, v in ch.variables.items():
            h["variable_" + k] = v
        return h

    def _emit(
        self, name: str, ch: Channel | None, extra: dict[str, str] | None = None, subclass: str = "", body: str = ""
    ) -> None:
        seq = next(self._seq)
        now = _now_us()
        h: dict[str, str] = {"Event-Name": name}
        if subclass:
            h["Event-Subclass"] = subclass
        h.update(
            {
                "Core-UUID": CORE_UUID,
                "FreeSWITCH-Hostname": "sim",
                "FreeSWITCH-Switchname": "sim",
                "FreeSWITCH-IPv4": DOMAIN,
                "Event-Date-Local": time.strftime("%Y-%m-%d %H:%M:%S"),
                "Event-Date-GMT": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()),
                "Event-Date-Timestamp": str(now),
                "Event-Calling-File": "switch_channel.c",
                "Event-Calling-Function": "switch_channel_perform_set_running_state",
                "Event-Calling-Line-Number": "1",
                "Event-Sequence": str(seq),
            }
        )
        head_extra = {k: v for k, v in (extra or {}).items() if not k.startswith("variable_")}
        tail_extra = {k: v for k, v in (extra or {}).items() if k.startswith("variable_")}
        h.update({k: v for k, v in head_extra.items() if k.startswith("Bridge-")})
        if ch is not None:
            h.update(self._channel_headers(ch))
        h.update({k: v for k, v in head_extra.items() if not k.startswith("Bridge-")})
        h.update(tail_extra)
        if self.record_events:
            self.sent_events.append(dict(h))
        targets = [c for c in self.conns if c.wants(name, subclass)]
        if not targets:
            return
        text = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in h.items())
        if body:
            text += f"Content-Length: {len(body.encode())}\n\n{body}"
        else:
            text += "\n"
        payload = text.encode()
        frame = f"Content-Length: {len(payload)}\nContent-Type: text/event-plain\n\n".encode() + payload
        for c in targets:
            c.send(frame)

    # ---- call model ----
    def _new_channel(self, **kw: Any) -> Channel:
        ch = Channel(uuid=str(uuidlib.uuid4()), created_us=_now_us(), **kw)
        if not ch.call_uuid:
            ch.call_uuid = ch.uuid
        self.channels[ch.uuid] = ch
        return ch

    def _answer(self, ch: Channel) -> None:
        ch.answer_state, ch.call_state, ch.state = "answered", "ACTIVE", "CS_EXECUTE"
        ch.answered_us = _now_us()
        self._emit("CHANNEL_ANSWER", ch)

    def _bridge(self, a: Channel, b: Channel, extra_a: dict[str, str] | None = None) -> None:
        a.bridged_to, b.bridged_to = b.uuid, a.uuid
        a.other_leg, b.other_leg = b.uuid, a.uuid
        a.other_type, b.other_type = "originatee", "originator"
        self._emit("CHANNEL_BRIDGE", a, {"Bridge-A-Unique-ID": a.uuid, "Bridge-B-Unique-ID": b.uuid, **(extra_a or {})})

    def _unbridge(self, a: Channel, b: Channel, extra: dict[str, str] | None = None) -> None:
        if a.bridged_to == b.uuid:
            a.bridged_to = None
        if b.bridged_to == a.uuid:
            b.bridged_to = None
        self._emit("CHANNEL_UNBRIDGE", a, {"Bridge-A-Unique-ID": a.uuid, "Bridge-B-Unique-ID": b.uuid, **(extra or {})})

    def _hangup(self, ch: Channel, cause: str, disposition: str, extra: dict[str, str] | None = None) -> None:
        ch.answer_state, ch.call_state, ch.state = "hangup", "HANGUP", "CS_HANGUP"
        ch.variables["sip_hangup_disposition"] = disposition
        self._emit("CHANNEL_HANGUP", ch, {"Hangup-Cause": cause, **(extra or {})})

    def _hangup_complete(self, ch: Channel, cause: str, extra: dict[str, str] | None = None) -> None:
        for rec in list(ch.recordings.values()):
            self._close_recording(ch, rec, "success-silence" if rec.writer.samples else "empty-file")
        ch.state = "CS_REPORTING"
        self._emit("CHANNEL_HANGUP_COMPLETE", ch, {"Hangup-Cause": cause, **(extra or {})})

    def _destroy(self, ch: Channel) -> None:
        ch.state = "CS_DESTROY"
        self._emit("CHANNEL_DESTROY", ch)
        ch.gone = True
        self.channels.pop(ch.uuid, None)
        self.handles.pop(ch.uuid, None)
        self._changed.set()

    async def _hangup_leg(self, uid: str, cause: str, disposition: str) -> None:
        ch = self.channels.get(uid)
        if ch is None or ch.gone:
            return
        partner = self.channels.get(ch.bridged_to or "")
        self._hangup(ch, cause, disposition)
        if partner:
            self._hangup(partner, cause, "send_bye")
            self._hangup_complete(partner, cause)
            self._unbridge(ch, partner)
            self._destroy(partner)
        self._hangup_complete(ch, cause)
        self._destroy(ch)

    # ---- audio ----
    def _write_audio(self, legs: list[Channel], ms: int) -> None:
        for ch in legs:
            if ch.gone:
                continue
            partner = self.channels.get(ch.bridged_to or "")
            right = partner.tone if partner is not None and not partner.held and not ch.held else None
            for rec in ch.recordings.values():
                rec.writer.write((None, None) if rec.masked else (ch.tone, right), ms)

    async def _elapse(self, legs: list[Channel], ms: int) -> None:
        step = 500
        left = ms
        while left > 0:
            chunk = min(step, left)
            self._write_audio(legs, chunk)
            left -= chunk
            await asyncio.sleep(chunk / 1000 * self.time_scale)

    async def _wait(self, cond: Callable[[], bool], limit: float | None = None) -> bool:
        deadline = time.monotonic() + (self.settle_timeout if limit is None else limit)
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.05))
        return True

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


class CallHandle:
    """One simulated call: its legs by role and the steps that act on them."""

    def __init__(self, sim: EslSimulator, scenario: sc.Scenario) -> None:
        self.sim, self.scenario = sim, scenario
        self.legs: dict[str, Channel] = {}
        self.place: sc.PlaceCall | None = None
        self.recording_paths: list[str] = []
        self.extra_parties: dict[str, sc.Party] = {}  # parties added by API commands (uuid_transfer)

    def party(self, role: str) -> sc.Party:
        return self.extra_parties.get(role) or self.scenario.party(role)

    def adopt_leg(self, a: Channel, b: Channel) -> None:
        """After uuid_bridge: whichever leg is not the customer becomes the agent side."""
        cust = self.legs.get("customer")
        if cust in (a, b):
            self.legs["agent"] = b if cust is a else a

    @property
    def customer(self) -> Channel:
        return self.legs["customer"]

    def _live(self) -> list[Channel]:
        return [c for c in self.legs.values() if not c.gone]

    def _customer_recording(self) -> bool:
        c = self.legs.get("customer")
        if c and c.recordings:
            self.recording_paths = sorted(set(self.recording_paths) | set(c.recordings))
            return True
        return False

    async def do(self, step: Any, on_step: Any, settle: bool) -> None:
        sim = self.sim
        if isinstance(step, sc.PlaceCall):
            self.place = step
            self._place(step)
        elif isinstance(step, sc.Ring):
            await sim._elapse(self._live(), step.ms)
        elif isinstance(step, sc.Answer):
            self._answer_call()
            if settle and self.scenario.expect.recorded:
                await sim._wait(self._customer_recording)
        elif isinstance(step, sc.Talk):
            await sim._elapse(self._live(), step.ms)
            self._customer_recording()
        elif isinstance(step, sc.Transfer):
            await self._transfer(step)
            if settle and self.scenario.expect.ends_at_transfer:
                await sim._wait(lambda: not self.customer.recordings)
        elif isinstance(step, sc.Hangup):
            self._hangup(step.party)
        elif isinstance(step, sc.Cancel):
            self._cancel()
        elif isinstance(step, sc.LinkDrop):
            sim.drop_connections()
            if on_step:
                await on_step(step, self)
        elif on_step is not None:
            await on_step(step, self)

    def _place(self, p: sc.PlaceCall) -> None:
        sim = self.sim
        cust, agent = self.scenario.party("customer"), self.scenario.party("agent")
        hook = {}
        if p.hook:
            hook = {"callrec_account": p.account, "callrec_account_number": p.did, "callrec_direction": p.direction}
            if p.record:
                hook["callrec_record"] = p.record
        if p.direction == "inbound":
            a = sim._new_channel(
                name=f"sofia/external/{cust.number}@{TRUNK_HOST}",
                direction="inbound",
                caller_num=cust.number,
                caller_name=cust.name,
                dest=p.did,
                context="public",
                call_uuid="",
                tone=cust.tone_hz,
                party=cust.number,
                variables={"sip_from_user": cust.number, "sip_to_user": p.did, "sip_req_user": p.did},
            )
            self.legs["customer"] = a
            sim.handles[a.uuid] = self
            caller_leg, callee_role, callee_party = a, "agent", agent
        else:
            a = sim._new_channel(
                name=f"sofia/internal/{agent.number}@{DOMAIN}",
                direction="inbound",
                caller_num=agent.number,
                caller_name=agent.name,
                dest=cust.number,
                context="default",
                call_uuid="",
                tone=agent.tone_hz,
                party=agent.number,
                variables={"sip_from_user": agent.number, "sip_to_user": cust.number, "user_name": agent.number},
            )
            self.legs["agent"] = a
            caller_leg, callee_role, callee_party = a, "customer", cust
        sim._emit("CHANNEL_CREATE", a)
        if hook:
            a.variables.update(hook)
            sim._emit("CUSTOM", a, dict(hook), subclass="callrec::policy")
        b = self._originate(caller_leg, callee_party, outbound_cid=p.did if p.direction == "outbound" else None)
        self.legs[callee_role] = b
        if callee_role == "customer":
            sim.handles[b.uuid] = self
        sim._emit("CHANNEL_PROGRESS", a)  # the callee's 180 relayed to the caller

    def _originate(self, parent: Channel, party: sc.Party, outbound_cid: str | None = None) -> Channel:
        sim = self.sim
        if party.internal:
            contact = f"{party.number}-0x{abs(hash(party.number)) % 0xFFFFFFFFFFFF:x}"
            name = f"sofia/internal/{contact}@{DOMAIN}:5120"
            dest = contact
            variables = {
                "dialed_user": party.number,
                "dialed_domain": DOMAIN,
                "presence_id": f"{party.number}@{DOMAIN}",
            }
        else:
            name = f"sofia/gateway/trunk/{party.number}"
            dest = party.number
            variables = {}
        variables.update({"originator": parent.uuid, "originating_leg_uuid": parent.uuid})
        b = sim._new_channel(
            name=name,
            direction="outbound",
            caller_num=outbound_cid or parent.caller_num,
            caller_name=parent.caller_name,
            dest=dest,
            context=parent.context,
            call_uuid=parent.call_uuid,
            tone=party.tone_hz,
            party=party.number,
            variables=variables,
        )
        b.other_leg, b.other_type = parent.uuid, "originator"
        sim._emit("CHANNEL_CREATE", b)
        b.call_state = "RINGING"
        sim._emit("CHANNEL_PROGRESS", b)
        return b

    def _caller_and_callee(self) -> tuple[Channel, Channel]:
        assert self.place is not None
        if self.place.direction == "inbound":
            return self.legs["customer"], self.legs["agent"]
        return self.legs["agent"], self.legs["customer"]

    def _answer_call(self) -> None:
        sim = self.sim
        a, b = self._caller_and_callee()
        sim._answer(b)
        sim._answer(a)
        sim._bridge(a, b)

    def _hangup(self, role: str) -> None:
        sim = self.sim
        ch = self.legs[role]
        if ch.gone:
            return
        partner = sim.channels.get(ch.bridged_to or "")
        a, _ = self._caller_and_callee() if "agent" in self.legs and "customer" in self.legs else (ch, None)
        if partner is None:
            sim._hangup(ch, "NORMAL_CLEARING", "recv_bye")
            sim._hangup_complete(ch, "NORMAL_CLEARING")
            sim._destroy(ch)
            return
        # Who is the bridge's A leg decides the UNBRIDGE (always reported on the A leg).
        bridge_a = ch if ch.other_type == "originatee" else partner
        bridge_b = partner if bridge_a is ch else ch
        sim._hangup(ch, "NORMAL_CLEARING", "recv_bye")
        if ch is bridge_a:
            # the A leg hangs up: B is hung up and completed first, then A unbridges
            sim._hangup(partner, "NORMAL_CLEARING", "send_bye")
            sim._hangup_complete(partner, "NORMAL_CLEARING")
            sim._unbridge(bridge_a, bridge_b)
            sim._destroy(partner)
            sim._hangup_complete(ch, "NORMAL_CLEARING")
            sim._destroy(ch)
        else:
            # the B leg hangs up: it completes, A unbridges and hangs up (hangup_after_bridge)
            sim._hangup_complete(ch, "NORMAL_CLEARING")
            sim._unbridge(bridge_a, bridge_b)
            sim._hangup(
                partner, "NORMAL_CLEARING", "send_bye", {"variable_last_bridge_hangup_cause": "NORMAL_CLEARING"}
            )
            sim._destroy(ch)
            sim._hangup_complete(partner, "NORMAL_CLEARING")
            sim._destroy(partner)
        del a

    def _cancel(self) -> None:
        sim = self.sim
        a, b = self._caller_and_callee()
        sim._hangup(a, "ORIGINATOR_CANCEL", "recv_cancel", {"variable_sip_term_status": "487"})
        sim._hangup(b, "ORIGINATOR_CANCEL", "send_cancel")
        sim._hangup_complete(b, "ORIGINATOR_CANCEL")
        sim._destroy(b)
        sim._hangup_complete(a, "ORIGINATOR_CANCEL")
        sim._destroy(a)

    async def _transfer(self, t: sc.Transfer) -> None:
        sim = self.sim
        cust, agent = self.legs["customer"], self.legs["agent"]
        target = self.party(t.to)
        if t.kind == "blind":
            hist = f"{int(time.time())}:{uuidlib.uuid4()}:bl_xfer:{target.number}/{cust.context}/XML"
            b_extra: dict[str, str] = {}
            a_extra = {"variable_transfer_history": hist, "variable_transfer_source": hist}
            if t.method == "phone":
                b_extra = {
                    "variable_endpoint_disposition": "BLIND_TRANSFER",
                    "variable_transfer_destination": f"blind:{target.number}",
                    "variable_transfer_to": f"blind:{cust.uuid}",
                    "variable_transfer_disposition": "recv_replace",
                }
                a_extra["variable_sip_refer_to"] = f"sip:{target.number}@{DOMAIN}"
            agent.variables.update({k[9:]: v for k, v in b_extra.items()})
            sim._hangup(agent, "NORMAL_CLEARING", "send_bye")
            sim._hangup_complete(agent, "NORMAL_CLEARING")
            cust.variables.update({k[9:]: v for k, v in a_extra.items()})
            cust.dest = target.number
            sim._unbridge(cust, agent)
            sim._destroy(agent)
            c = self._originate(cust, target)
            self.legs["target"] = c
            await sim._elapse(self._live(), t.ring_ms)
            sim._answer(c)
            sim._bridge(cust, c)
            return
        if t.method == "pbx":
            await self._att_xfer(cust, agent, target, t)
            return
        # attended by the agent's phone: hold the customer, the phone calls the target (a separate
        # call), then completes with REFER/Replaces
        agent.held = True
        consult = sim._new_channel(
            name=f"sofia/internal/{agent.party}@{DOMAIN}",
            direction="inbound",
            caller_num=agent.party,
            caller_name=agent.caller_name,
            dest=target.number,
            context="default",
            call_uuid="",
            tone=agent.tone,
            party=agent.party,
            variables={"sip_from_user": agent.party, "user_name": agent.party},
        )
        sim._emit("CHANNEL_CREATE", consult)
        d = self._originate(consult, target)
        self.legs["target"] = d
        self.legs["consult"] = consult
        await sim._elapse(self._live(), t.ring_ms)
        sim._answer(d)
        sim._emit("CHANNEL_PROGRESS", consult)
        sim._answer(consult)
        sim._bridge(consult, d)
        await sim._elapse(self._live(), t.consult_ms)
        # completion (REFER with Replaces, or the PBX's att_xfer)
        sim._unbridge(consult, d)
        consult.variables.update({"endpoint_disposition": "ATTENDED_TRANSFER", "transfer_disposition": "replaced"})
        sim._hangup(consult, "NORMAL_CLEARING", "recv_bye")
        sim._hangup_complete(consult, "NORMAL_CLEARING")
        sim._destroy(consult)
        agent.held = False
        if t.method == "phone":
            agent.variables.update(
                {"transfer_to": f"att:{d.uuid}", "refer_uuid": consult.uuid, "transfer_disposition": "recv_replace"}
            )
        sim._hangup(agent, "NORMAL_CLEARING", "send_bye")
        sim._hangup_complete(agent, "NORMAL_CLEARING")
        sim._unbridge(cust, agent)
        sim._destroy(agent)
        now = int(time.time())
        hist = (
            f"ARRAY::{now}:{uuidlib.uuid4()}:att_xfer:{agent.party}@{DOMAIN}/{cust.party}@{DOMAIN}"
            f"|:{now}:{uuidlib.uuid4()}:uuid_br:{d.uuid}"
        )
        cust.variables["transfer_history"] = hist
        d.call_uuid = cust.call_uuid
        sim._bridge(cust, d)

    async def _att_xfer(self, cust: Channel, agent: Channel, target: sc.Party, t: sc.Transfer) -> None:
        """FreeSWITCH's own att_xfer app run on the agent leg, completed with its hangup key — the shape
        of the real capture tests/fixtures/freeswitch/att_xfer_internal: the agent leg dials the target
        itself (the consult leg's Channel-Call-UUID is the customer leg's) and bridges it as Bridge-A;
        the customer hears silence; on completion the agent leg leaves, the customer leg unbridges
        (its Other-Leg-* already naming the target) and is bridged again as BRIDGE-B of the consult
        leg, both with a `uuid_br` transfer_history entry; the agent leg hangs up last."""
        sim = self.sim
        agent.held = True
        d = self._originate(agent, target, outbound_cid=agent.party)
        d.call_uuid = cust.uuid
        self.legs["target"] = d
        await sim._elapse(self._live(), t.ring_ms)
        sim._answer(d)
        consult_partner = agent.bridged_to
        sim._bridge(agent, d)
        agent.bridged_to = consult_partner  # still the customer's partner for audio: silent while held
        await sim._elapse(self._live(), t.consult_ms)
        sim._unbridge(agent, d)
        now = int(time.time())
        cust.other_leg = d.uuid
        cust.variables["transfer_history"] = f"{now}:{uuidlib.uuid4()}:uuid_br:{d.uuid}"
        sim._unbridge(cust, agent)
        d.variables["transfer_history"] = f"{now}:{uuidlib.uuid4()}:uuid_br:{cust.uuid}"
        cust.call_uuid = d.call_uuid = d.uuid
        agent.held = False
        sim._bridge(d, cust)
        agent.other_leg = d.uuid
        sim._hangup(agent, "NORMAL_CLEARING", "send_bye")
        sim._hangup_complete(agent, "NORMAL_CLEARING")
        sim._destroy(agent)


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
