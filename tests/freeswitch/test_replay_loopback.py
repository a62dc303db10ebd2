"""Transcripts of the real-FreeSWITCH tests (tests/freeswitch/test_real_freeswitch.py, loopback legs through
the routes in real_pbx/callrec_test.xml with our hook), replayed over TCP through the driver: the call
state machine gives the timelines the real chain produced, and the simulator's PBX-side att_xfer has the
real event shape."""

from __future__ import annotations

import pytest

from controller.calls import Call, CallTracker, Decide, Mute, Stop, Unmute
from controller.events import Bridged, ChannelAnswered, ChannelCreated, Direction, Resync, Transferred
from controller.policy import Account, AccountSettings, PolicySet
from lab import scenarios as sc

from .conftest import Harness
from .eslcap import LOOPBACK_FIXTURES
from .eslcap import events as capture_events
from .test_replay import PLAN, replay, run_tracker

DID = "+15557000101"


async def replayed(name: str, settings: AccountSettings | None = None) -> tuple[Call, list]:
    events = await replay(name, resplit=True, where=LOOPBACK_FIXTURES)
    _, actions = run_tracker(events, settings)
    decides = [a for a in actions if isinstance(a, Decide)]
    assert len(decides) == 1, decides
    return decides[0].call, actions


async def test_att_xfer_customer_becomes_bridge_b_and_the_target_is_a_new_segment() -> None:
    call, actions = await replayed("LB_att_xfer_internal")
    assert (call.direction, call.account_number, call.customer_number) == (Direction.INBOUND, DID, "+15551230001")
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert [(s["party"], s["class"]) for s in tl["segments"]] == [("2001", "internal"), ("3001", "internal")]
    assert [(t["kind"], t["target"]) for t in tl["transfers"]] == [("attended", "3001")]
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["hangup"]


async def test_uuid_transfer_to_internal_is_a_blind_transfer_segment() -> None:
    call, _ = await replayed("LB_blind_internal", AccountSettings(continue_on_external_transfer=False))
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert [(s["party"], s["class"]) for s in tl["segments"]] == [("2001", "internal"), ("3001", "internal")]
    assert [(t["kind"], t["target"], t["stopped_recording"]) for t in tl["transfers"]] == [("blind", "3001", False)]
    assert tl["stop"]["reason"] == "hangup"


async def test_uuid_transfer_to_external_rule_off_stops_at_the_transfer() -> None:
    call, actions = await replayed("LB_blind_external_rule_off", AccountSettings(continue_on_external_transfer=False))
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["external_transfer"]
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert [s["party"] for s in tl["segments"]] == ["2001"]
    assert [(t["target"], t["target_class"]) for t in tl["transfers"]] == [("+15559990001", "external")]


async def test_transfer_app_of_the_agent_leg_to_external_rule_off_stops_at_the_unbridge() -> None:
    """LB_transfer_app_external_rule_off: the AGENT leg runs `transfer -bleg +15559990001 XML
    callrec_test` (what a bind_meta_app feature code does). Same trace as uuid_transfer: the customer
    leg's CHANNEL_UNBRIDGE already carries the number and a bl_xfer transfer_history, one ring (~1 s)
    before the external party is bridged; the rule-off stop comes from that unbridge."""
    events = await replay("LB_transfer_app_external_rule_off", resplit=True, where=LOOPBACK_FIXTURES)
    _, actions = run_tracker(events, AccountSettings(continue_on_external_transfer=False))
    (decide,) = [a for a in actions if isinstance(a, Decide)]
    call = decide.call
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["external_transfer"]
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert [s["party"] for s in tl["segments"]] == ["2001"]
    assert [(t["kind"], t["target"], t["target_class"]) for t in tl["transfers"]] == [
        ("blind", "+15559990001", "external")
    ]
    xfer = next(i for i, e in enumerate(events) if isinstance(e, Transferred))
    bridges = [i for i, e in enumerate(events) if isinstance(e, Bridged) and call.customer_leg in (e.leg_a, e.leg_b)]
    assert len(bridges) == 2 and bridges[0] < xfer < bridges[1], "known at the unbridge, not at the new bridge"
    assert getattr(events[xfer], "target", None) == "+15559990001"


async def test_uuid_transfer_to_external_rule_on_is_a_new_segment() -> None:
    call, actions = await replayed("LB_blind_external_rule_on", AccountSettings(continue_on_external_transfer=True))
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["hangup"]
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert [(s["party"], s["class"]) for s in tl["segments"]] == [("2001", "internal"), ("+15559990001", "external")]
    assert [t["stopped_recording"] for t in tl["transfers"]] == [False]


async def test_att_xfer_to_a_busy_target_is_no_transfer() -> None:
    """LB_att_xfer_busy: the agent's att_xfer to 3099 fails (USER_BUSY): only the consultation legs are
    created and hang up; the customer leg is never unbridged. No transfer, no new segment."""
    call, actions = await replayed("LB_att_xfer_busy", AccountSettings(continue_on_external_transfer=False))
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["hangup"]
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert tl["transfers"] == []
    assert [s["party"] for s in tl["segments"]] == ["2001"]


async def test_outbound_customer_is_bridge_b() -> None:
    call, _ = await replayed("LB_outbound")
    assert call.direction is Direction.OUTBOUND
    assert (call.customer_number, call.agent, call.account_number) == ("+15551230002", "2001", "+15557000100")


