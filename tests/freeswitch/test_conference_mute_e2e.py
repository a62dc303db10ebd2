"""Issue #13 §3 on the simulated FreeSWITCH: `external_joiner = mute` — an external party dialled into
a mod_conference room with continue_on_external_transfer off mutes the customer's recording while it
is in the room (not one 20 ms frame of it), and the customer and the agent are recorded again once it
has left; the recording is one file to the end of the call."""

from __future__ import annotations

from tests.transfer_frames import check_three_way_muted, three_way_external_muted

from .conftest import Harness


async def test_external_joiner_mutes_while_in_the_conference(harness: Harness) -> None:
    handle = await harness.play(three_way_external_muted())
    (rec,) = await harness.recordings()
    assert rec["customer_leg"] == handle.customer.uuid
    assert (rec["state"], rec["stop_reason"]) == ("stopped", "hangup")
    assert rec["policy"]["settings"]["external_joiner"] == "mute"
    check_three_way_muted(rec["spool_files"]["stereo"], rec["timeline"], joined_at_ms=2000 + 500)
    kinds = [e["kind"] for e in await harness.events(rec["id"])]
    assert "transfer_mute" in kinds and "transfer_unmute" in kinds
