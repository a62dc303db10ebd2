"""What an adopted recording's call was doing (pure part of the call state machine): a controller that
takes over a running recording (restart, HA takeover) restores, from the journal's timeline and the
PBX's live channels, the state the previous controller held in memory — the agent's leg, an open
consultation and its legs, and above all a transfer mute still on — so the normal unmute / stop rules
apply to it. A mute nobody remembers would never be lifted: the rest of the call silent in the file."""

from __future__ import annotations

from typing import Any

from controller.call_consult import ConsultationTracking
from controller.call_model import Action, Call, Leg
from controller.events import Bridged
from controller.numbering import dial_string


class AdoptionTracking(ConsultationTracking):
    """The adoption steps of the call state machine."""

    def _bridged(self, ev: Bridged) -> list[Action]:  # the state machine's (controller.calls)
        raise NotImplementedError

    def restore_after_adoption(self, call: Call, wall: float) -> list[Action]:
        """Call after `adopt` (the resync's legs known). The journal's timeline says what was open when
        the previous controller went: a consultation (an entry without `end_ms`) and a transfer mute
        (the last pause, kind transfer_mute, without `end_ms`). Returns what to do at once: when the
        customer is already bridged again and no consultation explains the mute, its new bridge is
        judged as if seen now (the same party or one that may be recorded: unmuted; one that may not,
        or nobody can name with the rule off: stopped)."""
        rec = call.recording
        cust = self.legs.get(call.customer_leg or "")
        if rec is None or rec.stopping or cust is None:
            return []
        tl = rec.timeline
        party = self._current_party(call)
        call.agent_leg = cust.bridged_to or self._agent_leg_alone(call, cust, party)
        mark = next((m for m in reversed(tl.consultations) if m.get("end_ms") is None), None)
        found = mark is not None and self._restore_consultation(call, mark)
        if found and mark is not None and self._forbidden_consultation(call, mark):
            # held until the consultation ends (returned: unmuted), also under a user's pause (whose
            # resume, automatic or not, must wait for it as before the restart)
            call.external_consultation = True
        if not tl.paused:
            return []
        if cust.bridged_to is None:
            call.next_party_unknown = True  # judged at its next bridge or dial, as before the restart
            return []
        if not tl.transfer_muted:
            return []
        if call.external_consultation:
            return []
        partner = self.legs.get(cust.bridged_to)
        if partner is None:
            return []
        if self._party(partner) != party:
            call.agent_leg = None  # someone else than the recording's current party: a transfer
        return self._bridged(Bridged(self.pbx, 0.0, wall, cust.id, partner.id))

    @staticmethod
    def _forbidden_consultation(call: Call, mark: dict[str, Any]) -> bool:
        """The consulted party may not be recorded (see ConsultationTracking._mute_for_consultation)."""
        rec = call.recording
        assert rec is not None
        target = str(mark.get("target") or "")
        if mark.get("muted"):
            return True
        if target:
            return rec.decision.transfer(target).stop_recording
        return not rec.decision.settings.continue_on_external_transfer

    @staticmethod
    def _party(leg: Leg) -> str:
        """Who is on `leg`: its party number, else its caller ID (an Asterisk channel the agent's phone
        sits on is listed with its caller ID only)."""
        return leg.party_number or dial_string(leg.caller)

    def _agent_leg_alone(self, call: Call, cust: Leg, party: str) -> str | None:
        """The customer is alone in its bridge (an Atxfer: the agent moved to its consultation's
        bridge): the agent's leg is the one of the call the current party is on, in a bridge."""
        if not party:
            return None
        for leg_id in sorted(self._legs_of(call)):
            leg = self.legs.get(leg_id)
            if leg is None or leg.id == cust.id or leg.hung_up or leg.bridged_to is None:
                continue
            if self._party(leg) == party:
                return leg.id
        return None

    def _legs_of(self, call: Call) -> set[str]:
        return set(self._legs_of_call.get(call.id, ()))

    def _restore_consultation(self, call: Call, mark: dict[str, Any]) -> bool:
        """The consultation still up: inside the customer's PBX call (Atxfer / att_xfer: the call's
        other legs), or a call of its own the agent's phone placed to the target (matched by the
        agent's number and the target). False when neither is found: it ended while nobody watched;
        the customer's next bridge closes it (the agent back: returned; someone else: transferred)."""
        call.open_consultation = call.last_consultation = mark
        others = {
            leg for leg in self._legs_of(call) if leg not in (call.customer_leg, call.agent_leg) and leg in self.legs
        }
        if others:
            call.consult_legs = others
            return True
        agent, target = str(mark.get("agent") or ""), str(mark.get("target") or "")
        for other in sorted(self.calls.values(), key=lambda c: c.started_wall):
            if other is call or other.ended or other.decided or other.consultation_of is not None:
                continue
            first = self.legs.get(other.first_leg)
            if first is None or dial_string(first.caller) != agent:
                continue
            if target and dial_string(first.variables.get("dialed_user") or first.callee) != target:
                continue
            other.consultation_of, other.consultation_mark = call.id, mark
            return True
        return False
