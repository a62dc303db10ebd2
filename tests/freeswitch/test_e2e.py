"""Every scenario end to end: simulator over TCP → driver → recorder → PostgreSQL journal + WAV."""

from __future__ import annotations

import asyncio
import wave
from dataclasses import replace

import pytest

from controller.calls import user_pauses
from lab import scenarios as sc
from lab.tones import channel_timeline, channel_tones, read_wav
from tests.sim_harness import outbound, outbound_off_for_did, policy_for
from tests.transfer_frames import failed_attended, right_sequence

from .conftest import Harness


@pytest.mark.parametrize("name", sorted(n for n, s in sc.SCENARIOS.items() if s.expect.recorded))
async def test_recorded_scenarios(harness: Harness, name: str) -> None:
    scenario = sc.get(name)
    handle = await harness.play(scenario)
    rows = await harness.recordings()
    mine = [r for r in rows if r["customer_leg"] == handle.customer.uuid]
    assert len(mine) == 1, [dict(r) for r in rows]
    # the agent's consultation (from the phone a call of its own, with the PBX's attended transfer a part
    # of the customer's call) belongs to the customer's call: no recording of its own whose "customer"
    # would be the transfer target, and it is listed in the customer recording's timeline
    assert len(rows) == 1, [dict(r) for r in rows]
    rec = mine[0]
    exp = scenario.expect
    assert rec["state"] == "stopped"
    assert rec["direction"] == exp.direction
    assert rec["customer_number"] == sc.CUSTOMER_NUMBER
    assert rec["account_number"] == sc.DID
    assert rec["agent"] == sc.AGENT_EXT
    assert rec["stop_reason"] == exp.stop_reason
    tl = rec["timeline"]
    assert len(tl["segments"]) == len(exp.segments)
    assert tl["segments"][0]["party"] == sc.AGENT_EXT
    assert len(user_pauses(tl)) == exp.pauses
    assert all(p["end_ms"] is not None for p in tl["pauses"])
    assert [(t["kind"], t["target_class"]) for t in tl["transfers"]] == list(exp.transfers)
    assert tl["stop"]["reason"] == exp.stop_reason
    xfer = next((s for s in scenario.steps if isinstance(s, sc.Transfer)), None)
    consultations = [(c["agent"], c["target"], c["answered"], c["outcome"]) for c in tl["consultations"]]
    if xfer is not None and xfer.kind == "attended":
        assert consultations == [(sc.AGENT_EXT, scenario.parties[xfer.to].number, True, "transferred")]
        c = tl["consultations"][0]
        assert c["recording_id"] is None and 0 < c["at_ms"] <= c["end_ms"]
    else:
        assert consultations == []
    assert await harness.pool.fetchval("SELECT count(*) FROM finalize_jobs WHERE recording_id = $1", rec["id"]) == 1
    kinds = [e["kind"] for e in await harness.events(rec["id"])]
    assert kinds[0] == "start" and kinds[-1] == "stop" and kinds.count("stop") == 1

    path = rec["spool_files"]["stereo"]
    rate, channels, frames = read_wav(path)
    assert (rate, channels) == (8000, 2)
    timeline = channel_timeline(path, 250)
    lefts = {left for left, _ in timeline if left is not None}
    assert lefts == {440.0}, "customer must be LEFT throughout"
    assert right_sequence(path) == [float(x) for x in exp.right_tones]
    if exp.pauses:
        assert (None, None) in timeline, "the paused span must be silent on both channels"
        p = user_pauses(tl)[0]
        assert p["by"] == "agent:2001" and p["end_ms"] > p["start_ms"]
    if exp.ends_at_transfer:
        # the file ends at the transfer: the 2 s talk before it (+ hold and consultation when attended)
        xfer = next(s for s in scenario.steps if isinstance(s, sc.Transfer))
        before_ms = 2000 + (xfer.ring_ms + xfer.consult_ms if xfer.kind == "attended" else 0)
        assert len(frames) / 8 < before_ms + 600
        assert tl["transfers"][0]["stopped_recording"] is True


@pytest.mark.parametrize("name", sorted(n for n, s in sc.SCENARIOS.items() if not s.expect.recorded))
async def test_not_recorded_scenarios(harness: Harness, name: str) -> None:
    await harness.play(sc.get(name))
    assert await harness.recordings() == []
    assert not [c for c in harness.sim.commands if c.startswith("uuid_record")]


@pytest.mark.parametrize("hook", [True, False], ids=["hook", "no_hook"])
async def test_outbound_account_number_is_the_presented_number(harness: Harness, hook: bool) -> None:
    """The account number of an outbound call is the caller id presented to the customer (the B leg's
    caller id), with or without our hook."""
    scenario = outbound(hook, recorded=True)
    handle = await harness.play(scenario)
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == handle.customer.uuid
    assert (rec["direction"], rec["customer_number"], rec["account_number"]) == (
        "outbound",
        sc.CUSTOMER_NUMBER,
        sc.DID,
    )


