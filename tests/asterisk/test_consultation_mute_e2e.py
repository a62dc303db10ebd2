"""Issue #13 §1/§2 on the simulated Asterisk: an attended transfer to an external number, by the
agent's phone (hold, a second call, REFER with Replaces: S8c) or by the bridge's Atxfer (R8), with
continue_on_external_transfer off — the customer's recording is muted from the consultation's dial,
so the stored file (the r()/t() legs joined as finalize joins them) has not one 20 ms frame of the
external party although it talks from the instant of the completion until the controller's stop
lands; a failed consultation (busy) unmutes it when the agent is back; with the rule on the external
party is recorded from its first frame."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.audio import join_legs
from tests.sim_harness import policy_for
from tests.transfer_frames import attended_external, check_attended_external

from .test_e2e import Harness, harness

__all__ = ["harness"]


@pytest.mark.parametrize(
    ("continue_rule", "outcome"),
    [(False, "answer"), (False, "busy"), (True, "answer")],
    ids=["rule_off", "rule_off_busy", "rule_on"],
)
@pytest.mark.parametrize("method", ["phone", "pbx"])
async def test_attended_transfer_to_an_external_number(
    harness: Harness, method: str, continue_rule: bool, outcome: str, tmp_path: Path
) -> None:
    scenario = attended_external(method, continue_rule, outcome)
    harness.policy = policy_for(scenario.settings)
    call = await harness.sim.play(scenario, harness.on_step)
    await harness.settle()
    (rec,) = [r for r in await harness.recordings() if r["customer_leg"] == call.customer.uniqueid]
    assert rec["stop_reason"] == scenario.expect.stop_reason
    tl = rec["timeline"]
    (c,) = tl["consultations"]
    assert (c["target"], c["outcome"]) == ("+15557654321", "transferred" if outcome == "answer" else "returned")
    stereo = tmp_path / "joined.wav"
    join_legs(Path(rec["spool_files"]["rx"]), Path(rec["spool_files"]["tx"]), stereo)
    check_attended_external(stereo, tl, continue_rule, outcome)
    kinds = [
        e["kind"]
        for e in await harness.pool.fetch("SELECT kind FROM recording_events WHERE recording_id = $1", rec["id"])
    ]
    if not continue_rule:  # journaled as it happened (rule on: no consultation mute, see the check above)
        assert "transfer_mute" in kinds and ("transfer_unmute" in kinds) is (outcome != "answer")
