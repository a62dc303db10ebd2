"""Issue #13 §1 on the simulated Asterisk: however the customer is transferred blind to an external
number — the agent's phone (REFER → BlindTransfer), or an AMI Redirect by a CTI application that no
event announces — the stored file (the r()/t() legs joined as finalize joins them) has not one 20 ms
frame of the external party with continue_on_external_transfer off, and has it from its first frame
with the rule on; the timeline shows the transfer mute. And the mute an Atxfer's consultation causes is
lifted before the call goes on; neither that lift nor the stop at an external target waits for the
journal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from lab import scenarios as sc
from lab.tones import channel_timeline
from storage import journal
from storage.audio import join_legs
from tests.sim_harness import policy_for
from tests.transfer_frames import blind_external, check_external_party, failed_attended, frames_with_tone

from .test_e2e import Harness, harness

__all__ = ["harness"]


@pytest.mark.parametrize("continue_rule", [False, True], ids=["rule_off", "rule_on"])
@pytest.mark.parametrize("method", ["phone", "redirect"])
async def test_blind_transfer_to_an_external_number(
    harness: Harness,
    method: str,
    continue_rule: bool,
    tmp_path: Path,
) -> None:
    scenario = blind_external(method, continue_rule)
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    (rec,) = [r for r in await harness.recordings() if r["customer_leg"] == call.customer.uniqueid]
    assert rec["stop_reason"] == scenario.expect.stop_reason
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    check_external_party(stereo, rec["timeline"], continue_rule, method != "redirect")
    kinds = [
        e["kind"]
        for e in await harness.pool.fetch("SELECT kind FROM recording_events WHERE recording_id = $1", rec["id"])
    ]
    assert "transfer_mute" in kinds or method != "redirect"


@pytest.mark.parametrize("time_scale", [0.0, 0.001, 0.002])
@pytest.mark.parametrize("outcome", ["answer", "busy"])
async def test_atxfer_transfer_mute_is_lifted_before_the_call_goes_on(
    harness: Harness, outcome: str, time_scale: float, tmp_path: Path
) -> None:
    """An Atxfer leaves the customer alone in its bridge while the agent consults: the controller mutes
    the customer's recording (nobody known is with it) and lifts the mute when the target (completed)
    or the agent (failed) is back. The mute really reaches the call, its lift too, and the 2 s of talk
    after the transfer are in the file from the party that is back — whether the simulated clock
    outruns the controller (time_scale 0: seconds of talk in milliseconds) or lets its commands land
    mid-call (a slower clock: the mute used to land in the last talk, its lift after the hang-up)."""
    harness.sim.time_scale = time_scale
    scenario = sc.get("attended_transfer_internal_pbx") if outcome == "answer" else failed_attended("pbx", outcome)
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    (rec,) = [r for r in await harness.recordings() if r["customer_leg"] == call.customer.uniqueid]
    mutes = [a["state"][0] for a in harness.sim.actions_seen if a.get("action") == ["MixMonitorMute"]]
    assert mutes == ["1", "0"], f"MixMonitorMute states the call received: {mutes}"
    (mute,) = [p for p in rec["timeline"]["pauses"] if p.get("kind") == "transfer_mute"]
    back = sc.TARGET_INTERNAL if outcome == "answer" else sc.AGENT
    assert (mute["outcome"], mute["next_party"]) == ("unmuted", back.number), mute
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    rights = [right for _, right in channel_timeline(str(stereo), 250)]
    assert rights[-8:] == [float(back.tone_hz)] * 8, f"the 2 s after the transfer, 250 ms windows: {rights[-8:]}"


@pytest.fixture
def slow_journal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every timeline write (consultation, transfer, mute, segment) takes 300 ms: a database under
    fsync pressure. A real PBX does not wait for the controller (the simulator's 0.1 s settle)."""
    real = journal.record_event

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.3)
        return await real(*args, **kwargs)

    monkeypatch.setattr(journal, "record_event", slow)


@pytest.mark.parametrize("method", ["phone", "pbx"])
async def test_a_slow_journal_does_not_hold_up_the_stop_for_an_external_target(
    harness: Harness, slow_journal: None, method: str, tmp_path: Path
) -> None:
    """The stop at an attended transfer to an external number (rule off) goes to the PBX at once, not
    behind the timeline writes queued before it: not one frame of the external party in the file
    (before: the stop waited for five 300 ms writes, and the external party's 2 s were recorded)."""
    harness.sim.settle_timeout = 0.1
    scenario = sc.get("attended_transfer_external_stop" + ("_pbx" if method == "pbx" else ""))
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario)  # no harness steps: the call does not wait for the controller
    await harness.settle()
    (rec,) = [r for r in await harness.recordings() if r["customer_leg"] == call.customer.uniqueid]
    assert rec["stop_reason"] == "external_transfer"
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    frames = frames_with_tone(stereo, float(sc.TARGET_EXTERNAL.tone_hz))
    heard = [i for i, f in enumerate(frames) if any(f)]
    assert heard == [], f"external party in 20 ms frames {heard[:5]}… of {len(frames)}"


async def test_a_slow_journal_does_not_keep_the_returning_agent_muted(
    harness: Harness, slow_journal: None, tmp_path: Path
) -> None:
    """A failed Atxfer: the mute the consultation caused is lifted when the agent is back, at once, not
    after the timeline writes queued before it (the simulated clock at 1/4 of real time: 500 ms for
    the 2 s of talk after the transfer; before: the mute came 300 ms late, its lift 600 ms after it,
    when the call was over, and most of that talk was silent)."""
    harness.sim.time_scale = 0.25
    harness.policy = policy_for({})
    call = await harness.sim.play(failed_attended("pbx", "busy"))
    await harness.settle()
    (rec,) = [r for r in await harness.recordings() if r["customer_leg"] == call.customer.uniqueid]
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    rights = [right for _, right in channel_timeline(str(stereo), 250)]
    assert rights[-6:] == [float(sc.AGENT.tone_hz)] * 6, f"the last 1.5 s, 250 ms windows: {rights[-6:]}"