@pytest.mark.parametrize("hook", [True, False], ids=["hook", "no_hook"])
async def test_outbound_per_number_override_is_looked_up_under_the_presented_number(
    harness: Harness, hook: bool
) -> None:
    """record_outbound = false for the DID: an outbound call presenting it is not recorded."""
    harness.policy = outbound_off_for_did()
    await harness.sim.run(outbound(hook, recorded=False), on_step=harness.on_step)
    await harness.settle()
    assert await harness.recordings() == []
    assert not [c for c in harness.sim.commands if c.startswith("uuid_record")]


FAILED_OUTCOMES = [(m, o) for m in ("phone", "pbx") for o in ("busy", "no_answer", "cancel")]
FAILED_CAUSE = {"busy": "USER_BUSY", "no_answer": "NO_ANSWER", "cancel": "ORIGINATOR_CANCEL"}


@pytest.mark.parametrize(("method", "outcome"), FAILED_OUTCOMES)
async def test_failed_attended_transfer_returns_to_the_agent_and_the_recording_goes_on(
    harness: Harness, method: str, outcome: str
) -> None:
    """The agent consults a colleague who is busy, does not answer, or the agent gives up while it rings
    (by the phone: hold + a second call; by the PBX: att_xfer), then has the customer back: the
    recording continues with the agent on the right (recorders that never resume after a failed
    transfer), and the timeline says the consultation came back and why."""
    handle = await harness.play(failed_attended(method, outcome))
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == handle.customer.uuid
    assert (rec["state"], rec["stop_reason"]) == ("stopped", "hangup")
    tl = rec["timeline"]
    assert [s["party"] for s in tl["segments"]] == [sc.AGENT_EXT]
    assert tl["transfers"] == []
    (c,) = tl["consultations"]
    assert (c["agent"], c["target"], c["answered"], c["outcome"], c["cause"]) == (
        sc.AGENT_EXT,
        sc.AGENT2_EXT,
        False,
        "returned",
        FAILED_CAUSE[outcome],
    )
    assert c["at_ms"] <= c["end_ms"] <= tl["stop"]["at_ms"]
    path = rec["spool_files"]["stereo"]
    timeline = channel_timeline(path, 250)
    assert {left for left, _ in timeline if left is not None} == {float(sc.CUSTOMER.tone_hz)}
    assert right_sequence(path) == [float(sc.AGENT.tone_hz)]
    rights = [right for _, right in timeline]
    assert None in rights[4:-4], "the customer was on hold in the middle"
    assert rights[-6:] == [float(sc.AGENT.tone_hz)] * 6, "the agent is back on the right at the end"


async def test_overlapping_calls_each_get_a_file_as_long_as_the_call(harness: Harness) -> None:
    """Three calls at once: each call's stereo file holds that call's recorded time only (answer to
    hang-up in simulated time), not the time of the calls beside it (the simulator ticks each call's
    own legs)."""
    names = ["inbound", "blind_transfer_internal", "attended_transfer_internal_pbx"]
    expected = {"inbound": 3000, "blind_transfer_internal": 2000 + 500 + 2000}
    expected["attended_transfer_internal_pbx"] = 2000 + 500 + 1000 + 2000  # talk, ring, consultation, talk
    scenarios = []
    for i, name in enumerate(names):
        base = sc.get(name)
        customer = replace(base.parties["customer"], number=f"+1555123{9000 + i:04d}")
        scenarios.append(replace(base, parties={**base.parties, "customer": customer}))
    harness.policy = policy_for({})
    handles = await asyncio.gather(*(harness.sim.run(s, on_step=harness.on_step) for s in scenarios))
    await harness.settle()
    rows = {r["customer_leg"]: r for r in await harness.recordings()}
    for name, handle in zip(names, handles, strict=True):
        with wave.open(rows[handle.customer.uuid]["spool_files"]["stereo"]) as w:
            got = w.getnframes() * 1000 / w.getframerate()
        assert abs(got - expected[name]) <= 40, f"{name}: {got:.0f} ms for a {expected[name]} ms call"


