"""Against a REAL FreeSWITCH 1.10: transfers started inside the PBX rather than by `uuid_transfer`
(issue #13 §1), and an attended transfer that fails, through the real chain (FreeSwitchDriver →
Recorder → journal → FinalizeWorker → stored age object), checked by FFT: customer 440 Hz LEFT, agent
880 Hz RIGHT, external party 660 Hz.

- The dialplan `transfer` application run by the AGENT's leg with `-bleg` (what a feature code such as
  `bind_meta_app … transfer::-bleg <number>` does): the customer leg leaves the agent's bridge and is
  routed to an external number.
- `att_xfer` by the agent to a busy second agent (3099 in tests/freeswitch/real_pbx/callrec_test.xml):
  the consultation fails and the agent is back with the customer.

Same setup as test_real_freeswitch.py (CALLREC_TEST_FREESWITCH, CALLREC_TEST_FREESWITCH_CAPTURE).
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.freeswitch import test_real_freeswitch as base
from tests.freeswitch.real_pbx.harness import AGENT, EXTERNAL, ROUTES, Chain, LabEsl
from tests.freeswitch.test_real_freeswitch import TARGET, inbound_call, lefts, rights, tones

# the same fixtures as test_real_freeswitch.py (the chain, the lab client that keeps the ESL transcript)
chain, lab, pbx_turn = base.chain, base.lab, base.pbx_turn

pytestmark = [
    pytest.mark.real_freeswitch,
    pytest.mark.skipif(
        not TARGET,
        reason="needs a real FreeSWITCH: set CALLREC_TEST_FREESWITCH=host:port:password (see test_real_freeswitch.py)",
    ),
]

BUSY_AGENT = "3099"


async def _agent_transfers_customer(chain: Chain, lab: LabEsl, **settings: object) -> tuple[asyncpg.Record, list]:
    chain.settings = dict(settings)
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2.5)
    lab.note(f"STEP the agent leg runs the transfer app: -bleg {EXTERNAL} XML {ROUTES}")
    reply = await lab.command(
        f"sendmsg {agent}\ncall-command: execute\nexecute-app-name: transfer\n"
        f"execute-app-arg: -bleg {EXTERNAL} XML {ROUTES}"
    )
    assert reply.startswith("+OK"), reply
    await asyncio.sleep(4)  # the external party rings 1 s, then talks
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    return row, await chain.stored_timeline(row)


async def test_transfer_app_of_the_agent_to_external_rule_off_ends_the_file(chain: Chain, lab: LabEsl) -> None:
    row, tl = await _agent_transfers_customer(chain, lab, continue_on_external_transfer=False)
    assert row["stop_reason"] == "external_transfer"
    (xfer,) = row["timeline"]["transfers"]
    assert (xfer["kind"], xfer["target"], xfer["target_class"], xfer["stopped_recording"]) == (
        "blind",
        EXTERNAL,
        "external",
        True,
    )
    assert 660.0 not in {r[1] for r in tl}, "nothing of the external party may be recorded"
    assert tones(rights(tl)) == [880.0]
    assert len(tl) * 250 <= xfer["at_ms"] + 1000  # the file ends at the transfer


async def test_att_xfer_to_a_busy_agent_keeps_the_first_agent(chain: Chain, lab: LabEsl) -> None:
    """The consultation fails (USER_BUSY): the agent is back with the customer, nothing is transferred
    and the recording goes on to the hangup with the same agent on the right."""
    chain.settings = {"continue_on_external_transfer": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    await lab.att_xfer(agent, BUSY_AGENT)
    await asyncio.sleep(4)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["stop_reason"] == "hangup"
    t = row["timeline"]
    assert t["transfers"] == []
    assert [s["party"] for s in t["segments"]] == [AGENT]
    tl = await chain.stored_timeline(row)
    assert tones(rights(tl)) == [880.0]
    assert tones(list(lefts(tl))) == [440.0]
    assert 880.0 in {r[1] for r in tl[-6:]}, "the agent is back after the failed consultation"
