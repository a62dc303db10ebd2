"""Transfer mute (issue #13 §1), pure: the customer leg leaves its bridge while recorded and nobody has
said where it goes → the recording is muted at once; the next party's classification lifts the mute
(may be recorded) or stops the recording (external, continue_on_external_transfer off) — at the dial
of that party when the PBX shows it, before it can answer, else at the new bridge."""

from __future__ import annotations

from typing import Any

from controller.calls import Call, CallTracker, Changed, Mute, Stop, Unmute
from controller.events import Bridged, ChannelCreated, ChannelHungUp, TransferKind, Transferred, Unbridged
from controller.policy import AccountSettings
from tests.core.test_calls import T, _recording_call

EXTERNAL = "+15557654321"


def _tracker(continue_rule: bool) -> tuple[CallTracker, Call]:
    t, call = _recording_call(AccountSettings(continue_on_external_transfer=continue_rule))
    assert isinstance(call, Call)
    return t, call


def dial(leg: str, callee: str, at: float, *, by: str | None = "A", **variables: str) -> ChannelCreated:
    """A new leg the customer's channel `by` dials (None: a leg nobody says who dialled)."""
    return ChannelCreated(
        "fs",
        0,
        at,
        leg=leg,
        call_id="A",
        caller="+15551230001",
        callee=callee,
        originator=by,
        pbx_direction="outbound",
        variables=variables,
    )


def _pauses(call: Call) -> list[dict[str, Any]]:
    assert call.recording is not None
    return call.recording.timeline.as_dict()["pauses"]


def _unannounced_leave(t: CallTracker) -> list[Any]:
    """What a REFER naming no target / a Redirect looks like: the agent's leg goes, the customer leaves."""
    t.handle(ChannelHungUp("fs", 0, T + 2, leg="B"))
    return t.handle(Unbridged("fs", 0, T + 2, leg_a="A", leg_b="B"))


def test_customer_leaving_its_bridge_mutes_until_the_next_party_is_known() -> None:
    t, call = _tracker(continue_rule=False)
    acts = _unannounced_leave(t)
    assert [type(a) for a in acts] == [Mute]
    assert _pauses(call) == [
        {"start_ms": 2000, "end_ms": None, "by": "transfer", "kind": "transfer_mute", "reason": "customer_left_bridge"}
    ]
    assert call.recording is not None and call.recording.timeline.transfer_muted


def test_external_dial_with_rule_off_stops_before_the_party_answers() -> None:
    t, call = _tracker(continue_rule=False)
    _unannounced_leave(t)
    acts = t.handle(dial("C", EXTERNAL, T + 2))
    assert [type(a) for a in acts] == [Changed, Stop]
    assert acts[1].reason == "external_transfer"
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert tl["stop"] == {"at_ms": 2000, "reason": "external_transfer"}
    assert tl["transfers"] == [
        {
            "at_ms": 2000,
            "kind": "blind",
            "target": EXTERNAL,
            "target_class": "external",
            "stopped_recording": True,
            "from": "B",
        }
    ]
    (mute,) = tl["pauses"]
    assert (mute["end_ms"], mute["outcome"], mute["next_party"], mute["next_class"]) == (
        2000,
        "stopped",
        EXTERNAL,
        "external",
    )
    # the party answering later changes nothing
    assert t.handle(Bridged("fs", 0, T + 4, leg_a="A", leg_b="C")) == []


def test_external_dial_with_rule_on_unmutes_before_the_party_answers() -> None:
    t, call = _tracker(continue_rule=True)
    _unannounced_leave(t)
    acts = t.handle(dial("C", EXTERNAL, T + 2.5))
    assert [type(a) for a in acts] == [Unmute]
    assert acts[0].entry == {
        "start_ms": 2000,
        "end_ms": 2500,
        "by": "transfer",
        "kind": "transfer_mute",
        "reason": "customer_left_bridge",
        "outcome": "unmuted",
        "next_party": EXTERNAL,
        "next_class": "external",
    }
    acts = t.handle(Bridged("fs", 0, T + 4, leg_a="A", leg_b="C"))
    assert [type(a) for a in acts] == [Changed, Changed]  # the transfer marker, the new segment: no mute again
    assert call.recording is not None
    assert [(s["party"], s["start_ms"]) for s in call.recording.timeline.segments] == [("2001", 0), (EXTERNAL, 4000)]


def test_internal_dial_with_rule_off_unmutes() -> None:
    t, _call = _tracker(continue_rule=False)
    _unannounced_leave(t)
    acts = t.handle(dial("C", "2002-0xabc", T + 2.5, dialed_user="2002"))
    assert [type(a) for a in acts] == [Unmute]
    assert acts[0].entry["next_class"] == "internal"
    assert not [a for a in t.handle(Bridged("fs", 0, T + 4, leg_a="A", leg_b="C")) if isinstance(a, (Stop, Mute))]


