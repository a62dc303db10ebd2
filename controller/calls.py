"""The call state machine (pure): normalized events in, decisions for the recorder out.

It follows every leg by its PBX id, groups legs into calls, works out which leg is the CUSTOMER
(the external party, whose leg survives agent hand-offs and transfers), and keeps each recording's
timeline: who is on the right channel when (segments), pauses, transfer markers and the stop reason.

No I/O: the recorder feeds it events and acts on what `handle()` returns (`Decide` — resolve policy
and maybe start; `Stop` — stop the recording now; `Changed` — journal a timeline change). The policy
decision itself is the recorder's business; once a recording runs, the decision is handed back here
(`recording_started`) so transfer classification stays pure.

Why the rules are what they are (see the FreeSWITCH SIP captures):
- Start only at bridge: starting on a ringing leg pre-answers it, and an unanswered call is never
  recorded.
- Any new bridge partner of the customer leg is a new segment; a phone's SIP REFER sends no transfer
  event, so a transfer is "the customer leg got a new partner", refined by explicit `Transferred`
  markers when the PBX gives them.
- An external target with continue_on_external_transfer off stops the recording at the transfer; the
  part before is kept.
- Not a frame of an external party may be recorded when the rule is off, and many transfers announce
  nothing (an AMI Redirect, a uuid_transfer by another client, a REFER naming no target): when the
  customer leg leaves its bridge while recorded, and no announced target that may be recorded says
  where it goes, the recording is MUTED at once (`Mute`, a pause of
  kind `transfer_mute` in the timeline) until the next party is known. The earliest reliable signal
  is the leg the customer's channel dials (FreeSWITCH CHANNEL_CREATE whose originator is the customer
  leg, Asterisk DialBegin from the customer channel), long before that party answers: a party that
  may be recorded lifts the mute there (`Unmute`, so the recording has it from its first word), one
  that may not stops the recording. The new bridge decides when no dial was seen.
- An attended transfer's completion bridges the customer to the consulted party in the instant the PBX
  reports it: when the agent consults an EXTERNAL party the rule forbids to record, the recording is
  muted from the consultation's dial until it ends (`ConsultationTracking._mute_for_consultation`).
- A consultation (the agent talks to a transfer target while the customer waits) belongs to the
  customer's call and is listed in its timeline (`consultations`). Two shapes reach us: the PBX's own
  attended transfer (Asterisk Atxfer, fixture S4 / real R8; FreeSWITCH att_xfer) keeps it inside the
  customer's PBX call, so it is the agent leg bridged to someone else than the customer; the agent's
  phone (fixture S8c; FreeSWITCH's S4 hold + second call) makes it a call of its own, recognised ONLY
  while the agent's leg of the customer call is on hold — two genuine calls of one extension that
  merely overlap are never taken for a consultation.
"""

from __future__ import annotations

from typing import Any

from controller.call_adopt import AdoptionTracking
from controller.call_conference import ConferenceTracking
from controller.call_model import (
    TRANSFER_MUTE,
    Action,
    ActiveRecording,
    Call,
    Changed,
    Decide,
    Ended,
    Leg,
    Mute,
    Stop,
    Timeline,
    Unmute,
    user_pauses,
)
from controller.events import (
    AnyEvent,
    Bridged,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    Direction,
    HoldChanged,
    LiveChannel,
    PolicyHint,
    RecordingStopped,
    TransferKind,
    Transferred,
    Unbridged,
)
from controller.numbering import NumberClass, dial_string
from controller.policy import PolicyDecision


