"""Replays of what the driver's least-privilege AMI user (asterisk_conf/manager.conf: read=call,user)
received from a REAL Asterisk 20.20.1 while tests/asterisk/test_real_asterisk.py ran (captures in
tests/fixtures/asterisk/real/, Local-channel tone phones, the shipped callrec-policy Gosub). The bytes
go through our framing, the translator and the pure call tracker; the outcome must be what the
real-PBX run stored. Each case is a discrepancy the simulator-only tests had missed:

- no VarSet/Newexten for this user: the DID comes from the dialling route's DialBegin snapshot;
- an originated channel gets its caller id AFTER Newchannel (NewCallerid), and an outbound route's
  Set(CALLERID(num)=<DID>) must not rename the agent;
- an Originate's DialBegin has no caller side; the dialled side of a Dial is the outbound leg;
- attended transfer: Asterisk may move the CUSTOMER into the target's bridge (Local optimization), and
  may send an unrelated Hangup between the BridgeMerge re-bridge and the AttendedTransfer event;
- a failed Atxfer (R10/R11, test_real_asterisk_failed_transfer.py on an Asterisk built from the 20.20.1
  tag): no AttendedTransfer event, and with a target busy at once no DialEnd either — only the agent's
  Hold, its trip through the consultation bridge, and Unhold;
- a three-way merge (R12, atxferthreeway): the consultation's channel enters the customer's bridge
  before the agent, and Local optimization swaps the joiner's channel without a bridge event.
"""

from __future__ import annotations

import asyncio
import re
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
from panoramisk.message import Message

from controller.calls import CallTracker, Decide, Mute, Stop, Unmute
from controller.drivers.ami_protocol import AmiProtocol
from controller.drivers.ami_translate import AmiTranslator
from controller.events import Bridged, ChannelAnswered, ChannelCreated, PolicyHint, Transferred
from controller.policy import Account, PolicySet, settings_from_dict
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from tests.asterisk.test_sim_vs_fixtures import RawClient

REAL = Path(__file__).resolve().parent.parent / "fixtures" / "asterisk" / "real"
_HEAD = re.compile(rb"##### (<<< RECV|>>> SENT) \S+ \+([\d.]+) (\d+) bytes\n")


async def real_messages(name: str) -> list[tuple[float, Message]]:
    """(seconds since capture start, message) for every block the AMI user received, parsed by our
    framing (the same AmiProtocol the driver runs), fed exactly as the bytes arrived."""
    raw = (REAL / f"{name}.ami.log").read_bytes()
    out: list[tuple[float, Message]] = []
    t = 0.0
    a, b = socket.socketpair()
    transport, proto = await asyncio.get_running_loop().create_connection(
        lambda: AmiProtocol(lambda m: out.append((t, m)), lambda e: None), sock=a
    )
    try:
        pos = 0
        while (m := _HEAD.search(raw, pos)) is not None:
            n = int(m.group(3))
            block = raw[m.end() : m.end() + n]
            pos = m.end() + n
            if m.group(1) == b"<<< RECV":
                t = float(m.group(2))
                proto.data_received(block)
    finally:
        transport.close()
        b.close()
    return out


@dataclass
class Outcome:
    events: list
    decided: list
    stops: list[str]
    timeline: dict | None


def without_hook(msgs: list[tuple[float, Message]]) -> list[tuple[float, Message]]:
    """The same capture as a PBX without our dialplan hook sends it: no CallrecPolicy UserEvent and no
    callrec_* policy variables on the channels (the dialplan itself, e.g. an outbound route's
    Set(CALLERID(num)=<DID>), is unchanged)."""
    out = []
    for t, msg in msgs:
        if msg.get("Event") == "UserEvent":
            continue
        items = msg.get("ChanVariable")
        if items is not None:
            items = items if isinstance(items, list) else [items]
            msg["ChanVariable"] = [
                x.split("=", 1)[0] + "=" if x.upper().startswith("CALLREC_") else x for x in map(str, items)
            ]
        out.append((t, msg))
    return out


