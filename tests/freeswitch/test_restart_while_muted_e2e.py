"""The simulated FreeSWITCH (ESL over TCP) counterpart of tests/asterisk/test_restart_while_muted_e2e.py:
the controller restarted while the customer's recording is muted for the agent's consultation of an
external number (continue_on_external_transfer off; the phone's hold + second call, or att_xfer);
the consultation fails (busy), the agent takes the customer back: the stored file has the customer
LEFT and the agent RIGHT in every 20 ms frame of the 2 s they talk after that, the mute closed
(unmuted, the agent next), one recording."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from lab import scenarios as sc
from tests.sim_harness import policy_for
from tests.transfer_frames import FRAME_MS, attended_external, frames_with_tone

from .conftest import Harness

RING_MS = 3000


async def _restart_while_muted(harness: Harness) -> None:
    sim = harness.sim
    await harness.wait(lambda: any(r.masked for ch in sim.channels.values() for r in ch.recordings.values()), 10)
    await harness.wait(
        lambda: harness.pool.fetchval(
            "SELECT count(*) FROM recording_events e JOIN recordings r ON r.id = e.recording_id"
            " WHERE r.pbx = $1 AND e.kind = 'transfer_mute'",
            harness.pbx,
        )
    )
    await harness.stop_controller()
    await harness.start_controller()
    await harness.wait(lambda: harness.recorder is not None and bool(harness.recorder.live_calls()))


@pytest.mark.parametrize("method", ["phone", "pbx"])
async def test_restart_while_consultation_muted_then_the_agent_is_back(harness: Harness, method: str) -> None:
    base = attended_external(method, False, "busy")
    steps = tuple(replace(s, ring_ms=RING_MS) if isinstance(s, sc.Transfer) else s for s in base.steps)
    scenario = replace(base, steps=steps)
    harness.policy = policy_for(scenario.settings)
    harness.sim.time_scale = 1.0
    harness.sim.settle_timeout = 2.0
    restart = asyncio.create_task(_restart_while_muted(harness))

    async def no_step(step: Any, handle: Any) -> None:
        return None

    handle = await harness.sim.run(scenario, on_step=no_step)
    await restart
    await harness.settle()
    rows = await harness.recordings()
    assert len(rows) == 1, [dict(r) for r in rows]
    rec = rows[0]
    assert rec["customer_leg"] == handle.customer.uuid and rec["stop_reason"] == "hangup"
    tl = rec["timeline"]
    mutes = [p for p in tl["pauses"] if p.get("kind") == "transfer_mute"]
    assert mutes and mutes[0]["reason"] == "external_consultation", tl["pauses"]
    assert all(p["end_ms"] is not None for p in tl["pauses"]), tl["pauses"]
    assert (mutes[-1]["outcome"], mutes[-1].get("next_party")) == ("unmuted", sc.AGENT_EXT), mutes
    stereo = rec["spool_files"]["stereo"]
    cust = frames_with_tone(stereo, float(sc.CUSTOMER.tone_hz))
    agt = frames_with_tone(stereo, float(sc.AGENT.tone_hz))
    talk = 2000 // FRAME_MS
    after = range(len(cust) - talk + 5, len(cust) - 1)
    gaps = [i for i in after if not (cust[i][0] and agt[i][1])]
    assert gaps == [], f"frames after the agent was back without customer LEFT + agent RIGHT: {gaps[:10]}"