DRIVER_EVENTS = {
    "CHANNEL_CREATE",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HANGUP_COMPLETE",
    "RECORD_START",
    "RECORD_STOP",
}


def pbx_legs(evs: list[dict[str, str]]) -> list[list[str]]:
    """Per leg (in order of first appearance) the driver's events, for the PBX's own legs only: the
    lab's loopback handsets (a-legs in the routes context, b-legs in the phones context) are left out."""
    legs: dict[str, list[str]] = {}
    for e in evs:
        name, ctx = e.get("Channel-Name", ""), e.get("Caller-Context", "")
        if name.startswith("loopback/") and (
            (name.endswith("-a") and ctx == "callrec_test") or (name.endswith("-b") and ctx == "callrec_test_phones")
        ):
            continue
        if e.get("Event-Name") in DRIVER_EVENTS and e.get("Unique-ID"):
            legs.setdefault(e["Unique-ID"], []).append(e["Event-Name"])
    return list(legs.values())


async def test_simulator_att_xfer_has_the_real_event_shape(harness: Harness) -> None:
    real = pbx_legs(capture_events("LB_att_xfer_internal", LOOPBACK_FIXTURES))
    harness.sim.record_events = True
    await harness.play(sc.get("attended_transfer_internal_pbx"))
    sim = pbx_legs(harness.sim.sent_events)
    assert sim == real
    bridges = [e for e in harness.sim.sent_events if e["Event-Name"] == "CHANNEL_BRIDGE"]
    customer = bridges[0]["Bridge-A-Unique-ID"]
    assert bridges[-1]["Bridge-B-Unique-ID"] == customer  # after att_xfer the customer is Bridge-B
    assert "uuid_br" in bridges[-1]["variable_transfer_history"]


@pytest.mark.parametrize("name", ["LB_att_xfer_internal"])
async def test_att_xfer_transfer_marker_comes_from_the_bridge(name: str) -> None:
    events = await replay(name, where=LOOPBACK_FIXTURES)
    assert [t.kind.value for t in events if isinstance(t, Transferred)] == ["attended"]


@pytest.mark.parametrize("continue_rule", [False, True], ids=["rule_off", "rule_on"])
async def test_inline_transfer_is_muted_then_decided_at_the_dial(continue_rule: bool) -> None:
    """LB_inline_external (real 1.10.12): another ESL client moves the customer's leg with an inline
    dialplan bridging +15559990001 — the transfer history names no number. The customer's unbridge mutes
    the recording; the target leg's CHANNEL_CREATE (originator: the customer leg), before it answers,
    stops it (rule off) or lifts the mute (rule on)."""
    events = await replay("LB_inline_external", resplit=True, where=LOOPBACK_FIXTURES)
    tracker = CallTracker("fs-replay", numbering=PLAN)
    settings = AccountSettings(continue_on_external_transfer=continue_rule)
    ps = PolicySet(accounts={"main": Account("main", settings, PLAN)})
    seen: list[str] = []
    target = ""
    for ev in events:
        if isinstance(ev, Resync):
            continue
        if isinstance(ev, ChannelCreated) and ev.callee == "+15559990001" and ev.originator:
            target = ev.leg
            seen.append("dial")
        if isinstance(ev, ChannelAnswered) and ev.leg == target:
            seen.append("answer")
        for act in tracker.handle(ev):
            if isinstance(act, Decide):
                tracker.recording_started(act.call, "r", ps.resolve(direction=act.call.direction, number=None), ev.wall)
            elif isinstance(act, Stop):
                seen.append(f"stop:{act.reason}")
            elif isinstance(act, (Mute, Unmute)):
                seen.append(type(act).__name__.lower())
    if continue_rule:
        assert seen == ["mute", "dial", "unmute", "answer", "stop:hangup"]
    else:
        assert seen == ["mute", "dial", "stop:external_transfer", "answer"]


@pytest.mark.parametrize("rule_on", [False, True], ids=["rule_off", "rule_on"])
async def test_conference_three_way_is_a_join_and_a_leave(rule_on: bool) -> None:
    """LB_conference_three_way (real 1.10.12, test_real_freeswitch_conference.py): `uuid_transfer
    <customer> -both conference:<room> inline`, then the second agent 3001 dialled into the room
    (`originate … &conference(<room>)`), which hangs up 3 s later. The shape the simulator plays: the
    customer's CHANNEL_UNBRIDGE, conference::maintenance add-member for the customer, the agent and the
    joiner, del-member for the joiner. One join and one leave of 3001, no transfer, no new segment."""
    call, actions = await replayed("LB_conference_three_way", AccountSettings(continue_on_external_transfer=rule_on))
    assert call.recording is not None
    tl = call.recording.timeline.as_dict()
    assert tl["transfers"] == [] and [s["party"] for s in tl["segments"]] == ["2001"]
    (joined,) = tl["conference"]
    assert (joined["party"], joined["class"], joined["stopped_recording"]) == ("3001", "internal", False)
    assert joined["left_ms"] is not None and joined["left_ms"] >= joined["joined_ms"], joined
    assert [a.reason for a in actions if isinstance(a, Stop)] == ["hangup"]
