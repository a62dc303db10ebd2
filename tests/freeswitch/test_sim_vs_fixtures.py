"""The simulator cannot drift from real FreeSWITCH: for the captured scenarios it sends the same
recording-relevant events, in the same order per leg, with header names a real FreeSWITCH uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab import scenarios as sc

from .conftest import Harness
from .eslcap import events as fixture_events

LOOPBACK_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "freeswitch"

NAMES = {
    "CHANNEL_CREATE",
    "CHANNEL_PROGRESS",
    "CHANNEL_ANSWER",
    "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE",
    "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE",
    "RECORD_START",
    "RECORD_STOP",
    "CHANNEL_DESTROY",
}
# headers the driver relies on: both sides must carry them
DRIVER_KEYS = {
    "CHANNEL_CREATE": {
        "Unique-ID",
        "Channel-Call-UUID",
        "Caller-Caller-ID-Number",
        "Caller-Destination-Number",
        "Caller-Context",
        "Channel-Name",
        "Call-Direction",
    },
    "CHANNEL_BRIDGE": {"Bridge-A-Unique-ID", "Bridge-B-Unique-ID", "Other-Leg-Unique-ID"},
    "CHANNEL_UNBRIDGE": {"Bridge-A-Unique-ID", "Bridge-B-Unique-ID"},
    "CHANNEL_HANGUP_COMPLETE": {"Unique-ID", "Hangup-Cause", "Answer-State"},
    "RECORD_START": {"Unique-ID", "Record-File-Path"},
    "RECORD_STOP": {"Unique-ID", "Record-File-Path", "Record-Completion-Cause", "Answer-State"},
}

CASES = [
    ("SIP1_inbound_stereo", "inbound", NAMES),
    ("SIP2_mask", "pause_resume", NAMES),  # mask/unmask send no event: the call around them is compared
    ("SIP6a_agent_hangs_up_first", "inbound_agent_hangs_up", NAMES),
    ("SIP5_outbound", "outbound", NAMES),
    # the capture armed a recording on the ringing leg (what callrec never does): compare the call only
    ("SIP6b_unanswered_cancel", "unanswered", NAMES - {"RECORD_START", "RECORD_STOP"}),
    ("REFER1_blind_external", "blind_transfer_external_continue", NAMES),
    ("SIP3_blind_xfer_external", "blind_transfer_external_continue_pbx", NAMES),
]


def per_leg(evs: list[dict[str, str]], names: set[str]) -> list[list[str]]:
    """Event names per leg, legs in order of first appearance."""
    legs: dict[str, list[str]] = {}
    for e in evs:
        if e.get("Event-Name") in names and e.get("Unique-ID"):
            legs.setdefault(e["Unique-ID"], []).append(e["Event-Name"])
    return list(legs.values())


def keys_by_name(evs: list[dict[str, str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in evs:
        out.setdefault(e.get("Event-Name", ""), set()).update(e)
    return out


@pytest.mark.parametrize(("capture", "scenario", "names"), CASES)
async def test_simulator_matches_capture(harness: Harness, capture: str, scenario: str, names: set[str]) -> None:
    real = fixture_events(capture)
    harness.sim.record_events = True
    await harness.play(sc.get(scenario))
    sim = harness.sim.sent_events
    # SIP5's capture recorded both legs (two files); callrec records the customer leg only
    real_seq = per_leg(real, names)
    sim_seq = per_leg(sim, names)
    if capture == "SIP5_outbound":
        real_seq[0] = [n for n in real_seq[0] if not n.startswith("RECORD_")]
    assert sim_seq == real_seq

    real_keys, sim_keys = keys_by_name(real), keys_by_name(sim)
    for name in names & set(sim_keys):
        invented = {
            k for k in sim_keys[name] - real_keys[name] if not k.startswith(("variable_", "Recording-Variable-"))
        }
        assert not invented, f"{name}: headers a real FreeSWITCH does not send: {sorted(invented)}"
        for key in DRIVER_KEYS.get(name, set()):
            assert key in real_keys[name] and key in sim_keys[name], (name, key)


# Real FreeSWITCH with loopback legs (tests/fixtures/freeswitch): a different leg topology from SIP
# phones, and the capture subscribed to fewer events — so the recorded (customer) leg is compared,
# with the events the capture subscribed to. The recording events come from the controller in both.
LOOPBACK_CASES = [
    ("LB_blind_internal", "blind_transfer_internal_pbx"),
    ("LB_blind_external_rule_off", "blind_transfer_external_stop_pbx"),
    ("LB_att_xfer_internal", "attended_transfer_internal_pbx"),
    ("LB_outbound", "outbound"),
]


def recorded_leg(evs: list[dict[str, str]], names: set[str]) -> list[str]:
    """The event names of the leg that carries RECORD_START (the customer's), in order."""
    leg = next(e["Unique-ID"] for e in evs if e.get("Event-Name") == "RECORD_START")
    return [e["Event-Name"] for e in evs if e.get("Unique-ID") == leg and e.get("Event-Name") in names]


@pytest.mark.parametrize(("capture", "scenario"), LOOPBACK_CASES)
async def test_recorded_leg_matches_loopback_capture(harness: Harness, capture: str, scenario: str) -> None:
    real = fixture_events(capture, LOOPBACK_FIXTURES)
    harness.sim.record_events = True
    # a target rings for seconds on a real PBX: at half speed the controller acts on the transfer
    # before the target answers, as it did on the real one (at full simulator speed it could not)
    harness.sim.time_scale = 0.5
    await harness.play(sc.get(scenario))
    names = NAMES & {e.get("Event-Name", "") for e in real}
    assert recorded_leg(harness.sim.sent_events, names) == recorded_leg(real, names)
    real_keys, sim_keys = keys_by_name(real), keys_by_name(harness.sim.sent_events)
    for name in names:
        for key in DRIVER_KEYS.get(name, set()):
            assert key in real_keys[name] and key in sim_keys[name], (name, key)


def conference_steps(evs: list[dict[str, str]]) -> list[tuple[str, str]]:
    """mod_conference's membership events in order: (action, whose leg: the recorded one or another)."""
    leg = next(e["Unique-ID"] for e in evs if e.get("Event-Name") == "RECORD_START")
    return [
        (e.get("Action", ""), "recorded" if e.get("Unique-ID") == leg else "other")
        for e in evs
        if e.get("Event-Subclass") == "conference::maintenance" and e.get("Action") in ("add-member", "del-member")
    ]


async def test_conference_three_way_matches_loopback_capture(harness: Harness) -> None:
    """LB_conference_three_way (test_real_freeswitch_conference.py): the simulator's ThreeWay sends the
    recorded leg's events and the room's add/del-member events in the real order, the customer's first."""
    real = fixture_events("LB_conference_three_way", LOOPBACK_FIXTURES)
    harness.sim.record_events = True
    harness.sim.time_scale = 0.5
    scenario = sc.Scenario(
        "three_way_internal",
        "customer and agent moved into a room, the second agent dialled in, hangs up, then the customer",
        (
            sc.PlaceCall("inbound"),
            sc.Ring(),
            sc.Answer(),
            sc.Talk(2000),
            sc.ThreeWay(),
            sc.Talk(3000),
            sc.Hangup("target"),
            sc.Talk(2000),
            sc.Hangup("customer"),
        ),
        sc.Expectation(True, segments=("agent",)),
        parties={"customer": sc.CUSTOMER, "agent": sc.AGENT, "target": sc.TARGET_INTERNAL},
    )
    await harness.play(scenario)
    sim = harness.sim.sent_events
    names = NAMES & {e.get("Event-Name", "") for e in real}
    assert recorded_leg(sim, names) == recorded_leg(real, names)
    # the capture ends with the customer's leg: the agent's del-member came after it closed
    real_steps = conference_steps(real)
    assert conference_steps(sim)[: len(real_steps)] == real_steps
