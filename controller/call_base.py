"""The state every part of the call state machine shares (pure): legs and calls of one PBX node, how
legs are linked to calls, and the steps every part takes (stop a recording, lift a transfer mute)."""

from __future__ import annotations

from controller.call_model import Action, Call, Leg, Stop, Unmute
from controller.ids import new_id
from controller.numbering import NumberingPlan


class TrackerBase:
    """Legs and calls of one PBX node, and the steps shared by the state machine's parts."""

    def __init__(
        self,
        pbx: str,
        *,
        numbering: NumberingPlan | None = None,
        inbound_contexts: tuple[str, ...] = (),
        default_account: str = "main",
    ) -> None:
        self.pbx = pbx
        self.numbering = numbering or NumberingPlan()
        self.inbound_contexts = set(inbound_contexts)
        self.default_account = default_account
        self.legs: dict[str, Leg] = {}
        self.calls: dict[str, Call] = {}  # live calls only: an ended call is forgotten at once
        self.call_of_leg: dict[str, str] = {}
        self._legs_of_call: dict[str, set[str]] = {}  # the reverse index, so forgetting a call is O(its legs)
        self._held_legs: set[str] = set()  # legs on hold (HoldChanged), for _consultation_call

    def _forget_leg(self, leg_id: str) -> None:
        self.legs.pop(leg_id, None)
        self._held_legs.discard(leg_id)

    def call(self, call_id: str) -> Call | None:
        return self.calls.get(call_id)

    def call_for_leg(self, leg: str) -> Call | None:
        cid = self.call_of_leg.get(leg)
        return self.calls.get(cid) if cid else None

    def live_calls(self) -> list[Call]:
        return [c for c in self.calls.values() if not c.ended]

    @property
    def live_count(self) -> int:
        """O(1), for the gauge the recorder sets on every action."""
        return len(self.calls)

    def _link(self, leg: str, call_id: str) -> None:
        old = self.call_of_leg.get(leg)
        if old is not None and old != call_id:
            self._legs_of_call.get(old, set()).discard(leg)
        self.call_of_leg[leg] = call_id
        self._legs_of_call.setdefault(call_id, set()).add(leg)

    def _unlink(self, leg: str) -> None:
        cid = self.call_of_leg.pop(leg, None)
        if cid is not None:
            legs = self._legs_of_call.get(cid)
            if legs is not None:
                legs.discard(leg)

    def _leg(self, leg_id: str, call_id: str = "") -> Leg:
        leg = self.legs.get(leg_id)
        if leg is None:
            leg = self.legs[leg_id] = Leg(leg_id, call_id or leg_id)
        return leg

    def _new_call(self, first_leg: str, wall: float) -> Call:
        call = Call(new_id(), self.pbx, first_leg, wall, account=self.default_account)
        self.calls[call.id] = call
        self._link(first_leg, call.id)
        return call

    @staticmethod
    def _current_party(call: Call) -> str:
        """Who is on the right channel now: the open segment's party, else the first agent."""
        rec = call.recording
        if rec is not None and rec.timeline.segments:
            return str(rec.timeline.segments[-1].get("party") or "")
        return call.agent

    @staticmethod
    def _current_class(call: Call) -> str:
        """The class of the party on the right channel now (the open segment's)."""
        rec = call.recording
        if rec is not None and rec.timeline.segments:
            return str(rec.timeline.segments[-1].get("class") or "")
        return ""

    def _parent_of(self, call: Call) -> Call | None:
        return self.calls.get(call.consultation_of) if call.consultation_of else None

    def _forget(self, call: Call) -> None:
        for leg_id in self._legs_of_call.pop(call.id, set()):
            if self.call_of_leg.get(leg_id) == call.id:
                del self.call_of_leg[leg_id]
        self.calls.pop(call.id, None)

    def _stop(self, call: Call, reason: str, wall: float) -> list[Action]:
        rec = call.recording
        if rec is None or rec.stopping:
            return []
        rec.stopping = True
        tl = rec.timeline
        mark = call.open_consultation
        if mark is not None and mark["end_ms"] is None and any(m is mark for m in tl.consultations):
            mark["end_ms"] = tl.offset(wall)
        tl.close_segment(wall)
        if tl.transfer_muted:
            tl.close_transfer_mute(wall, {"external_transfer": "stopped", "hangup": "call_ended"}.get(reason, reason))
        elif tl.paused:
            tl.pauses[-1]["end_ms"] = tl.offset(wall)
        tl.stop = {"at_ms": tl.offset(wall), "reason": reason}
        return [Stop(call, reason)]

    def _lift_transfer_mute(self, call: Call, party: str, party_class: str, wall: float) -> list[Action]:
        call.next_party_unknown = False
        rec = call.recording
        if rec is None or rec.stopping or not rec.timeline.transfer_muted:
            return []
        entry = rec.timeline.close_transfer_mute(wall, "unmuted", party, party_class)
        return [Unmute(call, entry, wall)]
