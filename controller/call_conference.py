"""Conferences (three-way calls) in the call state machine (pure): who joins the customer and the
agent, when they leave, and what an external joiner does to the recording."""

from __future__ import annotations

from typing import Any

from controller.call_base import TrackerBase
from controller.call_model import EXTERNAL_JOINER, Action, Call, Changed, Leg, Mute
from controller.events import Bridged
from controller.numbering import dial_string


class ConferenceTracking(TrackerBase):
    """The conference steps of the call state machine."""

    def _conference_join(self, call: Call, ev: Bridged, a: Leg, b: Leg, shared_before: set[str]) -> list[Action] | None:
        """A third party entering the bridge the customer shares with the agent (Asterisk's three-way
        merge or a ConfBridge, a FreeSWITCH conference): a join, not a transfer. The customer stays
        LEFT and the PBX mixes every other party on the RIGHT; the timeline lists who joined when. An
        EXTERNAL joiner with continue_on_external_transfer off stops the recording, as a transfer to
        it would — or, with `external_joiner = mute`, mutes it while that party is in the call."""
        if call.customer_leg not in (a.id, b.id) or not call.agent_leg:
            return None
        cust, other = (a, b) if a.id == call.customer_leg else (b, a)
        if other.id == call.agent_leg or other.id in call.members or call.agent_leg not in shared_before:
            return None
        agent = self.legs.get(call.agent_leg)
        if agent is None or agent.hung_up or call.agent_leg not in cust.peers:
            return None
        wall = ev.wall
        # the number the driver knows the joiner by (an Atxfer's Local channel: the extension it runs)
        party = other.party_number or dial_string(ev.number_a if other is a else ev.number_b)
        rec = call.recording
        plan = rec.decision if rec else None
        cls = (plan.classify(party) if plan else self.numbering.classify(party)).value if party else "external"
        entry: dict[str, Any] = {"party": party, "class": cls, "joined_ms": 0, "left_ms": None}
        call.members[other.id] = entry
        if party and party not in call.agents and self.numbering.is_internal_party(party):
            call.agents.append(party)
        actions: list[Action] = []
        mark = call.last_consultation
        if mark is not None and mark.get("target") == party and mark.get("outcome") in (None, "returned"):
            # the agent's consultation became a three-way call with the consulted party
            mark["outcome"], call.open_consultation, call.consult_legs = "conference", None, set()
            call.external_consultation = False  # its mute, if any, is the join's now (kept or stopped)
            mark.pop("cause", None)
        if rec is None or rec.stopping:
            return actions
        entry["joined_ms"] = rec.timeline.offset(wall)
        # a joiner nobody can name may be external: with the rule off it is not recorded either
        stops = rec.decision.transfer(party).stop_recording if party else None
        forbidden = stops if stops is not None else not rec.decision.settings.continue_on_external_transfer
        mute = forbidden and rec.decision.settings.external_joiner == "mute"
        entry["stopped_recording"] = forbidden and not mute
        if mute:
            entry["muted_recording"] = True
            if not rec.timeline.paused:  # (a consultation's mute still open is kept: nothing heard in between)
                pause = rec.timeline.open_transfer_mute(wall, EXTERNAL_JOINER)
                actions.append(Mute(call, pause, wall))  # the PBX command first
            # a user's pause open now stays the user's; it cannot be resumed while the party is in
        rec.timeline.conference.append(entry)
        actions.append(Changed(call, "conference", dict(entry), wall))
        if entry["stopped_recording"]:
            rec.timeline.close_segment(wall)
            actions.extend(self._stop(call, "external_joined", wall))
        return actions

    def _conference_leave(self, call: Call, leg_a: str, leg_b: str, wall: float) -> list[Action] | None:
        """A joiner left the customer's bridge (hung up or was dropped): noted in the timeline. When the
        agent leaves and one joiner stays with the customer, that party is the right channel now."""
        if call.customer_leg not in (leg_a, leg_b):
            return [] if (self._member_key(call, leg_a) or self._member_key(call, leg_b)) else None
        other = leg_b if leg_a == call.customer_leg else leg_a
        rec = call.recording
        key = self._member_key(call, other)
        if key is not None:
            entry = call.members.pop(key)
            if entry["left_ms"] is None and rec is not None and not rec.stopping:
                entry["left_ms"] = rec.timeline.offset(wall)
                actions: list[Action] = [Changed(call, "conference", dict(entry), wall)]
                if entry.get("muted_recording") and not call.muted_by_joiner:
                    # the last external party the recording was muted for is gone: customer and agent again
                    party, cls = self._current_party(call), self._current_class(call)
                    actions += self._lift_transfer_mute(call, party, cls, wall)
                return actions
            return []
        if other == call.agent_leg and call.members:
            # the agent dropped out of the three-way call: the remaining party carries on with the customer
            leg_id, entry = next(iter(call.members.items()))
            del call.members[leg_id]
            call.agent_leg = leg_id
            if rec is None or rec.stopping:
                return []
            if entry.get("muted_recording"):
                # left alone with the customer, the external party is where the call was transferred to
                return self._stop(call, "external_transfer", wall)
            entry["left_ms"] = None
            rec.timeline.open_segment(str(entry["party"]), str(entry["class"]), wall)
            return [Changed(call, "segment", rec.timeline.segments[-1], wall)]
        return None

    def _member_key(self, call: Call, leg_id: str) -> str | None:
        """The member entry `leg_id` is: its own, or — Asterisk optimizes a joiner's Local channel
        away and puts the party's own channel in the customer's bridge without a bridge event (real
        R12) — the entry of the same party whose channel is no longer with the customer."""
        if leg_id in call.members:
            return leg_id
        leg = self.legs.get(leg_id)
        party = leg.party_number if leg else ""
        if not party or leg_id == call.agent_leg:
            return None
        for key, entry in call.members.items():
            old = self.legs.get(key)
            if entry.get("party") == party and (old is None or old.hung_up or call.customer_leg not in old.peers):
                return key
        return None