def test_without_a_dial_the_new_bridge_decides() -> None:
    """A PBX that shows no dial from the customer's channel: the bridge is the first thing known."""
    t, _call = _tracker(continue_rule=False)
    _unannounced_leave(t)
    t.handle(dial("C", "2002-0xabc", T + 2.5, by=None, dialed_user="2002"))  # not dialled by the customer leg
    acts = t.handle(Bridged("fs", 0, T + 3, leg_a="A", leg_b="C"))
    assert [type(a) for a in acts] == [Unmute, Changed, Changed]
    t2, call2 = _tracker(continue_rule=False)
    _unannounced_leave(t2)
    t2.handle(dial("C", EXTERNAL, T + 2.5, by=None))
    acts = t2.handle(Bridged("fs", 0, T + 3, leg_a="A", leg_b="C"))
    assert [type(a) for a in acts] == [Changed, Stop]
    assert _pauses(call2)[0]["outcome"] == "stopped"


def test_a_party_nobody_can_name_is_not_heard_with_the_rule_off() -> None:
    t, _call = _tracker(continue_rule=False)
    _unannounced_leave(t)
    acts = t.handle(Bridged("fs", 0, T + 3, leg_a="A", leg_b="X"))  # a leg we never saw created
    assert [type(a) for a in acts] == [Changed, Stop]
    t2, _call2 = _tracker(continue_rule=True)
    _unannounced_leave(t2)
    assert [type(a) for a in t2.handle(Bridged("fs", 0, T + 3, leg_a="A", leg_b="X"))] == [Unmute, Changed, Changed]


def test_the_call_ending_is_not_a_transfer() -> None:
    t, call = _tracker(continue_rule=False)
    assert t.handle(Unbridged("fs", 0, T + 2, leg_a="A", leg_b="B", hanging_up="A")) == []
    assert _pauses(call) == []
    # the agent hangs up first: muted until the customer's leg goes too, then closed as call_ended
    t, call = _tracker(continue_rule=False)
    _unannounced_leave(t)
    acts = t.handle(ChannelHungUp("fs", 0, T + 2.02, leg="A"))
    assert [type(a) for a in acts][:1] == [Stop]
    (mute,) = _pauses(call)
    assert (mute["start_ms"], mute["end_ms"], mute["outcome"]) == (2000, 2020, "call_ended")
    # ... and when the hang-up comes within the same 20 ms frame (Asterisk: an AMI Hangup of the
    # customer sends BridgeLeave before the hang-up request), there is no gap in the file to list
    t, call = _tracker(continue_rule=False)
    _unannounced_leave(t)
    assert [type(a) for a in t.handle(ChannelHungUp("fs", 0, T + 2.001, leg="A"))][:1] == [Stop]
    assert _pauses(call) == []


def test_a_channel_swap_is_not_a_transfer() -> None:
    t, call = _tracker(continue_rule=False)
    assert t.handle(Unbridged("ast", 0, T + 2, leg_a="A", leg_b="B", moving=True)) == []
    assert _pauses(call) == []


def test_rebridge_to_the_same_party_unmutes() -> None:
    t, _call = _tracker(continue_rule=False)
    assert [type(a) for a in t.handle(Unbridged("fs", 0, T + 2, leg_a="A", leg_b="B"))] == [Mute]
    acts = t.handle(Bridged("fs", 0, T + 3, leg_a="A", leg_b="B"))
    assert [type(a) for a in acts] == [Unmute]
    assert acts[0].entry["next_party"] == "2001"


def test_a_users_pause_is_kept_and_the_rule_still_stops() -> None:
    t, call = _tracker(continue_rule=False)
    t.pause(call, "agent:2001", T + 1)
    assert [type(a) for a in _unannounced_leave(t)] == []
    assert [type(a) for a in t.handle(dial("C", EXTERNAL, T + 2))] == [Changed, Stop]
    assert [p["by"] for p in _pauses(call)] == ["agent:2001"]


def test_a_users_pause_may_not_end_before_the_next_party_is_known() -> None:
    t, call = _tracker(continue_rule=True)
    t.pause(call, "agent:2001", T + 1)
    _unannounced_leave(t)
    assert call.next_party_unknown  # the pause control refuses a resume now
    assert t.handle(dial("C", "2002-0xabc", T + 2.5, dialed_user="2002")) == []  # still the user's pause
    assert not call.next_party_unknown