class CallTracker(AdoptionTracking, ConferenceTracking):
    """All legs and calls of one PBX node."""

    # ---- event intake ----
    def handle(self, ev: AnyEvent) -> list[Action]:
        if isinstance(ev, ChannelCreated):
            return self._created(ev)
        if isinstance(ev, ChannelAnswered):
            leg = self.legs.get(ev.leg)
            if leg:
                leg.answered = True
                leg.variables.update(ev.variables)
                owner = self.call_for_leg(ev.leg)
                if owner is not None and ev.leg in owner.consult_legs and ev.leg != owner.agent_leg:
                    return self._consultation_answered(owner, leg, ev.wall)  # the consulted party picked up
            return []
        if isinstance(ev, PolicyHint):
            return self._hint(ev)
        if isinstance(ev, Bridged):
            return self._bridged(ev)
        if isinstance(ev, Unbridged):
            return self._unbridged(ev)
        if isinstance(ev, Transferred):
            return self._transferred(ev)
        if isinstance(ev, HoldChanged):
            held = self.legs.get(ev.leg)
            if held is not None:
                held.held = ev.held
                (self._held_legs.add if ev.held else self._held_legs.discard)(ev.leg)
            return []
        if isinstance(ev, ChannelHungUp):
            return self._hungup(ev)
        if isinstance(ev, RecordingStopped):
            call = self.call_for_leg(ev.leg)
            if call and call.recording and not call.recording.stopping and ev.cause != "channel_hangup":
                if not ev.recording_id or ev.recording_id == call.recording.id:
                    return self._stop(call, "pbx", ev.wall)
        return []

    def _created(self, ev: ChannelCreated) -> list[Action]:
        leg = self._leg(ev.leg, ev.call_id)
        leg.call_id = ev.call_id or ev.leg
        leg.caller, leg.callee, leg.context = ev.caller, ev.callee, ev.context
        leg.channel_name, leg.pbx_direction, leg.originator = ev.channel_name, ev.pbx_direction, ev.originator
        leg.presented = ev.presented or leg.presented
        leg.variables.update(ev.variables)
        parent = ev.originator or (ev.call_id if ev.call_id != ev.leg else None)
        actions: list[Action] = []
        known = ev.leg in self.call_of_leg
        if parent and parent in self.call_of_leg:
            self._link(ev.leg, self.call_of_leg[parent])
            owner = self.calls[self.call_of_leg[parent]]
            if not known and owner.consult_legs and owner.open_consultation is not None:
                owner.consult_legs.add(ev.leg)  # the consultation's further legs (Local ;2, the target)
            elif not known:
                actions = self._consultation_in_call(owner, leg, ev.originator, ev.wall)
        elif not known:
            call = self._new_call(ev.leg, ev.wall)
            actions = self._consultation_call(call, leg, ev.wall)
        hint = {k.removeprefix("callrec_"): v for k, v in ev.variables.items() if k.startswith("callrec_")}
        if hint:
            self._apply_hint(self.calls[self.call_of_leg[ev.leg]], ev.leg, hint)
        if ev.originator:
            dialling = self.call_for_leg(ev.originator)
            if dialling is not None and dialling.customer_leg == ev.originator:
                return actions + self._customer_dials(dialling, leg, ev.wall)
        return actions

    def _hint(self, ev: PolicyHint) -> list[Action]:
        call = self.call_for_leg(ev.leg)
        if call is None:
            self._leg(ev.leg)
            call = self._new_call(ev.leg, ev.wall)
        self._apply_hint(call, ev.leg, ev.values)
        return []

    def _apply_hint(self, call: Call, leg: str, values: dict[str, str]) -> None:
        if call.decided:
            return
        call.hint.update({k: v for k, v in values.items() if v})
        if values.get("account"):
            call.account = values["account"]
        if values.get("account_number"):
            call.account_number = values["account_number"]
        if values.get("record") in ("force", "never"):
            call.record_override = values["record"]
        if values.get("ring_group"):
            call.ring_group = values["ring_group"]
        d = values.get("direction", "")
        if d in ("inbound", "outbound", "internal"):
            call.direction = Direction(d)
            call.hint["hook_leg"] = call.hint.get("hook_leg") or leg

    def _classify_direction(self, call: Call, a: Leg, b: Leg) -> tuple[Direction, Leg, Leg] | None:
        """(direction, customer leg, agent leg) for a first bridge of legs a (caller side) and b."""
        if call.direction is Direction.INBOUND:
            hook_leg = call.hint.get("hook_leg", a.id)
            cust = a if hook_leg == a.id else b
            return Direction.INBOUND, cust, b if cust is a else a
        if call.direction is Direction.OUTBOUND:
            hook_leg = call.hint.get("hook_leg", a.id)
            agent = a if hook_leg == a.id else b
            return Direction.OUTBOUND, b if agent is a else a, agent
        if call.direction is Direction.INTERNAL:
            return Direction.INTERNAL, a, b
        if a.context and a.context in self.inbound_contexts:
            return Direction.INBOUND, a, b
        a_internal = self.numbering.is_internal_party(a.party_number)
        b_internal = self.numbering.is_internal_party(b.party_number)
        if not a_internal and b_internal:
            return Direction.INBOUND, a, b
        if a_internal and not b_internal:
            return Direction.OUTBOUND, b, a
        if a_internal and b_internal:
            return Direction.INTERNAL, a, b
        return Direction.UNKNOWN, a, b

    def _bridged(self, ev: Bridged) -> list[Action]:
        a, b = self._leg(ev.leg_a), self._leg(ev.leg_b)
        shared_before = set(a.peers) | set(b.peers)
        a.peers.add(b.id)
        b.peers.add(a.id)
        a.bridged_to, b.bridged_to = b.id, a.id
        a.answered = b.answered = True
        call = self.call_for_leg(a.id) or self.call_for_leg(b.id)
        if call is not None and call.consultation_of is not None:
            # the customer joins a leg of its own call's consultation: the customer call decides
            other_call = self.call_for_leg(b.id if call is self.call_for_leg(a.id) else a.id)
            if other_call is not None and other_call.id == call.consultation_of:
                call = other_call
        if ev.size > 2:
            # a party joining a conference the customer is in (FreeSWITCH dials it in as a call of its
            # own): it belongs to the customer's call
            host = next((c for c in map(self.call_for_leg, (a.id, b.id)) if c and c.customer_leg in (a.id, b.id)), None)
            if host is not None:
                for leg in (a, b):
                    stub = self.call_for_leg(leg.id)
                    if stub is not None and stub is not host and not stub.decided:
                        self._forget(stub)
                call = host
        if call is None:
            call = self._new_call(a.id, ev.wall)
        for leg in (a, b):
            if leg.id not in self.call_of_leg:
                self._link(leg.id, call.id)
        if call.customer_leg is None:
            if call.ended:
                return []
            cls = self._classify_direction(call, a, b)
            assert cls is not None
            direction, cust, agent = cls
            call.direction, call.customer_leg, call.agent_leg = direction, cust.id, agent.id
            call.customer_number = cust.party_number
            if not call.account_number:
                if direction is Direction.INBOUND:
                    call.account_number = dial_string(cust.callee)
                elif direction is Direction.OUTBOUND:
                    # the number the customer was called from: what the PBX presented on the dialled leg
                    call.account_number = (
                        dial_string(cust.presented) or dial_string(cust.caller) or dial_string(agent.caller)
                    )
            call.agent = call.hint.get("agent") or agent.party_number
            call.agents = [call.agent] if call.agent else []
            call.answered_wall = call.answered_wall or ev.wall
            call.decided = True
            parent = self._parent_of(call)
            if parent is None:
                return [Decide(call)]
            # The consultation call is decided by the customer call it belongs to: its target's leg is
            # the one recorded when record_consultation is on (target LEFT, agent RIGHT), and it is
            # filed under that customer call's numbers, never the target's.
            dialler = a if a.id == call.first_leg else b if b.id == call.first_leg else agent
            far = b if dialler is a else a
            call.customer_leg, call.agent_leg = far.id, dialler.id
            call.direction, call.account, call.account_number = parent.direction, parent.account, parent.account_number
            call.customer_number = parent.customer_number
            call.agent = dialler.party_number or call.agent
            call.agents = [call.agent] if call.agent else []
            answered: list[Action] = []
            if parent.open_consultation is call.consultation_mark:
                answered = self._consultation_answered(parent, far, ev.wall)
            return [*answered, Decide(call)]
        joined = self._conference_join(call, ev, a, b, shared_before) if ev.size > 2 else None
        if joined is not None:
            return joined
        # Any new bridge partner of the customer leg is a new segment (a transfer, however it was done).
        if call.customer_leg not in (a.id, b.id):
            return []  # e.g. the agent leg bridged to the Atxfer / att_xfer consultation in the same PBX call
        other = b if a.id == call.customer_leg else a
        if other.id == call.agent_leg and call.external_consultation and call.consult_legs:
            # the agent is back while its external consultation is still up (Asterisk's three-way merge
            # brings the consulted party in next): the customer's next party is known, but the mute
            # holds until the consultation ends (returned: unmuted) or its party joins (stop or mute)
            call.next_party_unknown = False
            return []
        if other.id == call.agent_leg:
            # re-bridge to the same party (hold/unhold); after a consultation: a failed or cancelled
            # attended transfer, the agent is back with the customer and the recording goes on
            back = self._finish_consultation(call, "returned", ev.wall)
            return back + self._back_to_current_party(call, ev.wall)
        if not call.pending_transfer and other.party_number and other.party_number == self._current_party(call):
            # The same party through another channel (Asterisk swaps Local channels out after an
            # attended transfer; a later hold/unhold re-bridges the replacement): not a transfer.
            call.agent_leg = other.id
            return self._back_to_current_party(call, ev.wall)
        actions: list[Action] = []
        if call.open_consultation is not None:
            actions += self._finish_consultation(call, "transferred", ev.wall)
            if other.id not in self.call_of_leg:
                self._link(other.id, call.id)  # the target's leg came from the consultation call
        previous = call.agent_leg
        call.agent_leg = other.id
        party = other.party_number
        if call.pending_transfer and call.pending_transfer.get("target"):
            party = party or call.pending_transfer["target"]
        if party and party not in call.agents and self.numbering.is_internal_party(party):
            call.agents.append(party)
        rec = call.recording
        if rec is None or rec.stopping:
            call.pending_transfer = None
            return actions
        pending = call.pending_transfer or {}
        call.pending_transfer = None
        kind = pending.get("kind", "blind")
        target = party or pending.get("target", "")
        decision = rec.decision.transfer(target) if target else None
        target_class = decision.target_class.value if decision else NumberClass.EXTERNAL.value
        # A party nobody could name, after a transfer mute, may be external: not heard with the rule off.
        unknown_stops = (
            decision is None and rec.timeline.transfer_muted and not rec.decision.settings.continue_on_external_transfer
        )
        stops = bool(decision and decision.stop_recording) or unknown_stops
        if not stops:
            actions.extend(self._lift_transfer_mute(call, target, target_class, ev.wall))
        if not pending.get("marked"):
            marker = {
                "at_ms": rec.timeline.transfer_at(ev.wall),
                "kind": kind,
                "target": target,
                "target_class": target_class,
                "stopped_recording": stops,
                "from": previous or "",
            }
            rec.timeline.transfers.append(marker)
            actions.append(Changed(call, "transfer", marker, ev.wall))
        if stops:
            rec.timeline.close_segment(ev.wall)
            if rec.timeline.transfer_muted:
                rec.timeline.close_transfer_mute(ev.wall, "stopped", target, target_class)
            actions.extend(self._stop(call, "external_transfer", ev.wall))
            return actions
        rec.timeline.open_segment(target, target_class, ev.wall)
        actions.append(Changed(call, "segment", rec.timeline.segments[-1], ev.wall))
        return actions

    # ---- transfer mute: nothing of an unclassified next party is recorded ----
    def _unbridged(self, ev: Unbridged) -> list[Action]:
        for a, b in ((ev.leg_a, ev.leg_b), (ev.leg_b, ev.leg_a)):
            leg = self.legs.get(a)
            if leg:
                leg.peers.discard(b)
                if leg.bridged_to == b:
                    leg.bridged_to = next(iter(sorted(leg.peers)), None)  # still with the others of its bridge
        call = self.call_for_leg(ev.leg_a) or self.call_for_leg(ev.leg_b)
        if call is not None and call.members and not ev.moving and ev.hanging_up != call.customer_leg:
            # (a member's Local channel optimized away is the same party, still there; the customer
            # hanging up ends the call: nobody "carries on")
            left = self._conference_leave(call, ev.leg_a, ev.leg_b, ev.wall)
            if left is not None:
                return left
        if call is None or call.customer_leg not in (ev.leg_a, ev.leg_b) or ev.moving:
            return []
        cust = self.legs.get(call.customer_leg)
        if cust is None or cust.hung_up or cust.bridged_to is not None or ev.hanging_up == cust.id:
            return []  # the call ends, or the customer is already with someone else (judged at that bridge)
        rec = call.recording
        if rec is None or rec.stopping:
            return []
        named = (call.pending_transfer or {}).get("target", "")
        if named and not rec.decision.transfer(named).stop_recording:
            # The PBX named where the customer goes and it may be recorded: nothing unknown to mute. If
            # that number routes on outside, the dial of the external leg still stops before it answers.
            return []
        call.next_party_unknown = True
        if rec.timeline.paused:
            return []  # already silent: a user's pause stays the user's (and holds until the party is known)
        entry = rec.timeline.open_transfer_mute(ev.wall, "customer_left_bridge")
        return [Mute(call, entry, ev.wall)]

    def _customer_dials(self, call: Call, leg: Leg, wall: float) -> list[Action]:
        """The customer's channel dials a new party (the earliest reliable signal of where an
        unannounced transfer goes): classify it now, before it can answer."""
        rec = call.recording
        cust = self.legs.get(call.customer_leg or "")
        party = leg.party_number
        if rec is None or rec.stopping or cust is None or cust.bridged_to is not None or not party:
            return []
        decision = rec.decision.transfer(party)
        if decision.stop_recording:
            return self._stop_for_external(call, party, decision.target_class.value, wall)
        call.next_party_unknown = False
        if rec.timeline.transfer_muted:
            entry = rec.timeline.close_transfer_mute(wall, "unmuted", party, decision.target_class.value)
            return [Unmute(call, entry, wall)]
        return []

    def _stop_for_external(self, call: Call, party: str, target_class: str, wall: float) -> list[Action]:
        """Stop at an external party the rule forbids to record; mark the transfer unless the PBX
        already announced this very target."""
        rec = call.recording
        assert rec is not None
        pending = call.pending_transfer or {}
        kind = pending.get("kind", "blind")
        actions: list[Action] = []
        if not (pending.get("marked") and pending.get("target") == party):
            marker = {
                "at_ms": rec.timeline.transfer_at(wall),
                "kind": kind,
                "target": party,
                "target_class": target_class,
                "stopped_recording": True,
                "from": call.agent_leg or "",
            }
            rec.timeline.transfers.append(marker)
            actions.append(Changed(call, "transfer", marker, wall))
        call.pending_transfer = {"kind": kind, "target": party, "marked": "1"}
        if rec.timeline.transfer_muted:
            rec.timeline.close_transfer_mute(wall, "stopped", party, target_class)
        actions.extend(self._stop(call, "external_transfer", wall))
        return actions

    def _back_to_current_party(self, call: Call, wall: float) -> list[Action]:
        call.pending_transfer = None  # whatever was announced did not happen: the same party is back
        rec = call.recording
        if rec is None or not rec.timeline.segments:
            return []
        seg = rec.timeline.segments[-1]
        return self._lift_transfer_mute(call, str(seg.get("party") or ""), str(seg.get("class") or ""), wall)

    def _transferred(self, ev: Transferred) -> list[Action]:
        call = self.call_for_leg(ev.leg) or (self.call_for_leg(ev.transferer) if ev.transferer else None)
        if call is None or call.customer_leg is None:
            return []
        pending: dict[str, str] = {"kind": ev.kind.value, "target": dial_string(ev.target) if ev.target else ""}
        old = call.pending_transfer
        if old and old["kind"] == pending["kind"] and (old.get("marked") or not pending["target"]):
            return []  # the same transfer reported twice (agent hangup + customer unbridge)
        call.pending_transfer = pending
        done: list[Action] = []
        if ev.kind is TransferKind.ATTENDED and call.open_consultation is not None:
            done = self._finish_consultation(call, "transferred", ev.wall)
        rec = call.recording
        if rec is None or rec.stopping or not pending["target"]:
            return done
        # The target is known now: mark the transfer at this moment and stop at once if the rule says so.
        decision = rec.decision.transfer(pending["target"])
        marker = {
            "at_ms": rec.timeline.transfer_at(ev.wall),
            "kind": ev.kind.value,
            "target": pending["target"],
            "target_class": decision.target_class.value,
            "stopped_recording": decision.stop_recording,
            "from": call.agent_leg or "",
        }
        rec.timeline.transfers.append(marker)
        pending["marked"] = "1"
        actions: list[Action] = [*done, Changed(call, "transfer", marker, ev.wall)]
        if decision.stop_recording:
            rec.timeline.close_segment(ev.wall)
            if rec.timeline.transfer_muted:  # e.g. since the consultation's dial: who it kept out
                rec.timeline.close_transfer_mute(ev.wall, "stopped", pending["target"], decision.target_class.value)
            actions.extend(self._stop(call, "external_transfer", ev.wall))
        else:  # announced after the customer left its bridge: a party that may be recorded lifts the mute
            actions.extend(self._lift_transfer_mute(call, pending["target"], decision.target_class.value, ev.wall))
        return actions

    def _hungup(self, ev: ChannelHungUp) -> list[Action]:
        leg = self.legs.get(ev.leg)
        call = self.call_for_leg(ev.leg)
        if leg:
            leg.hung_up = True
            for peer in leg.peers:
                if peer in self.legs:
                    self.legs[peer].peers.discard(leg.id)
            if leg.bridged_to and leg.bridged_to in self.legs:
                partner = self.legs[leg.bridged_to]
                if partner.bridged_to == leg.id:
                    partner.bridged_to = None
        actions: list[Action] = []
        consult_done = bool(call) and ev.variables.get("endpoint_disposition") == "ATTENDED_TRANSFER"
        if call and not call.ended and call.consultation_of is not None:
            mark = call.consultation_mark
            if mark is not None and ev.cause and not mark.get("cause"):
                mark["cause"] = ev.cause  # the first hang-up says why (USER_BUSY, NO_ANSWER, a cancel)
            if ev.leg in (call.first_leg, call.customer_leg, call.agent_leg):
                # the agent's phone completed the transfer (REFER/Replaces) or the consultation is over
                outcome = "transferred" if consult_done else "returned"
                actions += self._end_consultation_call(call, outcome, ev.wall, (mark or {}).get("cause", ""))
                self._forget_leg(ev.leg)
                self._unlink(ev.leg)
                return actions
        elif call and not call.ended and ev.leg in call.consult_legs:
            # a leg of the consultation inside the customer's call (Atxfer / att_xfer); when the last one
            # is gone without a transfer, the attended transfer failed: the agent is back
            call.consult_legs.discard(ev.leg)
            if call.open_consultation is not None:
                if ev.cause:
                    call.open_consultation.setdefault("cause", ev.cause)
                if not call.consult_legs:
                    actions += self._close_consultation(
                        call, "returned", ev.wall, call.open_consultation.get("cause", "")
                    )
        if call and not call.ended:
            consult_done = consult_done and call.agent_leg == ev.leg
            if (
                call.customer_leg == ev.leg
                or (call.customer_leg is None and ev.leg == call.first_leg)
                # the agent's consultation call ends when its party is handed over to another call
                or consult_done
            ):
                actions.extend(self._stop(call, "hangup", ev.wall))
                call.ended, call.end_reason = True, ev.cause or "hangup"
                actions.append(Ended(call))
        self._forget_leg(ev.leg)
        self._unlink(ev.leg)
        if call and call.ended:
            self._forget(call)
        return actions

    # ---- recorder feedback ----
    def recording_started(self, call: Call, recording_id: str, decision: PolicyDecision, wall: float) -> None:
        tl = Timeline(wall)
        agent_class = decision.classify(call.agent).value if call.agent else NumberClass.INTERNAL.value
        tl.open_segment(call.agent, agent_class, wall)
        call.recording = ActiveRecording(recording_id, decision, tl)
        if call.consultation_mark is not None:
            call.consultation_mark["recording_id"] = recording_id  # listed in the customer call's timeline

    def adopt(
        self,
        call: Call,
        call_id: str,
        recording_id: str,
        decision: PolicyDecision,
        timeline: dict[str, Any],
        start_wall: float,
    ) -> None:
        """Take over a recording a previous controller started (found in the journal after a resync)."""
        if call.id != call_id:
            self.calls.pop(call.id, None)
            for leg_id in list(self._legs_of_call.get(call.id, ())):
                self._link(leg_id, call_id)
            self._legs_of_call.pop(call.id, None)
            call.id = call_id
            self.calls[call_id] = call
        call.recording = ActiveRecording(recording_id, decision, Timeline.from_dict(timeline, start_wall))
        call.decided = True

    def pause(self, call: Call, by: str, wall: float) -> dict[str, Any]:
        assert call.recording is not None
        tl = call.recording.timeline
        entry = {"start_ms": tl.offset(wall), "end_ms": None, "by": by}
        tl.pauses.append(entry)
        return entry

    def resume(self, call: Call, by: str, wall: float) -> dict[str, Any]:
        assert call.recording is not None
        tl = call.recording.timeline
        entry = tl.pauses[-1]
        entry["end_ms"] = tl.offset(wall)
        entry["resumed_by"] = by
        return entry

    def stop(self, call: Call, reason: str, wall: float) -> list[Action]:
        """Stop asked by someone else than the PBX (API, link lost, shutdown)."""
        return self._stop(call, reason, wall)

    # ---- resync ----
    def resync(
        self,
        channels: tuple[LiveChannel, ...] | list[LiveChannel],
        wall: float,
        known_before: set[str] | None = None,
    ) -> tuple[list[Call], list[Call]]:
        """Rebuild legs from a snapshot. Returns (calls whose customer leg is gone, bridged calls not yet
        decided) — the recorder closes the first and decides the second.

        `known_before` = the legs known when the link came up: only those can have vanished unseen.
        Legs learned from events of the new link are current even when the snapshot (taken a moment
        later) does not list them."""
        live = {c.leg: c for c in channels}
        stale = set(self.legs) if known_before is None else known_before & set(self.legs)
        gone: list[Call] = []
        for call in list(self.calls.values()):
            if call.ended:
                continue
            key = call.customer_leg or call.first_leg
            if key in stale and key not in live:
                gone.append(call)
        for leg_id in list(self.legs):
            if leg_id in stale and leg_id not in live:
                self._forget_leg(leg_id)
                self._unlink(leg_id)
        current = set(self.legs) - stale  # learned from this link's events: newer than the snapshot
        for ch in channels:
            if ch.leg in current:
                continue
            leg = self._leg(ch.leg, ch.call_id)
            leg.caller, leg.callee, leg.context = ch.caller or leg.caller, ch.callee or leg.callee, ch.context
            leg.channel_name = ch.channel_name or leg.channel_name
            leg.presented = ch.presented or leg.presented
            leg.variables.update(ch.variables)
            leg.answered = ch.answered
            leg.bridged_to = ch.bridged_to
            if ch.variables.get("direction"):
                leg.pbx_direction = ch.variables["direction"]
            if ch.call_id and ch.call_id != ch.leg and ch.call_id in live and ch.leg not in self.call_of_leg:
                leg.originator = ch.call_id
        # Group: a leg joins its call_id leg's call, else its bridge partner's, else a new call.
        for ch in channels:
            if ch.leg in self.call_of_leg:
                continue
            parent = ch.call_id if ch.call_id in self.call_of_leg else None
            if parent is None and ch.bridged_to in self.call_of_leg:
                parent = ch.bridged_to
            if parent:
                self._link(ch.leg, self.call_of_leg[parent])
            else:
                self._new_call(ch.leg, wall)
        # Our dialplan hook's variables, where the listing carries them (Asterisk's ChanVariables), as
        # a PolicyHint would have given them: a call bridged while we were away is decided like any
        # other. The leg that started its call (where the hook ran) goes first.
        for ch in sorted(channels, key=lambda c: c.call_id != c.leg):
            if ch.leg in current:
                continue
            hint = {k.removeprefix("callrec_"): v for k, v in ch.variables.items() if k.startswith("callrec_") and v}
            found = self.call_for_leg(ch.leg)
            if hint and found is not None:
                self._apply_hint(found, ch.leg, hint)
        fresh: list[Call] = []
        for ch in channels:
            if not ch.bridged_to or ch.bridged_to not in live:
                continue
            found = self.call_for_leg(ch.leg)
            if found and not found.decided and ch.leg == found.first_leg:
                fresh.append(found)
        return gone, fresh

    def decide_from_resync(self, call: Call, wall: float) -> Decide | None:
        a = self.legs.get(call.first_leg)
        if a is None or not a.bridged_to:
            return None
        acts = self._bridged(Bridged(self.pbx, 0.0, wall, a.id, a.bridged_to))
        return next((x for x in acts if isinstance(x, Decide)), None)

    def end(self, call: Call, reason: str) -> None:
        call.ended, call.end_reason = True, reason
        self._forget(call)


__all__ = [
    "TRANSFER_MUTE",
    "Action",
    "ActiveRecording",
    "Call",
    "CallTracker",
    "Changed",
    "Decide",
    "Ended",
    "Leg",
    "Mute",
    "Stop",
    "Timeline",
    "Unmute",
    "user_pauses",
]
