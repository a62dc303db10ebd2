"""An agent's consultation during a customer call (pure part of the call state machine): recognised,
listed in the customer recording's timeline, and closed as transferred or returned (see
`controller.calls` for the two shapes that reach us)."""

from __future__ import annotations

from typing import Any

from controller.call_base import TrackerBase
from controller.call_model import EXTERNAL_CONSULTATION, Action, Call, Changed, Ended, Leg, Mute
from controller.numbering import NumberClass, dial_string


class ConsultationTracking(TrackerBase):
    """The consultation steps of the call state machine."""

    def _consultation_call(self, call: Call, leg: Leg, wall: float) -> list[Action]:
        """A new PBX call whose first leg is placed by the agent of a customer call that this agent put
        on hold (the phone's consultation, fixture S8c): it belongs to that customer call. A call of
        the same extension while its customer call is NOT on hold is a genuine call of its own."""
        caller = dial_string(leg.caller)
        if not caller:
            return []
        # only calls whose agent leg is on hold qualify: look at those (a handful), not at every live call
        held = [p for p in map(self.call_for_leg, self._held_legs) if p is not None]
        for parent in sorted(held, key=lambda p: p.started_wall):
            if parent is call or parent.ended or parent.customer_leg is None or parent.consultation_of is not None:
                continue
            if parent.open_consultation is not None:
                continue
            agent_leg = self.legs.get(parent.agent_leg or "")
            customer = self.legs.get(parent.customer_leg)
            if agent_leg is None or not agent_leg.held or customer is None or customer.hung_up:
                continue
            if self._current_party(parent) != caller:
                continue
            call.consultation_of = parent.id
            mark, actions = self._open_consultation(parent, caller, dial_string(leg.callee), wall)
            call.consultation_mark = mark
            return actions
        return []

    def _consultation_in_call(self, call: Call, leg: Leg, originator: str | None, wall: float) -> list[Action]:
        """A new leg inside a decided customer call made for the agent while the customer waits: the
        PBX's attended transfer (Asterisk Atxfer: a Local consultation channel created while the agent
        leg is on hold, S4/R8; FreeSWITCH att_xfer: a leg the agent leg originates)."""
        if call.customer_leg is None or call.ended or call.open_consultation is not None or not call.agent_leg:
            return []
        agent_leg = self.legs.get(call.agent_leg)
        if agent_leg is None or not (agent_leg.held or originator == agent_leg.id):
            return []
        target = dial_string(leg.variables.get("dialed_user") or leg.callee)
        _, actions = self._open_consultation(call, self._current_party(call), target, wall)
        call.consult_legs = {leg.id}
        return actions

    def _open_consultation(
        self, parent: Call, agent: str, target: str, wall: float
    ) -> tuple[dict[str, Any], list[Action]]:
        rec = parent.recording
        plan = rec.decision.numbering if rec else self.numbering
        mark: dict[str, Any] = {
            "at_ms": rec.timeline.offset(wall) if rec else 0,
            "end_ms": None,
            "agent": agent,
            "target": target,
            "target_class": plan.classify(target).value if target else NumberClass.EXTERNAL.value,
            "answered": False,
            "outcome": None,
            "recording_id": None,
        }
        parent.open_consultation = parent.last_consultation = mark
        if rec is None or rec.stopping:
            return mark, []
        rec.timeline.consultations.append(mark)
        muted = self._mute_for_consultation(parent, mark, wall)  # the PBX command first: the target may answer
        return mark, [*muted, Changed(parent, "consultation", dict(mark), wall)]

    def _mute_for_consultation(self, parent: Call, mark: dict[str, Any], wall: float) -> list[Action]:
        """An attended transfer to an EXTERNAL party with continue_on_external_transfer off: its
        completion bridges the customer to that party in the same instant as the PBX tells us (no ring
        left in which to act), so the customer's recording is muted from the moment the consultation is
        dialled until it ends. Completed: the recording stops at the new bridge with not one frame of
        the external party. Returned (busy, no answer, cancelled): unmuted, the gap kept in the
        timeline. The consultation itself never passes through the customer's recording (the customer
        is held, hearing music or silence), so `record_consultation` — whose recording is the target's
        leg — is untouched. A target nobody names yet may be external: muted too."""
        rec = parent.recording
        assert rec is not None
        target = str(mark["target"])
        forbidden = (
            rec.decision.transfer(target).stop_recording
            if target
            else not rec.decision.settings.continue_on_external_transfer
        )
        if not forbidden:
            return []
        parent.external_consultation = True
        if rec.timeline.paused:
            return []  # already silent: a user's pause stays the user's (and cannot be resumed meanwhile)
        entry = rec.timeline.open_transfer_mute(wall, EXTERNAL_CONSULTATION)
        mark["muted"] = True
        return [Mute(parent, entry, wall)]

    def _close_consultation(self, parent: Call, outcome: str, wall: float, cause: str = "") -> list[Action]:
        """The consultation ended: `transferred` (the customer went to the target) or `returned` (busy,
        no answer, cancelled: the agent is back with the customer, the recording goes on)."""
        mark = parent.open_consultation
        if mark is None:
            return []
        parent.open_consultation = None
        parent.consult_legs = set()
        parent.external_consultation = False
        mark["outcome"] = outcome
        if outcome == "transferred":
            mark.pop("cause", None)
        elif cause:
            mark["cause"] = cause
        rec = parent.recording
        if rec is None or rec.stopping or not any(m is mark for m in rec.timeline.consultations):
            return []
        mark["end_ms"] = rec.timeline.offset(wall)
        actions: list[Action] = [Changed(parent, "consultation", dict(mark), wall)]
        if outcome == "returned" and mark.get("muted") and not parent.next_party_unknown:
            # the agent is back with the customer (who never left its bridge): the recording goes on.
            # A customer who left its bridge meanwhile (Atxfer) is unmuted when it is bridged again.
            actions += self._lift_transfer_mute(parent, self._current_party(parent), self._current_class(parent), wall)
        # transferred: the mute holds until the customer's new bridge says stop (external) or unmute
        return actions

    def _consultation_answered(self, call: Call, target: Leg, wall: float) -> list[Action]:
        mark = call.open_consultation
        if mark is None or mark["answered"]:
            return []
        mark["answered"] = True
        if not mark["target"]:
            mark["target"] = target.party_number
        rec = call.recording
        if rec is None or rec.stopping or not any(m is mark for m in rec.timeline.consultations):
            return []
        return [Changed(call, "consultation", dict(mark), wall)]

    def _finish_consultation(self, parent: Call, outcome: str, wall: float) -> list[Action]:
        """The customer call's open consultation is over; a consultation call of its own ends with it."""
        mark = parent.open_consultation
        if mark is None:
            return []
        for child in list(self.calls.values()):
            if child.consultation_of == parent.id and child.consultation_mark is mark and not child.ended:
                return self._end_consultation_call(child, outcome, wall, mark.get("cause", ""))
        return self._close_consultation(parent, outcome, wall, mark.get("cause", ""))

    def _end_consultation_call(self, consult: Call, outcome: str, wall: float, cause: str = "") -> list[Action]:
        """A consultation call is over: its own recording (record_consultation) stops before the
        customer can be heard on it, its entry in the customer call's timeline is closed."""
        actions = self._stop(consult, "consultation_ended", wall)
        parent = self._parent_of(consult)
        if parent is not None and parent.open_consultation is consult.consultation_mark:
            actions += self._close_consultation(parent, outcome, wall, cause)
        consult.ended, consult.end_reason = True, cause or outcome
        actions.append(Ended(consult))
        self._forget(consult)
        return actions
