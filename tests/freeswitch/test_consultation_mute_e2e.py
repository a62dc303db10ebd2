"""Issue #13 §1/§2 on the simulated FreeSWITCH: an attended transfer to an external number, by the
agent's phone (hold, a second call, REFER with Replaces) or by att_xfer, with
continue_on_external_transfer off — the customer's recording is muted from the consultation's dial,
so the stored file has not one 20 ms frame of the external party although it talks from the instant
of the completion until the controller's stop lands; a failed consultation (busy) unmutes it when
the agent is back; with the rule on the external party is recorded from its first frame."""

from __future__ import annotations

import pytest

from tests.transfer_frames import attended_external, check_attended_external

from .conftest import Harness


@pytest.mark.parametrize(
    ("continue_rule", "outcome"),
    [(False, "answer"), (False, "busy"), (True, "answer")],
    ids=["rule_off", "rule_off_busy", "rule_on"],
)
@pytest.mark.parametrize("method", ["phone", "pbx"])
async def test_attended_transfer_to_an_external_number(
    harness: Harness, method: str, continue_rule: bool, outcome: str
) -> None:
    scenario = attended_external(method, continue_rule, outcome)
    handle = await harness.play(scenario)
    (rec,) = [r for r in await harness.recordings() if r["customer_leg"] == handle.customer.uuid]
    assert rec["stop_reason"] == scenario.expect.stop_reason
    tl = rec["timeline"]
    (c,) = tl["consultations"]
    assert (c["target"], c["outcome"]) == ("+15557654321", "transferred" if outcome == "answer" else "returned")
    assert [s["party"] for s in tl["segments"]][: len(scenario.expect.segments)] == [
        {"agent": "2001", "target": "+15557654321"}[r] for r in scenario.expect.segments
    ]
    check_attended_external(rec["spool_files"]["stereo"], tl, continue_rule, outcome)
    kinds = [e["kind"] for e in await harness.events(rec["id"])]
    if not continue_rule:  # journaled as it happened (rule on: no consultation mute, see the check above)
        assert "transfer_mute" in kinds and ("transfer_unmute" in kinds) is (outcome != "answer")
