"""Scenario playback on the simulated Asterisk: `lab.scenarios` call stories played as SIP-shaped
calls (trunk + phone channels, like the real captures S7/S8), with the event order a real Asterisk 20
sends for answers, hang-ups, blind transfers (BlindTransfer or a silent Redirect), attended transfers
by the phone (REFER with Replaces) and by the bridge's Atxfer feature (Local channels)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lab import scenarios as sc
from lab.ami.model import SimBridge, SimChannel
from lab.ami.pbx import AmiPbx
from lab.tones import parse_playtones

BEEPERR = [(300, 250)]  # Asterisk's beeperr sound, as the simulator writes it (a low beep)


@dataclass
class SimCall:
    direction: str
    customer: SimChannel
    agent: SimChannel
    parties: dict[str, sc.Party]
    caller: SimChannel | None = None  # type: ignore[assignment]
    callee: SimChannel | None = None  # type: ignore[assignment]
    pending_atxfer: tuple | None = None  # type: ignore[type-arg]
    member: tuple | None = None  # type: ignore[type-arg]  # a three-way call's joiner: (x1, x2, target, b3)
    channels: list[SimChannel] = field(default_factory=list)  # every channel of the call: its clock ticks them

    def add(self, *chs: SimChannel) -> None:
        self.channels.extend(chs)


# a failed consultation's outcome → (DialEnd DialStatus, the target's Hangup Cause)
FAILED_DIAL = {"busy": ("BUSY", "17"), "no_answer": ("NOANSWER", "19"), "cancel": ("CANCEL", "16")}


class AmiCalls(AmiPbx):
    def __init__(self, *, settle_timeout: float = 5.0, **kw: Any) -> None:
        super().__init__(**kw)
        self.settle_timeout = settle_timeout
        # Which party Local optimization moves when an Atxfer completes: it varies between runs of a real
        # Asterisk 20 (fixture NOTES §S4) — "customer" (real R8) or "target" (S4's kept run).
        self.atxfer_moves = "customer"
        self._calls: dict[str, SimCall] = {}  # by the first channel's Linkedid
        self._tasks: set[asyncio.Task[None]] = set()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            # The outbound route presents the account's number (real R3: Set(CALLERID(num)=<DID>) on the
            # agent's channel, a NewCallerid before the Dial), hook or not.
            caller.caller = step.did
            self.event("NewCallerid", self.snap(caller))
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
            # the dialled channel's caller id is the customer's own number; the number it is called from
            # is its connected line (real R3: NewConnectedLine before DialBegin)
            callee.connected = caller.caller
            self.event("NewConnectedLine", self.snap(callee))
            dial = f"trunk/{cust_p.number}"
            call = SimCall(step.direction, customer=callee, agent=caller, parties=dict(parties))
        self._calls[caller.linkedid] = call
        self.dial_begin(caller, callee, dial)
        self.set_state(callee, 5)
        self.event("DialState", [*self.snap(caller), *self.snap(callee, "Dest"), ("DialStatus", "RINGING")])
        call.caller, call.callee = caller, callee
        call.add(caller, callee)
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
        """Real order. The channel that ran Dial hangs up (S7, real R1): its HangupRequest,
        BridgeLeave, SoftHangupRequest, then the peer leaves, the bridge goes, the peer's Hangup and
        its own. The dialled side hangs up (real R2, R3): its HangupRequest, BridgeLeave and Hangup,
        then the caller leaves, the bridge goes, and the caller's Dial ends it (SoftHangupRequest,
        Hangup)."""
        self.event("HangupRequest", [*self.snap(first), ("Cause", "16")])
        b = first.bridge
        if b is not None:
            self.leave(first)
        others = [c for c in self.channels.values() if c.linkedid == call.customer.linkedid and c is not first]
        caller = call.caller if call.caller is not None and call.caller.alive else None
        if caller is None or caller is first:
            self.event("SoftHangupRequest", [*self.snap(first), ("Cause", "16")])
        else:
            self.hangup(first)
        if b is not None:
            for c in list(b.members):
                self.leave(c)
            self.destroy(b)
        if caller is not None and caller is not first:
            self.event("SoftHangupRequest", [*self.snap(caller), ("Cause", "16")])
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

    @staticmethod
    def _mute_changes(ch: SimChannel) -> int:
        return sum(m.mute_changes for m in ch.monitors)

    @staticmethod
    def _muted(ch: SimChannel) -> bool:
        return any(m.mute_read or m.mute_write for m in ch.monitors)

    def _controller_acted(self, ch: SimChannel, before: int) -> bool:
        """The controller has settled the customer's recording for this transfer: stopped it, or muted
        it and lifted the mute again."""
        if not ch.monitors:
            return True
        muted = any(m.mute_read or m.mute_write for m in ch.monitors)
        return self._mute_changes(ch) >= before + 2 and not muted

    async def _talk_until(self, call: SimCall, cond: Callable[[], bool]) -> None:
        """Audio flows in real time (20 ms frames, whatever the time_scale) until `cond` or
        settle_timeout: a real PBX does not hold the parties' voices while the controller reacts."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.settle_timeout
        while not cond() and loop.time() < end:
            self.advance_audio(20, call.channels)
            await asyncio.sleep(0.02)

    async def _blind(
        self, call: SimCall, party: sc.Party, *, announce: bool, ring_ms: int, settle: bool = False
    ) -> None:
        """BlindTransfer (announce: phone REFER or AMI BlindTransfer, fixtures S8/S3) or Redirect
        (no transfer event, S3b): the agent leg goes, the customer dials the target. With `settle` the
        target rings until the controller has acted on the customer's recording (bounded): a real
        phone rings far longer than the controller takes to react to the dial."""
        cust, agent = call.customer, call.agent
        marks = self._mute_changes(cust)
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
        call.add(target)
        if b is not None:
            self.destroy(b)
        cust.exten = party.number
        self.dial_begin(cust, target, party.number if party.internal else f"trunk/{party.number}")
        self.set_state(target, 5)
        self.event("DialState", [*self.snap(cust), *self.snap(target, "Dest"), ("DialStatus", "RINGING")])
        if settle:
            if not announce:
                await self._until(lambda: self._controller_acted(cust, marks))
            else:  # decided at the BlindTransfer event (a stop, or nothing unknown to mute)
                await self._until(lambda: self._controller_acted(cust, marks), self.ring_wall(ring_ms))
                await self._until(lambda: not any(m.mute_read or m.mute_write for m in cust.monitors))
        await self.elapse(ring_ms, call.channels)
        self.set_state(target, 6)
        self.dial_end(cust, target, "ANSWER")
        nb = self.new_bridge()
        self.enter(nb, target)
        self.enter(nb, cust)
        call.agent = target
        call.parties["agent"] = party

    async def _attended_phone(
        self,
        call: SimCall,
        party: sc.Party,
        ring_ms: int,
        consult_ms: int,
        outcome: str = "answer",
        settle: bool = False,
        record_consultation: bool = False,
        muted: bool = False,
    ) -> None:
        """The agent's phone: hold, a second call to the target, REFER with Replaces (fixture S8c). A
        failed consultation (extrapolated): its Dial ends BUSY / NOANSWER / CANCEL, the phone hangs
        the second call up and takes the customer off hold (Unhold, the hold music stops). `muted`:
        the controller mutes the customer's recording at the consultation's dial (an external target
        the rule forbids), the target rings until it did, as a real one rings far longer."""
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
        call.add(second, target)
        self.dial_begin(second, target, party.number if party.internal else f"trunk/{party.number}")
        self.set_state(target, 5)
        if muted:
            await self._until(lambda: self._muted(cust))
        await self.elapse(ring_ms, call.channels)
        if outcome != "answer":
            status, cause = FAILED_DIAL[outcome]
            self.dial_end(second, target, status)
            gone = [second, target] if outcome == "cancel" else [target, second]  # who hangs up first
            for ch in gone:
                self.hangup(ch, cause)
            agent.held = False
            self.event("Unhold", self.snap(agent))
            self.event("MusicOnHoldStop", self.snap(cust))
            if settle:  # the agent talks on at once: the controller lifts a consultation's mute in ms
                await self._until(lambda: not self._muted(cust))
            return
        self.set_state(target, 6)
        self.dial_end(second, target, "ANSWER")
        self.set_state(second, 6)
        b2 = self.new_bridge()
        self.enter(b2, target)
        self.enter(b2, second)
        if settle and record_consultation:
            await self._until(lambda: bool(target.monitors))  # the controller records the consultation
        await self.elapse(consult_ms, call.channels)
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
        if settle and target.monitors:
            # a recorded consultation (record_consultation) ends with the transfer: the controller stops
            # it within milliseconds on a real PBX, before the customer's audio reaches its file
            await self._until(lambda: not target.monitors)

    async def _atxfer_consult(
        self,
        call: SimCall,
        party: sc.Party,
        ring_ms: int,
        outcome: str = "answer",
        settle: bool = False,
        muted: bool = False,
    ) -> None:
        """Atxfer (real capture tests/fixtures/asterisk/real/R8): the bridge's feature puts the agent
        on hold and makes a Local consultation channel whose `;1` half waits in a new bridge while its
        `;2` half dials the target; the agent moves over to it while the target rings. `muted` and
        `settle` as in `_attended_phone`."""
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
            call.add(x)
            self.event("Newchannel", self.snap(x))
        b2 = self.new_bridge()
        self.enter(b2, x1)
        target = self._phone(party, cust.linkedid)
        call.add(target)
        self.dial_begin(x2, target, party.number if party.internal else f"trunk/{party.number}")
        self.set_state(target, 5)
        self.set_state(x1, 5)
        self.event("DialState", [*self.snap(x2), *self.snap(target, "Dest"), ("DialStatus", "RINGING")])
        self.leave(agent)
        self.enter(b2, agent)
        agent.held = False
        if muted:
            await self._until(lambda: self._muted(cust))
        await self.elapse(ring_ms, call.channels)
        if outcome != "answer":
            self._fail_atxfer(call, x1, x2, target, b2, outcome)
            if settle:
                await self._until(lambda: not self._muted(cust))
            return
        self.set_state(target, 6)
        self.dial_end(x2, target, "ANSWER")
        self.set_state(x2, 6)
        self.set_state(x1, 6)
        call.pending_atxfer = (party, x1, x2, target, b2)

    def _fail_atxfer(
        self, call: SimCall, x1: SimChannel, x2: SimChannel, target: SimChannel, b2: SimBridge, outcome: str
    ) -> None:
        """The Atxfer consultation fails (extrapolated, no real capture yet): the target is busy, does
        not answer, or the agent aborts it while it rings; the consultation's Dial ends BUSY / NOANSWER
        / CANCEL, the Local pair hangs up, and the bridge feature puts the agent back into the
        customer's bridge, where the customer's hold music stops."""
        cust, agent = call.customer, call.agent
        status, cause = FAILED_DIAL[outcome]
        self.dial_end(x2, target, status)
        self.hangup(target, cause)
        self.hangup(x2)
        self.leave(agent)
        self.leave(x1)
        self.hangup(x1)
        self.destroy(b2)
        b1 = cust.bridge
        if b1 is not None:
            self.enter(b1, agent)
        self.event("MusicOnHoldStop", self.snap(cust))
        self.event("Unhold", self.snap(agent))

    def _complete_atxfer(self, call: SimCall) -> None:
        """The transferer hangs up (R8): the consultation's `;1` joins the customer's bridge, the
        transfer is announced, and Local optimization then MOVES THE CUSTOMER into the bridge of the
        `;2` half and the target; the Local pair hangs up."""
        assert call.pending_atxfer is not None
        party, x1, x2, target, b2 = call.pending_atxfer
        cust, agent = call.customer, call.agent
        b1 = cust.bridge
        self.leave(agent)
        self.leave(x1)
        if b1 is not None:
            self.enter(b1, x1)
        self.event("MusicOnHoldStop", self.snap(cust))
        b3 = self.new_bridge()
        body = [("Result", "Success"), *self.snap(agent, "OrigTransferer")]
        body += (b1.snapshot("OrigBridge") if b1 else []) + self.snap(agent, "SecondTransferer")
        body += b2.snapshot("SecondBridge") + self.snap(cust, "Transferee") + self.snap(x1, "TransferTarget")
        body += [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", b1.uniqueid if b1 else "")]
        self.event("AttendedTransfer", body)
        self.destroy(b2)
        self.hangup(agent)
        self.enter(b3, target)
        self.enter(b3, x2)
        self.event("LocalOptimizationBegin", [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo")])
        self.leave(cust)
        self.leave(x2)
        self.enter(b3, cust, swap=x2)
        self.event("LocalOptimizationEnd", [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo"), ("Success", "Yes")])
        self.leave(x1)
        self.hangup(x1)
        if b1 is not None:
            self.destroy(b1)
        self.hangup(x2)
        call.agent = target
        call.parties["agent"] = party
        call.pending_atxfer = None

    async def _dial_code(self, call: SimCall, step: sc.DialCode, settle: bool) -> None:
        """What asterisk_conf/features.conf's applicationmap code and the hook's [callrec-feature]
        Gosub do when the party dials *1/*2/*3 (the digits are consumed by the match): on that party's
        channel, clear CALLREC_FEATURE_RESULT, UserEvent CallrecFeature, wait (3 s) for the
        controller's Setvar of the result, then PlayTones(${CALLREC_TONE}) to that channel only —
        or Playback(beeperr) when no answer came. With `settle` the call waits for the Gosub, as the
        dialling channel does; without, the Gosub runs beside the call."""
        ch = call.agent if step.party == "agent" else call.customer
        await self._feature_gosub(ch, step.code, settle)

    async def _feature_gosub(self, ch: SimChannel, code: str, settle: bool) -> None:
        """[callrec-feature] s on `ch` for `code` (see `_dial_code`)."""
        route = (ch.context, ch.exten, ch.priority)
        ch.context, ch.exten, ch.priority = "callrec-feature", "s", 1
        self.set_var(ch, "CALLREC_FEATURE_RESULT", "")
        ch.priority = 2
        self.event("UserEvent", [*self.snap(ch), ("UserEvent", "CallrecFeature"), ("CallrecCode", code)])
        ch.context, ch.exten, ch.priority = route

        async def answer() -> None:
            if await self._until(lambda: bool(ch.variables.get("CALLREC_FEATURE_RESULT")), limit=3.0):
                ch.playing.add(parse_playtones(ch.variables.get("CALLREC_TONE", "")))
            else:
                ch.playing.add(BEEPERR)

        if settle:
            await answer()
        else:
            self._spawn(answer())

    def _threeway(self, call: SimCall) -> None:
        """The agent merges the answered Atxfer consultation into the customer's bridge with
        atxferthreeway, as a real Asterisk 20.20.1 does it (capture R12): BridgeMerge of the
        consultation bridge into the customer's, the consultation's `;1` entering BEFORE the agent (a
        bridge of three), AttendedTransfer with DestType Threeway, the consultation bridge destroyed;
        then Local optimization puts the consulted party's own channel in place of that `;1` (the Local
        pair hangs up). No Unhold on the real PBX."""
        assert call.pending_atxfer is not None
        _, x1, x2, target, b2 = call.pending_atxfer
        cust, agent = call.customer, call.agent
        b1 = cust.bridge
        b3 = self.new_bridge()  # the consulted party behind the Local pair (bridged at its answer on the real PBX)
        self.enter(b3, target)
        self.enter(b3, x2)
        agent.held = False
        if b1 is None:
            call.pending_atxfer = None
            return
        self.event("BridgeMerge", [*b1.snapshot("ToBridge"), *b2.snapshot("FromBridge")])
        self.leave(x1)
        self.enter(b1, x1)
        self.leave(agent)
        self.enter(b1, agent)
        self.event("MusicOnHoldStop", self.snap(cust))  # (a PBX with hold music: R7/R8; R12's had none)
        body = [("Result", "Success"), *self.snap(agent, "OrigTransferer"), *b1.snapshot("OrigBridge")]
        body += [*self.snap(agent, "SecondTransferer"), *b2.snapshot("SecondBridge"), *self.snap(cust, "Transferee")]
        body += [*self.snap(x1, "TransferTarget"), ("IsExternal", "No"), ("DestType", "Threeway")]
        body += [("DestBridgeUniqueid", b1.uniqueid), ("DestTransfererChannel", agent.name)]
        self.event("AttendedTransfer", body)
        self.destroy(b2)
        begin = [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo"), *self.snap(target, "Source")]
        self.event("LocalOptimizationBegin", [*begin, ("DestUniqueId", x2.uniqueid), ("Id", "1")])
        self.leave(target)
        self.leave(x1)
        self.enter(b1, target, swap=x1)
        self.event("LocalOptimizationEnd", [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo"), ("Success", "Yes")])
        self.hangup(x1)
        self.leave(x2)
        self.destroy(b3)
        self.hangup(x2)
        call.pending_atxfer = None
        call.member = (x1, x2, target, b3)

    def _member_leaves(self, call: SimCall) -> None:
        """The three-way call's joiner hangs up (R12): its own channel leaves the customer's bridge (its
        Local pair is long gone); the customer and the agent stay."""
        assert call.member is not None
        _, _, target, _ = call.member
        self.event("HangupRequest", [*self.snap(target), ("Cause", "16")])
        self.hangup(target)
        call.member = None

    def _complete_atxfer_target_moved(self, call: SimCall) -> None:
        """The other shape of the same completion (fixture S4, the kept run): the consultation's `;1`
        joins the customer's bridge, the transfer is announced, and Local optimization MOVES THE TARGET
        into the customer's bridge, which survives; the `;2` half leaves the target's bridge and the
        Local pair hangs up."""
        assert call.pending_atxfer is not None
        party, x1, x2, target, b2 = call.pending_atxfer
        cust, agent = call.customer, call.agent
        b1 = cust.bridge
        self.leave(agent)
        self.leave(x1)
        self.event("MusicOnHoldStop", self.snap(cust))
        if b1 is not None:
            self.enter(b1, x1)
        body = [("Result", "Success"), *self.snap(agent, "OrigTransferer")]
        body += (b1.snapshot("OrigBridge") if b1 else []) + self.snap(agent, "SecondTransferer")
        # S4 names no TransferTarget here (nor did R7): the target is whoever the consultation reached
        body += b2.snapshot("SecondBridge") + self.snap(cust, "Transferee")
        body += [("IsExternal", "No"), ("DestType", "Bridge"), ("DestBridgeUniqueid", b1.uniqueid if b1 else "")]
        self.event("AttendedTransfer", body)
        self.destroy(b2)
        self.hangup(agent)
        b3 = self.new_bridge()
        self.enter(b3, target)
        self.enter(b3, x2)
        self.event("LocalOptimizationBegin", [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo")])
        self.leave(target)
        self.leave(x1)
        if b1 is not None:
            self.enter(b1, target, swap=x1)
        self.event("LocalOptimizationEnd", [*self.snap(x1, "LocalOne"), *self.snap(x2, "LocalTwo"), ("Success", "Yes")])
        self.leave(x2)
        self.destroy(b3)
        self.event("HangupRequest", [*self.snap(x1), ("Cause", "16")])
        self.hangup(x2)
        self.hangup(x1)
        call.agent = target
        call.parties["agent"] = party
        call.pending_atxfer = None

    async def _until(self, cond: Callable[[], bool], limit: float | None = None) -> bool:
        loop = asyncio.get_running_loop()
        end = loop.time() + (self.settle_timeout if limit is None else limit)
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
                await self.elapse(step.ms, call.channels)
            elif isinstance(step, sc.Answer):
                self._answer(call)
                if settle and scenario.expect.recorded:
                    await self._until(lambda c=call: bool(c.customer.monitors))  # type: ignore[misc]
            elif isinstance(step, sc.Talk):
                await self.elapse(step.ms, call.channels)
            elif isinstance(step, sc.Transfer):
                party = scenario.parties[step.to]
                # an external consultation the rule forbids to record: the controller mutes at its dial
                muted = (
                    settle and not party.internal and scenario.settings.get("continue_on_external_transfer") is False
                )
                if step.kind == "blind":
                    await self._blind(call, party, announce=step.method == "phone", ring_ms=step.ring_ms, settle=settle)
                elif step.method == "phone":
                    record_consultation = bool(scenario.settings.get("record_consultation"))
                    await self._attended_phone(
                        call, party, step.ring_ms, step.consult_ms, step.outcome, settle, record_consultation, muted
                    )
                elif step.outcome != "answer":
                    await self._atxfer_consult(call, party, step.ring_ms, step.outcome, settle, muted)
                else:
                    await self._atxfer_consult(call, party, step.ring_ms, settle=settle, muted=muted)
                    await self.elapse(step.consult_ms, call.channels)
                    if self.atxfer_moves == "target":
                        self._complete_atxfer_target_moved(call)
                    else:
                        self._complete_atxfer(call)
                if settle and scenario.expect.ends_at_transfer:
                    # the target talks at once, as on a real PBX: what the controller lets through is in the file
                    await self._talk_until(call, lambda c=call: not c.customer.monitors)  # type: ignore[misc]
            elif isinstance(step, sc.DialCode):
                await self._dial_code(call, step, settle)
            elif isinstance(step, sc.ThreeWay):
                changes = sum(m.mute_changes for m in call.customer.monitors)
                party = scenario.parties[step.to]
                forbidden = not party.internal and scenario.settings.get("continue_on_external_transfer") is False
                await self._atxfer_consult(call, party, step.ring_ms, settle=settle, muted=settle and forbidden)
                await self.elapse(step.consult_ms, call.channels)
                self._threeway(call)
                if settle and scenario.expect.ends_at_transfer:  # an external joiner with the rule off
                    await self._until(lambda c=call: not c.customer.monitors)  # type: ignore[misc]
                elif settle and forbidden:  # external_joiner = mute: muted while the joiner is in
                    await self._until(lambda c=call: self._muted(c.customer))  # type: ignore[misc]
                elif settle:  # the controller muted the agent's absence and lifted it again (ms on a PBX)
                    await self._until(
                        lambda c=call, n=changes: (
                            sum(m.mute_changes for m in c.customer.monitors) >= n + 2  # type: ignore[misc]
                            and not any(m.mute_read or m.mute_write for m in c.customer.monitors)
                        )
                    )
            elif isinstance(step, sc.Hangup) and step.party == "target" and call.member is not None:
                self._member_leaves(call)
                if settle:  # a mute for the joiner is lifted in ms: the customer and the agent talk on
                    await self._until(lambda c=call: not self._muted(c.customer))  # type: ignore[misc]
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
