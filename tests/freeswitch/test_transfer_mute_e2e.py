"""Issue #13 §1 on the simulated FreeSWITCH: however the customer is transferred blind to an external
number — the agent's phone (REFER), uuid_transfer, or a move no event names — the stored file has not
one 20 ms frame of the external party with continue_on_external_transfer off, and has it from its
first frame with the rule on; the timeline shows the transfer mute."""

from __future__ import annotations

import pytest

from tests.transfer_frames import blind_external, check_external_party

from .conftest import Harness


@pytest.mark.parametrize("continue_rule", [False, True], ids=["rule_off", "rule_on"])
@pytest.mark.parametrize("method", ["phone", "pbx", "redirect"])
async def test_blind_transfer_to_an_external_number(harness: Harness, method: str, continue_rule: bool) -> None:
    scenario = blind_external(method, continue_rule)
    handle = await harness.play(scenario)
    (rec,) = [r for r in await harness.recordings() if r["customer_leg"] == handle.customer.uuid]
    assert rec["stop_reason"] == scenario.expect.stop_reason
    check_external_party(rec["spool_files"]["stereo"], rec["timeline"], continue_rule, method != "redirect")
    kinds = [e["kind"] for e in await harness.events(rec["id"])]
    assert "transfer_mute" in kinds or method != "redirect"
