"""Every scenario end to end on Asterisk: AMI simulator over TCP → AsteriskDriver → the same recorder
(controller.recorder) → real PostgreSQL journal; the r()/t() legs joined by storage.audio into one
stereo WAV checked by FFT (customer LEFT, agent then transfer target RIGHT)."""

from __future__ import annotations

import asyncio
import secrets
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from controller.calls import user_pauses
from controller.drivers.asterisk import AsteriskDriver
from lab import scenarios as sc
from lab.ami_sim import AmiSimulator
from lab.tones import channel_timeline, channel_tones, read_wav
from storage.audio import join_legs
from tests.sim_harness import SimHarness, outbound, outbound_off_for_did, policy_for
from tests.transfer_frames import failed_attended, right_sequence


@dataclass
class Harness(SimHarness):
    sim: AmiSimulator

    def make_driver(self) -> AsteriskDriver:
        return AsteriskDriver(
            self.pbx, "127.0.0.1", self.sim.port, self.sim.username, self.sim.secret, backoff_initial=0.05
        )

    def driver_idle(self) -> bool:
        # nothing queued for the recorder, no re-bridge held back for its transfer event
        return self.driver._queue.empty() and not self.driver.translator.held

    async def on_step(self, step: Any) -> None:
        await self.controller_step(step)


@pytest.fixture
async def harness(pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Harness]:
    sim = AmiSimulator(secret="lab-" + secrets.token_hex(4))
    await sim.start()
    h = Harness(sim, pool, tmp_path / "spool", "ast-" + secrets.token_hex(3))
    await h.start_controller()
    yield h
    await h.stop_controller()
    await sim.close()


@pytest.mark.parametrize("name", sorted(n for n, s in sc.SCENARIOS.items() if s.expect.recorded))
async def test_recorded_scenarios(harness: Harness, name: str, tmp_path: Path) -> None:
    await _recorded_as_expected(harness, sc.get(name), tmp_path)


@pytest.mark.parametrize("name", sorted(n for n in sc.SCENARIOS if n.startswith("attended_") and n.endswith("_pbx")))
async def test_atxfer_completed_by_moving_the_target(harness: Harness, name: str, tmp_path: Path) -> None:
    """The other way a real Asterisk 20 completes an Atxfer (fixture S4's kept run: Local optimization
    moves the TARGET into the customer's bridge, and AttendedTransfer names no TransferTarget): the
    same recording, timeline and consultation as when the customer is moved (R8)."""
    harness.sim.atxfer_moves = "target"
    await _recorded_as_expected(harness, sc.get(name), tmp_path)


async def _recorded_as_expected(harness: Harness, scenario: sc.Scenario, tmp_path: Path) -> None:
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    rows = await harness.recordings()
    mine = [r for r in rows if r["customer_leg"] == call.customer.uniqueid]
    assert len(mine) == 1, [dict(r) for r in rows]
    # the agent's consultation (from the phone a call of its own, with the PBX's attended transfer a part
    # of the customer's call) belongs to the customer's call: no recording of its own whose "customer"
    # would be the transfer target, and it is listed in the customer recording's timeline
    assert len(rows) == 1, [dict(r) for r in rows]
    rec = mine[0]
    exp = scenario.expect
    assert rec["state"] == "stopped"
    assert rec["pbx_kind"] == "asterisk"
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
    kinds = [
        e["kind"]
        for e in await harness.pool.fetch(
            "SELECT kind FROM recording_events WHERE recording_id = $1 ORDER BY id", rec["id"]
        )
    ]
    assert kinds[0] == "start" and kinds[-1] == "stop" and kinds.count("stop") == 1

    files = rec["spool_files"]
    assert set(files) == {"rx", "tx"}
    stereo = tmp_path / "joined.wav"
    join_legs(Path(files["rx"]), Path(files["tx"]), stereo)
    rate, channels, frames = read_wav(stereo)
    assert (rate, channels) == (8000, 2)
    assert len(read_wav(files["rx"])[2]) == len(read_wav(files["tx"])[2])  # legs sample-aligned
    timeline = channel_timeline(stereo, 250)
    assert {left for left, _ in timeline if left is not None} == {440.0}, "customer must be LEFT throughout"
    assert right_sequence(str(stereo)) == [float(x) for x in exp.right_tones]
    if exp.pauses:
        assert (None, None) in timeline, "the paused span must be silent on both channels"
        p = user_pauses(tl)[0]
        assert p["by"] == "agent:2001" and p["end_ms"] > p["start_ms"]
    if exp.ends_at_transfer:
        xfer = next(s for s in scenario.steps if isinstance(s, sc.Transfer))
        before_ms = 2000 + xfer.ring_ms + (xfer.consult_ms if xfer.kind == "attended" else 0)
        assert len(frames) / 8 < before_ms + 600
        assert tl["transfers"][0]["stopped_recording"] is True