async def replay(name: str, *, hook: bool = True, **settings: object) -> Outcome:
    ps = PolicySet(accounts={"main": Account("main", settings_from_dict(dict(settings)))})
    tr, tracker = AmiTranslator("ast"), CallTracker("ast")
    events, decided, stops = [], [], []
    timeline = None
    msgs = await real_messages(name)
    if not hook:
        msgs = without_hook(msgs)
    for t, msg in msgs:
        evs = tr.feed(msg, t, 1_800_000_000 + t)
        for ev in evs:
            events.append(ev)
            for action in tracker.handle(ev):
                if isinstance(action, Decide):
                    call = action.call
                    decision = ps.resolve(
                        direction=call.direction, number=call.account_number or None, account=call.account
                    )
                    decided.append(call)
                    tracker.recording_started(call, "rec-1", decision, ev.wall)
                elif isinstance(action, Stop):
                    stops.append(action.reason)
                    assert action.call.recording is not None
                    timeline = action.call.recording.timeline.as_dict()
    events += tr.flush()
    return Outcome(events, decided, stops, timeline)


def _one_call(o: Outcome):  # type: ignore[no-untyped-def]
    assert len(o.decided) == 1, o.decided
    return o.decided[0]


async def test_inbound_with_hook_customer_and_agent_numbers() -> None:
    o = await replay("R1-inbound-hook")
    call = _one_call(o)
    assert (call.direction.value, call.customer_number, call.account_number, call.agent) == (
        "inbound",
        "+15551230001",
        "+15557000100",
        "2001",
    )
    assert o.stops == ["hangup"]
    hint = next(e for e in o.events if isinstance(e, PolicyHint))
    assert hint.values == {"account": "main", "account_number": "+15557000100", "direction": "inbound"}


async def test_inbound_without_hook_takes_the_did_from_the_dialling_route() -> None:
    o = await replay("R2-inbound-inferred-agent-hangs-up")
    call = _one_call(o)
    assert not [e for e in o.events if isinstance(e, PolicyHint)]
    assert (call.direction.value, call.customer_number, call.account_number, call.agent) == (
        "inbound",
        "+15551230001",
        "5557000100",  # the route's extension (no Newexten for this user: from the DialBegin snapshot)
        "2001",
    )
    assert o.stops == ["hangup"]


async def test_originated_channel_is_renamed_only_by_its_first_caller_id() -> None:
    o = await replay("R3-outbound-hook")
    call = _one_call(o)
    # the outbound route sets CALLERID(num) to the DID on the agent's channel: the agent stays 2001
    assert (call.direction.value, call.customer_number, call.account_number, call.agent) == (
        "outbound",
        "9005551234",
        "+15557000100",
        "2001",
    )
    dialled = [e for e in o.events if isinstance(e, ChannelCreated) and e.leg == call.customer_leg][-1]
    assert (dialled.pbx_direction, dialled.callee) == ("outbound", "9005551234")


async def test_outbound_without_hook_account_number_is_the_presented_number_not_the_customers() -> None:
    """Without the hook nothing names the account number: it is the number the customer was called
    from. Asterisk gives the dialled channel the CUSTOMER's number as caller id; the number presented
    (the route's Set(CALLERID(num)=+15557000100)) is that channel's connected line."""
    o = await replay("R3-outbound-hook", hook=False)
    call = _one_call(o)
    assert not [e for e in o.events if isinstance(e, PolicyHint)]
    assert (call.direction.value, call.customer_number, call.account_number, call.agent) == (
        "outbound",
        "9005551234",
        "+15557000100",
        "2001",
    )


async def test_pause_resume_confirmations() -> None:
    from controller.events import RecordingPaused, RecordingResumed

    o = await replay("R4-pause-resume")
    kinds = [type(e).__name__ for e in o.events if isinstance(e, RecordingPaused | RecordingResumed)]
    assert kinds == ["RecordingPaused", "RecordingResumed"]