def test_an_announced_target_that_may_be_recorded_is_not_muted_and_a_forward_outside_still_stops() -> None:
    """The PBX names the target (FreeSWITCH transfer_history, Asterisk BlindTransfer, a REFER's
    destination): no mute when it may be recorded (FreeSWITCH conferences, IVRs and voicemail dial
    nobody, so a mute would never lift). If that extension forwards outside, the external leg's dial
    still stops the recording before it answers."""
    t, call = _tracker(continue_rule=False)
    t.handle(ChannelHungUp("fs", 0, T + 2, leg="B"))
    t.handle(Transferred("fs", 0, T + 2, leg="A", kind=TransferKind.BLIND, target="2002"))
    assert t.handle(Unbridged("fs", 0, T + 2, leg_a="A", leg_b="B")) == []
    assert _pauses(call) == [] and not call.next_party_unknown
    acts = t.handle(dial("C", EXTERNAL, T + 2))
    assert [type(a) for a in acts] == [Changed, Stop]  # 2002 forwarded outside: a second marker, then stop
    assert call.recording is not None
    assert [(m["target"], m["stopped_recording"]) for m in call.recording.timeline.transfers] == [
        ("2002", False),
        (EXTERNAL, True),
    ]


def test_a_target_announced_after_the_customer_left_lifts_the_mute() -> None:
    t, call = _tracker(continue_rule=False)
    assert [type(a) for a in _unannounced_leave(t)] == [Mute]
    acts = t.handle(Transferred("fs", 0, T + 2.1, leg="A", kind=TransferKind.BLIND, target="2002"))
    assert [type(a) for a in acts] == [Changed, Unmute]
    assert acts[1].entry["next_party"] == "2002" and not call.next_party_unknown


def test_an_inline_transfer_names_no_target() -> None:
    """FreeSWITCH `uuid_transfer <leg> 'bridge:…' inline` (real capture on 1.10.12): the transfer history
    holds applications, not a number — the driver passes no target, so the dial decides."""
    from controller.drivers.freeswitch import Translator

    hist = "1796196062:225a0586:bl_xfer:bridge:loopback/+15559990001/callrec_test_phones/XML/callrec_test/inline"
    out = Translator("fs")(
        {
            "Event-Name": "CHANNEL_UNBRIDGE",
            "Unique-ID": "A",
            "Bridge-A-Unique-ID": "A",
            "Bridge-B-Unique-ID": "B",
            "Answer-State": "answered",
            "variable_transfer_history": hist,
        },
        0.0,
        T,
    )
    assert [(type(e).__name__, getattr(e, "target", None)) for e in out] == [("Transferred", ""), ("Unbridged", None)]
    t, _call = _tracker(continue_rule=False)
    t.handle(ChannelHungUp("fs", 0, T + 2, leg="B"))
    assert [type(a) for e in out for a in t.handle(e)] == [Mute]
    assert [type(a) for a in t.handle(dial("C", "+15559990001", T + 2))] == [Changed, Stop]


def _ami(event: str, uid: str, **kw: str) -> dict[str, str]:
    return {"Event": event, "Uniqueid": uid, "Channel": f"PJSIP/{uid}", "Linkedid": "cust", **kw}


def test_asterisk_agent_back_in_the_bridge_it_left_is_not_held() -> None:
    """A failed Atxfer: the agent leaves the customer's bridge for a consultation and comes back. Its
    re-entry is no transfer, so the translator does not hold it back for a transfer event (which
    would keep the customer's transfer mute on for the driver's 150 ms hold) — while a newcomer
    re-bridged with the customer still is held, as before."""
    from controller.drivers.ami_translate import AmiTranslator

    tr = AmiTranslator("ast")
    feed = [
        _ami("BridgeEnter", "agent", BridgeUniqueid="b1"),
        _ami("BridgeEnter", "cust", BridgeUniqueid="b1"),
        _ami("BridgeLeave", "agent", BridgeUniqueid="b1"),
        _ami("BridgeEnter", "agent", BridgeUniqueid="b2"),
        _ami("BridgeEnter", "busy", BridgeUniqueid="b2"),
        _ami("BridgeLeave", "agent", BridgeUniqueid="b2"),
    ]
    for msg in feed:
        tr.feed(msg, 0.0, T)
    back = tr.feed(_ami("BridgeEnter", "agent", BridgeUniqueid="b1"), 0.0, T)
    assert [(type(e).__name__, e.leg_a, e.leg_b) for e in back] == [("Bridged", "agent", "cust")]
    # someone who was not in b1 joining the customer there is held for its transfer event
    tr.feed(_ami("BridgeLeave", "agent", BridgeUniqueid="b1"), 0.0, T)
    assert tr.feed(_ami("BridgeEnter", "busy", BridgeUniqueid="b1"), 0.0, T) == []
    assert tr.held
