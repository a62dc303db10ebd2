"""Issue #13 §1 on the simulated Asterisk: however the customer is transferred blind to an external
number — the agent's phone (REFER → BlindTransfer), or an AMI Redirect by a CTI application that no
event announces — the stored file (the r()/t() legs joined as finalize joins them) has not one 20 ms
frame of the external party with continue_on_external_transfer off, and has it from its first frame
with the rule on; the timeline shows the transfer mute."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.audio import join_legs
from tests.sim_harness import policy_for
from tests.transfer_frames import blind_external, check_external_party

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
