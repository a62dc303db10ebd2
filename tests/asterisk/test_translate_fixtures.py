"""Replaying the real captures through the translator yields the calls their NOTES describe:
legs by Uniqueid, calls by Linkedid, who is bridged to whom, transfers with their targets, pauses,
and recording confirmations."""

from __future__ import annotations

import asyncio
import socket

from panoramisk.message import Message

from controller.calls import CallTracker, Decide
from controller.drivers.ami_protocol import AmiProtocol
from controller.drivers.ami_translate import AmiTranslator
from controller.drivers.base import SpoolFiles
from controller.events import (
    Bridged,
    ChannelAnswered,
    ChannelCreated,
    ChannelHungUp,
    HoldChanged,
    PolicyHint,
    RecordingPaused,
    RecordingResumed,
    RecordingStarted,
    RecordingStopped,
    TransferKind,
    Transferred,
)
from controller.policy import PolicySet
from tests.asterisk.fixtures import recv_blocks


async def replay(name: str, tag_channel: str | None = None) -> tuple[AmiTranslator, list]:
    """Parse the capture's bytes and translate every event. `tag_channel`: pretend the driver started
    a recording on that channel (the way `start_recording` registers it) before the capture's
    MixMonitor, so confirmations carry our id."""
    msgs: list[Message] = []
    a, b = socket.socketpair()
    transport, proto = await asyncio.get_running_loop().create_connection(
        lambda: AmiProtocol(msgs.append, lambda e: None), sock=a
    )
    for block in recv_blocks(name):
        proto.data_received(block)
    transport.close()
    b.close()
    tr = AmiTranslator("ast1")
    out = []
    for i, m in enumerate(msgs):
        if tag_channel and m.get("Event") == "MixMonitorStart" and m.get("Channel") == tag_channel:
            from controller.drivers.ami_translate import RecordingTag

            if m["Uniqueid"] not in tr.recordings:
                tr.note_recording(
                    m["Uniqueid"], RecordingTag("rec-1", SpoolFiles(rx="/s/rec-1-rx.wav", tx="/s/rec-1-tx.wav"))
                )
        out.extend(tr.feed(m, float(i), 0.0))
    out.extend(tr.flush())
    return tr, out


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


async def test_s1_inbound_legs_call_bridge_and_confirmations() -> None:
    _, ev = await replay("S1-inbound-stereo", tag_channel="Local/1001@lab-customer-phone-00000021;1")
    created = of(ev, ChannelCreated)
    # four legs; the dialled agent leg is announced again once its Dial says it is the outbound side
    assert len({c.leg for c in created}) == 4
    assert {c.call_id for c in created} == {"1795243452.70"}  # every leg carries the customer's Linkedid
    cust = next(c for c in created if c.channel_name.endswith("00000021;1"))
    agent = [c for c in created if c.channel_name == "Local/2001@lab-agent-phone-00000022;1"][-1]
    assert (agent.pbx_direction, agent.callee) == ("outbound", "2001")  # the number dialled to reach it
    assert cust.leg == "1795243452.70"
    bridged = of(ev, Bridged)
    assert [(b.leg_a, b.leg_b) for b in bridged] == [(cust.leg, agent.leg)]  # the caller's side first
    assert bridged[0].number_b == "2001"  # the agent, from the Dial string
    assert {a.leg for a in of(ev, ChannelAnswered)} == {c.leg for c in created}
    started = of(ev, RecordingStarted)
    assert len(started) == 3 and {s.leg for s in started} == {cust.leg}  # three MixMonitors ran
    assert started[0].recording_id == "rec-1" and started[0].path == "/s/rec-1-rx.wav"
    hung = of(ev, ChannelHungUp)
    assert len(hung) == 4 and hung[-1].cause == "Normal Clearing"
    stopped = of(ev, RecordingStopped)  # no MixMonitorStop on the wire: the hangup ends it
    assert [(s.leg, s.cause, s.recording_id) for s in stopped] == [(cust.leg, "hangup", "rec-1")]
    assert ev.index(stopped[0]) == ev.index(next(h for h in hung if h.leg == cust.leg)) + 1


async def test_s2_pause_resume_is_one_pause_and_read_mute_is_not() -> None:
    _, ev = await replay("S2-pause-resume")
    assert len(of(ev, RecordingPaused)) == 1
    assert len(of(ev, RecordingResumed)) == 1
    assert ev.index(of(ev, RecordingPaused)[0]) < ev.index(of(ev, RecordingResumed)[0])


async def test_s3_ami_blind_transfer_keeps_customer_leg_and_names_the_target() -> None:
    _, ev = await replay("S3-blind-transfer")
    cust = next(
        c for c in of(ev, ChannelCreated) if "lab-customer-phone" in c.channel_name and c.channel_name.endswith(";1")
    )
    (t,) = of(ev, Transferred)
    assert (t.leg, t.kind, t.target) == (cust.leg, TransferKind.BLIND, "9005551234")
    after = [b for b in of(ev, Bridged) if ev.index(b) > ev.index(t)]
    assert len(after) == 1 and cust.leg in (after[0].leg_a, after[0].leg_b)
    far = after[0].number_a if after[0].leg_b == cust.leg else after[0].number_b
    assert far == "9005551234"  # the new far end, from the customer's own Dial
    assert cust.leg not in {h.leg for h in of(ev, ChannelHungUp) if ev.index(h) < ev.index(after[0])}


