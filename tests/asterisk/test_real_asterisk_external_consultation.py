"""Against a REAL Asterisk 20: the agent's attended transfer (AMI `Atxfer`) to an EXTERNAL number with
continue_on_external_transfer off (issue #13 §1/§2), through the real chain (AsteriskDriver → Recorder
→ journal → FinalizeWorker → stored age object), checked per 20 ms frame: customer 440 Hz LEFT, agent
880 Hz RIGHT, external party 660 Hz (tests/transfer_frames.check_real_attended_external).

- completed (the agent hangs up after the external party answered): not one frame of it, the
  recording muted from the consultation's dial and stopped at the completion;
- the external number busy (9005550486 in tests/asterisk/real_pbx/callrec-test.conf, Hangup(17)):
  the agent is back, the mute lifted, customer and agent in the file after the return. (AMI Atxfer
  queues DTMF on the agent's channel; see test_real_asterisk_failed_transfer.py on lost digits.)

Same setup as test_real_asterisk.py (CALLREC_TEST_ASTERISK, optional CALLREC_TEST_ASTERISK_LAB and
CALLREC_TEST_ASTERISK_CAPTURE).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from controller.drivers.ami_protocol import header
from tests.asterisk import test_real_asterisk as base
from tests.asterisk.real_pbx.harness import AGENT, DID_EXTEN_HOOK, EXTERNAL, TARGET, Chain, LabAmi
from tests.transfer_frames import check_real_attended_external_row

# the same fixtures as test_real_asterisk.py (the chain, the lab client, the optional AMI transcript)
chain, lab, transcript, pbx_turn = base.chain, base.lab, base.transcript, base.pbx_turn

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(
        not TARGET,
        reason="needs a real Asterisk: set CALLREC_TEST_ASTERISK=host:port:user:secret (see test_real_asterisk.py)",
    ),
]

BUSY_EXTERNAL = "9005550486"


async def _atxfer(chain: Chain, lab: LabAmi, number: str, *, cust_secs: int) -> tuple[asyncpg.Record, str]:
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_HOOK, cust_secs=cust_secs)
    rec = await chain.wait_recording()
    agent_channel = lab.dialed_channel(cust, "Local/2001@")
    await asyncio.sleep(2.5)
    await lab.checked(
        {"Action": "Atxfer", "Channel": agent_channel, "Exten": number, "Context": "callrec-test-internal"}
    )
    return rec, agent_channel


async def test_atxfer_to_external_rule_off_completed_records_no_frame_of_it(chain: Chain, lab: LabAmi) -> None:
    rec, agent_channel = await _atxfer(chain, lab, EXTERNAL, cust_secs=12)
    # consultation answered: the external party's phone is bridged with the agent
    await lab.wait_event(
        lambda m: header(m, "Event") == "BridgeEnter" and header(m, "Channel").startswith(f"Local/{EXTERNAL}@"),
        within=10,
    )
    await asyncio.sleep(1.5)
    await lab.checked({"Action": "Hangup", "Channel": agent_channel})  # the agent completes the transfer
    row = await chain.finalize(rec["id"])
    await check_real_attended_external_row(chain.config, row, external=EXTERNAL, agent=AGENT, completed=True)


async def test_atxfer_to_a_busy_external_number_rule_off_the_agent_is_back(chain: Chain, lab: LabAmi) -> None:
    rec, _ = await _atxfer(chain, lab, BUSY_EXTERNAL, cust_secs=10)
    row = await chain.finalize(rec["id"])
    await check_real_attended_external_row(chain.config, row, external=BUSY_EXTERNAL, agent=AGENT, completed=False)
