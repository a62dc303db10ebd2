"""Issue #13 §3 on the simulated Asterisk: `external_joiner = mute` — the agent consults an external
number (Atxfer) and merges it into a three-way call with continue_on_external_transfer off: the
customer's recording is muted from the consultation's dial while that party is in the call (not one
20 ms frame of it), and the customer and the agent are recorded again once it has left."""

from __future__ import annotations

from pathlib import Path

from storage.audio import join_legs
from tests.sim_harness import policy_for
from tests.transfer_frames import check_three_way_muted, three_way_external_muted

from .test_e2e import Harness, harness

__all__ = ["harness"]


async def test_external_joiner_mutes_while_in_the_call(harness: Harness, tmp_path: Path) -> None:
    scenario = three_way_external_muted()
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == call.customer.uniqueid
    assert (rec["state"], rec["stop_reason"]) == ("stopped", "hangup")
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    # muted from the consultation's dial (2 s); the merge follows 500 ms ring + 1 s consultation
    check_three_way_muted(stereo, rec["timeline"], joined_at_ms=2000 + 500 + 1000)
    (c,) = rec["timeline"]["consultations"]
    assert (c["outcome"], c["muted"]) == ("conference", True)