async def test_s3c_stop_on_external_transfer_confirms_with_mixmonitorstop() -> None:
    _, ev = await replay("S3c-blind-external-stop", tag_channel="Local/1001@lab-customer-phone-00000027;1")
    stops = of(ev, RecordingStopped)
    assert stops and stops[0].cause == "stop"
    assert ev.index(of(ev, Transferred)[0]) < ev.index(stops[0])


async def test_s4_attended_transfer_target_is_the_consulted_extension() -> None:
    _, ev = await replay("S4-attended-transfer")
    (t,) = of(ev, Transferred)
    assert t.kind == TransferKind.ATTENDED and t.target == "3001"
    cust = next(
        c for c in of(ev, ChannelCreated) if "lab-customer-phone" in c.channel_name and c.channel_name.endswith(";1")
    )
    assert t.leg == cust.leg
    # the customer ends up bridged with the supervisor, whatever bridge survived
    partners = {b.leg_a if b.leg_b == cust.leg else b.leg_b for b in of(ev, Bridged) if cust.leg in (b.leg_a, b.leg_b)}
    names = {c.leg: c.channel_name for c in of(ev, ChannelCreated)}
    assert any("3001" in names.get(p, "") for p in partners)
    # Asterisk bridges the consultation into the customer's bridge 1 ms BEFORE AttendedTransfer; the
    # driver presents the transfer first, as for blind transfers
    first_new = [b for b in of(ev, Bridged) if cust.leg in (b.leg_a, b.leg_b)][1]
    assert ev.index(t) < ev.index(first_new)


async def test_s4_consultation_is_listed_in_the_customer_recording() -> None:
    """The real Atxfer of S4 through the translator and the state machine: the agent's Hold, the
    consultation channel Asterisk creates in the customer's call, the supervisor answering and the
    completion give one consultation (agent 2001 consults 3001, answered, transferred) in the
    customer recording's timeline, beside the attended transfer marker."""
    translator, ev = await replay("S4-attended-transfer")
    assert [(e.leg, e.held) for e in of(ev, HoldChanged)] == [("1795243523.102", True)]  # the agent's channel
    tracker = CallTracker("ast1")
    decision = PolicySet().resolve(direction="inbound", number=None)
    calls = []
    for e in [*ev, *translator.flush()]:
        for action in tracker.handle(e):
            if isinstance(action, Decide):
                tracker.recording_started(action.call, "r1", decision, e.wall)
                calls.append(action.call)
    (call,) = calls
    tl = call.recording.timeline.as_dict()
    assert [(c["agent"], c["target"], c["answered"], c["outcome"]) for c in tl["consultations"]] == [
        ("2001", "3001", True, "transferred")
    ]
    assert [(t["kind"], t["target"]) for t in tl["transfers"]] == [("attended", "3001")]


async def test_s5_outbound_dialled_leg_and_explicit_stop() -> None:
    _, ev = await replay("S5-outbound")
    ext = next(
        c
        for c in of(ev, ChannelCreated)
        if c.channel_name.startswith("Local/9005551234@lab-pstn") and c.channel_name.endswith(";1")
    )
    b = next(x for x in of(ev, Bridged) if ext.leg in (x.leg_a, x.leg_b))
    assert (b.number_a if b.leg_a == ext.leg else b.number_b) == "9005551234"
    assert [s.cause for s in of(ev, RecordingStopped)] == ["stop"]


async def test_s6_dialplan_hook_userevent_becomes_policy_hint() -> None:
    _, ev = await replay("S6-dialplan-policy-hook")
    hints = of(ev, PolicyHint)
    assert [h.values for h in hints] == [{"record": "force"}, {"record": "never"}]
    assert hints[0].leg == "1795243282.44" or hints[0].leg  # the channel named in the event
    first_bridge = of(ev, Bridged)[0]
    assert ev.index(hints[0]) < ev.index(first_bridge)  # policy arrives before the bridge


async def test_s7_sip_call_agent_number_from_the_peer() -> None:
    _, ev = await replay("S7-sip-baresip")
    (b,) = of(ev, Bridged)
    assert {b.number_a, b.number_b} == {"1001", "2001"}


async def test_s8_phone_refer_blind_transfer_is_a_transfer_of_the_customer() -> None:
    _, ev = await replay("S8-refer-blind-external", tag_channel="SIP/1001-00000000")
    (t,) = of(ev, Transferred)
    assert (t.leg, t.kind, t.target, t.transferer) == ("1795246979.8", TransferKind.BLIND, "9005551234", "1795246979.9")
    assert not [s for s in of(ev, RecordingStopped) if s.cause == "stop"]  # MixMonitor survives the REFER
    last = of(ev, Bridged)[-1]
    assert "1795246979.8" in (last.leg_a, last.leg_b)