@pytest.mark.parametrize("name", sorted(n for n, s in sc.SCENARIOS.items() if not s.expect.recorded))
async def test_not_recorded_scenarios(harness: Harness, name: str) -> None:
    harness.policy = policy_for(sc.get(name).settings)
    await harness.sim.play(sc.get(name), harness.on_step)
    await harness.settle()
    assert await harness.recordings() == []
    assert not [a for a in harness.sim.actions_seen if a.get("action") == ["MixMonitor"]]


@pytest.mark.parametrize("hook", [True, False], ids=["hook", "no_hook"])
async def test_outbound_account_number_is_the_presented_number(harness: Harness, hook: bool) -> None:
    """The account number of an outbound call is the number the customer is called from (the DID the
    route presents), with or without our hook; the dialled channel's own caller id is the customer's."""
    harness.policy = policy_for({})
    call = await harness.sim.play(outbound(hook, recorded=True), harness.on_step)
    await harness.settle()
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == call.customer.uniqueid
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
    await harness.sim.play(outbound(hook, recorded=False), harness.on_step)
    await harness.settle()
    assert await harness.recordings() == []
    assert not [a for a in harness.sim.actions_seen if a.get("action") == ["MixMonitor"]]


FAILED_OUTCOMES = [(m, o) for m in ("pbx", "phone") for o in ("busy", "no_answer", "cancel")]
FAILED_CAUSE = {"busy": "User busy", "no_answer": "User alerting, no answer", "cancel": "Normal Clearing"}


@pytest.mark.parametrize(("method", "outcome"), FAILED_OUTCOMES)
async def test_failed_attended_transfer_returns_to_the_agent_and_the_recording_goes_on(
    harness: Harness, tmp_path: Path, method: str, outcome: str
) -> None:
    """An attended transfer (Atxfer, or the agent's phone: hold + a second call) to a colleague who is
    busy, does not answer, or the agent gives up while it rings: the agent is back with the customer
    and the recording continues with the agent on the right (the complaint about recorders that never
    resume after a failed transfer); the timeline says the consultation came back and why."""
    scenario = failed_attended(method, outcome)
    harness.policy = policy_for({})
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == call.customer.uniqueid
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
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    timeline = channel_timeline(str(stereo), 250)
    assert {left for left, _ in timeline if left is not None} == {float(sc.CUSTOMER.tone_hz)}
    # only the agent is ever on the right: before the transfer, silent while the target rang,
    # and again for the 2 s after it failed
    assert right_sequence(str(stereo)) == [float(sc.AGENT.tone_hz)]
    rights = [right for _, right in timeline]
    assert None in rights[4:-4], "the agent was away (consulting) in the middle"
    assert rights[-6:] == [float(sc.AGENT.tone_hz)] * 6, "the agent is back on the right at the end"


def _numbered(name: str, customer: str) -> sc.Scenario:
    """The shared scenario with its own customer number, so overlapping calls are told apart."""
    base = sc.get(name)
    return replace(base, parties={**base.parties, "customer": replace(base.parties["customer"], number=customer)})


def _ms(path: str) -> float:
    with wave.open(path) as w:
        return w.getnframes() * 1000 / w.getframerate()


async def _play_overlapping(harness: Harness, names: list[str]) -> dict[str, asyncpg.Record]:
    """Play the scenarios at once (one customer number each); their recordings by scenario name."""
    scenarios = {n: _numbered(n, f"+1555123{9000 + i:04d}") for i, n in enumerate(names)}
    harness.policy = policy_for({})
    calls = await asyncio.gather(*(harness.sim.play(s, harness.on_step) for s in scenarios.values()))
    await harness.settle()
    rows = {r["customer_leg"]: r for r in await harness.recordings()}
    return {n: rows[c.customer.uniqueid] for n, c in zip(scenarios, calls, strict=True)}


async def test_overlapping_calls_each_get_a_file_as_long_as_the_call(harness: Harness) -> None:
    """Three calls at once: each call's r()/t() files hold that call's recorded time only (answer to
    hang-up in simulated time), not the time of the calls beside it."""
    recs = await _play_overlapping(harness, ["inbound", "blind_transfer_internal", "attended_transfer_internal_pbx"])
    expected = {
        "inbound": 3000,  # Talk
        "blind_transfer_internal": 2000 + 500 + 2000,  # Talk, the target rings, Talk
        "attended_transfer_internal_pbx": 2000 + 500 + 1000 + 2000,  # Talk, ring, consultation, Talk
    }
    for name, rec in recs.items():
        for leg in ("rx", "tx"):
            got = _ms(rec["spool_files"][leg])
            assert abs(got - expected[name]) <= 40, f"{name} {leg}: {got:.0f} ms for a {expected[name]} ms call"


