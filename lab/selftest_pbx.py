"""Simulated PBXes that understand what `callrec selftest` originates, so it runs in CI.

Subclasses of the ESL and AMI simulators (lab/esl_sim.py, lab/ami_sim.py; not modified) that turn the
selftest's commands into the simulators' scenario calls, the way our selftest dialplan
(dialplan/freeswitch/callrec_selftest.xml, dialplan/asterisk/callrec-selftest.conf) routes them on a
real PBX:

  FreeSWITCH  `originate {…}loopback/<DID>/callrec_selftest …`      → inbound call (PlaceCall with hook)
              `originate {…}loopback/<customer>/callrec_selftest …` → outbound call
              `uuid_transfer <customer leg> <number> XML …`         → blind transfer by the PBX
              `uuid_broadcast <agent leg> att_xfer::…loopback/<n>/…` → attended transfer by the PBX
                                                                   (+1555014NNNN: busy, the agent is back)
              `uuid_kill <origination_uuid>`                        → the calling phone hangs up
              `global_getvar recordings_dir`                        → `recordings_dir`
  Asterisk    `Originate Local/<phone>@callrec-selftest-phones/n` into `callrec-selftest` (ChannelId
              names the calling PBX-side channel), then the simulator's own BlindTransfer, Atxfer
              (+1555014NNNN answers busy) and Hangup.

Time runs in real time (the selftest sleeps between its steps): a ticker writes every running
recording's audio by wall-clock, so journal offsets and audio line up as on a real PBX.

Misbehaviour knobs for negative tests: `swap_channels` (agent LEFT, customer RIGHT) and
`ignore_stop` (a stop command is acknowledged but the PBX keeps recording — e.g. past an external
transfer the rule says must end the recording).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid as uuidlib
from dataclasses import replace
from typing import Any

from controller.selftest import AGENT_EXT, AST_CONTEXT, AST_PHONES, DID_RECORD, FS_CONTEXT
from lab import scenarios as sc
from lab.ami.protocol import get as _get
from lab.ami_sim import AmiSimulator, SimChannel
from lab.esl_sim import CallHandle, Channel, EslSimulator
from lab.tones import AGENT_HZ, CUSTOMER_HZ, TARGET_HZ

DID_RE = re.compile(r"^\+155501001\d\d$")
CUSTOMER_RE = re.compile(r"^\+1555012\d{4}$")
BUSY_RE = re.compile(r"^\+?1555014\d{4}$")  # the selftest dialplan's always-busy colleague
ATT_XFER_RE = re.compile(r"^uuid_broadcast\s+(\S+)\s+att_xfer::(?:\{[^}]*\})?loopback/([^/\s]+)/\S+(?:\s+\S+)?$")
ORIGINATE_RE = re.compile(r"^originate\s+\{([^}]*)\}loopback/([^/\s]+)/(\S+)\s+(\S+)\s+XML\s+(\S+)\s*$")
TICK_SECONDS = 0.05


def _parties(customer: str, agent: str = AGENT_EXT) -> dict[str, sc.Party]:
    return {
        "customer": sc.Party("customer", customer, CUSTOMER_HZ, internal=False, name="Customer"),
        "agent": sc.Party("agent", agent, AGENT_HZ, internal=True, name=f"Agent {agent}"),
    }


def _target(number: str) -> sc.Party:
    return sc.Party("target", number, TARGET_HZ, internal=False, name="External")


class _Ticker:
    """Calls `write(ms)` with the wall-clock time elapsed since the last call, until stopped."""

    def __init__(self, write: Any) -> None:
        self.write = write
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name="selftest-sim-audio")

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            self.write((now - last) * 1000)
            last = now

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task


# ---- FreeSWITCH ---------------------------------------------------------------------------------


class SelftestEslSimulator(EslSimulator):
    def __init__(
        self, *, recordings_dir: str = "", swap_channels: bool = False, ignore_stop: bool = False, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.recordings_dir = recordings_dir
        self.swap_channels = swap_channels
        self.ignore_stop = ignore_stop
        self._ticker = _Ticker(lambda ms: self._write_audio(list(self.channels.values()), ms))
        self._handsets: dict[str, tuple[CallHandle, str, asyncio.Queue[Any]]] = {}
        self._pending_vars: dict[str, str] = {}
        self._call_tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await super().start()
        self._ticker.start()

    async def close(self) -> None:
        await self._ticker.stop()
        for t in list(self._call_tasks):
            t.cancel()
        await asyncio.gather(*self._call_tasks, return_exceptions=True)
        await super().close()

    # time passes by the ticker, in real time
    async def _elapse(self, legs: list[Channel], ms: int) -> None:
        await asyncio.sleep(ms / 1000)

    def _write_audio(self, legs: list[Channel], ms: int | float) -> None:
        for ch in legs:
            if ch.gone:
                continue
            partner = self.channels.get(ch.bridged_to or "")
            right = partner.tone if partner is not None and not partner.held and not ch.held else None
            pair = (right, ch.tone) if self.swap_channels else (ch.tone, right)
            for rec in ch.recordings.values():
                rec.writer.write((None, None) if rec.masked else pair, ms)

    def _new_channel(self, **kw: Any) -> Channel:
        if self._pending_vars:
            kw["variables"] = {**kw.get("variables", {}), **self._pending_vars}
        return super()._new_channel(**kw)

    def _uuid_record(self, args: list[str], cmd: str) -> str:
        if self.ignore_stop and len(args) >= 3 and args[1] == "stop":
            return "+OK Success\n"  # misbehaving PBX: says yes, keeps recording
        return super()._uuid_record(args, cmd)

    def api(self, cmd: str) -> str:
        parts = cmd.split()
        name = parts[0] if parts else ""
        if name == "originate":
            self.commands.append(cmd)
            return self._originate(cmd)
        if name == "global_getvar" and parts[1:] == ["recordings_dir"]:
            self.commands.append(cmd)
            return self.recordings_dir or "-ERR no recordings_dir\n"
        if name == "uuid_kill" and len(parts) >= 2 and parts[1] in self._handsets:
            self.commands.append(cmd)
            handle, role, queue = self._handsets.pop(parts[1])
            queue.put_nowait(sc.Hangup(role))
            return "+OK\n"
        m = ATT_XFER_RE.match(cmd.strip())
        if m:
            self.commands.append(cmd)
            for handle, _, queue in self._handsets.values():
                agent = handle.legs.get("agent")
                if agent is not None and agent.uuid == m.group(1) and not agent.gone:
                    number = m.group(2)
                    handle.scenario = replace(
                        handle.scenario, parties={**handle.scenario.parties, "target": _target(number)}
                    )
                    outcome = "busy" if BUSY_RE.match(number) else "answer"
                    queue.put_nowait(sc.Transfer(kind="attended", method="pbx", ring_ms=500, outcome=outcome))
                    return "+OK Message queued\n"
            return "-ERR No such channel!\n"
        if name == "uuid_recv_dtmf" and len(parts) >= 3:
            self.commands.append(cmd)
            # our hook's bind_meta_app on the agent's side: "*<digit>" processed as a phone's DTMF
            # ("~"; without it FreeSWITCH marks the digits skip-process and no binding sees them)
            code = {"~*1": "pause", "~*2": "resume", "~*3": "record"}.get(parts[2])
            for handle, _, queue in self._handsets.values():
                agent = handle.legs.get("agent")
                if agent is not None and agent.uuid == parts[1] and not agent.gone:
                    if code:
                        queue.put_nowait(sc.DialCode(code))  # type: ignore[arg-type]
                    return "+OK\n"
            return "-ERR No such channel!\n"
        if name == "uuid_transfer" and len(parts) >= 3:
            self.commands.append(cmd)
            for handle, _, queue in self._handsets.values():
                cust = handle.legs.get("customer")
                if cust is not None and cust.uuid == parts[1] and not cust.gone:
                    parties = {**handle.scenario.parties, "target": _target(parts[2])}
                    handle.scenario = replace(handle.scenario, parties=parties)
                    queue.put_nowait(sc.Transfer(kind="blind", method="pbx", ring_ms=1000))
                    return "+OK\n"
            return "-ERR No such channel!\n"
        return super().api(cmd)

    def _originate(self, cmd: str) -> str:
        m = ORIGINATE_RE.match(cmd)
        if not m:
            return "-ERR simulator: only the selftest's loopback originate is understood\n"
        raw_vars, dest, context, _exten, _ = m.groups()
        vars_ = dict(kv.split("=", 1) for kv in raw_vars.split(",") if "=" in kv)
        if context != FS_CONTEXT:
            return "-ERR NO_ROUTE_DESTINATION\n"
        caller = vars_.get("origination_caller_id_number", "")
        if DID_RE.match(dest):
            place, parties, role = sc.PlaceCall("inbound", did=dest, account=""), _parties(caller), "customer"
        elif CUSTOMER_RE.match(dest):
            place, parties, role = sc.PlaceCall("outbound", did=DID_RECORD, account=""), _parties(dest, caller), "agent"
        else:
            return "-ERR NO_ROUTE_DESTINATION\n"
        u = vars_.get("origination_uuid") or str(uuidlib.uuid4())
        scenario = sc.Scenario("selftest", "a call originated by callrec selftest", (place,), sc.Expectation(True))
        handle = CallHandle(self, replace(scenario, parties=parties))
        queue: asyncio.Queue[Any] = asyncio.Queue()
        self._handsets[u] = (handle, role, queue)
        tags = {k: v for k, v in vars_.items() if not k.startswith(("origination_", "loopback_"))}
        task = asyncio.get_running_loop().create_task(self._drive(handle, place, queue, tags))
        self._call_tasks.add(task)
        task.add_done_callback(self._call_tasks.discard)
        return f"+OK {u}\n"

    async def _drive(self, handle: CallHandle, place: sc.PlaceCall, queue: asyncio.Queue[Any], tags: dict) -> None:
        self._pending_vars = tags  # like loopback copying the a-leg's variables to the b-leg
        try:
            await handle.do(place, None, False)
        finally:
            self._pending_vars = {}
        await handle.do(sc.Ring(1000), None, False)
        await handle.do(sc.Answer(), None, False)
        while True:
            step = await queue.get()
            await handle.do(step, None, False)
            if isinstance(step, sc.Hangup):
                return


# ---- Asterisk -----------------------------------------------------------------------------------


class SelftestAmiSimulator(AmiSimulator):
    def busy(self, number: str) -> bool:
        return bool(BUSY_RE.match(number))

    def __init__(self, *, swap_channels: bool = False, ignore_stop: bool = False, **kw: Any) -> None:
        super().__init__(**kw)
        self.swap_channels = swap_channels
        self.ignore_stop = ignore_stop
        self._ticker = _Ticker(self.advance_audio)
        self._forced_uid = ""

    async def start(self) -> None:
        await super().start()
        self._ticker.start()

    async def close(self) -> None:
        await self._ticker.stop()
        for t in list(getattr(self, "_tasks", ())):
            t.cancel()
        await super().close()

    async def elapse(self, ms: float, channels: list[SimChannel] | None = None) -> None:
        await asyncio.sleep(ms / 1000)

    def new_channel(
        self, tech: str, caller: str, caller_name: str, context: str, exten: str, tone: int | None, linkedid: str = ""
    ) -> SimChannel:
        """The first channel of an originated call gets the Originate's ChannelId, as in Asterisk."""
        if not self._forced_uid:
            return super().new_channel(tech, caller, caller_name, context, exten, tone, linkedid)
        uid, self._forced_uid = self._forced_uid, ""
        ch = SimChannel(
            name=f"{tech}-{next(self._seq):08x}",
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

    async def _action_mixmonitor(self, s: Any, a: dict[str, list[str]], aid: str) -> None:
        ch = self.channels.get(_get(a, "Channel"))
        before = len(ch.monitors) if ch else 0
        await super()._action_mixmonitor(s, a, aid)
        if self.swap_channels and ch is not None and len(ch.monitors) > before:
            m = ch.monitors[-1]
            m.read, m.write = m.write, m.read

    async def _action_stopmixmonitor(self, s: Any, a: dict[str, list[str]], aid: str) -> None:
        if not self.ignore_stop:
            await super()._action_stopmixmonitor(s, a, aid)
            return
        ch = self._channel_arg(s, a, aid)
        if ch is not None:  # misbehaving PBX: says yes, keeps recording
            self._respond(s, aid, True)
            self.event("MixMonitorStop", self.snap(ch))

    async def _action_originate(self, s: Any, a: dict[str, list[str]], aid: str) -> None:
        m = re.fullmatch(rf"Local/([^@]+)@{AST_PHONES}/n", _get(a, "Channel"))
        exten, context = _get(a, "Exten"), _get(a, "Context")
        if not m:
            await super()._action_originate(s, a, aid)
            return
        phone = m.group(1)
        if context != AST_CONTEXT:
            self._respond(s, aid, False, "Extension does not exist.")
            return
        if DID_RE.match(exten):
            place, parties = sc.PlaceCall("inbound", did=exten, account=""), _parties(phone)
        elif CUSTOMER_RE.match(exten):
            place, parties = sc.PlaceCall("outbound", did=DID_RECORD, account=""), _parties(exten, phone)
        else:
            self._respond(s, aid, False, "Extension does not exist.")
            return
        self._respond(s, aid, True, "Originate successfully queued")
        self._spawn(self._originated(aid, _get(a, "ChannelId"), exten, place, parties))

    async def _originated(
        self, aid: str, uid: str, exten: str, place: sc.PlaceCall, parties: dict[str, sc.Party]
    ) -> None:
        self._forced_uid = uid
        try:
            call = self._place(place, parties)
        finally:
            self._forced_uid = ""
        await self.elapse(1000)  # the called phone rings
        self._answer(call)
        first = call.caller or call.customer
        self.event(
            "OriginateResponse",
            [
                *[("ActionID", aid), ("Response", "Success"), ("Channel", first.name), ("Context", AST_CONTEXT)],
                *[("Exten", exten), ("Reason", "4"), ("Uniqueid", first.uniqueid)],
            ],
        )


async def _main() -> None:  # pragma: no cover - manual use
    import argparse

    p = argparse.ArgumentParser(description="simulated FreeSWITCH + Asterisk for `callrec selftest`")
    p.add_argument("--esl-port", type=int, default=0)
    p.add_argument("--ami-port", type=int, default=0)
    p.add_argument("--recordings-dir", default="/tmp")
    args = p.parse_args()
    fs = SelftestEslSimulator(password="ClueCon", port=args.esl_port, recordings_dir=args.recordings_dir)
    ast = SelftestAmiSimulator(port=args.ami_port, username="selftest", secret="selftest")
    await fs.start()
    await ast.start()
    print(f"ESL 127.0.0.1:{fs.port} (password ClueCon)  AMI 127.0.0.1:{ast.port} (selftest/selftest)", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(_main())
