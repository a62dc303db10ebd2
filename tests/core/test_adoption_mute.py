"""A recording adopted while transfer-muted (pure): the new controller's tracker gets the journal's
timeline and the PBX's live channels, restores what the previous controller held in memory
(`restore_after_adoption`) and then lifts or turns the mute into a stop by the usual rules — before,
the mute stayed on to the end of the call, nobody remembering it."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from controller.calls import Call, CallTracker, Changed, Ended, Stop, Unmute
from controller.events import Bridged, ChannelHungUp, LiveChannel
from tests.core.test_consultation import T, decision

EXTERNAL = "+15557654321"
CUSTOMER = LiveChannel(leg="A", call_id="A", caller="+15551230001", callee="+15557000100", answered=True)
AGENT = LiveChannel(
    leg="B", call_id="A", caller="+15551230001", callee="2001", answered=True, variables={"dialed_user": "2001"}
)


def _timeline(reason: str, target: str, *, muted_consultation: bool) -> dict[str, Any]:
    consultation = {
        "agent": "2001",
        "at_ms": 2000,
        "end_ms": None,
        "target": target,
        "outcome": None,
        "answered": False,
        "recording_id": None,
        "target_class": "external" if target == EXTERNAL else "internal",
    }
    if muted_consultation:
        consultation["muted"] = True
    return {
        "segments": [{"party": "2001", "class": "internal", "start_ms": 0, "end_ms": None}],
        "pauses": [{"start_ms": 2000, "end_ms": None, "by": "transfer", "kind": "transfer_mute", "reason": reason}],
        "transfers": [],
        "stop": None,
        "consultations": [consultation],
        "conference": [],
    }


def _adopted(
    channels: list[LiveChannel], timeline: dict[str, Any], **settings: bool
) -> tuple[CallTracker, Call, list[Any]]:
    t = CallTracker("fs")
    t.resync(channels, T + 5)
    call = t.call_for_leg("A")
    assert call is not None
    call.customer_leg = "A"
    t.adopt(call, "c1", "r1", decision(**settings), timeline, T)
    return t, call, t.restore_after_adoption(call, T + 5)


def _mute(call: Call) -> dict[str, Any]:
    assert call.recording is not None
    return call.recording.timeline.pauses[-1]


def test_phone_consultation_still_ringing_holds_the_mute_and_its_failure_lifts_it() -> None:
    channels = [
        replace(CUSTOMER, bridged_to="B"),
        replace(AGENT, bridged_to="A"),
        LiveChannel(leg="C", call_id="C", caller="2001", callee=EXTERNAL, answered=True),  # the phone's 2nd call
        LiveChannel(leg="D", call_id="C", caller="2001", callee=EXTERNAL),  # the external party, ringing
    ]
    t, call, acts = _adopted(
        channels,
        _timeline("external_consultation", EXTERNAL, muted_consultation=True),
        continue_on_external_transfer=False,
    )
    assert acts == []
    assert call.silence_held and call.external_consultation  # no resume may unmask it meanwhile
    assert call.agent_leg == "B" and call.open_consultation is not None
    consult = t.call_for_leg("C")
    assert consult is not None and consult.consultation_of == "c1"
    assert t.handle(ChannelHungUp("fs", 0, T + 6, leg="D", cause="USER_BUSY")) == []
    acts = t.handle(ChannelHungUp("fs", 0, T + 6.1, leg="C", cause="USER_BUSY"))
    assert [type(a) for a in acts] == [Changed, Unmute, Ended]
    assert (_mute(call)["outcome"], _mute(call)["next_party"], _mute(call)["end_ms"]) == ("unmuted", "2001", 6100)
    assert not call.silence_held


def test_customer_alone_in_its_bridge_is_unmuted_when_the_agent_is_back() -> None:
    """An Atxfer: the agent's leg sits in the consultation's bridge (listed by caller ID only); the
    consultation fails, the agent is back with the customer."""
    channels = [
        CUSTOMER,
        LiveChannel(leg="B", call_id="A", caller="2001", answered=True, bridged_to="X1"),
        LiveChannel(leg="X1", call_id="A", callee="2002", answered=True, bridged_to="B"),
        LiveChannel(leg="X2", call_id="A", caller="2001", callee="2002"),
        LiveChannel(leg="D", call_id="A", caller="2002"),
    ]
    t, call, acts = _adopted(channels, _timeline("customer_left_bridge", "2002", muted_consultation=False))
    assert acts == [] and call.next_party_unknown and call.agent_leg == "B"
    assert call.consult_legs == {"X1", "X2", "D"}
    for leg in ("D", "X2", "X1"):
        t.handle(ChannelHungUp("fs", 0, T + 6, leg=leg, cause="USER_BUSY"))
    acts = t.handle(Bridged("fs", 0, T + 6.2, leg_a="A", leg_b="B"))
    assert [type(a) for a in acts] == [Unmute]
    assert (_mute(call)["outcome"], _mute(call)["next_party"]) == ("unmuted", "2001")
    assert call.recording is not None and call.recording.timeline.consultations[0]["outcome"] == "returned"


def test_customer_bridged_again_to_the_agent_while_nobody_watched_is_unmuted_at_once() -> None:
    channels = [
        LiveChannel(leg="A", call_id="A", caller="+15551230001", callee="+15557000100", answered=True, bridged_to="B"),
        LiveChannel(
            leg="B",
            call_id="A",
            caller="+15551230001",
            callee="2001",
            answered=True,
            bridged_to="A",
            variables={"dialed_user": "2001"},
        ),
    ]
    _, call, acts = _adopted(channels, _timeline("customer_left_bridge", "2002", muted_consultation=False))
    assert [type(a) for a in acts] == [Changed, Unmute]  # the consultation closed (returned), the mute lifted
    assert (_mute(call)["outcome"], _mute(call)["next_party"]) == ("unmuted", "2001")


def test_customer_bridged_meanwhile_to_an_external_party_stops_with_the_rule_off() -> None:
    channels = [
        LiveChannel(leg="A", call_id="A", caller="+15551230001", callee="+15557000100", answered=True, bridged_to="D"),
        LiveChannel(
            leg="D",
            call_id="A",
            caller="+15551230001",
            callee=EXTERNAL,
            answered=True,
            bridged_to="A",
            variables={"dialed_user": EXTERNAL},
        ),
    ]
    _, call, acts = _adopted(
        channels, _timeline("customer_left_bridge", "", muted_consultation=False), continue_on_external_transfer=False
    )
    stop = next(a for a in acts if isinstance(a, Stop))
    assert stop.reason == "external_transfer"
    assert not [a for a in acts if isinstance(a, Unmute)]
    assert (_mute(call)["outcome"], _mute(call)["next_party"]) == ("stopped", EXTERNAL)


def test_a_users_pause_over_an_external_consultation_keeps_the_hold_after_adoption() -> None:
    """Paused by the agent before the consultation's dial (no mute then: the pause already silences
    it): the adopted call still may not be unmasked — neither by a resume nor the secure pause's —
    until the consultation is over."""
    timeline = _timeline("", EXTERNAL, muted_consultation=False)
    timeline["pauses"] = [{"start_ms": 1500, "end_ms": None, "by": "agent"}]
    channels = [
        replace(CUSTOMER, bridged_to="B"),
        replace(AGENT, bridged_to="A"),
        LiveChannel(leg="C", call_id="C", caller="2001", callee=EXTERNAL, answered=True),
        LiveChannel(leg="D", call_id="C", caller="2001", callee=EXTERNAL),
    ]
    t, call, acts = _adopted(channels, timeline, continue_on_external_transfer=False)
    assert acts == [] and call.silence_held
    t.handle(ChannelHungUp("fs", 0, T + 6, leg="D", cause="USER_BUSY"))
    acts = t.handle(ChannelHungUp("fs", 0, T + 6.1, leg="C", cause="USER_BUSY"))
    assert not call.silence_held and not [a for a in acts if isinstance(a, Unmute)]  # the pause stays the user's