@pytest.mark.parametrize("name", ["attended_transfer_external_continue", "attended_transfer_internal"])
async def test_recorded_consultation_holds_target_and_agent_never_the_customer(harness: Harness, name: str) -> None:
    """record_consultation on: the agent's consultation by phone is a recording of its own, filed under
    the customer call's numbers and named in its timeline, with the consulted party LEFT and the agent
    RIGHT, stopped when the transfer completes — the customer is never in it (before: an external
    consultation was an outbound recording whose customer was the target, holding the customer's voice
    after the transfer)."""
    base = sc.get(name)
    handle = await harness.play(replace(base, settings={**base.settings, "record_consultation": True}))
    rows = await harness.recordings()
    (rec,) = [r for r in rows if r["customer_leg"] == handle.customer.uuid]
    (consult,) = [r for r in rows if r["id"] != rec["id"]]
    (c,) = rec["timeline"]["consultations"]
    assert (c["outcome"], c["recording_id"]) == ("transferred", str(consult["id"]))
    assert (consult["customer_number"], consult["account_number"], consult["agent"]) == (
        sc.CUSTOMER_NUMBER,
        sc.DID,
        sc.AGENT_EXT,
    )
    assert consult["direction"] == "inbound" and consult["policy"]["sources"]["record"] == "consultation"
    assert consult["stop_reason"] == "consultation_ended"
    timeline = channel_timeline(consult["spool_files"]["stereo"], 250)
    assert {left for left, _ in timeline if left is not None} == {float(sc.TARGET_EXTERNAL.tone_hz)}
    assert {right for _, right in timeline if right is not None} == {float(sc.AGENT.tone_hz)}
    # the customer's own recording is unchanged: agent, then the target
    assert right_sequence(rec["spool_files"]["stereo"]) == [float(sc.AGENT.tone_hz), float(sc.TARGET_EXTERNAL.tone_hz)]


def _three_way(target: sc.Party, rule_on: bool) -> sc.Scenario:
    stops = not target.internal and not rule_on
    return sc.Scenario(
        "three_way",
        "the agent's CTI moves the call into a conference and dials a third party in; it leaves again",
        (
            sc.PlaceCall("inbound"),
            sc.Ring(),
            sc.Answer(),
            sc.Talk(2000),
            sc.ThreeWay(),
            sc.Talk(2000),
            sc.Hangup("target"),
            sc.Talk(2000),
            sc.Hangup("customer"),
        ),
        sc.Expectation(
            True, segments=("agent",), stop_reason="external_joined" if stops else "hangup", ends_at_transfer=stops
        ),
        parties={"customer": sc.CUSTOMER, "agent": sc.AGENT, "target": target},
        settings={"continue_on_external_transfer": rule_on},
    )


@pytest.mark.parametrize(
    ("target", "rule_on"),
    [(sc.TARGET_INTERNAL, False), (sc.TARGET_EXTERNAL, True)],
    ids=["colleague", "external_rule_on"],
)
async def test_conference_mixes_everyone_but_the_customer_on_the_right(
    harness: Harness, target: sc.Party, rule_on: bool
) -> None:
    """A three-way call in a mod_conference room (conference::maintenance add-member / del-member):
    one recording, the customer LEFT, the agent and the joiner mixed on the RIGHT while all three talk,
    the joiner listed in the timeline with when it joined and left (not a transfer), the agent alone on
    the right again after the joiner hung up."""
    handle = await harness.play(_three_way(target, rule_on))
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == handle.customer.uuid
    assert (rec["state"], rec["stop_reason"]) == ("stopped", "hangup")
    tl = rec["timeline"]
    assert tl["transfers"] == [] and [s["party"] for s in tl["segments"]] == [sc.AGENT_EXT]
    (joined,) = tl["conference"]
    cls = "internal" if target.internal else "external"
    assert (joined["party"], joined["class"], joined["stopped_recording"]) == (target.number, cls, False)
    assert joined["joined_ms"] <= joined["left_ms"] <= tl["stop"]["at_ms"]
    windows = channel_tones(rec["spool_files"]["stereo"], 250)
    assert {hz for left, _ in windows for hz in left} == {float(sc.CUSTOMER.tone_hz)}, "customer LEFT only"
    rights = [right for _, right in windows if right]
    both = frozenset({float(sc.AGENT.tone_hz), float(target.tone_hz)})
    agent_only = frozenset({float(sc.AGENT.tone_hz)})
    assert set(rights) == {agent_only, both}, "the joiner is only ever heard mixed with the agent"
    first_both = rights.index(both)
    assert rights[:first_both] == [agent_only] * first_both
    assert rights[-6:] == [agent_only] * 6


async def test_external_conference_joiner_with_the_rule_off_stops_the_recording(harness: Harness) -> None:
    handle = await harness.play(_three_way(sc.TARGET_EXTERNAL, rule_on=False))
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == handle.customer.uuid and rec["stop_reason"] == "external_joined"
    (joined,) = rec["timeline"]["conference"]
    assert (joined["party"], joined["stopped_recording"]) == (sc.EXTERNAL_TARGET, True)
    heard = {hz for _, right in channel_tones(rec["spool_files"]["stereo"], 250) for hz in right}
    assert float(sc.TARGET_EXTERNAL.tone_hz) not in heard and float(sc.AGENT.tone_hz) in heard
