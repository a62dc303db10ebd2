"""Against a REAL FreeSWITCH 1.10: a three-way call through mod_conference (issue #13 §3), the way the
simulator plays it — the agent's CTI moves the customer and the agent into a conference room
(`uuid_transfer <customer> -both conference:<room>@default inline`) and dials the second agent into it
(`originate … &conference(<room>@default)`, a call of its own) — through the real chain
(FreeSwitchDriver → Recorder → journal → FinalizeWorker → stored object), checked per 20 ms frame of
the decrypted file: the join and the leave are in the timeline, the customer (440 Hz) stays LEFT and
alone there, the agent (880 Hz) and the joiner (660 Hz) are mixed on the RIGHT.

Same setup as test_real_freeswitch.py (CALLREC_TEST_FREESWITCH, CALLREC_TEST_FREESWITCH_CAPTURE);
mod_conference loaded with a profile "default"; the second agent's phone is 3001 in the phones context
of tests/freeswitch/real_pbx/callrec_test.xml (answers after 1 s, 660 Hz).
"""

from __future__ import annotations

import asyncio
import uuid as uuidlib

import pytest

from lab.tones import AGENT_HZ, CUSTOMER_HZ, TARGET_HZ, read_wav, tone_frames
from storage.playback import decrypted_audio_file
from tests.freeswitch import test_real_freeswitch as base
from tests.freeswitch.real_pbx.harness import AGENT, AGENT2, PHONES, Chain, LabEsl
from tests.freeswitch.test_real_freeswitch import TARGET, inbound_call
from tests.transfer_frames import runs

# the same fixtures as test_real_freeswitch.py (the chain, the lab client that keeps the ESL transcript)
chain, lab, pbx_turn = base.chain, base.lab, base.pbx_turn

pytestmark = [
    pytest.mark.real_freeswitch,
    pytest.mark.skipif(not TARGET, reason="needs a real FreeSWITCH: set CALLREC_TEST_FREESWITCH=host:port:password"),
]


def member_event(action: str, uid: str):  # type: ignore[no-untyped-def]
    return lambda e: (
        e.get("Event-Subclass") == "conference::maintenance" and e.get("Action") == action and e.get("Unique-ID") == uid
    )


async def test_conference_three_way_call(chain: Chain, lab: LabEsl) -> None:
    """Customer and agent moved into a room, the second agent dialled in, 3 s of the three of them, the
    second agent hangs up, the customer 2 s later: one join and one leave in the timeline (no transfer,
    the agent's segment throughout), the customer alone on the LEFT, the joiner on the RIGHT only
    between its join and its leave, mixed with the agent."""
    await chain.start_controller()
    cust, _agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    room = f"callrec-3way-{cust[:8]}@default"
    await lab.api(f"uuid_transfer {cust} -both conference:{room} inline")
    await lab.wait_event(member_event("add-member", cust), 10)
    joiner = str(uuidlib.uuid4())
    await lab.command(
        f"bgapi originate {{origination_uuid={joiner},origination_caller_id_number={AGENT},callrec_test_secs=30,"
        f"loopback_bowout=false}}loopback/{AGENT2}/{PHONES} &conference({room})"
    )
    await lab.wait_event(member_event("add-member", joiner), 10)
    await asyncio.sleep(3)
    await lab.hangup(joiner)  # the second agent hangs up
    await lab.wait_event(member_event("del-member", joiner), 10)
    await asyncio.sleep(2)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["stop_reason"] == "hangup"
    t = row["timeline"]
    (joined,) = t["conference"]
    assert (joined["party"], joined["class"], joined["stopped_recording"]) == (AGENT2, "internal", False)
    assert joined["left_ms"] is not None and 2500 <= joined["left_ms"] - joined["joined_ms"] <= 4000, joined
    assert t["transfers"] == [] and [s["party"] for s in t["segments"]] == [AGENT], t
    async with decrypted_audio_file(chain.config, dict(row)) as path:
        _, _, frames = read_wav(path)
    cust_f, agent_f, target_f = (tone_frames(frames, hz, 20) for hz in (CUSTOMER_HZ, AGENT_HZ, TARGET_HZ))
    # the customer stays LEFT: no frame of the agent or the joiner there, none of the customer on the RIGHT;
    # the customer is there in every frame but the move into the room (2 frames seen) and a loaded host's dropouts
    assert not any(f[0] for f in agent_f + target_f) and not any(f[1] for f in cust_f)
    assert sum(not f[0] for f in cust_f[:-2]) <= 10, runs([not f[0] for f in cust_f])
    # the joiner: on the RIGHT from its join to its leave (±100 ms), mixed with the agent
    (heard,) = runs([f[1] for f in target_f])
    assert abs(heard[0] * 20 - joined["joined_ms"]) <= 100 and abs(heard[1] * 20 - joined["left_ms"]) <= 100, (
        heard,
        joined,
    )
    assert sum(agent_f[i][1] for i in range(*heard)) >= 0.9 * (heard[1] - heard[0])