async def test_overlapping_calls_transfer_mark_lands_where_the_waveform_changes(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """In real time (as `callrec lab` plays calls), with another call beside it, the timeline's
    transfer mark is where the agent's voice ends in the stored file (within a 50 ms window plus the
    controller's reaction), and the file is as long as the call."""
    sim = AmiSimulator(secret="lab-" + secrets.token_hex(4), time_scale=1.0)
    await sim.start()
    h = Harness(sim, pool, tmp_path / "spool", "ast-" + secrets.token_hex(3))
    await h.start_controller()
    try:
        recs = await _play_overlapping(h, ["blind_transfer_internal", "inbound"])
    finally:
        await h.stop_controller()
        await sim.close()
    rec = recs["blind_transfer_internal"]
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    assert abs(_ms(str(stereo)) - 4500) <= 40
    windows = channel_timeline(stereo, 50)
    agent_until = 50 * max(i + 1 for i, (_, right) in enumerate(windows) if right == float(sc.AGENT.tone_hz))
    mark = rec["timeline"]["transfers"][0]["at_ms"]
    assert abs(agent_until - 2000) <= 50, agent_until
    assert abs(mark - agent_until) <= 250, f"transfer mark at {mark} ms, the agent's voice ends at {agent_until} ms"


@pytest.mark.parametrize("name", ["attended_transfer_external_continue", "attended_transfer_internal"])
async def test_recorded_consultation_holds_target_and_agent_never_the_customer(
    harness: Harness, name: str, tmp_path: Path
) -> None:
    """record_consultation on: the agent's consultation by phone (its own Linkedid, S8c) is a recording
    of its own, filed under the customer call's numbers and named in its timeline, with the consulted
    party LEFT and the agent RIGHT, stopped at the AttendedTransfer — the customer is never in it
    (before: an external consultation was an outbound recording whose customer and account number
    were the target, holding the customer's voice after the transfer)."""
    base = sc.get(name)
    scenario = replace(base, settings={**base.settings, "record_consultation": True})
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    rows = await harness.recordings()
    (rec,) = [r for r in rows if r["customer_leg"] == call.customer.uniqueid]
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
    stereo = tmp_path / "consult.wav"
    join_legs(Path(consult["spool_files"]["rx"]), Path(consult["spool_files"]["tx"]), stereo)
    timeline = channel_timeline(str(stereo), 250)
    assert {left for left, _ in timeline if left is not None} == {float(sc.TARGET_EXTERNAL.tone_hz)}
    assert {right for _, right in timeline if right is not None} == {float(sc.AGENT.tone_hz)}


def _three_way(target: sc.Party, rule_on: bool) -> sc.Scenario:
    stops = not target.internal and not rule_on
    return sc.Scenario(
        "three_way",
        "the agent brings a third party into the call (Atxfer, then a three-way merge); it leaves again",
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
async def test_three_way_call_mixes_everyone_but_the_customer_on_the_right(
    harness: Harness, tmp_path: Path, target: sc.Party, rule_on: bool
) -> None:
    """A three-way call (the agent consults, then merges the customer's bridge with the consulted
    party): the customer stays LEFT, the agent and the joiner are mixed on the RIGHT while all three
    talk, the timeline lists who joined and left (not a transfer), and the recording goes on after
    the joiner hangs up, with the agent alone on the right again."""
    scenario = _three_way(target, rule_on)
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == call.customer.uniqueid
    assert (rec["state"], rec["stop_reason"]) == ("stopped", "hangup")
    tl = rec["timeline"]
    assert tl["transfers"] == [] and [s["party"] for s in tl["segments"]] == [sc.AGENT_EXT]
    (joined,) = tl["conference"]
    cls = "internal" if target.internal else "external"
    assert (joined["party"], joined["class"], joined["stopped_recording"]) == (target.number, cls, False)
    assert joined["joined_ms"] <= joined["left_ms"] <= tl["stop"]["at_ms"]
    assert [(c["target"], c["outcome"]) for c in tl["consultations"]] == [(target.number, "conference")]
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    windows = channel_tones(str(stereo), 250)
    assert {hz for left, _ in windows for hz in left} == {float(sc.CUSTOMER.tone_hz)}, "customer LEFT only"
    rights = [right for _, right in windows if right]
    both = frozenset({float(sc.AGENT.tone_hz), float(target.tone_hz)})
    agent_only = frozenset({float(sc.AGENT.tone_hz)})
    assert set(rights) == {agent_only, both}, "the joiner is only ever heard mixed with the agent"
    first_both = rights.index(both)
    assert rights[:first_both] == [agent_only] * first_both  # the agent alone before the three-way
    assert rights[-6:] == [agent_only] * 6  # and again after the joiner left


async def test_external_joiner_with_the_rule_off_stops_the_recording(harness: Harness, tmp_path: Path) -> None:
    """continue_on_external_transfer off: an external party joining a three-way call stops the
    recording where it joins (as a transfer to it would); nothing of it is in the file."""
    scenario = _three_way(sc.TARGET_EXTERNAL, rule_on=False)
    harness.policy = policy_for(scenario.settings)
    await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    (rec,) = await harness.recordings()
    assert rec["stop_reason"] == "external_joined"
    (joined,) = rec["timeline"]["conference"]
    assert (joined["party"], joined["class"], joined["stopped_recording"]) == (sc.EXTERNAL_TARGET, "external", True)
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    heard = {hz for _, right in channel_tones(str(stereo), 250) for hz in right}
    assert float(sc.TARGET_EXTERNAL.tone_hz) not in heard and float(sc.AGENT.tone_hz) in heard
