"""Against a REAL Asterisk 20: a three-way call (issue #13 §3). The agent consults a second agent with
`Atxfer` (the customer on hold) and, once it answered, keys Asterisk's `atxferthreeway` code (default
`*3`): the agent and the consultation join the customer's bridge, which now has three members. Through
the real chain (AsteriskDriver → Recorder → journal → FinalizeWorker → stored object), checked per
20 ms frame of the decrypted file: the join is in the timeline, the customer (440 Hz) stays LEFT and
alone there, the agent (880 Hz) and the joiner (660 Hz) are mixed on the RIGHT.

Same setup as test_real_asterisk.py (CALLREC_TEST_ASTERISK, optional CALLREC_TEST_ASTERISK_LAB and
CALLREC_TEST_ASTERISK_CAPTURE); the route 7000100 dials the agent with Dial option T (the agent may
transfer), and the second agent 3002 answers after 1 s (tests/asterisk/real_pbx/callrec-test.conf).
"""

from __future__ import annotations

import asyncio

import pytest

from lab.tones import AGENT_HZ, CUSTOMER_HZ, TARGET_HZ, read_wav, tone_frames
from storage.playback import decrypted_audio_file
from tests.asterisk import test_real_asterisk as base
from tests.asterisk.real_pbx.harness import AGENT, AGENT2, DID_EXTEN_HOOK, TARGET, Chain, LabAmi
from tests.transfer_frames import runs

# the same fixtures as test_real_asterisk.py (the chain, the lab client, the optional AMI transcript)
chain, lab, transcript, pbx_turn = base.chain, base.lab, base.transcript, base.pbx_turn

pytestmark = [
    pytest.mark.real_asterisk,
    pytest.mark.skipif(
        not TARGET,
        reason="needs a real Asterisk: set CALLREC_TEST_ASTERISK=host:port:user:secret (see test_real_asterisk.py)",
    ),
]

THREEWAY = "*3"  # features.conf [general] atxferthreeway, Asterisk's default
TARGET_PHONE = f"Local/{AGENT2}@callrec-test-target-phone"  # the second agent's phone (its ;1 half)


async def test_three_way_call_joins_the_customers_bridge(chain: Chain, lab: LabAmi) -> None:
    """Atxfer to the second agent, *3 once it answered, 3 s of the three of them, the second agent
    hangs up, the customer 3 s later: one join and one leave in the timeline (no transfer, the agent's
    segment throughout), the customer alone on the LEFT in every frame, the joiner on the RIGHT only
    between its join and its leave, mixed with the agent."""
    await chain.start_controller()
    cust = await lab.inbound(DID_EXTEN_HOOK, cust_secs=11)
    rec = await chain.wait_recording()
    agent_channel = lab.dialed_channel(cust, "Local/2001@")
    await asyncio.sleep(2)
    await lab.checked(
        {"Action": "Atxfer", "Channel": agent_channel, "Exten": AGENT2, "Context": "callrec-test-internal"}
    )
    phone = await lab.wait_event(  # the consultation answered: the second agent's phone is in a bridge
        lambda m: m.get("Event") == "BridgeEnter" and str(m.get("Channel", "")).startswith(TARGET_PHONE),
        within=10,
    )
    await asyncio.sleep(1)
    for d in THREEWAY:  # the agent keys atxferthreeway
        await lab.checked(
            {"Action": "PlayDTMF", "Channel": agent_channel, "Digit": d, "Duration": "120", "Receive": "true"}
        )
        await asyncio.sleep(0.2)
    await lab.wait_event(lambda m: m.get("Event") == "AttendedTransfer", within=5)
    await asyncio.sleep(3)
    target_phone = str(phone["Channel"]).replace(";1", ";2")  # Local/3002@callrec-test-target-phone-…;2
    await lab.checked({"Action": "Hangup", "Channel": target_phone})  # the second agent hangs up
    row = await chain.finalize(rec["id"])
    assert row["stop_reason"] == "hangup"
    t = row["timeline"]
    (joined,) = t["conference"]
    assert (joined["party"], joined["class"], joined["stopped_recording"]) == (AGENT2, "internal", False)
    assert joined["left_ms"] is not None and 2500 <= joined["left_ms"] - joined["joined_ms"] <= 4000, joined
    assert t["transfers"] == [] and [s["party"] for s in t["segments"]] == [AGENT], t
    assert [(c["target"], c["outcome"]) for c in t["consultations"]] == [(AGENT2, "conference")]
    async with decrypted_audio_file(chain.config, dict(row)) as path:
        _, _, frames = read_wav(path)
    cust_f, agent_f, target_f = (tone_frames(frames, hz, 20) for hz in (CUSTOMER_HZ, AGENT_HZ, TARGET_HZ))
    # the customer stays LEFT: no frame of the agent or the joiner there, none of the customer on the RIGHT
    assert not any(f[0] for f in agent_f + target_f) and not any(f[1] for f in cust_f)
    # the joiner: on the RIGHT from its join to its leave, mixed with the agent. It is heard up to ~300 ms
    # after the join: the consultation's transfer mute (the agent left the customer to consult) is
    # lifted by a MixMonitorMute at the merge, and Asterisk turns the bridge into a softmix one.
    (heard,) = runs([f[1] for f in target_f])
    assert -100 <= heard[0] * 20 - joined["joined_ms"] <= 400, (heard, joined, t["pauses"])
    assert abs(heard[1] * 20 - joined["left_ms"]) <= 100, (heard, joined)
    assert sum(agent_f[i][1] for i in range(*heard)) >= 0.9 * (heard[1] - heard[0])
    # and the customer is recorded again from the end of that mute on
    (mute,) = t["pauses"]
    assert mute["kind"] == "transfer_mute" and abs(mute["end_ms"] - joined["joined_ms"]) <= 100, mute
    assert all(cust_f[i][0] for i in range(heard[0], len(cust_f) - 5))
