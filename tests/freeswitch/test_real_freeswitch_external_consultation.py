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

import pytest

from tests.freeswitch import test_real_freeswitch as base
from tests.freeswitch.real_pbx.harness import AGENT, EXTERNAL, Chain, LabEsl
from tests.freeswitch.test_real_freeswitch import TARGET, inbound_call
from tests.transfer_frames import check_real_attended_external_row

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


async def test_att_xfer_to_external_rule_off_completed_records_no_frame_of_it(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    await lab.api(f"uuid_setvar {agent} attxfer_hangup_key *")
    await lab.att_xfer(agent, EXTERNAL)
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
    await check_real_attended_external_row(chain.config, row, external=EXTERNAL, agent=AGENT, completed=True)


async def test_att_xfer_to_a_busy_external_number_rule_off_the_agent_is_back(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    await lab.att_xfer(agent, BUSY_EXTERNAL)
    await asyncio.sleep(5)  # the consultation fails at once; the agent and the customer talk on
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    await check_real_attended_external_row(chain.config, row, external=BUSY_EXTERNAL, agent=AGENT, completed=False)
