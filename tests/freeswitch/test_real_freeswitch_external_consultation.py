"""Against a REAL FreeSWITCH 1.10: the agent's att_xfer to an EXTERNAL number with
continue_on_external_transfer off (issue #13 §1/§2), through the real chain (FreeSwitchDriver →
Recorder → journal → FinalizeWorker → stored age object), checked per 20 ms frame: customer 440 Hz
LEFT, agent 880 Hz RIGHT, external party 660 Hz (tests/transfer_frames.check_real_attended_external).

- completed (the agent's att_xfer hangup key after the external party answered): not one frame of it,
  the recording muted from the consultation's dial and stopped at the completion;
- the external number busy (+15559990486 in tests/freeswitch/real_pbx/callrec_test.xml): the agent is
  back, the mute lifted, customer and agent in the file after the return.

Same setup as test_real_freeswitch.py (CALLREC_TEST_FREESWITCH, CALLREC_TEST_FREESWITCH_CAPTURE).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from storage.playback import decrypted_audio_file
from tests.freeswitch import test_real_freeswitch as base
from tests.freeswitch.real_pbx.harness import AGENT, EXTERNAL, Chain, LabEsl
from tests.freeswitch.test_real_freeswitch import TARGET, inbound_call
from tests.transfer_frames import check_real_attended_external

# the same fixtures as test_real_freeswitch.py (the chain, the lab client that keeps the ESL transcript)
chain, lab, pbx_turn = base.chain, base.lab, base.pbx_turn

pytestmark = [
    pytest.mark.real_freeswitch,
    pytest.mark.skipif(
        not TARGET,
        reason="needs a real FreeSWITCH: set CALLREC_TEST_FREESWITCH=host:port:password (see test_real_freeswitch.py)",
    ),
]

BUSY_EXTERNAL = "+15559990486"


async def _att_xfer(lab: LabEsl, agent: str, number: str) -> None:
    lab.note(f"STEP att_xfer by the agent leg to {number}")
    await lab.api(
        f"uuid_broadcast {agent} att_xfer::{{loopback_bowout=false,origination_caller_id_number={AGENT},"
        f"callrec_test_secs=40}}loopback/{number}/callrec_test_phones aleg"
    )


async def _check(chain: Chain, row: asyncpg.Record, *, external: str, completed: bool) -> None:
    async with decrypted_audio_file(chain.config, dict(row)) as path:
        check_real_attended_external(path, row["timeline"], external=external, agent=AGENT, completed=completed)


async def test_att_xfer_to_external_rule_off_completed_records_no_frame_of_it(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    await lab.api(f"uuid_setvar {agent} attxfer_hangup_key *")
    await _att_xfer(lab, agent, EXTERNAL)
    await lab.wait_event(
        lambda h: h.get("Event-Name") == "CHANNEL_BRIDGE" and agent in (h.get("Bridge-A-Unique-ID"),), 10
    )
    await asyncio.sleep(2)  # the agent talks with the external party
    lab.note("STEP agent presses the att_xfer hangup key")
    await lab.api(f"uuid_recv_dtmf {agent} *")
    await lab.wait_event(lambda h: h.get("Event-Name") == "CHANNEL_BRIDGE" and cust == h.get("Bridge-B-Unique-ID"), 10)
    await asyncio.sleep(2.5)  # the customer talks with the external party
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["stop_reason"] == "external_transfer"
    t = row["timeline"]
    assert [(x["kind"], x["target"], x["target_class"], x["stopped_recording"]) for x in t["transfers"]] == [
        ("attended", EXTERNAL, "external", True)
    ]
    assert [s["party"] for s in t["segments"]] == [AGENT]
    await _check(chain, row, external=EXTERNAL, completed=True)


async def test_att_xfer_to_a_busy_external_number_rule_off_the_agent_is_back(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    await _att_xfer(lab, agent, BUSY_EXTERNAL)
    await asyncio.sleep(5)  # the consultation fails at once; the agent and the customer talk on
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["stop_reason"] == "hangup"
    t = row["timeline"]
    assert t["transfers"] == []
    assert [s["party"] for s in t["segments"]] == [AGENT]
    await _check(chain, row, external=BUSY_EXTERNAL, completed=False)
