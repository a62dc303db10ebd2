"""The agent's phone codes against a REAL FreeSWITCH 1.10 (see test_real_freeswitch.py for what it
needs): the shipped hook's bind_meta_app bindings on the agent's leg fire CUSTOM callrec::feature when
the agent's side "dials" *1 / *2 (uuid_recv_dtmf with "~": DTMF processed as if the agent's phone
sent it; without "~" FreeSWITCH marks queued digits skip-process and no binding sees them), the recorder
masks / unmasks the recording, the confirmation tone goes to the agent's leg only, and the stored file
is silent over the pause and free of the tone. Where agent pause is not allowed, *1 masks nothing."""

from __future__ import annotations

import asyncio

from controller.tones import TONES
from tests.freeswitch.real_pbx.harness import Chain, LabEsl
from tests.freeswitch.test_real_freeswitch import (  # noqa: F401 (fixtures)
    chain,
    events_of,
    inbound_call,
    lab,
    pytestmark,
)


async def test_agent_star1_star2_pause_and_resume_on_a_real_freeswitch(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"agent_pause_allowed": True}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(2)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*1")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "paused", within=5)
    await asyncio.sleep(2.5)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*2")
    await chain.wait(lambda: chain.live_call(cust)["recording"]["state"] == "recording", within=5)
    await asyncio.sleep(3)
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    (pause,) = row["timeline"]["pauses"]
    assert (pause["how"], pause["resumed_how"]) == ("phone", "phone") and pause["by"] == "agent:2001"
    assert pause["end_ms"] - pause["start_ms"] >= 2000
    assert await events_of(chain.pool, row["id"]) == ["start", "pause", "resume", "stop"]
    tl = await chain.stored_timeline(row)
    start, end = pause["start_ms"] // 250 + 2, pause["end_ms"] // 250 - 1
    assert all(r == (None, None) for r in tl[start:end]), tl[start:end]
    assert 440.0 in {r[0] for r in tl[end + 3 :]} and 880.0 in {r[1] for r in tl[end + 3 :]}
    assert not any(float(TONES["confirm"].hz) in r for r in tl), "the confirmation tone must not be recorded"


async def test_agent_star1_refused_where_agent_pause_is_not_allowed(chain: Chain, lab: LabEsl) -> None:
    chain.settings = {"agent_pause_allowed": False}
    await chain.start_controller()
    cust, agent, handset = await inbound_call(lab)
    row = await chain.recording_of(cust)
    await asyncio.sleep(1.5)
    assert "+OK" in await lab.api(f"uuid_recv_dtmf {agent} ~*1")
    await asyncio.sleep(2)
    assert chain.live_call(cust)["recording"]["state"] == "recording"
    await lab.hangup(handset)
    await lab.gone(cust)
    row = await chain.finalize(row["id"])
    assert row["timeline"]["pauses"] == []
    tl = await chain.stored_timeline(row)
    assert all(r[0] == 440.0 for r in tl[1:-1]) and not any(float(TONES["refuse"].hz) in r for r in tl)