@pytest.mark.parametrize(
    ("name", "continue_on_external", "stops", "stopped"),
    [
        ("R5-blind-external-stop", False, ["external_transfer"], True),
        ("R6-blind-external-continue", True, ["hangup"], False),
    ],
)
async def test_blind_transfer_to_external(
    name: str, continue_on_external: bool, stops: list[str], stopped: bool
) -> None:
    o = await replay(name, continue_on_external_transfer=continue_on_external)
    _one_call(o)
    assert o.stops == stops
    assert o.timeline is not None
    assert [(x["kind"], x["target"], x["target_class"], x["stopped_recording"]) for x in o.timeline["transfers"]] == [
        ("blind", "9005551234", "external", stopped)
    ]


@pytest.mark.parametrize("name", ["R7-attended-merge-before-transfer", "R8-attended-customer-moved"])
async def test_attended_transfer_is_one_marker_and_no_second_partner(name: str) -> None:
    o = await replay(name)
    call = _one_call(o)
    xfer = next(i for i, e in enumerate(o.events) if isinstance(e, Transferred))
    assert o.events[xfer].target == "3002"
    # the re-bridge of the customer comes AFTER the transfer event, whatever Asterisk interleaved
    assert not [
        e for e in o.events[:xfer] if isinstance(e, Bridged) and call.customer_leg in (e.leg_a, e.leg_b) and e.ts > 0
    ][1:]
    assert o.stops == ["hangup"]
    assert o.timeline is not None
    assert [(x["kind"], x["target"], x["target_class"]) for x in o.timeline["transfers"]] == [
        ("attended", "3002", "internal")
    ]
    assert [s["party"] for s in o.timeline["segments"]] == ["2001", "3002"]


@pytest.mark.parametrize("continue_rule", [False, True], ids=["rule_off", "rule_on"])
async def test_redirect_is_muted_at_the_bridge_leave_and_decided_at_the_dial(continue_rule: bool) -> None:
    """R9 (real 20.20.1): a CTI application's AMI Redirect of the customer channel to 9005551234. No
    transfer event: BridgeLeave of the customer (no hangup request on it) mutes the recording; its
    DialBegin toward the target, before the target answers, stops it (rule off) or lifts the mute
    (rule on, so the target is recorded from its first word)."""
    ps = PolicySet(
        accounts={"main": Account("main", settings_from_dict({"continue_on_external_transfer": continue_rule}))}
    )
    tr, tracker = AmiTranslator("ast"), CallTracker("ast")
    seen: list[str] = []
    target = ""
    for t, msg in await real_messages("R9-redirect-external"):
        for ev in tr.feed(msg, t, 1_800_000_000 + t):
            if isinstance(ev, Transferred):
                seen.append("transfer event")
            if isinstance(ev, ChannelCreated) and ev.originator and ev.callee == "9005551234" and not target:
                target = ev.leg
                seen.append("dial")
            if isinstance(ev, ChannelAnswered) and ev.leg == target:
                seen.append("answer")
            for action in tracker.handle(ev):
                if isinstance(action, Decide):
                    decision = ps.resolve(direction=action.call.direction, number=action.call.account_number or None)
                    tracker.recording_started(action.call, "rec-1", decision, ev.wall)
                elif isinstance(action, Stop):
                    seen.append(f"stop:{action.reason}")
                elif isinstance(action, (Mute, Unmute)):
                    seen.append(type(action).__name__.lower())
    if continue_rule:
        assert seen == ["mute", "dial", "unmute", "answer", "stop:hangup"]
    else:
        assert seen == ["mute", "dial", "stop:external_transfer", "answer"]


