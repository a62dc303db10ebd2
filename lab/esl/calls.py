"""Scenario playback on the simulated FreeSWITCH: one `CallHandle` per `lab.scenarios` call story,
its legs by role, and the per-leg event order a real FreeSWITCH 1.10 sends for answers, hang-ups,
cancels, blind transfers (REFER or uuid_transfer), attended transfers by the phone (REFER with
Replaces) and by FreeSWITCH's att_xfer — as in the captures in tests/fixtures/freeswitch."""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from typing import Any

from lab import scenarios as sc
from lab.esl.model import DOMAIN, TRUNK_HOST, Channel
from lab.esl.pbx import EslPbx

# outcome → (hang-up cause, the target leg's disposition, its SIP status, the consultation leg's disposition)
FAILED_CONSULTATION = {
    "busy": ("USER_BUSY", "recv_refuse", "486", "send_refuse"),
    "no_answer": ("NO_ANSWER", "send_cancel", "487", "send_refuse"),
    "cancel": ("ORIGINATOR_CANCEL", "send_cancel", "487", "recv_cancel"),
}


class CallHandle:
    """One simulated call: its legs by role and the steps that act on them."""

    def __init__(self, sim: EslPbx, scenario: sc.Scenario) -> None:
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
            await self._transfer(step, settle)
            if settle and self.scenario.expect.ends_at_transfer:
                # the target talks at once, as on a real PBX: what the controller lets through is in the file
                await self._talk_until(lambda: not self.customer.recordings)
        elif isinstance(step, sc.DialCode):
            await self._dial_code(step, settle)
        elif isinstance(step, sc.ThreeWay):
            changes = self._mask_changes()
            await self._three_way(step)
            target = self.party(step.to)
            forbidden = not target.internal and self.scenario.settings.get("continue_on_external_transfer") is False
            if settle and self.scenario.expect.ends_at_transfer:  # an external joiner with the rule off
                await sim._wait(lambda: not self.customer.recordings)
            elif settle and forbidden:  # external_joiner = mute: muted while the joiner is in
                await sim._wait(self._masked)
            elif settle:  # the controller muted the customer's move into the room and lifted it again
                await sim._wait(lambda: self._controller_acted(changes))
        elif isinstance(step, sc.Hangup) and step.party == "target" and "member" in self.legs:
            self._member_leaves()
            if settle:  # a mute for the joiner is lifted in ms: the customer and the agent talk on
                await sim._wait(lambda: not self._masked())
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

    async def _dial_code(self, step: sc.DialCode, settle: bool) -> None:
        """What dialplan/freeswitch/callrec.xml's bind_meta_app does when the party dials *<digit>:
        FreeSWITCH swallows the meta digits (they never reach the other leg, nor a recording) and runs
        the `event` app on the dialling leg, which fires CUSTOM callrec::feature with that leg's
        channel data. With `settle`, the call goes on once the controller's answer (a tone broadcast
        to that leg) is playing, as it would in the milliseconds a real controller takes."""
        sim = self.sim
        ch = self.legs[step.party]
        before = len(ch.playing.played)
        sim._emit("CUSTOM", ch, {"callrec_feature": step.code}, subclass="callrec::feature")
        if settle:
            await sim._wait(lambda: len(ch.playing.played) > before)

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

    async def _three_way(self, step: sc.ThreeWay) -> None:
        """A three-way call through mod_conference (extrapolated, no capture): the agent's CTI moves
        the customer and the agent into a conference room (`uuid_transfer <customer> -both
        conference:<room> inline`: the customer unbridges, both are added as members) and dials the
        third party into it (`originate {…}<party> &conference(<room>)`: a call of its own, added when
        it answers). mod_conference mixes every other member for each member."""
        sim = self.sim
        cust, agent = self.legs["customer"], self.legs["agent"]
        target = self.party(step.to)
        room = f"callrec-3way-{cust.uuid[:8]}"
        sim._unbridge(cust, agent)
        for ch in (cust, agent):
            sim._conference_member(ch, room, "add-member")
        internal = target.internal
        d = sim._new_channel(
            name=f"sofia/internal/{target.number}@{DOMAIN}" if internal else f"sofia/gateway/trunk/{target.number}",
            direction="outbound",
            caller_num=agent.party,
            caller_name=agent.caller_name,
            dest=target.number,
            context="default",
            call_uuid="",
            tone=target.tone_hz,
            party=target.number,
            variables={"dialed_user": target.number} if internal else {},
        )
        sim._emit("CHANNEL_CREATE", d)
        self.legs["member"] = d
        await sim._elapse(self._live(), step.ring_ms)
        sim._answer(d)
        sim._conference_member(d, room, "add-member")

    def _member_leaves(self) -> None:
        """The conference's third party hangs up: it leaves the room, the others stay."""
        sim = self.sim
        d = self.legs.pop("member")
        sim._hangup(d, "NORMAL_CLEARING", "recv_bye")
        sim._conference_member(d, d.conference, "del-member")
        sim._hangup_complete(d, "NORMAL_CLEARING")
        sim._destroy(d)

    def _hangup(self, role: str) -> None:
        sim = self.sim
        ch = self.legs[role]
        if ch.gone:
            return
        if ch.conference:  # the last steps of a conference call: every member goes
            room = ch.conference
            for m in [ch, *(c for c in self._live() if c.conference == room and c is not ch)]:
                sim._hangup(m, "NORMAL_CLEARING", "recv_bye" if m is ch else "send_bye")
                sim._conference_member(m, room, "del-member")
                sim._hangup_complete(m, "NORMAL_CLEARING")
                sim._destroy(m)
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

    def _mask_changes(self) -> int:
        c = self.legs.get("customer")
        return sum(r.mask_changes for r in c.recordings.values()) if c else 0

    def _masked(self) -> bool:
        c = self.legs.get("customer")
        return bool(c) and any(r.masked for r in c.recordings.values())  # type: ignore[union-attr]

    async def _consult_dialled(self, target: sc.Party, settle: bool) -> None:
        """An external consultation the rule forbids to record: the controller mutes the customer's
        recording at its dial; the target rings until it did (bounded), as a real one rings far longer."""
        if settle and not target.internal and self.scenario.settings.get("continue_on_external_transfer") is False:
            await self.sim._wait(self._masked)

    async def _back_with_the_agent(self, settle: bool) -> None:
        """A failed consultation: the agent talks on at once; the controller lifts its mute in ms."""
        if settle:
            await self.sim._wait(lambda: not self._masked())

    def _controller_acted(self, before: int) -> bool:
        """The controller has settled the customer's recording for this transfer: stopped it, or
        muted it and lifted the mute again."""
        c = self.legs["customer"]
        if not c.recordings:
            return True
        return self._mask_changes() >= before + 2 and not any(r.masked for r in c.recordings.values())

    async def _talk_until(self, cond: Any) -> None:
        """Audio flows in real time (20 ms frames, whatever the time_scale) until `cond` or
        settle_timeout: a real PBX does not hold the parties' voices while the controller reacts."""
        loop = asyncio.get_running_loop()
        end = loop.time() + self.sim.settle_timeout
        while not cond() and loop.time() < end:
            self.sim._write_audio(self._live(), 20)
            await asyncio.sleep(0.02)

    async def _transfer(self, t: sc.Transfer, settle: bool = False) -> None:
        sim = self.sim
        cust, agent = self.legs["customer"], self.legs["agent"]
        target = self.party(t.to)
        if t.kind == "blind":
            marks = self._mask_changes()
            hist = f"{int(time.time())}:{uuidlib.uuid4()}:bl_xfer:{target.number}/{cust.context}/XML"
            b_extra: dict[str, str] = {}
            a_extra = {"variable_transfer_history": hist, "variable_transfer_source": hist}
            if t.method == "redirect":
                a_extra = {}  # nothing names the target: the customer's leg just leaves and dials
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
            if settle:
                # the phone rings longer than the controller takes to react to the dial (bounded)
                if t.method == "redirect":
                    await sim._wait(lambda: self._controller_acted(marks))
                else:  # announced: decided at the announcement (a stop, or nothing unknown to mute)
                    await sim._wait(lambda: self._controller_acted(marks), sim.ring_wall(t.ring_ms))
                    await sim._wait(lambda: not any(r.masked for r in cust.recordings.values()))
            await sim._elapse(self._live(), t.ring_ms)
            sim._answer(c)
            sim._bridge(cust, c)
            return
        if t.method == "pbx":
            await self._att_xfer(cust, agent, target, t, settle)
            return
        # attended by the agent's phone: hold the customer (re-INVITE sendonly: CHANNEL_HOLD on the
        # agent's leg, as uuid_hold gave in the real capture S4), the phone calls the target (a
        # separate call), then completes with REFER/Replaces
        agent.held = True
        sim._emit("CHANNEL_HOLD", agent)
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
        await self._consult_dialled(target, settle)
        await sim._elapse(self._live(), t.ring_ms)
        if t.outcome != "answer":
            # the consultation fails (extrapolated): busy (486), no answer (the bridge's timeout) or the
            # agent's phone cancels it; the phone then takes the customer off hold
            cause, d_disp, status, c_disp = FAILED_CONSULTATION[t.outcome]
            order = [(consult, c_disp, {}), (d, d_disp, {"variable_sip_term_status": status})]
            for leg, disposition, extra in order if t.outcome == "cancel" else order[::-1]:
                sim._hangup(leg, cause, disposition, extra)
                sim._hangup_complete(leg, cause)
                sim._destroy(leg)
            del self.legs["target"], self.legs["consult"]
            agent.held = False
            sim._emit("CHANNEL_UNHOLD", agent)  # the phone takes the customer back (re-INVITE sendrecv)
            await self._back_with_the_agent(settle)
            return
        sim._answer(d)
        sim._emit("CHANNEL_PROGRESS", consult)
        sim._answer(consult)
        sim._bridge(consult, d)
        if settle and self.scenario.settings.get("record_consultation"):
            await sim._wait(lambda: bool(d.recordings))  # the controller records the consultation
        await sim._elapse(self._live(), t.consult_ms)
        # completion (REFER with Replaces, or the PBX's att_xfer)
        sim._unbridge(consult, d)
        consult.variables.update({"endpoint_disposition": "ATTENDED_TRANSFER", "transfer_disposition": "replaced"})
        sim._hangup(consult, "NORMAL_CLEARING", "recv_bye")
        sim._hangup_complete(consult, "NORMAL_CLEARING")
        sim._destroy(consult)
        if settle and d.recordings:
            # a recorded consultation (record_consultation) ends here: the controller stops it within
            # milliseconds on a real PBX, before the customer is bridged to the target
            await sim._wait(lambda: not d.recordings)
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

    async def _att_xfer(
        self, cust: Channel, agent: Channel, target: sc.Party, t: sc.Transfer, settle: bool = False
    ) -> None:
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
        await self._consult_dialled(target, settle)
        await sim._elapse(self._live(), t.ring_ms)
        if t.outcome != "answer":
            # att_xfer's originate fails (extrapolated): the target leg goes, the agent is back with the
            # customer in the bridge it never left
            cause, disposition, status, _ = FAILED_CONSULTATION[t.outcome]
            sim._hangup(d, cause, disposition, {"variable_sip_term_status": status})
            sim._hangup_complete(d, cause)
            sim._destroy(d)
            del self.legs["target"]
            agent.held = False
            await self._back_with_the_agent(settle)
            return
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
