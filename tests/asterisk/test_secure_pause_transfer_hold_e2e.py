"""A secure pause whose time is up while a transfer holds the silence (the agent consults an external
number, continue_on_external_transfer off: nothing may unmask the recording until the consultation
ends) is refused then — and must come once the hold ends, not never: the consultation fails (busy),
the agent is back, and the customer and the agent are in every 20 ms frame of the 2 s they talk after
that, the pause closed by the system's automatic resume. With and without a controller restart while
the consultation rings (the adopted recording keeps the hold and the pause's limit). Simulated
Asterisk over TCP, real time."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from lab import scenarios as sc
from storage.audio import join_legs
from tests.sim_harness import policy_for
from tests.transfer_frames import FRAME_MS, attended_external, frames_with_tone

from .test_e2e import Harness, harness

__all__ = ["harness"]


async def _restart_during_ring(harness: Harness) -> None:
    await harness.wait(
        lambda: harness.pool.fetchval(
            "SELECT count(*) FROM recording_events e JOIN recordings r ON r.id = e.recording_id"
            " WHERE r.pbx = $1 AND e.kind = 'consultation'",
            harness.pbx,
        )
    )
    await harness.stop_controller()
    await harness.start_controller()
    await harness.wait(lambda: harness.recorder is not None and bool(harness.recorder.live_calls()))


@pytest.mark.parametrize("restart", [False, True], ids=["same_controller", "restarted"])
async def test_secure_pause_due_during_an_external_consultation_resumes_when_the_agent_is_back(
    harness: Harness, restart: bool, tmp_path: Path
) -> None:
    base = attended_external("phone", False, "busy")
    steps = list(base.steps)
    i = next(n for n, s in enumerate(steps) if isinstance(s, sc.Transfer))
    steps[i] = replace(steps[i], ring_ms=2500)  # rings past the pause's 1 s limit
    steps[i:i] = [sc.Pause("supervisor")]
    scenario = replace(base, steps=tuple(steps), settings={**base.settings, "pause_max_seconds": 1})
    harness.policy = policy_for(scenario.settings)
    harness.sim.time_scale = 1.0
    harness.sim.settle_timeout = 2.0
    assert harness.recorder is not None
    harness.recorder.warning_lead_s = 0.5

    async def on_step(step: object) -> None:
        if isinstance(step, sc.Pause):
            await harness.on_step(step)
            if restart:
                later.append(asyncio.create_task(_restart_during_ring(harness)))

    later: list[asyncio.Task[None]] = []
    call = await harness.sim.play(scenario, on_step)
    for task in later:
        await task
    await harness.settle()
    rows = await harness.recordings()
    assert len(rows) == 1, [dict(r) for r in rows]
    rec = rows[0]
    assert rec["customer_leg"] == call.customer.uniqueid and rec["stop_reason"] == "hangup"
    tl = rec["timeline"]
    (pause,) = tl["pauses"]
    assert (pause["resumed_by"], pause["resumed_how"]) == ("system", "auto_resume"), pause
    (c,) = tl["consultations"]
    assert c["outcome"] == "returned" and pause["end_ms"] >= c["end_ms"], (pause, c)  # not while it rang
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    ext = [i for i, f in enumerate(frames_with_tone(stereo, float(sc.TARGET_EXTERNAL.tone_hz))) if any(f)]
    assert ext == [], f"external party heard in 20 ms frames {ext[:10]}"
    cust = frames_with_tone(stereo, float(sc.CUSTOMER.tone_hz))
    agt = frames_with_tone(stereo, float(sc.AGENT.tone_hz))
    talk = 2000 // FRAME_MS
    after = range(len(cust) - talk + 10, len(cust) - 1)
    gaps = [i for i in after if not (cust[i][0] and agt[i][1])]
    assert gaps == [], f"frames after the agent was back without customer LEFT + agent RIGHT: {gaps[:10]}"
