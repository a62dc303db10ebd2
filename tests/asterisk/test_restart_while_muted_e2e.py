"""A controller restarted (or a standby taking over) WHILE the customer's recording is transfer-muted
must not forget the mute: the agent's consultation of a party is ringing (an external number with
continue_on_external_transfer off: reason external_consultation; an internal one by the PBX's
Atxfer: the customer alone in its bridge, reason customer_left_bridge), the controller is killed and a
new one adopts the recording at the resync, then the consultation fails (busy) and the agent takes the
customer back. The stored file (the r()/t() legs joined as finalize joins them) must have the customer
LEFT and the agent RIGHT in every 20 ms frame of the 2 s they talk after that, and the timeline must
show the mute closed (unmuted, the agent next) — before, the adopted recording stayed muted to the end
of the call: lost audio."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from lab import scenarios as sc
from storage.audio import join_legs
from tests.sim_harness import policy_for
from tests.transfer_frames import FRAME_MS, attended_external, failed_attended, frames_with_tone

from .test_e2e import Harness, harness

__all__ = ["harness"]

RING_MS = 3000  # simulated = wall time here (time_scale 1): the restart happens while the target rings


def _scenario(target: str, method: str) -> sc.Scenario:
    base = attended_external(method, False, "busy") if target == "external" else failed_attended(method, "busy")
    steps = tuple(replace(s, ring_ms=RING_MS) if isinstance(s, sc.Transfer) else s for s in base.steps)
    return replace(base, steps=steps)


async def _restart_while_muted(harness: Harness, reason: str) -> None:
    """Once the customer's MixMonitor is muted and the journal has the open mute: kill the controller
    (no cleanup) and start a new one, which adopts the recording."""
    sim = harness.sim
    await harness.wait(
        lambda: any(m.mute_read or m.mute_write for ch in sim.recording_channels() for m in ch.monitors), 10
    )
    await harness.wait(
        lambda: harness.pool.fetchval(
            "SELECT count(*) FROM recording_events e JOIN recordings r ON r.id = e.recording_id"
            " WHERE r.pbx = $1 AND e.kind = 'transfer_mute' AND e.detail->>'reason' = $2",
            harness.pbx,
            reason,
        )
    )
    await harness.stop_controller()
    await harness.start_controller()

    def adopted() -> bool:
        assert harness.recorder is not None
        return any(c["recording"]["id"] for c in harness.recorder.live_calls())

    await harness.wait(adopted)


@pytest.mark.parametrize(
    ("target", "method"),
    [("external", "phone"), ("external", "pbx"), ("internal", "pbx")],
    ids=["external_consultation_phone", "external_consultation_atxfer", "customer_left_bridge_atxfer"],
)
async def test_restart_while_transfer_muted_then_the_agent_is_back(
    harness: Harness, target: str, method: str, tmp_path: Path
) -> None:
    scenario = _scenario(target, method)
    harness.policy = policy_for(scenario.settings)
    harness.sim.time_scale = 1.0
    harness.sim.settle_timeout = 2.0
    reason = "external_consultation" if target == "external" else "customer_left_bridge"
    restart = asyncio.create_task(_restart_while_muted(harness, reason))
    call = await harness.sim.play(scenario)  # no harness steps: the restart runs beside the call
    await restart
    await harness.settle()
    rows = await harness.recordings()
    assert len(rows) == 1, [dict(r) for r in rows]  # adopted, never a second recording
    rec = rows[0]
    assert rec["customer_leg"] == call.customer.uniqueid
    assert rec["stop_reason"] == "hangup"
    tl = rec["timeline"]
    mutes = [p for p in tl["pauses"] if p.get("kind") == "transfer_mute"]
    assert mutes and mutes[0]["reason"] == reason, tl["pauses"]
    assert all(p["end_ms"] is not None for p in tl["pauses"]), tl["pauses"]
    assert (mutes[-1]["outcome"], mutes[-1].get("next_party")) == ("unmuted", sc.AGENT_EXT), mutes
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    cust = frames_with_tone(stereo, float(sc.CUSTOMER.tone_hz))
    agt = frames_with_tone(stereo, float(sc.AGENT.tone_hz))
    talk = 2000 // FRAME_MS
    assert all(cust[i][0] and agt[i][1] for i in range(1, talk - 1)), "customer LEFT, agent RIGHT before the dial"
    # the 2 s after the agent is back (the end of the file, but the frame the hang-up cut)
    after = range(len(cust) - talk + 5, len(cust) - 1)
    gaps = [i for i in after if not (cust[i][0] and agt[i][1])]
    assert gaps == [], f"frames after the agent was back without customer LEFT + agent RIGHT: {gaps[:10]}"


@pytest.mark.parametrize(
    ("target", "method"),
    [("external", "phone"), ("external", "pbx"), ("internal", "pbx")],
    ids=["external_consultation_phone", "external_consultation_atxfer", "customer_left_bridge_atxfer"],
)
async def test_restart_while_transfer_muted_then_the_transfer_completes(
    harness: Harness, target: str, method: str, tmp_path: Path
) -> None:
    """The same restart, then the consulted party answers and the transfer completes: an external one
    (rule off) is not in one frame of the file and the recording stops at the completion, the mute
    closed as stopped; an internal one is recorded from the completion on, the mute lifted for it."""
    base = (
        attended_external(method, False, "answer") if target == "external" else sc.get("attended_transfer_internal_pbx")
    )
    steps = tuple(replace(s, ring_ms=RING_MS) if isinstance(s, sc.Transfer) else s for s in base.steps)
    scenario = replace(base, steps=steps)
    harness.policy = policy_for(scenario.settings)
    harness.sim.time_scale = 1.0
    harness.sim.settle_timeout = 2.0
    reason = "external_consultation" if target == "external" else "customer_left_bridge"
    restart = asyncio.create_task(_restart_while_muted(harness, reason))
    call = await harness.sim.play(scenario)
    await restart
    await harness.settle()
    rows = await harness.recordings()
    assert len(rows) == 1, [dict(r) for r in rows]
    rec = rows[0]
    assert rec["customer_leg"] == call.customer.uniqueid
    tl = rec["timeline"]
    mutes = [p for p in tl["pauses"] if p.get("kind") == "transfer_mute"]
    assert all(p["end_ms"] is not None for p in tl["pauses"]), tl["pauses"]
    (c,) = tl["consultations"]
    assert c["outcome"] == "transferred" and c["end_ms"] is not None, c
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    if target == "external":
        assert rec["stop_reason"] == "external_transfer"
        assert (mutes[-1]["outcome"], mutes[-1].get("next_party")) == ("stopped", sc.EXTERNAL_TARGET), mutes
        ext = [i for i, f in enumerate(frames_with_tone(stereo, float(sc.TARGET_EXTERNAL.tone_hz))) if any(f)]
        assert ext == [], f"external party heard in 20 ms frames {ext[:10]}"
        return
    assert rec["stop_reason"] == "hangup"
    assert (mutes[-1]["outcome"], mutes[-1].get("next_party")) == ("unmuted", sc.TARGET_INTERNAL.number), mutes
    cust = frames_with_tone(stereo, float(sc.CUSTOMER.tone_hz))
    new = frames_with_tone(stereo, float(sc.TARGET_INTERNAL.tone_hz))
    talk = 2000 // FRAME_MS
    after = range(len(cust) - talk + 5, len(cust) - 1)
    gaps = [i for i in after if not (cust[i][0] and new[i][1])]
    assert gaps == [], f"frames after the completion without customer LEFT + target RIGHT: {gaps[:10]}"