@pytest.mark.parametrize(
    "name",
    [
        # Atxfer to 3099 (Busy(5)): DialEnd BUSY at once, the agent waits in the consultation bridge
        # until Busy() gives up, then BridgeEnter back into the customer's bridge
        "R10-attended-target-busy",
        # Atxfer to 3098 (Hangup(17), as a SIP phone answering 486): no DialEnd at all; the
        # consultation's ;2 hangs up and the agent is back in the customer's bridge within 1 ms
        "R11-attended-target-busy-at-once",
    ],
)
async def test_attended_transfer_to_a_busy_target_is_no_transfer(name: str) -> None:
    """A failed Atxfer: no AttendedTransfer event, the customer never leaves its bridge: no transfer,
    no new segment, one stop at the hangup."""
    o = await replay(name, continue_on_external_transfer=False)
    _one_call(o)
    assert not [e for e in o.events if isinstance(e, Transferred)]
    assert o.stops == ["hangup"]
    assert o.timeline is not None
    assert o.timeline["transfers"] == []
    assert [s["party"] for s in o.timeline["segments"]] == ["2001"]


@pytest.mark.parametrize("continue_rule", [False, True], ids=["rule_off", "rule_on"])
async def test_three_way_merge_is_a_join_not_a_transfer(continue_rule: bool) -> None:
    """R12 (real 20.20.1, test_real_asterisk_threeway.py): Atxfer to 3002, then atxferthreeway (*3).
    Asterisk MERGES the consultation bridge into the customer's: the consultation's Local ;1 enters
    the customer's bridge BEFORE the agent, then AttendedTransfer DestType=Threeway; then Local
    optimization swaps that ;1 for the second agent's own channel (no BridgeEnter the driver reports),
    which later leaves when it hangs up. One join and one leave of 3002, no transfer, the agent's
    segment throughout (the simulator had the agent enter first and no Threeway event: before the fix
    the real order read as an attended transfer to 3002 and the agent "joining" its own call)."""
    o = await replay("R12-threeway-then-joiner-leaves", continue_on_external_transfer=continue_rule)
    _one_call(o)
    assert not [e for e in o.events if isinstance(e, Transferred)]
    assert o.stops == ["hangup"]
    t = o.timeline
    assert t is not None
    assert t["transfers"] == [] and [s["party"] for s in t["segments"]] == ["2001"]
    (joined,) = t["conference"]
    assert (joined["party"], joined["class"], joined["stopped_recording"]) == ("3002", "internal", False)
    assert joined["left_ms"] is not None and 2500 <= joined["left_ms"] - joined["joined_ms"] <= 4000, joined
    assert [(c["target"], c["outcome"]) for c in t["consultations"]] == [("3002", "conference")]
    (mute,) = t["pauses"]  # the consultation's mute, lifted when the agent is back at the merge
    assert mute["kind"] == "transfer_mute" and mute["end_ms"] == joined["joined_ms"], mute


# ---- the simulator against the same bytes ----------------------------------------------------------


async def test_simulated_hook_userevent_looks_like_the_real_one() -> None:
    """The shipped Gosub's UserEvent as the real PBX sends it (snapshot taken INSIDE the Gosub:
    Context callrec-policy, Exten s, Priority 6; body keys after the snapshot) — the simulator must send
    the same keys in the same order and the same dialplan position."""
    real = next(m for _, m in await real_messages("R1-inbound-hook") if m.get("Event") == "UserEvent")
    sim = AmiSimulator()
    await sim.start()
    client = RawClient()
    try:
        await client.connect(sim)
        await sim.play(sc.get("inbound"))
        fake = next(f for f in client.frames if ("Event", "UserEvent") in f)
    finally:
        await client.close()
        await sim.close()
    real_keys = [k for k in real if k != "content"]  # panoramisk keeps the raw body under "content"
    sim_keys = [k for k, _ in fake if k != "ActionID"]
    assert [k for k in sim_keys if k != "ChanVariable"] == [k for k in real_keys if k != "ChanVariable"]
    sim_d = dict(fake)
    assert (sim_d["Context"], sim_d["Exten"], sim_d["Priority"]) == (real["Context"], real["Exten"], real["Priority"])
    assert sim_d["Privilege"] == real["Privilege"] == "user,all"
