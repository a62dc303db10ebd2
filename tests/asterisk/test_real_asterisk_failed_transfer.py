"""Against a REAL Asterisk 20: an attended transfer (`Atxfer`) to a busy second agent, through the real
chain (AsteriskDriver → Recorder → journal → FinalizeWorker → stored age object), checked by FFT:
customer 440 Hz LEFT, agent 880 Hz RIGHT. The consultation fails (DialEnd BUSY; the agent stays in the
consultation bridge until the busy channel hangs up, then is back in the customer's bridge, with no
AttendedTransfer event at all): nothing was transferred and the first agent stays on the recording.
AMI Atxfer works by queueing the feature code and the digits as DTMF on the agent's channel; on a loaded
machine Asterisk 20.20.1 was seen to lose digits ("Dialed '3@…' does not exist"), leaving the agent on
hold until the call ends — then this test fails on the agent's missing return, not on callrec.

Same setup as test_real_asterisk.py (CALLREC_TEST_ASTERISK, optional CALLREC_TEST_ASTERISK_LAB and
CALLREC_TEST_ASTERISK_CAPTURE); the busy agents 3099 and 3098 are in tests/asterisk/real_pbx/callrec-test.conf.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.asterisk import test_real_asterisk as base
from tests.asterisk.real_pbx.harness import AGENT, DID_EXTEN_HOOK, TARGET, Chain, LabAmi
from tests.asterisk.test_real_asterisk import lefts, rights

# the same fixtures as test_real_asterisk.py (the chain, the lab client, the optional AMI transcript)
chain, lab, transcript, pbx_turn = base.chain, base.lab, base.transcript, base.pbx_turn

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(
        not TARGET,
        reason="needs a real Asterisk: set CALLREC_TEST_ASTERISK=host:port:user:secret (see test_real_asterisk.py)",
    ),
]


@pytest.mark.parametrize(
    "busy_agent",
    [
        "3099",  # Busy(5): DialEnd BUSY at once, the agent back only when Busy() gives up
        "3098",  # Hangup(17): busy at once, as a SIP phone answering 486
    ],
)
async def test_attended_transfer_to_a_busy_agent_keeps_the_first_agent(
    chain: Chain, lab: LabAmi, busy_agent: str
) -> None:
    """The consultation fails (busy): the agent is back with the customer, nothing is transferred and
    the recording goes on to the hangup with the same agent on the right."""
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_HOOK, cust_secs=14)
    rec = await chain.wait_recording()
    agent_channel = lab.dialed_channel(cust, "Local/2001@")
    await asyncio.sleep(2)
    await lab.checked(
        {"Action": "Atxfer", "Channel": agent_channel, "Exten": busy_agent, "Context": "callrec-test-internal"}
    )
    row = await chain.finalize(rec["id"])
    assert row["stop_reason"] == "hangup"
    assert row["timeline"]["transfers"] == []
    assert [s["party"] for s in row["timeline"]["segments"]] == [AGENT]
    tl = await chain.stored_timeline(row)
    assert lefts(tl) <= {440.0, None}
    seq = [r for r in rights(tl) if r is not None]
    assert seq and set(seq) == {880.0}, rights(tl)
    assert 880.0 in {r[1] for r in tl[-8:]}, "the agent is back after the failed consultation"
